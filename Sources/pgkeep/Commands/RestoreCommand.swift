#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PGKeep

/// `pgkeep --stanza=main restore --pg1-path=<empty dir> [--set=LABEL]`
enum RestoreCommand {
    static func run(_ context: CommandContext) throws {
        let set = try context.setLabel()
        let layout = try context.layout()
        let options = RestoreOptions(dataDirectory: Posix.absolute(try context.required(.pg1Path)), set: set,
                                     bufferSize: context.bufferSize, processMax: context.processMax,
                                     restoreCommand: restoreCommand(context, stanza: layout.stanza))
        let label = try RestoreRun(storage: context.storage, layout: layout, options: options, log: context.log).run()
        print("restored backup \(label) into '\(options.dataDirectory)'")
    }

    /// The `restore_command` the restored cluster runs: this binary, with the options that locate
    /// the repository, so recovery reads the repository this restore read.
    static func restoreCommand(_ context: CommandContext, stanza: String) -> String {
        var words = [executablePath(), "--stanza=\(stanza)", "--repo1-path=\(context.storage.root)"]
        if context.config.isExplicit(.config), let file = context.config.configFile { words.append("--config=\(file)") }
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
