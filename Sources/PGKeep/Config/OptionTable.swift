// The option table: every option pgkeep knows, in one place.
//
// One definition drives all three sources (command line, `PGKEEP_*` environment, INI file), the
// help text and value validation. Names and defaults follow pgBackRest's so an operator's habits
// carry over.
//
// To add an option: add a case to `OptionName` (raw value = the option name), give it a group in
// `OptionTable.define` (the compiler refuses a name without one) and its row in that group's
// function. A test checks that every default parses and lies in range.

import PGKeepPostgres
import PGKeepRepository
import PGKeepEngine

/// The name of an option. The raw value is what users type (`repo1-path`); call sites use the case
/// (`config.string(.repo1Path)`) so a typo is a compile error.
public enum OptionName: String, CaseIterable, Sendable, Comparable {
    case config
    case stanza
    case pg1Path = "pg1-path"
    case pg1Port = "pg1-port"
    case pg1SocketPath = "pg1-socket-path"
    case pg1User = "pg1-user"
    case pg1Database = "pg1-database"
    case repo1Path = "repo1-path"
    case lockPath = "lock-path"
    case lockHost = "lock-host"
    case lockLease = "lock-lease"
    case type
    case processMax = "process-max"
    case compressType = "compress-type"
    case compressLevel = "compress-level"
    case bufferSize = "buffer-size"
    case startFast = "start-fast"
    case resume
    case bundle
    case bundleLimit = "bundle-limit"
    case bundleSize = "bundle-size"
    case archiveTimeout = "archive-timeout"
    case archiveCheck = "archive-check"
    case archiveCopy = "archive-copy"
    case output
    case logLevelConsole = "log-level-console"
    case logLevelFile = "log-level-file"
    case logPath = "log-path"
    case archiveAsync = "archive-async"
    case spoolPath = "spool-path"
    case archiveGetQueueMax = "archive-get-queue-max"
    case archivePushQueueMax = "archive-push-queue-max"
    case allowRoot = "allow-root"
    case set
    case delta
    case exclude
    case checksumPage = "checksum-page"
    case force
    case archiveMode = "archive-mode"
    case recoveryOption = "recovery-option"
    case linkAll = "link-all"
    case linkMap = "link-map"
    case tablespaceMap = "tablespace-map"
    case tablespaceMapAll = "tablespace-map-all"
    case dbInclude = "db-include"
    case dbExclude = "db-exclude"
    case target
    case targetExclusive = "target-exclusive"
    case targetTimeline = "target-timeline"
    case targetAction = "target-action"
    case targetPastArchive = "target-past-archive"
    case plan
    case repo1RetentionFull = "repo1-retention-full"
    case repo1RetentionFullType = "repo1-retention-full-type"
    case repo1RetentionDiff = "repo1-retention-diff"
    case repo1RetentionArchive = "repo1-retention-archive"
    case repo1RetentionArchiveType = "repo1-retention-archive-type"
    case expireAuto = "expire-auto"
    case dryRun = "dry-run"
    case sinceLast = "since-last"
    case annotation
    case tlsServerAddress = "tls-server-address"
    case tlsServerPort = "tls-server-port"
    case tlsServerCertFile = "tls-server-cert-file"
    case tlsServerKeyFile = "tls-server-key-file"
    case tlsServerCAFile = "tls-server-ca-file"
    case tlsServerAuth = "tls-server-auth"
    case protocolTimeout = "protocol-timeout"

    /// Orders options as the table declares them, for help and log lines.
    public static func < (lhs: OptionName, rhs: OptionName) -> Bool {
        order[lhs]! < order[rhs]!
    }
    private static let order: [OptionName: Int] = Dictionary(uniqueKeysWithValues: allCases.enumerated().map { ($1, $0) })

    /// The environment variable that sets this option: `PGKEEP_` + the name upper-cased with `-`
    /// turned into `_` (`PGKEEP_REPO1_PATH`), as pgBackRest does with `PGBACKREST_`.
    public var environmentVariable: String {
        OptionName.environmentPrefix + String(rawValue.uppercased().map { $0 == "-" ? "_" : $0 })
    }

