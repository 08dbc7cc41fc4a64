/// The one table of pgkeep's error codes.
///
/// Each code is also the process exit code, so every value stays in 1...125: PostgreSQL treats an
/// `archive_command` or `restore_command` that exits above 125 (or dies by a signal) as fatal and
/// restarts the archiver or aborts recovery (docs/postgres-internals.md §5.1, §5.2). Codes are stable: scripts
/// and monitoring match on them, so a code is never renumbered or reused, only added.
///
/// The single exception is `archive-get` (`archiveGetExitStatus`): there every failure other than
/// "not in the archive" must be fatal to recovery, so it exits `archiveGetFatalExitStatus` and the
/// code is only printed.
public enum ErrorCode: Int32, CaseIterable, Sendable {
    /// `archive-get`: the requested file is not in the archive. PostgreSQL asks for files that do not
    /// exist (future timelines, the segment after the last one) and expects a quick 1.
    case archiveFileMissing = 1

    // Usage and configuration: 20-29
    case optionInvalid = 20
    case optionRequired = 21
    case configFileInvalid = 22
    case commandInvalid = 23
    case runAsRoot = 24

    // Files and paths: 30-39
    case fileMissing = 30
    case fileOpen = 31
    case fileRead = 32
    case fileWrite = 33
    case fileSync = 34
    case pathMissing = 35
    case pathNotEmpty = 36
    case pathCreate = 37
    case diskFull = 38
    case pathInvalid = 39

    // Data integrity: 40-49
    case checksumMismatch = 40
    case formatInvalid = 41
    case compression = 42
    case crypto = 43
    case archiveMismatch = 44
    case archiveDuplicate = 45
    case archiveTimeout = 46
    case walInvalid = 47
    case sizeMismatch = 48
    /// Not an exit status: the message asynchronous archive-push logs (exiting 0) for a segment it
    /// acknowledged without storing, because the queue exceeded --archive-push-queue-max.
    case archiveDropped = 49

    // PostgreSQL: 50-59
    case dbConnect = 50
    case dbQuery = 51
    case dbVersion = 52
    case dbMismatch = 53
    case pgControlInvalid = 54
    case pgRunning = 55
    case dbConfig = 56

    // Repository: 60-69
    case stanzaMissing = 60
    case stanzaMismatch = 61
    case backupMissing = 62
    case lockHeld = 63
    case repositoryInvalid = 64
    /// `verify` found damage: a stored file, an archived WAL file, a reference or the WAL a backup
    /// needs is missing or does not match its checksum; or both copies of an info file are damaged.
    case verifyFailed = 65
    /// `expire --set` refused: other backups depend on the backup, or it is the only full backup.
    case expireRefused = 66
    /// `stanza-repair` refused: both twins of archive.info and of backup.info are valid, byte for
    /// byte alike, and the two files agree; there is nothing to rebuild (`--force` rebuilds anyway).
    case repairNotNeeded = 67
    /// A stop file (`pgkeep stop`, `StopFile`) stops this command for the stanza, or for all
    /// stanzas, until `pgkeep start`.
    case stopped = 68
    /// `stanza-delete` refused: the stanza is not stopped, or PostgreSQL still runs on its data
    /// directory.
    case stanzaInUse = 69

    // Restore planning: 70-79. The planner refuses these before writing anything.
    /// A recovery target (`--type`, `--target`, `--target-*`) that is malformed or inconsistent.
    case targetInvalid = 70
    /// No backup can reach the target: it lies before the backup's consistency point, or before
    /// every backup's.
    case targetUnreachable = 71
    /// A WAL segment or history file needed to reach the target is missing from the archive.
    case walMissing = 72
    /// The target timeline does not exist, or does not descend from the backup's timeline after
    /// the backup's consistency point.
    case timelineInvalid = 73
    /// Following `--target-timeline=latest` would cross a fork whose parent timeline went on being
    /// archived after the fork (`TimelineDivergence`): two clusters archive into the stanza, and
    /// pgkeep will not guess which history the operator wants.
    case timelineDiverged = 74

