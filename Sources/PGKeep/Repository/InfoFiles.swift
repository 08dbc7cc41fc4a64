import PGKeepCore
import PGKeepPostgres

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

    /// The identity pg_control records, numbered `id` in the stanza's history.
    public init(control: PGControl, id: Int) {
        self.init(id: id, systemIdentifier: control.systemIdentifier, version: control.version.major,
                  controlVersion: control.controlVersion, catalogVersion: control.catalogVersion)
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
    /// Features a reader, and besides them a writer of the stanza's WAL, must know (repo-layout.md
    /// §3.9); none yet, so never written, but read so that a file of a later pgkeep naming one is refused.
    public var readerFeatures: [String]? = nil
    public var writerFeatures: [String]? = nil

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
    /// The backup stores the WAL from its start to its stop (`--archive-copy`, as
    /// `pg_data/pg_wal/<segment>` entries), so it reaches consistency without the archive;
    /// absent otherwise.
    public var archiveCopy: Bool? = nil
    /// The operator's notes on the backup, as its manifest has them (`--annotation`,
    /// `annotate`); absent when there are none.
    public var annotation: [String: String]? = nil
    /// Bytes of the block maps of the backup's block-incremental files (repo-layout.md §3.4):
    /// every one its files use (`repoSizeMap`), and those it stored itself (`repoDeltaMap`);
    /// absent when it has no such file. Part of `repoSizeTotal` and `repoSize` already.
    public var repoSizeMap: UInt64? = nil
    public var repoDeltaMap: UInt64? = nil
    /// The pgkeep version that took the backup, from its manifest; absent before 0.5.
    public var pgkeepVersion: String? = nil

    package init(label: BackupLabel, type: BackupType, prior: BackupLabel? = nil, references: [BackupLabel], databaseID: Int, timestampStart: Int64, timestampStop: Int64, lsnStart: LSN, lsnStop: LSN, walStart: String, walStop: String, timeline: UInt32, size: UInt64, repoSize: UInt64, fileCount: Int, compressType: CompressionType, sizeDelta: UInt64? = nil, repoSizeTotal: UInt64? = nil, pageChecksumErrors: Int? = nil) {
        self.label = label
        self.type = type
        self.prior = prior
        self.references = references
        self.databaseID = databaseID
        self.timestampStart = timestampStart
        self.timestampStop = timestampStop
        self.lsnStart = lsnStart
        self.lsnStop = lsnStop
        self.walStart = walStart
        self.walStop = walStop
        self.timeline = timeline
        self.size = size
        self.repoSize = repoSize
        self.fileCount = fileCount
        self.compressType = compressType
        self.sizeDelta = sizeDelta
        self.repoSizeTotal = repoSizeTotal
        self.pageChecksumErrors = pageChecksumErrors
    }
}

extension BackupSummary {
    /// The entry backup.info gets for the backup `manifest` describes, whose file entries are
    /// `files`: sizes, counts and damaged pages from the entries, the rest from the manifest.
    /// What the backup copied (`sizeDelta`) and the stored size of the backups it references are
    /// the caller's: a backup counts them as it runs, `stanza-repair` works them out afterwards.
    /// `@inlinable` for the reason `Manifest.save(files:to:in:)` gives: the loop over the caller's
    /// sequence is compiled in the caller's module, for its type.
    @inlinable
    package init<Files: Sequence<Manifest.FileEntry>>(manifest: Manifest, files: Files, sizeDelta: UInt64, referencedRepoSize: UInt64) {
        self.init(manifest: manifest, eachFile: { body in for entry in files { body(entry) } },
                  sizeDelta: sizeDelta, referencedRepoSize: referencedRepoSize)
    }

    /// `init(manifest:files:sizeDelta:referencedRepoSize:)` with the entries given by `eachFile`,
    /// which calls its argument once per entry.
    @usableFromInline
    package init(manifest: Manifest, eachFile: (_ body: (Manifest.FileEntry) -> Void) -> Void, sizeDelta: UInt64, referencedRepoSize: UInt64) {
        let backup = manifest.backup
        var size: UInt64 = 0, repoSize: UInt64 = 0
        var fileCount = 0, pageErrors = 0
        var mapSize: UInt64 = 0, mapDelta: UInt64 = 0, blockFiles = false
        eachFile { entry in
            size += entry.size
            if let map = entry.blockMapSize {
                blockFiles = true
                mapSize += map
                if entry.reference == backup.label { mapDelta += map }
            }
            repoSize += entry.storedBytes(by: backup.label)
            fileCount += 1
            // Damaged pages are counted where they were read: entries this backup stored itself.
            if entry.reference == backup.label { pageErrors += entry.pageChecksumErrors?.count ?? 0 }
        }
        self.init(label: backup.label, type: backup.type, prior: backup.prior, references: backup.references ?? [],
                  databaseID: manifest.database.id, timestampStart: backup.timestampStart, timestampStop: backup.timestampStop,
                  lsnStart: backup.lsnStart, lsnStop: backup.lsnStop, walStart: backup.walStart, walStop: backup.walStop,
                  timeline: backup.timeline, size: size, repoSize: repoSize, fileCount: fileCount,
                  compressType: manifest.options.compressType)
        self.sizeDelta = sizeDelta
        if pageErrors > 0 { pageChecksumErrors = pageErrors }
        if manifest.options.archiveCopy == true { archiveCopy = true }
        annotation = manifest.annotation
        pgkeepVersion = backup.pgkeepVersion
        if blockFiles {
            repoSizeMap = mapSize
            repoDeltaMap = mapDelta
        }
        repoSizeTotal = repoSize + referencedRepoSize
    }
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
    /// Features a reader must know (repo-layout.md §3.9); none yet.
    public var readerFeatures: [String]? = nil
    /// Features a writer of the stanza's backups must know besides those. Every write records
    /// `RepositoryFeature.backupInfoWriterFeatures` too (`encode(to:)`), whatever the file read
    /// held: this build's writers require them of the next one.
    public var writerFeatures: [String]? = nil

