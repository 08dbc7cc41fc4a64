/// The identity of the PostgreSQL cluster a stanza serves, as recorded in the info files.
/// `id` numbers the entries of the history: a stanza upgraded to a new major version (later) gets
/// a new id, and its WAL goes to a new archive id directory.
public struct DatabaseIdentity: Codable, Hashable, Sendable {
    public var id: Int
    public var systemIdentifier: UInt64
    public var version: Int                // major version, e.g. 15
    public var controlVersion: UInt32
    public var catalogVersion: UInt32

    public init(id: Int, systemIdentifier: UInt64, version: Int, controlVersion: UInt32, catalogVersion: UInt32) {
        self.id = id
        self.systemIdentifier = systemIdentifier
        self.version = version
        self.controlVersion = controlVersion
        self.catalogVersion = catalogVersion
    }

    /// `<version>-<id>`, the archive directory name for this identity.
    public var archiveID: String { "\(version)-\(id)" }

    /// Same cluster and version (the id is the repository's own numbering).
    public func matches(systemIdentifier: UInt64, version: Int) -> Bool {
        self.systemIdentifier == systemIdentifier && self.version == version
    }
}

/// `archive/<stanza>/archive.info`: which cluster the archive belongs to.
public struct ArchiveInfo: Codable, Sendable {
    public var format: Int
    public var current: DatabaseIdentity
    public var history: [DatabaseIdentity]

    public init(current: DatabaseIdentity) {
        format = RepositoryFormat.current
        self.current = current
        history = [current]
    }
}

/// One completed backup as listed in `backup.info`. A backup exists for readers only when it is
/// listed here (repo-layout.md §4: the manifest is written first, then this entry).
public struct BackupSummary: Codable, Hashable, Sendable {
    public var label: BackupLabel
    public var type: BackupType
    public var prior: BackupLabel?
    public var references: [BackupLabel]
    public var databaseID: Int
    public var timestampStart: Int64
    public var timestampStop: Int64
    public var lsnStart: LSN
    public var lsnStop: LSN
    public var walStart: String
    public var walStop: String
    public var timeline: UInt32
    /// Bytes of the cluster files in the backup, original size.
    public var size: UInt64
    /// Bytes this backup stores in the repository (after compression).
    public var repoSize: UInt64
    public var fileCount: Int
    public var compressType: CompressionType
    /// Original bytes this backup copied (the changed files, or for block-incremental files the
    /// changed blocks); absent in entries written before diff/incr existed (then equal to `size`).
    public var sizeDelta: UInt64? = nil
    /// Bytes in the repository of every object this backup needs, its own and its references';
    /// absent in older entries (then equal to `repoSize`).
    public var repoSizeTotal: UInt64? = nil
    /// Data pages whose checksum failed (twice) while being copied; absent when none did.
    public var pageChecksumErrors: Int? = nil
}

/// The kinds of backup: `full`, `diff` (changes since the last full) and `incr` (changes since
/// the last backup of any type).
public enum BackupType: String, Codable, Sendable, CaseIterable {
    case full, diff, incr
}

/// `backup/<stanza>/backup.info`: the cluster identity and the list of completed backups.
public struct BackupInfo: Codable, Sendable {
    public var format: Int
    public var current: DatabaseIdentity
    public var history: [DatabaseIdentity]
    public var backups: [BackupSummary]

    public init(current: DatabaseIdentity) {
        format = RepositoryFormat.current
        self.current = current
        history = [current]
        backups = []
    }

    /// The most recent backup by stop time (never by label text).
    public var latest: BackupSummary? {
        backups.max { ($0.timestampStop, $0.label) < ($1.timestampStop, $1.label) }
    }

    /// The most recent full backup by stop time.
    public var latestFull: BackupSummary? {
        backups.filter { $0.type == .full }.max { ($0.timestampStop, $0.label) < ($1.timestampStop, $1.label) }
    }
}

/// Loading and saving the info files with their format checks.
public enum InfoFiles {
    public static func loadArchiveInfo(_ storage: Storage, _ layout: RepositoryLayout, warn: (String) -> Void) throws -> ArchiveInfo {
        guard let info = try SealedFile.load(ArchiveInfo.self, from: layout.archiveInfo, in: storage, warn: warn) else {
            throw PGKeepError(.stanzaMissing, "stanza '\(layout.stanza)' has no archive.info at '\(storage.describe(layout.archiveInfo))'",
                              hint: "run 'pgkeep --stanza=\(layout.stanza) stanza-create' first, or check --repo1-path and --stanza")
        }
        try checkFormat(info.format, storage.describe(layout.archiveInfo))
        return info
    }

    public static func loadBackupInfo(_ storage: Storage, _ layout: RepositoryLayout, warn: (String) -> Void) throws -> BackupInfo {
        guard let info = try SealedFile.load(BackupInfo.self, from: layout.backupInfo, in: storage, warn: warn) else {
            throw PGKeepError(.stanzaMissing, "stanza '\(layout.stanza)' has no backup.info at '\(storage.describe(layout.backupInfo))'",
                              hint: "run 'pgkeep --stanza=\(layout.stanza) stanza-create' first, or check --repo1-path and --stanza")
        }
        try checkFormat(info.format, storage.describe(layout.backupInfo))
        return info
    }

    static func checkFormat(_ format: Int, _ name: String) throws {
        guard format == RepositoryFormat.current else {
            throw PGKeepError(.repositoryInvalid, "'\(name)' has repository format \(format); this pgkeep reads format \(RepositoryFormat.current)",
                              hint: "use the pgkeep version that wrote this repository")
        }
    }
}
