#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepEngine
import PGKeepConfig

/// The command-line front: resolve the configuration, run one command, map its outcome to an exit
/// code from the error table. Logic lives in the library; each command file reads like a script.
///
/// `archive-get` is the one command whose exit status is not the error code: anything but "not in
/// the archive" exits `ErrorCode.archiveGetFatalExitStatus` so PostgreSQL stops recovery rather than
/// ending it early. That holds from the first argument parsed, so the command word is read before
/// the configuration is resolved.
enum CLI {
    static func run(_ arguments: [String]) -> Int32 {
        let log = Log()
        var command: CommandName?
        let isArchiveGet = Configuration.commandWord(in: arguments) == .archiveGet
        let started = Clock.monotonic()
        var logsRun = false
        /// The "command end" line for operators reading the log file.
        func end(_ outcome: String) {
            guard logsRun, let command else { return }
            let milliseconds = Int((Clock.monotonic() - started) * 1000)
            log.info("\(command.rawValue) command end: \(outcome) (\(milliseconds)ms)")
        }
        do {
            let config = try Configuration.resolve(arguments: arguments, environment: Configuration.processEnvironment())
            command = config.command
            if let name = config.string(.logLevelConsole), let level = Log.Level(name: name) { log.consoleLevel = level }
            try refuseRoot(config)
            if CommandName.operational.contains(config.command) {
                startFileLog(config, log)
                logsRun = true
                log.info("\(config.command.rawValue) command begin \(PGKeepVersion.current): \(config.redactedSummary)")
            }
            for warning in config.warnings { log.warn(warning) }
            if config.command.isStoppable {
                try StopFile.refuse(config.command.rawValue, lockPath: config.string(.lockPath) ?? "/tmp/pgkeep",
                                    stanza: config.string(.stanza))
            }
            let context = try CommandContext(config: config, log: log)
            // Config sections naming a stanza the repository lacks ([mian]) apply to nothing. Not
            // for archive-push and archive-get: PostgreSQL runs them per segment, and a section
            // for a stanza not created yet would put a warning per segment in its log.
            if !config.otherStanzaSections.isEmpty, config.command != .archivePush, config.command != .archiveGet,
               let known = try? RepositoryLayout.stanzas(in: context.storage) {
                for warning in config.strayStanzaSections(known: known) { log.warn(warning) }
            }
            // Writers refuse files naming writer features this build does not know (repo-layout.md §3.9).
            try RepositoryFormat.$access.withValue(config.command.repositoryAccess) {
            switch config.command {
            case .stanzaCreate: try StanzaCreateCommand.run(context)
            case .stanzaRepair: try StanzaRepairCommand.run(context)
            case .stanzaUpgrade: try StanzaUpgradeCommand.run(context)
            case .stanzaDelete: try StanzaDeleteCommand.run(context)
            case .check: try CheckCommand.run(context)
            case .backup: try BackupCommand.run(context)
            case .archivePush: try ArchivePushCommand.run(context)
            case .archiveGet: try ArchiveGetCommand.run(context)
            case .restore: try RestoreCommand.run(context)
            case .verify: try VerifyCommand.run(context)
            case .expire: try ExpireCommand.run(context)
            case .info: try InfoCommand.run(context)
            case .annotate: try AnnotateCommand.run(context)
            case .server: try ServerCommand.run(context)
            case .serverPing: try ServerPingCommand.run(context)
            case .stop: try StopCommand.run(context)
            case .start: try StartCommand.run(context)
            case .version: print(config.string(.output) == "num" ? "\(PGKeepVersion.number)" : "pgkeep \(PGKeepVersion.current)")
            case .help: print(Help.text(for: config), terminator: "")
            }
            }
            end("completed successfully")
            return 0
        } catch {
            var error = (error as? PGKeepError) ?? PGKeepError(.internal, "\(error)")
            // PostgreSQL asks archive-get for files that do not exist as a matter of course: that
            // answer is normal and stays out of the server log unless asked for.
            if error.code == .archiveFileMissing && isArchiveGet {
                log.info(error.message)
                end("file not in the archive [\(error.code.rawValue)]")
                return error.code.rawValue
            }
            let status = isArchiveGet ? ErrorCode.archiveGetExitStatus(error.code) : error.code.rawValue
            if isArchiveGet {
                error.hint = [error.hint, ErrorCode.archiveGetFatalHint].compactMap { $0 }.joined(separator: "; ")
            }
            Posix.writeStandardError("ERROR: \(error)\n")
            log.fileOnly(.error, "\(error)".split(separator: "\n").joined(separator: " "))
            end("aborted with error [\(error.code.rawValue)] \(error.code.name)" + (status == error.code.rawValue ? "" : ", exit \(status)"))
            return status
        }
    }

    /// Opens `<log-path>/<stanza>-<command>.log` (`all-<command>.log` without a stanza), as pgBackRest names them.
    private static func startFileLog(_ config: Configuration, _ log: Log) {
        guard let name = config.string(.logLevelFile), let level = Log.Level(name: name), level != .off else { return }
        let prefix = config.string(.stanza) ?? "all"
        log.openFile(directory: config.string(.logPath) ?? "/var/log/pgkeep",
                     name: "\(prefix)-\(config.command.rawValue).log", level: level)
    }