    // The remote protocol (protocol.md): 80-89.
    /// A peer sent what the protocol does not allow: a malformed frame or payload, a frame out of
    /// order, a greeting without the pgkeep magic. The connection is closed.
    case protocolInvalid = 80
    /// The peer speaks another major version of the protocol.
    case protocolVersion = 81
    /// The TLS handshake or session was refused: a certificate not signed by the configured CA,
    /// expired, missing, or not naming the host; a peer without TLS 1.3.
    case tlsRefused = 82
    /// The agent cannot be reached, the connection broke, or the peer fell silent for longer
    /// than the timeout.
    case remoteUnreachable = 83
    /// A certificate, key or CA file that cannot be loaded, or a key that is not the certificate's.
    case tlsConfig = 84
    /// The agent refused a request: the client presented no certificate, or its certificate's
    /// name is not authorized for the stanza (`--tls-server-auth`).
    case remoteDenied = 85

    // Anything else: 90-99
    case interrupted = 90
    case `internal` = 99

    /// A short stable name, printed with the code (`ERROR [45] archive-duplicate: ...`).
    public var name: String {
        switch self {
        case .archiveFileMissing: return "archive-file-missing"
        case .optionInvalid: return "option-invalid"
        case .optionRequired: return "option-required"
        case .configFileInvalid: return "config-file-invalid"
        case .commandInvalid: return "command-invalid"
        case .runAsRoot: return "run-as-root"
        case .fileMissing: return "file-missing"
        case .fileOpen: return "file-open"
        case .fileRead: return "file-read"
        case .fileWrite: return "file-write"
        case .fileSync: return "file-sync"
        case .pathMissing: return "path-missing"
        case .pathNotEmpty: return "path-not-empty"
        case .pathCreate: return "path-create"
        case .diskFull: return "disk-full"
        case .pathInvalid: return "path-invalid"
        case .checksumMismatch: return "checksum-mismatch"
        case .formatInvalid: return "format-invalid"
        case .compression: return "compression"
        case .crypto: return "crypto"
        case .archiveMismatch: return "archive-mismatch"
        case .archiveDuplicate: return "archive-duplicate"
        case .archiveTimeout: return "archive-timeout"
        case .walInvalid: return "wal-invalid"
        case .sizeMismatch: return "size-mismatch"
        case .archiveDropped: return "archive-dropped"
        case .dbConnect: return "db-connect"
        case .dbQuery: return "db-query"
        case .dbVersion: return "db-version"
        case .dbMismatch: return "db-mismatch"
        case .pgControlInvalid: return "pg-control-invalid"
        case .pgRunning: return "pg-running"
        case .dbConfig: return "db-config"
        case .stanzaMissing: return "stanza-missing"
        case .stanzaMismatch: return "stanza-mismatch"
        case .backupMissing: return "backup-missing"
        case .lockHeld: return "lock-held"
        case .repositoryInvalid: return "repository-invalid"
        case .targetInvalid: return "target-invalid"
        case .targetUnreachable: return "target-unreachable"
        case .walMissing: return "wal-missing"
        case .timelineInvalid: return "timeline-invalid"
        case .timelineDiverged: return "timeline-diverged"
        case .protocolInvalid: return "protocol-invalid"
        case .protocolVersion: return "protocol-version"
        case .tlsRefused: return "tls-refused"
        case .remoteUnreachable: return "remote-unreachable"
        case .tlsConfig: return "tls-config"
        case .remoteDenied: return "remote-denied"
        case .verifyFailed: return "verify-failed"
        case .expireRefused: return "expire-refused"
        case .repairNotNeeded: return "repair-not-needed"
        case .stopped: return "stop"
        case .stanzaInUse: return "stanza-in-use"
        case .interrupted: return "interrupted"
        case .internal: return "internal"
        }
    }
}

