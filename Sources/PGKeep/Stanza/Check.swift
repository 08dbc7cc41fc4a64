import SystemPackage
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// What check needs, resolved by the command front (which has already validated the whole
/// configuration: a bad option never gets this far).
public struct CheckOptions: Sendable {
    public var dataDirectory: FilePath
    public var connection: PGConnectionOptions
    /// How long to wait for the switched segment to reach the archive (`--archive-timeout`).
    public var archiveTimeout: Double
    public var lockPath: String

    public init(dataDirectory: FilePath, connection: PGConnectionOptions, archiveTimeout: Double, lockPath: String) {
        self.dataDirectory = dataDirectory
        self.connection = connection
        self.archiveTimeout = archiveTimeout
        self.lockPath = lockPath
    }
}

/// `check`: proves that backups and archiving would work now, as pgBackRest's command of that
/// name does, and says what is wrong otherwise. Each step throws the error the failing command
/// would, so the exit code names the problem.
///
/// 1. Connect to the server; its version must be supported.
/// 2. The server archives into this stanza: `archive_mode` on, `archive_library` unset and
///    `archive_command` running `pgkeep ... archive-push` without naming another stanza, and
///    `--pg1-path` is the server's data directory (the checks a backup makes, and more).
/// 3. The stanza exists and serves this cluster: pg_control matches archive.info and backup.info.
/// 4. The repository takes writes: a probe object is written and abandoned before it is published.
/// 5. archive-push is not stopped on this host (`pgkeep stop`).
/// 6. A restore point and a WAL switch complete a segment; wait (`--archive-timeout`) until it is
///    in the archive. A standby only gets steps 1-4: its primary archives.
public struct CheckRun {
    /// What check found, one line per step, for the operator.
    public struct Report: Sendable, Equatable {
        public var lines: [String] = []
    }

    let storage: Storage
    let host: PostgresHost
    let layout: RepositoryLayout
    let options: CheckOptions
    let log: Log

    public init(storage: Storage, host: PostgresHost, layout: RepositoryLayout, options: CheckOptions, log: Log) {
        self.storage = storage
        self.host = host
        self.layout = layout
        self.options = options
        self.log = log
    }

    public func run() throws -> Report {
        var report = Report()
        let session = try host.connect(options.connection, applicationName: "pgkeep check")
        try ServerCheck.verifyVersion(session)
        let version = session.serverVersionNumber
        let standby = try session.isInRecovery()
        report.lines.append("connected: PostgreSQL \(version / 10000) (server_version_num \(version))\(standby ? ", a standby" : "")")
        if !standby {
            try checkArchiving(session)
            report.lines.append("archiving: archive_mode = '\(try session.setting("archive_mode") ?? "")', archive_command runs pgkeep archive-push for stanza '\(layout.stanza)'")
        }
        let archiveID = try checkStanza()
        report.lines.append("stanza '\(layout.stanza)': matches the cluster in '\(options.dataDirectory)' (archive id \(archiveID))")
        try probeRepository()
        report.lines.append("repository: '\(storage.describe(layout.archiveRoot))' takes writes")
        guard !standby else {
            report.lines.append("WAL archiving is checked on the primary: this server is a standby")
            return report
        }
        try StopFile.refuse("archive-push", lockPath: options.lockPath, stanza: layout.stanza)
        let started = Clock.monotonic()
        let segment = try switchAndWait(session, archiveID: archiveID)
        report.lines.append("WAL segment \(segment) archived in \(String(format3: Clock.monotonic() - started)) s")
        return report
    }

