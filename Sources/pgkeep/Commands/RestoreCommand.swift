#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PGKeepCore
import PGKeepEngine
import PGKeepConfig

/// `pgkeep --stanza=main restore --pg1-path=<empty dir> [--set=LABEL] [--type=time|xid|lsn|name|immediate|default|standby
///   --target=... --target-exclusive --target-timeline=latest|current|N --target-action=pause|promote|shutdown --target-past-archive] [--plan [--output=json]] [--delta [--force]]
///   [--db-include=DB ... | --db-exclude=DB ...]`
enum RestoreCommand {
    static func run(_ context: CommandContext) throws {
        let config = context.config
        let set = try context.setLabel()
        let target = try RecoveryTarget.parse(type: config.string(.type) ?? "default", target: config.string(.target),
                                              exclusive: config.bool(.targetExclusive), explicitExclusive: config.isExplicit(.targetExclusive),
                                              timeline: config.string(.targetTimeline) ?? "latest",
                                              action: config.string(.targetAction) ?? "pause", explicitAction: config.isExplicit(.targetAction))
        let layout = try context.layout()
        var options = RestoreOptions(dataDirectory: Posix.absolute(try context.required(.pg1Path)), set: set,
                                     bufferSize: context.bufferSize, processMax: context.processMax,
                                     restoreCommand: restoreCommand(context, stanza: layout.stanza), target: target)
        options.delta = config.bool(.delta)
        // pgBackRest's --force alone replaces the directory; here it is --delta that may also
        // replace a directory pgkeep cannot prove is this cluster's, still comparing checksums.
        options.force = config.bool(.force)
        options.linkAll = config.bool(.linkAll)
        options.targetPastArchive = config.bool(.targetPastArchive)
        options.relocation = .init(tablespaces: config.map(.tablespaceMap), tablespacesUnder: config.string(.tablespaceMapAll),
                                   links: config.map(.linkMap))
        options.archiveMode = RestoreOptions.ArchiveModeOption(rawValue: config.string(.archiveMode) ?? "preserve") ?? .preserve
        options.recoveryOptions = config.map(.recoveryOption)
        options.databases = .init(include: config.list(.dbInclude), exclude: config.list(.dbExclude))
        if options.force { options.delta = true }
        let run = RestoreRun(storage: context.storage, host: context.host, layout: layout, options: options, log: context.log)
        if config.bool(.plan) {
            // The plan reads the repository and looks at the destination; it writes nothing.
            let plan = try run.plan()
            if config.string(.output) == "json" {
                print(try plan.json())
            } else {
                print(plan.text(), terminator: "")
            }
            // A plan with problems exits with the code the restore would be refused with.
            try plan.check()
            return
        }
        let label = try run.run()
        print("restored backup \(label) into '\(options.dataDirectory)'")
        if options.delta, let report = run.report {
            print("delta: \(report.kept) files kept, \(report.rewritten) rewritten, \(report.removed) removed")
        }
    }

    /// The `restore_command` the restored cluster runs: this binary, with the options that locate
    /// the repository, so recovery reads the repository this restore read.
    static func restoreCommand(_ context: CommandContext, stanza: String) -> String {
        var words = [executablePath(), "--stanza=\(stanza)"] + RepositoryStorage.locatingArguments(context.config)
        if context.config.isExplicit(.config), let file = context.config.configFile { words.append("--config=\(file)") }
        // Settings given to restore on its command line that archive-get reads too are the operator's
        // choice for recovery as well (a config file, passed on above, carries its own).
        for name in [OptionName.logPath, .logLevelFile, .lockPath, .spoolPath, .archiveGetQueueMax]
        where context.config.source(of: name) == .commandLine {
            if let value = context.config.resolved(name)?.value.text { words.append("--\(name.rawValue)=\(value)") }
        }
        if context.config.source(of: .archiveAsync) == .commandLine {
            words.append(context.config.bool(.archiveAsync) ? "--archive-async" : "--no-archive-async")
        }
        words.append("archive-get")
        return words.map(shellQuote).joined(separator: " ") + " %f \"%p\""
    }

    static func executablePath() -> String {
        (try? Posix.readLink("/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    static func shellQuote(_ word: String) -> String {
        let safe = word.utf8.allSatisfy { b in
            (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || "/._-=:,+@".utf8.contains(b)
        }
        return safe ? word : "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }
}