extension ErrorCode {
    /// The exit status of every `archive-get` failure except `archiveFileMissing`.
    ///
    /// PostgreSQL's restore_command contract (docs/postgres-internals.md §5.2): any exit status
    /// 1...125 means "file not available", and in archive recovery the first unavailable segment
    /// is the end of WAL: recovery ends, the server promotes
    /// and every later commit the archive does hold is lost from the new timeline. Only a status
    /// above 125, or death by a signal other than SIGTERM, is FATAL and stops recovery. So a damaged
    /// object, a wrong stanza or a broken configuration must never exit with its own code below 126.
    ///
    /// Why 255 and not another value above 125: 126 and 127 are the shell's "not executable" and
    /// "command not found", and PostgreSQL prints them as such (`wait_result_to_str`); 128+n is how
    /// the shell reports death by signal n (up to 128+64 on Linux). 255 is none of those, so the
    /// server log's "child process exited with exit code 255" can only mean pgkeep chose it.
    public static let archiveGetFatalExitStatus: Int32 = 255

    /// The exit status of an `archive-get` that failed with `code`: 1 when the archive genuinely
    /// does not hold the file (it was read and answered), `archiveGetFatalExitStatus` otherwise.
    public static func archiveGetExitStatus(_ code: ErrorCode) -> Int32 {
        code == .archiveFileMissing ? code.rawValue : archiveGetFatalExitStatus
    }

    /// What an operator reads after the error's own hint when `archive-get` exits fatally.
    public static let archiveGetFatalHint =
        "archive-get stopped recovery on purpose (exit \(archiveGetFatalExitStatus)) instead of reporting the file as missing, "
        + "which would end recovery early and skip every later WAL file; fix the cause (a damaged archived file is repaired "
        + "by archive-push of the good file, e.g. from the primary's pg_wal), then start the server again: recovery resumes"
}

/// An error an operator can act on: a stable code, a message that names the operation and the
/// path or object involved, and a hint that says what to do about it.
public struct PGKeepError: Error, CustomStringConvertible, Sendable {
    public var code: ErrorCode
    public var message: String
    public var hint: String?

    public init(_ code: ErrorCode, _ message: String, hint: String? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
    }

    public var description: String {
        var text = "[\(code.rawValue)] \(code.name): \(message)"
        if let hint { text += "\nHINT: \(hint)" }
        return text
    }

    /// Wraps an `errno` from a failed system call on `path`. ENOSPC and EDQUOT get their own code
    /// and hint because a full repository is the most common fault operators meet. EACCES and
    /// EPERM keep `code` and, without a hint of the caller's, get one naming the user pgkeep runs
    /// as: the usual cause is a repository or data directory owned by another user (files written
    /// by a run as root, a copy made by another account).
    public static func system(_ code: ErrorCode, _ operation: String, path: String, errno: Int32, hint: String? = nil) -> PGKeepError {
        let reason = String(cString: strerror(errno))
        if errno == ENOSPC || errno == EDQUOT {
            return PGKeepError(.diskFull, "\(operation) '\(path)': \(reason)",
                               hint: "free space on the file system that holds '\(path)', then run the command again; nothing already stored was changed")
        }
        if hint == nil, errno == EACCES || errno == EPERM {
            return PGKeepError(code, "\(operation) '\(path)': \(reason)", hint: permissionHint(path))
        }
        return PGKeepError(code, "\(operation) '\(path)': \(reason)", hint: hint)
    }

    /// What to check when the user pgkeep runs as is refused access to `path`.
    static func permissionHint(_ path: String) -> String {
        "pgkeep runs as \(runningUser); check the owner and mode of '\(path)' and of every directory above it (ls -ld), "
            + "and run pgkeep as the user that owns the repository and the data directory (the PostgreSQL OS user)"
    }

    /// `'name' (uid N)` of the effective user, looked up once (getpwuid is not thread-safe).
    package static let runningUser: String = {
        let uid = geteuid()
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return "uid \(uid)" }
        return "'\(String(cString: name))' (uid \(uid))"
    }()
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