    /// The prefix that marks an environment variable as a pgkeep option.
    public static let environmentPrefix = "PGKEEP_"

    /// The definition of this option, from the table.
    public var definition: OptionDefinition { OptionTable.definitions[self]! }
}

/// What an option holds and how its text is checked. Every source gives text; the kind turns it
/// into an `OptionValue` or says what was expected.
public enum OptionKind: Sendable, Equatable {
    /// Any non-empty text.
    case string
    /// Any text, empty too: only as the value of a `map`, where `key=` means "no value" (an
    /// annotation `annotate` removes).
    case text
    /// A name that ends up in file names and INI section headers (the stanza): letters, digits,
    /// `-`, `_`, `.`, not starting with `.` or `-`.
    case name
    /// An absolute path without `//`; a trailing `/` is dropped (pgBackRest's rule).
    case path
    /// A whole number in the range.
    case int(ClosedRange<Int>)
    /// `y` or `n` (`--name` / `--no-name` on the command line).
    case bool
    /// A byte count, plain or with a k/kb/kib, m/mb/mib, g/gb/gib suffix (all powers of 1024), in
    /// the range.
    case size(ClosedRange<Int>)
    /// One of the listed words, exactly.
    case enumeration([String])
    /// A number of seconds, fractions allowed, in the range.
    case seconds(ClosedRange<Double>)
    /// `key=value` pairs, each value of the inner kind; the option may be given several times
    /// (on the command line, or as several lines of one config-file section) and the pairs add
    /// up, as pgBackRest's `tablespace-map`. A key given twice is an error.
    indirect case map(OptionKind)
    /// Values of the inner kind, one per time the option is given (pgBackRest's `exclude`); the
    /// values add up in the order given, within one source.
    indirect case list(OptionKind)

    /// Whether the option may be given more than once in one source.
    public var isRepeatable: Bool {
        switch self {
        case .map, .list: return true
        default: return false
        }
    }
}

/// Where an option may be set.
public struct OptionSources: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// `--name=value` on the command line.
    public static let commandLine = OptionSources(rawValue: 1 << 0)
    /// A `PGKEEP_NAME` environment variable.
    public static let environment = OptionSources(rawValue: 1 << 1)
    /// A `name=value` line in the INI file.
    public static let configFile = OptionSources(rawValue: 1 << 2)
    /// Anywhere.
    public static let all: OptionSources = [.commandLine, .environment, .configFile]
}

/// An option's default, as text parsed by its kind (so the table reads like the documentation and a
/// test proves every default valid).
public enum OptionDefault: Sendable, Equatable {
    /// No default: the option is unset unless given (required options fail instead).
    case none
    /// The same default for every command.
    case value(String)
    /// A default that depends on the command; commands not listed get `otherwise`.
    case perCommand([CommandName: String], otherwise: String?)

    /// The default text for `command`, or nil.
    public func text(for command: CommandName) -> String? {
        switch self {
        case .none: return nil
        case .value(let text): return text
        case .perCommand(let table, let otherwise): return table[command] ?? otherwise
        }
    }
}

/// One row of the option table.
public struct OptionDefinition: Sendable {
    public var name: OptionName
    public var kind: OptionKind
    /// A different kind for some commands: `--type` is the backup type for `backup` and the
    /// recovery type for `restore`, as in pgBackRest.
    public var commandKinds: [CommandName: OptionKind]
    public var defaultValue: OptionDefault
    /// The commands that read this option. Given on the command line to any other command it is an
    /// error; set in the environment or the config file it is ignored for other commands, so one
    /// file serves every command.
    public var commands: Set<CommandName>
    /// The commands that fail with `.optionRequired` when the option is not set anywhere.
    public var requiredFor: Set<CommandName>
    /// Where the option may be set (`config` and `stanza` never come from the config file).
    public var sources: OptionSources
    /// One line for the help text.
    public var summary: String
    /// What the option means for some commands, where that differs (`--type` of restore is the
    /// recovery target type, not the backup type).
    public var commandSummaries: [CommandName: String]

