import PGKeepCore

/// The SQL facade: every statement pgkeep sends to PostgreSQL, behind one protocol. A command
/// asks for what it needs ("start the backup", "the tablespaces") and never holds SQL text, so a
/// new PostgreSQL version's changes (docs/postgres-internals.md §1) land here, and a session
/// the remote agent relays, or a scripted one in tests, serves the same commands.
///
/// A backup runs `startBackup` and `stopBackup` in the same session: if the connection dies in
/// between, the server silently abandons the backup (docs/postgres-internals.md §1.1).
public protocol PostgresSQL: AnyObject {
    /// `server_version_num`, e.g. 150018.
    var serverVersionNumber: Int { get }
    /// Whether the server is a standby (`pg_is_in_recovery()`).
    func isInRecovery() throws -> Bool
    /// `current_setting(name)`; throws when the role may not read it (`data_directory` needs
    /// superuser or pg_read_all_settings).
    func setting(_ name: String) throws -> String?
    /// Makes the session's later statements independent of the role's settings: catalog names
    /// resolve in pg_catalog, and no parallel workers hold snapshots during a backup.
    func prepareForBackup() throws
    /// `pg_backup_start(label, fast)`: the backup's start LSN.
    func startBackup(label: String, fast: Bool) throws -> LSN
    /// `pg_backup_stop(false)`: the stop LSN and the files the restored cluster needs.
    func stopBackup() throws -> BackupStop
    /// Ends a backup that failed, if the session still works; never throws (it runs on error paths).
    func abandonBackup()
    /// The databases, by oid.
    func databases() throws -> [PGDatabase]
    /// The user tablespaces (oid ≥ 16384: not pg_default or pg_global), by oid.
    func tablespaces() throws -> [PGTablespace]
    /// `pg_create_restore_point(name)` and then `pg_switch_wal()`: the restore point's WAL record
    /// makes sure the current segment holds something, so the switch always completes a segment
    /// for the archiver (a switch on a segment with nothing written since the last is a no-op).
    /// Returns that segment's name (`pg_walfile_name` of the switch's LSN).
    func switchWAL(restorePoint: String) throws -> String
    /// What `pg_stat_archiver` says, for the message of a check whose WAL never arrived.
    func archiverStatus() throws -> ArchiverStatus
}

/// `pg_stat_archiver`: the last segment archived and the last that failed.
public struct ArchiverStatus: Sendable, Equatable {
    public var lastArchived: String?
    public var lastFailed: String?
    public var failedCount: Int

    public init(lastArchived: String?, lastFailed: String?, failedCount: Int) {
        self.lastArchived = lastArchived
        self.lastFailed = lastFailed
        self.failedCount = failedCount
    }
}

/// What `pg_backup_stop` returns: the stop LSN, `backup_label`, and `tablespace_map` (nil when
/// the cluster has no tablespaces).
public struct BackupStop: Sendable, Equatable {
    public var lsn: LSN
    public var labelFile: String
    public var tablespaceMap: String?

    public init(lsn: LSN, labelFile: String, tablespaceMap: String?) {
        self.lsn = lsn
        self.labelFile = labelFile
        self.tablespaceMap = tablespaceMap
    }
}

public struct PGDatabase: Sendable, Equatable {
    public var oid: UInt32
    public var name: String

    public init(oid: UInt32, name: String) {
        self.oid = oid
        self.name = name
    }
}

public struct PGTablespace: Sendable, Equatable {
    public var oid: UInt32
    public var name: String
    /// `pg_tablespace_location(oid)`: where the tablespace's link points.
    public var location: String

    public init(oid: UInt32, name: String, location: String) {
        self.oid = oid
        self.name = name
        self.location = location
    }
}

/// The facade over a libpq session: the statements themselves.
extension PGSession: PostgresSQL {
    public func isInRecovery() throws -> Bool {
        try value("SELECT pg_is_in_recovery()::text") == "true"
    }

    public func setting(_ name: String) throws -> String? {
        try value("SELECT current_setting($1)", [name])
    }

    public func prepareForBackup() throws {
        try query("SET search_path = pg_catalog")
        try query("SET max_parallel_workers_per_gather = 0")
    }

    public func startBackup(label: String, fast: Bool) throws -> LSN {
        guard let text = try value("SELECT pg_backup_start($1, $2)::text", [label, fast ? "true" : "false"]),
              let lsn = LSN(text) else {
            throw PGKeepError(.dbQuery, "pg_backup_start returned no start LSN")
        }
        return lsn
    }

    public func stopBackup() throws -> BackupStop {
        let rows = try query("SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)")
        guard rows.count == 1, let text = rows[0][0], let lsn = LSN(text), let labelFile = rows[0][1] else {
            throw PGKeepError(.dbQuery, "pg_backup_stop returned an unexpected result")
        }
        let map = rows[0][2].flatMap { $0.isEmpty ? nil : $0 }
        return BackupStop(lsn: lsn, labelFile: labelFile, tablespaceMap: map)
    }

    public func abandonBackup() {
        _ = try? query("SELECT pg_backup_stop(false)")
    }

    public func databases() throws -> [PGDatabase] {
        try query("SELECT oid::text, datname FROM pg_database ORDER BY oid").map {
            PGDatabase(oid: UInt32($0[0] ?? "0") ?? 0, name: $0[1] ?? "")
        }
    }

    public func tablespaces() throws -> [PGTablespace] {
        try query("SELECT oid::text, spcname, pg_tablespace_location(oid) FROM pg_tablespace WHERE oid >= 16384 ORDER BY oid")
            .compactMap { row in
                guard let oid = UInt32(row[0] ?? ""), let name = row[1] else { return nil }
                return PGTablespace(oid: oid, name: name, location: row[2] ?? "")
            }
    }

    public func switchWAL(restorePoint: String) throws -> String {
        _ = try query("SELECT pg_create_restore_point($1)", [restorePoint])
        guard let name = try value("SELECT pg_walfile_name(pg_switch_wal())"), !name.isEmpty else {
            throw PGKeepError(.dbQuery, "pg_switch_wal returned no WAL file name")
        }
        return name
    }

    public func archiverStatus() throws -> ArchiverStatus {
        let rows = try query("SELECT last_archived_wal, last_failed_wal, failed_count::text FROM pg_stat_archiver")
        guard let row = rows.first else { return ArchiverStatus(lastArchived: nil, lastFailed: nil, failedCount: 0) }
        return ArchiverStatus(lastArchived: row[0], lastFailed: row[1], failedCount: Int(row[2] ?? "0") ?? 0)
    }
}