    /// Step 2. A backup would catch the first three too; check also catches an archive_command
    /// that sends WAL somewhere else, before the wait in step 6 would time out on it.
    private func checkArchiving(_ session: PostgresSQL) throws {
        try ServerCheck.verifyForBackup(session, host: host, dataDirectory: options.dataDirectory, log: log)
        let library = try session.setting("archive_library") ?? ""
        guard library.isEmpty else {
            throw PGKeepError(.dbConfig, "archive_library is '\(library)': PostgreSQL archives through that module and ignores archive_command",
                              hint: "set archive_library = '' and archive_command = 'pgkeep --stanza=\(layout.stanza) archive-push %p', then reload PostgreSQL")
        }
        let command = try session.setting("archive_command") ?? ""
        guard command.contains("pgkeep"), command.contains("archive-push") else {
            throw PGKeepError(.dbConfig, "archive_command '\(command)' does not run pgkeep archive-push: WAL does not reach stanza '\(layout.stanza)'",
                              hint: "set archive_command = 'pgkeep --stanza=\(layout.stanza) archive-push %p' and reload PostgreSQL")
        }
        if let named = Self.stanzaNamed(in: command), named != layout.stanza {
            throw PGKeepError(.dbConfig, "archive_command '\(command)' archives into stanza '\(named)', not '\(layout.stanza)'",
                              hint: "set archive_command = 'pgkeep --stanza=\(layout.stanza) archive-push %p', or run check with --stanza=\(named)")
        }
    }

    /// The value of `--stanza=` (or `--stanza NAME`) in a command line; nil when it names none
    /// (the stanza then comes from pgkeep's environment or config file, which check cannot see).
    static func stanzaNamed(in command: String) -> String? {
        let words = command.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { $0.trimmingCharacters(in: "'\"") }
        for (index, word) in words.enumerated() {
            if word.hasPrefix("--stanza=") { return String(word.dropFirst("--stanza=".count)) }
            if word == "--stanza", index + 1 < words.count { return words[index + 1] }
        }
        return nil
    }

    /// Step 3: the archive id this cluster's WAL goes to.
    private func checkStanza() throws -> String {
        let archiveInfo = try InfoFiles.loadArchiveInfo(storage, layout, warn: log.warn)
        let backupInfo = try InfoFiles.loadBackupInfo(storage, layout, warn: log.warn)
        let control = try PGControl.read(from: host, dataDirectory: options.dataDirectory).control
        try StanzaCheck.verify(control: control, dataDirectory: options.dataDirectory.string,
                               archiveInfo: archiveInfo, backupInfo: backupInfo, stanza: layout.stanza)
        return archiveInfo.current.archiveID
    }

    /// Step 4: write a probe and abandon it, so nothing is ever published by check.
    private func probeRepository() throws {
        let writer = try storage.openWrite(try layout.archiveRoot.appending("check.probe"))
        defer { writer.abort() }
        let probe: [UInt8] = Array("pgkeep check\n".utf8)
        try probe.withUnsafeBytes { try writer.write($0) }
    }

    /// Step 6.
    private func switchAndWait(_ session: PostgresSQL, archiveID: String) throws -> String {
        let name = try session.switchWAL(restorePoint: "pgkeep check")
        let control = try PGControl.read(from: host, dataDirectory: options.dataDirectory).control
        guard let segment = WALSegmentName(name, segmentSize: control.walSegmentSize) else {
            throw PGKeepError(.dbQuery, "pg_switch_wal gave '\(name)', which is not a WAL segment name")
        }
        log.info("check: waiting up to \(options.archiveTimeout) s for WAL segment \(name) to reach the archive")
        do {
            try ArchiveWait.waitForSegments(from: segment, through: segment, archiveID: archiveID, storage: storage,
                                            layout: layout, timeout: options.archiveTimeout)
        } catch let error as PGKeepError where error.code == .archiveTimeout {
            throw try explainTimeout(error, segment: name, session: session)
        }
        return name
    }

    /// The archiver's own view, added to a timeout: a failing archive_command is the usual cause.
    private func explainTimeout(_ error: PGKeepError, segment: String, session: PostgresSQL) throws -> PGKeepError {
        let status = try? session.archiverStatus()
        var message = error.message
        if let status {
            message += "; pg_stat_archiver: last archived \(status.lastArchived ?? "none"), last failed \(status.lastFailed ?? "none"), \(status.failedCount) failures"
        }
        let failing = status?.lastFailed == segment
        return PGKeepError(.archiveTimeout, message,
                           hint: failing ? "archive_command fails for \(segment): the PostgreSQL log has its error output"
                                         : error.hint ?? "check archive_command and the PostgreSQL log")
    }
}

extension String {
    /// Seconds with three decimals, without Foundation's formatting.
    init(format3 seconds: Double) {
        let millis = Int((seconds * 1000).rounded())
        let fraction = String(millis % 1000)
        self = "\(millis / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}