    public init(_ name: OptionName, _ kind: OptionKind, kinds commandKinds: [CommandName: OptionKind] = [:],
                default defaultValue: OptionDefault = .none,
                commands: Set<CommandName>, requiredFor: Set<CommandName> = [],
                sources: OptionSources = .all, summary: String, summaries commandSummaries: [CommandName: String] = [:]) {
        self.commandSummaries = commandSummaries
        self.name = name
        self.kind = kind
        self.commandKinds = commandKinds
        self.defaultValue = defaultValue
        self.commands = commands
        self.requiredFor = requiredFor
        self.sources = sources
        self.summary = summary
    }

    /// The help line of the option for `command`.
    public func summary(for command: CommandName) -> String {
        commandSummaries[command] ?? summary
    }

    /// The kind of value `command` accepts for this option.
    public func kind(for command: CommandName) -> OptionKind {
        commandKinds[command] ?? kind
    }

    /// Whether the option's name marks it as a secret, to be redacted in logs.
    public var isSecret: Bool { OptionDefinition.isSecret(name: name.rawValue) }

    /// Whether an option called `name` holds a secret: its name contains `pass`, `key` or `secret`.
    public static func isSecret(name: String) -> Bool {
        // A `-file` option names where a secret is (`tls-server-key-file`): the path is shown.
        guard !name.hasSuffix("-file") else { return false }
        return name.contains("pass") || name.contains("key") || name.contains("secret")
    }
}

/// The table itself.
public enum OptionTable {
    /// Every definition, keyed by name.
    public static let definitions: [OptionName: OptionDefinition] =
        Dictionary(uniqueKeysWithValues: OptionName.allCases.map { ($0, define($0)) })

    /// Looks an option up by the name a user typed.
    public static func lookup(_ name: String) -> OptionDefinition? {
        (OptionName(rawValue: name) ?? aliases[name])?.definition
    }

    /// Other names an option answers to: pgBackRest's pre-multi-repository retention names, which
    /// its configurations still use (`retention-full=2`), and pgBackRest's names of the bundle
    /// options. Resolution treats them as the option.
    public static let aliases: [String: OptionName] = [
        "repo1-bundle": .bundle,
        "repo1-bundle-limit": .bundleLimit,
        "repo1-bundle-size": .bundleSize,
        "retention-full": .repo1RetentionFull,
        "retention-full-type": .repo1RetentionFullType,
        "retention-diff": .repo1RetentionDiff,
        "retention-archive": .repo1RetentionArchive,
        "retention-archive-type": .repo1RetentionArchiveType,
    ]

    /// The options `command` accepts, in table order.
    public static func options(for command: CommandName) -> [OptionDefinition] {
        OptionName.allCases.map(\.definition).filter { $0.commands.contains(command) }
    }

    // Command groups the rows below refer to.
    private static let operational = CommandName.operational
    private static let touchesCluster: Set<CommandName> = [.stanzaCreate, .stanzaUpgrade, .stanzaDelete, .check, .backup, .archivePush, .archiveGet, .restore]
    private static let connectsToDatabase: Set<CommandName> = [.stanzaCreate, .check, .backup]
    private static let movesData: Set<CommandName> = [.backup, .archivePush, .archiveGet, .restore, .verify]
    private static let retains: Set<CommandName> = [.backup, .expire]
    /// The commands that take the stanza's backup lock and repository lease (`StanzaBackupLock`).
    private static let holdsLease: Set<CommandName> = [.backup, .expire, .stanzaRepair, .stanzaUpgrade, .stanzaDelete, .annotate]
    private static let compresses: Set<CommandName> = [.backup, .archivePush]