    public init(current: DatabaseIdentity) {
        format = RepositoryFormat.current
        self.current = current
        history = [current]
        backups = []
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(backups, forKey: .backups)
        try container.encode(current, forKey: .current)
        try container.encode(format, forKey: .format)
        try container.encode(history, forKey: .history)
        try container.encodeIfPresent(readerFeatures, forKey: .readerFeatures)
        let required = RepositoryFeature.backupInfoWriterFeatures.map(\.rawValue)
        try container.encodeIfPresent(RepositoryFeature.recorded((writerFeatures ?? []) + required), forKey: .writerFeatures)
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
        guard let info = try load(ArchiveInfo.self, from: layout.archiveInfo, storage, layout, warn: warn) else {
            throw PGKeepError(.stanzaMissing, "stanza '\(layout.stanza)' has no archive.info at '\(storage.describe(layout.archiveInfo))'",
                              hint: "run 'pgkeep --stanza=\(layout.stanza) stanza-create' first, or check --repo1-path and --stanza")
        }
        return info
    }

    public static func loadBackupInfo(_ storage: Storage, _ layout: RepositoryLayout, warn: (String) -> Void) throws -> BackupInfo {
        guard let info = try load(BackupInfo.self, from: layout.backupInfo, storage, layout, warn: warn) else {
            throw PGKeepError(.stanzaMissing, "stanza '\(layout.stanza)' has no backup.info at '\(storage.describe(layout.backupInfo))'",
                              hint: "run 'pgkeep --stanza=\(layout.stanza) stanza-create' first, or check --repo1-path and --stanza")
        }
        return info
    }

    /// Loads archive.info or backup.info, falling back to the twin (`SealedFile.load`); nil when
    /// the stanza was never created (or only half: stanza-create writes archive.info first).
    ///
    /// When no twin is valid, or both are missing from a stanza that holds WAL or backups, the
    /// repository is invalid (repo-layout.md §3): the error is `repositoryInvalid` whatever broke
    /// the seals, and the hint is the one way to rebuild the file, `stanza-repair`.
    public static func load<T: Decodable>(_ type: T.Type, from path: StoragePath, _ storage: Storage, _ layout: RepositoryLayout,
                                          warn: (String) -> Void) throws -> T? {
        let value = try loadValid(type, from: path, storage, layout, warn: warn)
        if value == nil, let holder = try contentsNeeding(path, storage, layout) {
            throw PGKeepError(.repositoryInvalid,
                              "'\(storage.describe(path))' and its copy are missing, but stanza '\(layout.stanza)' holds \(holder)",
                              hint: repairHint(layout))
        }
        return value
    }

    /// `load` without the check of a missing file: nil when neither twin exists.
    public static func loadValid<T: Decodable>(_ type: T.Type, from path: StoragePath, _ storage: Storage, _ layout: RepositoryLayout,
                                               warn: (String) -> Void) throws -> T? {
        do {
            return try SealedFile.load(type, from: path, in: storage, warn: warn)
        } catch let error as PGKeepError where error.code == .checksumMismatch || error.code == .formatInvalid {
            throw PGKeepError(.repositoryInvalid, "no valid copy of \(path.name) is left: \(error.message)", hint: repairHint(layout))
        }
    }

    static func repairHint(_ layout: RepositoryLayout) -> String {
        "run 'pgkeep --stanza=\(layout.stanza) stanza-repair' to rebuild it from the backup manifests ('--dry-run' first shows what it would write), or put back the file from a copy of the repository"
    }

    /// What in the stanza shows that the missing info file at `path` once existed: backup
    /// directories for backup.info; archive directories or backup.info for archive.info (written
    /// first by stanza-create). Nil for a stanza that was never created.
    package static func contentsNeeding(_ path: StoragePath, _ storage: Storage, _ layout: RepositoryLayout) throws -> String? {
        if path == layout.backupInfo {
            let backups = try storage.list(layout.backupRoot).filter { $0.kind == .directory && BackupLabel($0.name) != nil }
            return backups.isEmpty ? nil : "backup directories (\(backups.map(\.name).sorted().joined(separator: ", ")))"
        }
        let archives = try storage.list(layout.archiveRoot).filter { $0.kind == .directory && ArchiveDirectory($0.name) != nil }
        if !archives.isEmpty { return "archive directories (\(archives.map(\.name).sorted().joined(separator: ", ")))" }
        let backupInfoTwins = [layout.backupInfo, try SealedFile.copyPath(of: layout.backupInfo)]
        for twin in backupInfoTwins where try storage.info(twin) != nil { return "'\(storage.describe(twin))'" }
        return nil
    }
}

/// An archive id directory name, `<major version>-<database id>` (repo-layout.md §1).
package struct ArchiveDirectory: Hashable {
    package var version: Int
    package var id: Int

    package init?(_ name: String) {
        let parts = name.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let version = Int(parts[0]), let id = Int(parts[1]), version > 0, id > 0,
              "\(version)-\(id)" == name else { return nil }
        self.version = version
        self.id = id
    }
}