    /// pgkeep runs as the database's OS user: files written as root into the repository would break
    /// the next run as `postgres`. Restore is the exception (it sets owners from the backup).
    static func refuseRoot(_ config: Configuration) throws {
        guard geteuid() == 0 else { return }
        switch config.command {
        case .restore, .version, .help, .info: return
        default: break
        }
        if config.bool(.allowRoot) { return }
        throw PGKeepError(.runAsRoot, "pgkeep \(config.command.rawValue) must not run as root",
                          hint: "run it as the PostgreSQL OS user (e.g. 'sudo -u postgres pgkeep ...'), or pass --allow-root if you really mean it")
    }
}

/// What every command needs, built once from the configuration.
struct CommandContext {
    let config: Configuration
    let log: Log
    /// The repository, through the protocol only (`RepositoryStorage.open` picks the driver).
    let storage: any Storage
    /// The database host: this machine (the remote agent will be chosen here by `pg1-host`).
    let host: PostgresHost

    init(config: Configuration, log: Log) throws {
        self.config = config
        self.log = log
        storage = RepositoryStorage.open(config)
        host = LocalHost()
    }

    /// `--pg1-path`, required, made absolute: host paths are never relative to the working directory.
    func dataDirectory() throws -> FilePath {
        FilePath(Posix.absolute(try required(.pg1Path)))
    }

    func layout() throws -> RepositoryLayout {
        guard let stanza = config.string(.stanza) else {
            throw PGKeepError(.optionRequired, "\(config.command.rawValue) requires option 'stanza'",
                              hint: "pass --stanza=<name> or set PGKEEP_STANZA")
        }
        return try RepositoryLayout(stanza: stanza)
    }

    func required(_ name: OptionName) throws -> String {
        guard let value = config.string(name), !value.isEmpty else {
            throw PGKeepError(.optionRequired, "\(config.command.rawValue) requires option '\(name.rawValue)'",
                              hint: "pass --\(name.rawValue)=..., set PGKEEP_\(name.rawValue.uppercased().replacingDashes()), or add it to the stanza's section of the config file")
        }
        return value
    }

    var bufferSize: Int { config.size(.bufferSize) ?? (1 << 20) }
    /// The file log level, for background processes that open their own log file.
    var fileLogLevel: Log.Level { config.string(.logLevelFile).flatMap(Log.Level.init(name:)) ?? .info }
    var processMax: Int { config.int(.processMax) ?? 1 }

    var compression: CompressionType {
        get throws {
            let name = config.string(.compressType) ?? "lz4"
            guard let type = CompressionType(rawValue: name) else {
                throw PGKeepError(.optionInvalid, "compress-type '\(name)' is not one of none, lz4, zst")
            }
            return type
        }
    }

    var compressLevel: Int {
        get throws {
            let type = try compression
            let level = config.int(.compressLevel) ?? type.defaultLevel
            guard type.validLevels.contains(level) else {
                throw PGKeepError(.optionInvalid, "compress-level \(level) is out of range for \(type.rawValue) (\(type.validLevels.lowerBound)...\(type.validLevels.upperBound))")
            }
            return level
        }
    }

    /// `--set=LABEL`, checked; nil when not given (or `latest`, for restore).
    func setLabel() throws -> BackupLabel? {
        guard let text = config.string(.set), text != "latest" else { return nil }
        guard let label = BackupLabel(text) else {
            throw PGKeepError(.optionInvalid, "--set '\(text)' is not a backup label",
                              hint: "labels look like 20261126-230501F; 'pgkeep info' lists them")
        }
        return label
    }

    /// The retention options (`repo1-retention-*`).
    var retention: RetentionPolicy {
        RetentionPolicy(full: config.int(.repo1RetentionFull),
                        fullType: RetentionPolicy.FullType(rawValue: config.string(.repo1RetentionFullType) ?? "count") ?? .count,
                        diff: config.int(.repo1RetentionDiff),
                        archive: config.int(.repo1RetentionArchive),
                        archiveType: BackupType(rawValue: config.string(.repo1RetentionArchiveType) ?? "full") ?? .full)
    }

    var lockPath: String { config.string(.lockPath) ?? "/tmp/pgkeep" }

    /// How backup and expire hold the repository lease (`--lock-host`, `--lock-lease`).
    var lease: LeaseSettings {
        LeaseSettings(host: config.string(.lockHost) ?? Posix.hostName(),
                      duration: config.seconds(.lockLease) ?? LeaseSettings.defaultDuration)
    }

    var connection: PGConnectionOptions {
        PGConnectionOptions(socketPath: config.string(.pg1SocketPath) ?? "/var/run/postgresql",
                            port: config.int(.pg1Port) ?? 5432,
                            user: config.string(.pg1User),
                            database: config.string(.pg1Database) ?? "postgres")
    }
}

extension String {
    func replacingDashes() -> String { String(map { $0 == "-" ? "_" : $0 }) }
}