    // The switch is exhaustive, so a new `OptionName` case does not compile until it is given a
    // group; the group's function then holds its row (a case missing there traps when the table
    // is first built, which every test run does).
    private static func define(_ name: OptionName) -> OptionDefinition {
        switch name {
        case .config, .stanza, .repo1Path, .lockPath, .lockHost, .lockLease, .output, .logLevelConsole, .logLevelFile,
             .logPath, .allowRoot:
            return common(name)
        case .pg1Path, .pg1Port, .pg1SocketPath, .pg1User, .pg1Database:
            return cluster(name)
        case .type, .processMax, .compressType, .compressLevel, .bufferSize, .startFast, .resume, .bundle,
             .bundleLimit, .bundleSize, .delta, .exclude, .checksumPage:
            return dataMovement(name)
        case .archiveTimeout, .archiveCheck, .archiveCopy, .archiveAsync, .spoolPath, .archiveGetQueueMax, .archivePushQueueMax:
            return archiving(name)
        case .set, .target, .targetExclusive, .targetTimeline, .targetAction, .targetPastArchive, .plan, .linkAll,
             .linkMap, .tablespaceMap, .tablespaceMapAll, .dbInclude, .dbExclude, .archiveMode, .recoveryOption, .force:
            return restore(name)
        case .repo1RetentionFull, .repo1RetentionFullType, .repo1RetentionDiff, .repo1RetentionArchive,
             .repo1RetentionArchiveType, .expireAuto, .dryRun, .sinceLast, .annotation:
            return maintenance(name)
        case .tlsServerAddress, .tlsServerPort, .tlsServerCertFile, .tlsServerKeyFile, .tlsServerCAFile, .tlsServerAuth, .protocolTimeout:
            return remote(name)
        }
    }

    /// Options most commands share: where the configuration, the repository, locks and logs are,
    /// and how a command reports.
    private static func common(_ name: OptionName) -> OptionDefinition {
        switch name {
        case .config:
            return OptionDefinition(name, .path, default: .value("/etc/pgkeep/pgkeep.conf"), commands: operational,
                                    sources: [.commandLine, .environment],
                                    summary: "configuration file; an explicit one must exist, the default may be absent")
        case .stanza:
            return OptionDefinition(name, .name, commands: Set(CommandName.allCases.filter { $0.stanzaUse != .notAccepted }),
                                    requiredFor: Set(CommandName.allCases.filter { $0.stanzaUse == .required }),
                                    sources: [.commandLine, .environment],
                                    summary: "name of the cluster this command works on")
        case .repo1Path:
            return OptionDefinition(name, .path, default: .value("/var/lib/pgkeep"), commands: operational,
                                    summary: "path of the repository")
        case .lockPath:
            return OptionDefinition(name, .path, default: .value("/tmp/pgkeep"), commands: operational,
                                    summary: "directory for lock files")
        case .lockHost:
            return OptionDefinition(name, .string, commands: holdsLease,
                                    summary: "this host's name in the repository lease of backup, expire and stanza-repair (default: the host name); hosts sharing a repository need distinct names")
        case .lockLease:
            return OptionDefinition(name, .seconds(1...3600), default: .value("\(Int(LeaseSettings.defaultDuration))"), commands: holdsLease,
                                    summary: "seconds after which a repository lease not renewed is stale and taken over; the holder renews it every sixth of that")
        case .output:
            // version --output=num is pgBackRest's machine-readable version (PGKeepVersion.number).
            return OptionDefinition(name, .enumeration(["text", "json"]), kinds: [.version: .enumeration(["text", "num"])],
                                    default: .value("text"), commands: [.info, .restore, .verify, .version],
                                    summary: "output format",
                                    summaries: [.version: "text, or num: the version as one number (0.5.0 is 5000), as pgBackRest prints it"])
        case .logLevelConsole:
            return OptionDefinition(name, .enumeration(["off", "error", "warn", "info", "detail", "debug", "trace"]),
                                    default: .value("warn"), commands: operational,
                                    summary: "how much to log to the console")
        case .logLevelFile:
            return OptionDefinition(name, .enumeration(["off", "error", "warn", "info", "detail", "debug", "trace"]),
                                    default: .value("info"), commands: operational,
                                    summary: "how much to log to the file <log-path>/<stanza>-<command>.log")
        case .logPath:
            return OptionDefinition(name, .path, default: .value("/var/log/pgkeep"), commands: operational,
                                    summary: "directory for log files")
        case .allowRoot:
            return OptionDefinition(name, .bool, default: .value("n"), commands: operational,
                                    summary: "allow running as root (files it writes would then belong to root)")
        default:
            preconditionFailure("option '\(name.rawValue)' has no row in OptionTable.common")
        }
    }

