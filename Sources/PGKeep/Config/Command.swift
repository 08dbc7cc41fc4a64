import PGKeepRepository

/// The commands pgkeep understands, with what each one takes on the command line.
///
/// The raw value is the name typed by the user (pgBackRest's command names, `build/config.yaml`).
/// Which options a command accepts lives in the option table (`OptionTable.swift`); this file only
/// says what is positional and whether the command works on one stanza.
public enum CommandName: String, CaseIterable, Sendable {
    case stanzaCreate = "stanza-create"
    case stanzaRepair = "stanza-repair"
    case stanzaUpgrade = "stanza-upgrade"
    case stanzaDelete = "stanza-delete"
    case check
    case backup
    case archivePush = "archive-push"
    case archiveGet = "archive-get"
    case restore
    case verify
    case expire
    case info
    case annotate
    case server
    case serverPing = "server-ping"
    case stop
    case start
    case version
    case help

    /// One line for the command list in the general help.
    public var summary: String {
        switch self {
        case .stanzaCreate: return "create the repository files for a stanza (run once per cluster)"
        case .stanzaRepair: return "rebuild a stanza's damaged or lost archive.info and backup.info from its backup manifests"
        case .stanzaUpgrade: return "record the cluster as the stanza's current database after pg_upgrade (the old one's backups and WAL stay)"
        case .stanzaDelete: return "delete a stopped stanza's backups, WAL archive and info files from the repository"
        case .check: return "check the configuration, the repository and that archive_command really delivers WAL to it"
        case .backup: return "take a full, differential or incremental backup of the cluster into the repository"
        case .archivePush: return "copy one WAL file into the repository (the archive_command target)"
        case .archiveGet: return "fetch one WAL file from the repository (the restore_command target)"
        case .restore: return "restore a backup into the cluster's data directory"
        case .verify: return "re-read every stored file and archived WAL file and check them against their checksums"
        case .expire: return "remove backups and WAL that fall outside the retention settings"
        case .info: return "show the backups and WAL archive held in the repository"
        case .annotate: return "add, change or remove the notes (--annotation) of a backup"
        case .server: return "run the agent: serve this host's clusters and repository to pgkeep on other hosts over TLS (protocol.md)"
        case .serverPing: return "ask whether an agent answers at a host (TLS, no client certificate needed)"
        case .stop: return "stop backup, archive-push, expire and the stanza commands for a stanza (or all) on this host"
        case .start: return "allow again what 'stop' stopped"
        case .version: return "print the pgkeep version"
        case .help: return "show the commands, or the options of one command"
        }
    }

    /// The positional arguments, in order. Required ones come first; `positionalCount` gives the
    /// accepted range.
    public var positionals: [PositionalArgument] {
        switch self {
        case .archivePush:
            // PostgreSQL runs archive_command in the data directory and `%p` is relative to it
            // (docs/postgres-internals.md §5.1).
            return [PositionalArgument(name: "wal-path", summary: "WAL file to archive, as PostgreSQL passes it in %p")]
        case .archiveGet:
            return [
                PositionalArgument(name: "wal-file", summary: "name of the WAL file PostgreSQL wants, %f"),
                PositionalArgument(name: "destination", summary: "where PostgreSQL wants it written, %p"),
            ]
        case .help:
            return [PositionalArgument(name: "command", summary: "the command to explain", isOptional: true)]
        case .serverPing:
            return [PositionalArgument(name: "host", summary: "the agent's host (default: --tls-server-address)", isOptional: true)]
        case .stanzaCreate, .stanzaRepair, .stanzaUpgrade, .stanzaDelete, .check, .backup, .restore, .verify, .expire,
             .info, .annotate, .server, .stop, .start, .version:
            return []
        }
    }

    /// How many positional arguments the command accepts.
    public var positionalCount: ClosedRange<Int> {
        positionals.filter { !$0.isOptional }.count...positionals.count
    }

    /// Whether the command works on one stanza and so reads `--stanza`.
    public var stanzaUse: StanzaUse {
        switch self {
        case .stanzaCreate, .stanzaRepair, .stanzaUpgrade, .stanzaDelete, .check, .backup, .archivePush, .archiveGet,
             .restore, .verify, .expire, .annotate:
            return .required
        case .info, .stop, .start: return .optional
        case .version, .help, .server, .serverPing: return .notAccepted
        }
    }

    /// The commands that work on a cluster or a repository: everything except `version` and `help`.
    /// They share the general options (config file, log level, lock path, repository).
    public static let operational: Set<CommandName> = Set(allCases.filter { $0 != .version && $0 != .help })
}

/// One positional argument of a command, for validation and the usage line.
public struct PositionalArgument: Sendable, Equatable {
    /// The name shown in the usage line, `<wal-path>`.
    public var name: String
    /// One line for the help text.
    public var summary: String
    /// Whether the argument may be left out. Optional arguments come after required ones.
    public var isOptional: Bool

    public init(name: String, summary: String, isOptional: Bool = false) {
        self.name = name
        self.summary = summary
        self.isOptional = isOptional
    }
}

/// Whether a command needs `--stanza`.
public enum StanzaUse: Sendable, Equatable {
    /// The command fails with `.optionRequired` without a stanza.
    case required
    /// The command narrows its output to the stanza when one is given (`info`).
    case optional
    /// The command does not accept `--stanza`.
    case notAccepted
}

extension CommandName {
    /// How the command uses the repository (`RepositoryFormat.access`). `verify` only reads what
    /// it proves (its own `verify.state` has no writer features).
    public var repositoryAccess: RepositoryAccess {
        switch self {
        case .restore, .archiveGet, .info, .verify, .stop, .start, .version, .help, .server, .serverPing: return .read
        case .stanzaCreate, .stanzaRepair, .stanzaUpgrade, .stanzaDelete, .check, .backup, .archivePush, .expire, .annotate: return .write
        }
    }

    /// Whether a stop file (`pgkeep stop`, `StopFile`) makes the command refuse: everything that
    /// changes the repository, except `stanza-delete`, which needs the stanza stopped. Readers go
    /// on, so that a stopped host can still restore.
    public var isStoppable: Bool {
        switch self {
        case .backup, .archivePush, .expire, .stanzaCreate, .stanzaRepair, .stanzaUpgrade, .annotate: return true
        case .stanzaDelete, .check, .archiveGet, .restore, .verify, .info, .stop, .start, .version, .help, .server, .serverPing: return false
        }
    }
}