    /// The PostgreSQL cluster and how to connect to it.
    private static func cluster(_ name: OptionName) -> OptionDefinition {
        switch name {
        case .pg1Path:
            // info reads it only for the archive queue of the stanza it is asked about, stanza-repair
            // only to check (or, when nothing else records it, to learn) the cluster's identity.
            return OptionDefinition(name, .path, commands: touchesCluster.union([.info, .stanzaRepair]), requiredFor: [.stanzaCreate, .stanzaUpgrade, .check, .backup, .restore],
                                    summary: "data directory of the PostgreSQL cluster")
        case .pg1Port:
            return OptionDefinition(name, .int(1...65535), default: .value("5432"), commands: connectsToDatabase,
                                    summary: "port PostgreSQL listens on")
        case .pg1SocketPath:
            return OptionDefinition(name, .path, default: .value("/var/run/postgresql"), commands: connectsToDatabase,
                                    summary: "directory of PostgreSQL's Unix socket")
        case .pg1User:
            return OptionDefinition(name, .string, commands: connectsToDatabase,
                                    summary: "database user to connect as (default: libpq's, the OS user)")
        case .pg1Database:
            return OptionDefinition(name, .string, default: .value("postgres"), commands: connectsToDatabase,
                                    summary: "database to connect to")
        default:
            preconditionFailure("option '\(name.rawValue)' has no row in OptionTable.cluster")
        }
    }

    /// How backup (and the other commands that move data) read, compress and store files.
    private static func dataMovement(_ name: OptionName) -> OptionDefinition {
        switch name {
        case .type:
            // pgBackRest defaults to incr; pgkeep keeps full as the default so that a plain
            // `backup` never silently depends on an older backup. For restore it is the recovery
            // target type (pgBackRest's restore --type).
            return OptionDefinition(name, .enumeration(["full", "diff", "incr"]),
                                    kinds: [.restore: .enumeration(RecoveryTarget.Kind.allCases.map(\.rawValue))],
                                    default: .perCommand([.restore: RecoveryTarget.Kind.default.rawValue], otherwise: "full"),
                                    commands: [.backup, .restore],
                                    summary: "backup type: full, diff (changes since the last full) or incr (since the last backup)",
                                    summaries: [.restore: "recovery target type: default (the end of the archive), immediate (the backup's consistency point), time, xid, lsn or name (a restore point) with --target, or standby (replay the archive without end)"])
        case .processMax:
            return OptionDefinition(name, .int(1...999), default: .value("1"), commands: [.backup, .restore, .archivePush, .archiveGet, .verify],
                                    summary: "number of parallel workers",
                                    summaries: [.archivePush: "parallel pushes of the asynchronous background process (--archive-async)",
                                                .archiveGet: "parallel fetches of the asynchronous background process (--archive-async)"])
        case .compressType:
            return OptionDefinition(name, .enumeration(["none", "lz4", "zst"]), default: .value("lz4"), commands: compresses,
                                    summary: "compression for files written to the repository")
        case .compressLevel:
            // The union of the codecs' ranges (lz4 -5...12, zst -7...22); the codec checks its own.
            return OptionDefinition(name, .int(-7...22), commands: compresses,
                                    summary: "compression level (default: the codec's own, lz4 1, zst 3)")
        case .bufferSize:
            return OptionDefinition(name, .size(16 * 1024...64 * 1024 * 1024), default: .value("1MiB"), commands: movesData,
                                    summary: "size of the I/O buffers")
        case .startFast:
            return OptionDefinition(name, .bool, default: .value("n"), commands: [.backup],
                                    summary: "ask PostgreSQL for an immediate checkpoint when the backup starts")
        case .resume:
            return OptionDefinition(name, .bool, default: .value("y"), commands: [.backup],
                                    summary: "resume an interrupted backup of the same type and prior, reusing the files it stored that are unchanged and intact")
        case .bundle:
            return OptionDefinition(name, .bool, default: .value("y"), commands: [.backup],
                                    summary: "store small files together in bundle objects (fewer repository objects, fewer fsyncs)")
        case .bundleLimit:
            return OptionDefinition(name, .size(1...(1 << 30)), default: .value("2MiB"), commands: [.backup],
                                    summary: "files smaller than this are bundled (files of 1MiB or more are block-incremental, never bundled)")
        case .bundleSize:
            return OptionDefinition(name, .size(1 << 20...(1 << 30)), default: .value("20MiB"), commands: [.backup],
                                    summary: "bytes of files a bundle holds before the next one starts")
        case .delta:
            return OptionDefinition(name, .bool, default: .value("n"), commands: [.backup, .restore],
                                    summary: "compare file checksums with the prior backup instead of size and modification time",
                                    summaries: [.restore: "restore over an existing data directory, keeping the files whose checksum matches and removing what the backup lacks"])
        case .checksumPage:
            return OptionDefinition(name, .bool, default: .value("y"), commands: [.backup],
                                    summary: "verify every data page's checksum while copying, when the cluster has data checksums (--no-checksum-page skips it)")
        case .exclude:
            return OptionDefinition(name, .list(.string), commands: [.backup],
                                    summary: "leave a path (relative to the data directory) out of the backup: 'junk' with everything below it, 'junk/' only what is in it; repeatable")
        default:
            preconditionFailure("option '\(name.rawValue)' has no row in OptionTable.dataMovement")
        }
    }

    /// WAL archiving: waiting for WAL, and asynchronous archive-push and archive-get.
    private static func archiving(_ name: OptionName) -> OptionDefinition {
        switch name {
        case .archiveTimeout:
            return OptionDefinition(name, .seconds(0.1...86400), default: .value("60"),
                                    commands: [.backup, .check, .archivePush, .archiveGet],
                                    summary: "seconds to wait for a WAL file to reach the archive")
        case .archiveCheck:
            return OptionDefinition(name, .bool, default: .value("y"), commands: [.backup],
                                    summary: "finish a backup only once the WAL from its start to its stop is in the archive (--no-archive-check: the backup is recorded without waiting, and restores only once that WAL is archived)")
        case .archiveCopy:
            return OptionDefinition(name, .bool, default: .value("n"), commands: [.backup],
                                    summary: "also store the WAL from the backup's start to its stop in the backup (pg_wal/), so it restores to consistency without the archive; needs --archive-check")
        case .archiveAsync:
            return OptionDefinition(name, .bool, default: .value("n"), commands: [.archivePush, .archiveGet, .restore],
                                    summary: "archive-push and archive-get work ahead in a background process, through --spool-path")
        case .spoolPath:
            return OptionDefinition(name, .path, default: .value("/var/spool/pgkeep"), commands: [.archivePush, .archiveGet, .restore],
                                    summary: "local directory for asynchronous archiving's acknowledgements and prefetched WAL")
        case .archiveGetQueueMax:
            return OptionDefinition(name, .size(0...(1 << 40)), default: .value("128MiB"), commands: [.archiveGet, .restore],
                                    summary: "how much WAL asynchronous archive-get prefetches ahead of recovery")
        case .archivePushQueueMax:
            // No default: WAL is never dropped unless the operator chooses the trade-off.
            return OptionDefinition(name, .size((1 << 20)...(1 << 50)), commands: [.archivePush],
                                    summary: "when more WAL than this waits to be archived and the repository cannot take it, report the oldest segments archived without storing them (PostgreSQL's pg_wal stays bounded; point-in-time recovery across them is lost until a new backup)")
        default:
            preconditionFailure("option '\(name.rawValue)' has no row in OptionTable.archiving")
        }
    }

    /// What restore restores, where, and how recovery ends.
    private static func restore(_ name: OptionName) -> OptionDefinition {
        switch name {
        case .set:
            return OptionDefinition(name, .string, default: .perCommand([.restore: "latest"], otherwise: nil),
                                    commands: [.restore, .verify, .expire, .annotate, .info],
                                    summary: "label of the backup to restore, or latest: the planner picks the newest that reaches the target",
                                    summaries: [.verify: "label of the one backup to verify (with the WAL it needs)", .expire: "label of the one backup to expire",
                                                .annotate: "label of the backup whose annotations change",
                                                .info: "show only this backup, with its databases, tablespaces and links"])
        case .target:
            return OptionDefinition(name, .string, commands: [.restore],
                                    summary: "recovery target: a time with zone, an xid, an LSN or a restore point name, per --type")
        case .targetExclusive:
            return OptionDefinition(name, .bool, default: .value("n"), commands: [.restore],
                                    summary: "stop just before the target instead of just after it (time, xid, lsn)")
        case .targetTimeline:
            return OptionDefinition(name, .string, default: .value("latest"), commands: [.restore],
                                    summary: "timeline to recover along: latest, current or a timeline number")
        case .targetAction:
            return OptionDefinition(name, .enumeration(["pause", "promote", "shutdown"]), default: .value("pause"), commands: [.restore],
                                    summary: "what PostgreSQL does when it reaches the target")
        case .targetPastArchive:
            return OptionDefinition(name, .bool, default: .value("n"), commands: [.restore],
                                    summary: "restore even when the target is past the end of the archive (an LSN after its last segment, a time after that segment was stored), for WAL you put into pg_wal yourself; without it such a target is refused")
        case .plan:
            return OptionDefinition(name, .bool, default: .value("n"), commands: [.restore],
                                    summary: "show the restore plan (backup, timelines, WAL, problems) and write nothing")
        case .linkAll:
            return OptionDefinition(name, .bool, default: .value("n"), commands: [.restore],
                                    summary: "make every link of the data directory the backup recorded (a linked pg_wal, config file or log directory) again at its recorded location, instead of a plain directory or file")
        case .linkMap:
            return OptionDefinition(name, .map(.path), commands: [.restore],
                                    summary: "make the data directory's link <link> (its path in the data directory, e.g. pg_wal) point to <path> instead of where the backup recorded it; once per link")
        case .tablespaceMap:
            return OptionDefinition(name, .map(.path), commands: [.restore],
                                    summary: "restore tablespace <name or oid> to <path> instead of its recorded location; once per tablespace")
        case .tablespaceMapAll:
            return OptionDefinition(name, .path, commands: [.restore],
                                    summary: "restore every tablespace to <path>/<tablespace name> (--tablespace-map wins for the tablespaces it names)")
        case .dbInclude:
            return OptionDefinition(name, .list(.string), commands: [.restore],
                                    summary: "restore only this database (name or oid) and the system ones (template0, template1, postgres); the others come back as zero-filled files to drop after recovery; repeatable")
        case .dbExclude:
            return OptionDefinition(name, .list(.string), commands: [.restore],
                                    summary: "restore this database (name or oid, not a system one) as zero-filled files, to drop after recovery; repeatable")
        case .recoveryOption:
            return OptionDefinition(name, .map(.string), commands: [.restore],
                                    summary: "a further setting <key>=<value> for the restored cluster's recovery (postgresql.auto.conf), e.g. primary_conninfo; once per key")
        case .archiveMode:
            return OptionDefinition(name, .enumeration(["preserve", "off"]), default: .value("preserve"), commands: [.restore],
                                    summary: "preserve the backup's archive_mode, or write archive_mode = 'off' so the restored cluster never archives (a test clone)")
        case .force:
            return OptionDefinition(name, .bool, default: .value("n"), commands: [.restore, .stanzaRepair, .stanzaDelete, .stop],
                                    summary: "with --delta, restore even over a directory that is not provably this cluster's (no PG_VERSION, another system identifier, tablespace locations it does not link to); never over a running server",
                                    summaries: [.stanzaRepair: "rebuild the info files even when both copies of each are valid and agree",
                                                .stanzaDelete: "delete even when PostgreSQL may still run on --pg1-path, or without --pg1-path (the stop file is required all the same)",
                                                .stop: "also terminate (SIGTERM) the backup, expire or asynchronous archive-push running now"])
        default:
            preconditionFailure("option '\(name.rawValue)' has no row in OptionTable.restore")
        }
    }

    /// The agent (`pgkeep server`) and reaching it (protocol.md).
    private static func remote(_ name: OptionName) -> OptionDefinition {
        switch name {
        case .tlsServerAddress:
            return OptionDefinition(name, .string, default: .value("localhost"), commands: [.server, .serverPing],
                                    summary: "address the agent listens on (a name, an IP address, or * for all of this host's)",
                                    summaries: [.serverPing: "the agent to ping, when no host is given"])
        case .tlsServerPort:
            return OptionDefinition(name, .int(1...65535), default: .value("8432"), commands: [.server, .serverPing],
                                    summary: "TCP port the agent listens on")
        case .tlsServerCertFile:
            return OptionDefinition(name, .path, commands: [.server], requiredFor: [.server],
                                    summary: "the agent's certificate (PEM, with its chain), which clients check against their CA and their host name")
        case .tlsServerKeyFile:
            return OptionDefinition(name, .path, commands: [.server], requiredFor: [.server],
                                    summary: "the private key of --tls-server-cert-file (PEM), readable by the agent's user only")
        case .tlsServerCAFile:
            return OptionDefinition(name, .path, commands: [.server, .serverPing], requiredFor: [.server],
                                    summary: "the CA that must have signed every client's certificate (PEM)",
                                    summaries: [.serverPing: "verify the agent's certificate against this CA (without it, server-ping only asks whether an agent answers)"])
        case .tlsServerAuth:
            return OptionDefinition(name, .map(.string), commands: [.server],
                                    summary: "<client CN>=<stanza>[,<stanza>...] or =*: the stanzas a client whose certificate has that common name may work on; once per client name (no entry: no client may do more than ping)")
        case .protocolTimeout:
            return OptionDefinition(name, .seconds(0.1...86400), default: .value("60"), commands: [.server, .serverPing],
                                    summary: "seconds a peer may stay silent (handshake, greeting, reads) before the connection is given up")
        default:
            preconditionFailure("option '\(name.rawValue)' has no row in OptionTable.remote")
        }
    }

    /// Retention (expire, and backup's automatic expire), dry runs and verify's scope.
    private static func maintenance(_ name: OptionName) -> OptionDefinition {
        switch name {
        case .repo1RetentionFull:
            return OptionDefinition(name, .int(1...9_999_999), commands: retains,
                                    summary: "full backups to keep (a count, or days with repo1-retention-full-type=time)")
        case .repo1RetentionFullType:
            return OptionDefinition(name, .enumeration(["count", "time"]), default: .value("count"), commands: retains,
                                    summary: "whether repo1-retention-full counts backups or days")
        case .repo1RetentionDiff:
            return OptionDefinition(name, .int(1...9_999_999), commands: retains,
                                    summary: "differential backups to keep (full backups count as differentials)")
        case .repo1RetentionArchive:
            return OptionDefinition(name, .int(1...9_999_999), commands: retains,
                                    summary: "backups whose WAL stays continuous (default: the full, or diff, retention)")
        case .repo1RetentionArchiveType:
            return OptionDefinition(name, .enumeration(["full", "diff", "incr"]), default: .value("full"), commands: retains,
                                    summary: "which backups repo1-retention-archive counts")
        case .expireAuto:
            return OptionDefinition(name, .bool, default: .value("y"), commands: [.backup],
                                    summary: "run expire after a successful backup when retention is set")
        case .dryRun:
            return OptionDefinition(name, .bool, default: .value("n"), commands: [.expire, .stanzaRepair],
                                    summary: "print what expire would remove, and remove nothing",
                                    summaries: [.stanzaRepair: "print what stanza-repair would write (and keep aside), and write nothing"])
        case .sinceLast:
            return OptionDefinition(name, .bool, default: .value("n"), commands: [.verify],
                                    summary: "only check what is new since the last verify (recorded in verify.state)")
        case .annotation:
            return OptionDefinition(name, .map(.string), kinds: [.annotate: .map(.text)], commands: [.backup, .annotate],
                                    requiredFor: [.annotate],
                                    summary: "a note <key>=<value> kept with the backup and shown by info (change it later with annotate); once per key",
                                    summaries: [.annotate: "set the note <key> of the backup to <value>, or remove it with <key>= (nothing after '='); once per key"])
        default:
            preconditionFailure("option '\(name.rawValue)' has no row in OptionTable.maintenance")
        }
    }
}
