import PGKeepCore
import PGKeepPostgres

/// `backup/<stanza>/<label>/backup.manifest`: everything needed to restore one backup and to prove
/// what it holds (repo-layout.md §5). Sealed like the info files, with a `.copy` twin.
///
/// Names: every entry is named by where it lives in the cluster, relative to a *target*:
/// `pg_data/...` for the data directory and `pg_tblspc/<oid>/...` for a tablespace (whose files
/// sit under `PG_<major>_<catalog version>/` in its location).
public struct Manifest: Codable, Sendable {
    public var format: Int
    public var backup: Backup
    public var database: Database
    public var options: Options
    public var databases: [DatabaseEntry]
    public var targets: [Target]
    public var paths: [PathEntry]
    public var links: [LinkEntry]
    public var files: [FileEntry]
    /// The operator's notes on the backup (`--annotation`, `annotate`): key → value; absent when
    /// there are none.
    public var annotation: [String: String]? = nil
    /// The bundle objects this backup wrote (repo-layout.md §3.6), by id; absent when it wrote none.
    public var bundles: [BundleEntry]? = nil
    /// The features a reader must know (repo-layout.md §3.9). Writing records these together with
    /// every feature the written entries use (`writeJSON`), so a manifest always names what it
    /// uses; absent in manifests written before features existed.
    public var readerFeatures: [String]? = nil
    /// The features a writer building on this manifest must know besides those; none today.
    public var writerFeatures: [String]? = nil

    public init(backup: Backup, database: Database, options: Options) {
        format = RepositoryFormat.current
        self.backup = backup
        self.database = database
        self.options = options
        databases = []
        targets = []
        paths = []
        links = []
        files = []
    }

    /// What, when and where in the WAL.
    public struct Backup: Codable, Sendable {
        public var label: BackupLabel
        public var type: BackupType
        public var prior: BackupLabel?
        public var timestampStart: Int64
        public var timestampStop: Int64
        public var lsnStart: LSN
        public var lsnStop: LSN
        /// First and last WAL segment the backup needs to reach consistency.
        public var walStart: String
        public var walStop: String
        public var timeline: UInt32
        /// Labels of the other backups holding objects this backup needs (diff/incr; absent for
        /// a full backup or one that references nothing).
        public var references: [BackupLabel]? = nil
        /// `floor(t - 0.1) - 2` for a listing that began at `t`: two seconds before the one the
        /// file listing began in, or three when it began in that second's first 0.1 s
        /// (`BackupRun.copyStart`, repo-layout.md §3.3, §4.1). A file whose mtime is not later
        /// was last written before the listing, so any write after it was read gives it a later
        /// mtime, also where mtimes come in steps of a second or two. Absent in manifests written
        /// before diff/incr existed (pgkeep 0.1).
        public var timestampCopyStart: Int64? = nil
        /// The pgkeep version that took the backup (`info` shows it as pgBackRest's
        /// `backrest.version`); absent in manifests of pgkeep before 0.5.
        public var pgkeepVersion: String? = nil

        package init(label: BackupLabel, type: BackupType, prior: BackupLabel? = nil, timestampStart: Int64, timestampStop: Int64, lsnStart: LSN, lsnStop: LSN, walStart: String, walStop: String, timeline: UInt32, references: [BackupLabel]? = nil, timestampCopyStart: Int64? = nil) {
            self.label = label
            self.type = type
            self.prior = prior
            self.timestampStart = timestampStart
            self.timestampStop = timestampStop
            self.lsnStart = lsnStart
            self.lsnStop = lsnStop
            self.walStart = walStart
            self.walStop = walStop
            self.timeline = timeline
            self.references = references
            self.timestampCopyStart = timestampCopyStart
        }
    }

    /// The cluster the backup was taken from.
    public struct Database: Codable, Sendable {
        public var id: Int
        public var systemIdentifier: UInt64
        public var version: Int
        public var controlVersion: UInt32
        public var catalogVersion: UInt32
        public var walSegmentSize: UInt32
        public var pageChecksums: Bool

        package init(id: Int, systemIdentifier: UInt64, version: Int, controlVersion: UInt32, catalogVersion: UInt32, walSegmentSize: UInt32, pageChecksums: Bool) {
            self.id = id
            self.systemIdentifier = systemIdentifier
            self.version = version
            self.controlVersion = controlVersion
            self.catalogVersion = catalogVersion
            self.walSegmentSize = walSegmentSize
            self.pageChecksums = pageChecksums
        }

        /// The stanza identity (info files) this backup was taken under.
        public var identity: DatabaseIdentity {
            DatabaseIdentity(id: id, systemIdentifier: systemIdentifier, version: version,
                             controlVersion: controlVersion, catalogVersion: catalogVersion)
        }
    }

    /// The options the backup ran with.
    public struct Options: Codable, Sendable {
        public var compressType: CompressionType
        public var compressLevel: Int
        public var bufferSize: Int
        public var processMax: Int
        public var startFast: Bool
        /// Small files went into bundles (§3.6), with these limits; absent in manifests written
        /// before bundling existed. Recorded for operators: restore reads each entry's `bundle`.
        public var bundle: Bool? = nil
        public var bundleLimit: UInt64? = nil
        public var bundleSize: UInt64? = nil
        /// `--archive-check`, `--archive-copy`, `--checksum-page` and `--exclude` as the backup ran
        /// (absent in manifests of earlier pgkeep versions; `checksumPage` also when not given, and
        /// `exclude` when empty). For operators: the WAL an archive copy stored is listed as
        /// `pg_data/pg_wal/<segment>` file entries like any other file.
        public var archiveCheck: Bool? = nil
        public var archiveCopy: Bool? = nil
        public var checksumPage: Bool? = nil
        public var exclude: [String]? = nil

        package init(compressType: CompressionType, compressLevel: Int, bufferSize: Int, processMax: Int, startFast: Bool, bundle: Bool? = nil, bundleLimit: UInt64? = nil, bundleSize: UInt64? = nil) {
            self.compressType = compressType
            self.compressLevel = compressLevel
            self.bufferSize = bufferSize
            self.processMax = processMax
            self.startFast = startFast
            self.bundle = bundle
            self.bundleLimit = bundleLimit
            self.bundleSize = bundleSize
        }
    }

    /// One bundle object `<label>/bundle/<id>`: its stored size and SHA-256, so verify can prove
    /// every stored byte of it in one read.
    public struct BundleEntry: Codable, Sendable, Hashable {
        public var id: Int
        public var repoSize: UInt64
        public var repoChecksum: SHA256Digest

        public init(id: Int, repoSize: UInt64, repoChecksum: SHA256Digest) {
            self.id = id
            self.repoSize = repoSize
            self.repoChecksum = repoChecksum
        }
    }

    /// A database in the cluster at backup time (for selective restore later and for operators).
    public struct DatabaseEntry: Codable, Sendable, Hashable {
        public var oid: UInt32
        public var name: String

        package init(oid: UInt32, name: String) {
            self.oid = oid
            self.name = name
        }
    }

    /// The data directory, a tablespace, or a link in the data directory: where its files came from.
    ///
    /// A `link` target (format 2) is a symbolic link in the data directory other than a
    /// tablespace's, named like the link (`pg_data/pg_wal`, `pg_data/postgresql.conf`), with the
    /// absolute path it resolved to. The entries below (or, for a linked file, at) its name live
    /// at that path; the link itself is a `links` entry of the same name.
    public struct Target: Codable, Sendable, Hashable {
        public enum Kind: String, Codable, Sendable { case dataDirectory, tablespace, link }
        public var name: String             // "pg_data", "pg_tblspc/<oid>" or "pg_data/<link>"
        public var kind: Kind
        public var path: String             // absolute location on the database host
        public var tablespaceOID: UInt32?
        public var tablespaceName: String?

        package init(name: String, kind: Kind, path: String, tablespaceOID: UInt32? = nil, tablespaceName: String? = nil) {
            self.name = name
            self.kind = kind
            self.path = path
            self.tablespaceOID = tablespaceOID
            self.tablespaceName = tablespaceName
        }
    }

    /// A directory to recreate (even when empty: PostgreSQL needs its skeleton).
    public struct PathEntry: Codable, Sendable, Hashable {
        public var name: String
        public var mode: UInt32
        public var user: String?
        public var group: String?

        package init(name: String, mode: UInt32, user: String? = nil, group: String? = nil) {
            self.name = name
            self.mode = mode
            self.user = user
            self.group = group
        }
    }

    /// A symbolic link: a tablespace link under `pg_data/pg_tblspc`, or a link target's link.
    public struct LinkEntry: Codable, Sendable, Hashable {
        public var name: String
        public var destination: String
        public var user: String?
        public var group: String?

        package init(name: String, destination: String, user: String? = nil, group: String? = nil) {
            self.name = name
            self.destination = destination
            self.user = user
            self.group = group
        }
    }

    /// One file: its attributes in the cluster, its checksums, and where its bytes are stored.
    ///
    /// A manifest holds one per file of the cluster, so the layout is kept small (200 bytes): the
    /// block-incremental details and damaged pages, which few entries have, live in one shared
    /// immutable `Details` object that setters replace, so the entry keeps value semantics.
    public struct FileEntry: Codable, Sendable, Hashable {
        public var name: String
        /// Bytes copied (the size when the copy read it, which may differ from the listing: files
        /// that grow or shrink during an online backup are repaired by WAL replay).
        public var size: UInt64
        public var mtime: Int64
        public var user: String?
        public var group: String?
        /// SHA-256 of the file's bytes as copied.
        public var checksum: SHA256Digest
        /// Size and SHA-256 of the stored (compressed) object.
        public var repoSize: UInt64
        public var repoChecksum: SHA256Digest
        /// The backup whose directory holds the stored object; a full backup references itself.
        public var reference: BackupLabel
        public var mode: UInt32
        public var compression: CompressionType

        /// Bundled storage (repo-layout.md §3.6): the file's stored frame lies in the bundle object
        /// `<reference>/bundle/<bundle>` at byte `bundleOffset`, `repoSize` bytes long;
        /// `repoSize`/`repoChecksum` describe the frame. Absent for a file stored on its own.
        public var bundle: Int? = nil
        public var bundleOffset: UInt64? = nil

        private var details: Details? = nil

        public init(name: String, size: UInt64, mtime: Int64, mode: UInt32, user: String?, group: String?,
                    checksum: SHA256Digest, repoSize: UInt64, repoChecksum: SHA256Digest, compression: CompressionType,
                    reference: BackupLabel) {
            self.name = name
            self.size = size
            self.mtime = mtime
            self.mode = mode
            self.user = user
            self.group = group
            self.checksum = checksum
            self.repoSize = repoSize
            self.repoChecksum = repoChecksum
            self.compression = compression
            self.reference = reference
        }

        /// Block-incremental storage (repo-layout.md §3.4): the block size in bytes. When set, the
        /// file is stored as a block object `<name>.pgkb` plus a block map `<name>.pgkm` in the
        /// `reference` backup, and `repoSize`/`repoChecksum` describe that block object.
        public var blockSize: Int? {
            get { details?.blockSize }
            set { details = Details.make(details, blockSize: newValue) }
        }

        /// Size and SHA-256 of the block map `<name>.pgkm` in the `reference` backup.
        public var blockMapSize: UInt64? {
            get { details?.blockMapSize }
            set { details = Details.make(details, blockMapSize: newValue) }
        }

        public var blockMapChecksum: SHA256Digest? {
            get { details?.blockMapChecksum }
            set { details = Details.make(details, blockMapChecksum: newValue) }
        }

        /// Block numbers whose PostgreSQL page checksum failed while the file was copied (read
        /// twice, page LSN before the backup start); absent when every page verified or the file
        /// is not a relation file of a cluster with data checksums.
        public var pageChecksumErrors: [UInt32]? {
            get { details?.pageChecksumErrors }
            set { details = Details.make(details, pageChecksumErrors: newValue) }
        }

        /// Whether the file's stored frame lies in a bundle.
        public var isBundled: Bool { bundle != nil }

        /// Whether the file is stored in block-incremental form.
        public var isBlockIncremental: Bool { blockSize != nil }

        /// The bytes backup `label` stored for this entry (its object and block map), 0 when
        /// another backup holds them.
        func storedBytes(by label: BackupLabel) -> UInt64 {
            reference == label ? repoSize + (blockMapSize ?? 0) : 0
        }

        /// The rarely present fields, immutable and compared by value.
        private final class Details: Hashable, Sendable {
            let blockSize: Int?
            let blockMapSize: UInt64?
            let blockMapChecksum: SHA256Digest?
            let pageChecksumErrors: [UInt32]?

            init(blockSize: Int?, blockMapSize: UInt64?, blockMapChecksum: SHA256Digest?, pageChecksumErrors: [UInt32]?) {
                self.blockSize = blockSize
                self.blockMapSize = blockMapSize
                self.blockMapChecksum = blockMapChecksum
                self.pageChecksumErrors = pageChecksumErrors
            }

            /// `old` with the given fields replaced; nil when every field is absent.
            static func make(_ old: Details?, blockSize: Int?? = .none, blockMapSize: UInt64?? = .none,
                             blockMapChecksum: SHA256Digest?? = .none, pageChecksumErrors: [UInt32]?? = .none) -> Details? {
                let value = Details(blockSize: blockSize ?? old?.blockSize, blockMapSize: blockMapSize ?? old?.blockMapSize,
                                    blockMapChecksum: blockMapChecksum ?? old?.blockMapChecksum,
                                    pageChecksumErrors: pageChecksumErrors ?? old?.pageChecksumErrors)
                let empty = value.blockSize == nil && value.blockMapSize == nil && value.blockMapChecksum == nil
                    && value.pageChecksumErrors == nil
                return empty ? nil : value
            }

            static func == (a: Details, b: Details) -> Bool {
                a.blockSize == b.blockSize && a.blockMapSize == b.blockMapSize && a.blockMapChecksum == b.blockMapChecksum
                    && a.pageChecksumErrors == b.pageChecksumErrors
            }

            func hash(into hasher: inout Hasher) {
                hasher.combine(blockSize)
                hasher.combine(blockMapSize)
                hasher.combine(blockMapChecksum)
                hasher.combine(pageChecksumErrors)
            }
        }

        // Codable by hand (the synthesised conformance would see `details`): the keys and the
        // present-or-absent rule of the stored fields before `Details` existed, which
        // `Fixtures/manifest-every-key.json` pins.
        private enum CodingKeys: String, CodingKey {
            case name, size, mtime, mode, user, group, checksum, repoSize, repoChecksum, compression, reference
            case blockSize, blockMapSize, blockMapChecksum, pageChecksumErrors, bundle, bundleOffset
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(name: try c.decode(String.self, forKey: .name), size: try c.decode(UInt64.self, forKey: .size),
                      mtime: try c.decode(Int64.self, forKey: .mtime), mode: try c.decode(UInt32.self, forKey: .mode),
                      user: try c.decodeIfPresent(String.self, forKey: .user), group: try c.decodeIfPresent(String.self, forKey: .group),
                      checksum: try c.decode(SHA256Digest.self, forKey: .checksum), repoSize: try c.decode(UInt64.self, forKey: .repoSize),
                      repoChecksum: try c.decode(SHA256Digest.self, forKey: .repoChecksum),
                      compression: try c.decode(CompressionType.self, forKey: .compression),
                      reference: try c.decode(BackupLabel.self, forKey: .reference))
            blockSize = try c.decodeIfPresent(Int.self, forKey: .blockSize)
            blockMapSize = try c.decodeIfPresent(UInt64.self, forKey: .blockMapSize)
            blockMapChecksum = try c.decodeIfPresent(SHA256Digest.self, forKey: .blockMapChecksum)
            pageChecksumErrors = try c.decodeIfPresent([UInt32].self, forKey: .pageChecksumErrors)
            bundle = try c.decodeIfPresent(Int.self, forKey: .bundle)
            bundleOffset = try c.decodeIfPresent(UInt64.self, forKey: .bundleOffset)
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(size, forKey: .size)
            try c.encode(mtime, forKey: .mtime)
            try c.encode(mode, forKey: .mode)
            try c.encodeIfPresent(user, forKey: .user)
            try c.encodeIfPresent(group, forKey: .group)
            try c.encode(checksum, forKey: .checksum)
            try c.encode(repoSize, forKey: .repoSize)
            try c.encode(repoChecksum, forKey: .repoChecksum)
            try c.encode(compression, forKey: .compression)
            try c.encode(reference, forKey: .reference)
            try c.encodeIfPresent(blockSize, forKey: .blockSize)
            try c.encodeIfPresent(blockMapSize, forKey: .blockMapSize)
            try c.encodeIfPresent(blockMapChecksum, forKey: .blockMapChecksum)
            try c.encodeIfPresent(pageChecksumErrors, forKey: .pageChecksumErrors)
            try c.encodeIfPresent(bundle, forKey: .bundle)
            try c.encodeIfPresent(bundleOffset, forKey: .bundleOffset)
        }
    }

    /// Totals for backup.info.
    public var totalSize: UInt64 { files.reduce(0) { $0 + $1.size } }
    public var totalRepoSize: UInt64 { Self.repoSize(of: files, label: backup.label) }

    /// The bytes the objects of `files` stored by backup `label` take (block maps included).
    static func repoSize<Files: Sequence<FileEntry>>(of files: Files, label: BackupLabel) -> UInt64 {
        files.reduce(0) { $0 + $1.storedBytes(by: label) }
    }

    /// The labels, other than this backup's own, that hold objects of its files (the file
    /// references; block maps can reach further, see `BlockMap.references`).
    public var fileReferences: [BackupLabel] {
        Set(files.map(\.reference)).subtracting([backup.label]).sorted()
    }
}

extension SHA256Digest: Codable {
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let digest = SHA256Digest(hex: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "invalid SHA-256 '\(text)'"))
        }
        self = digest
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}

extension CompressionType: Codable {}

extension Manifest {
    /// The manifest of backup `label` (or its copy), for a command that needs it: a listed backup
    /// without one is `backupMissing` naming the backup's directory; `hint` says what to do
    /// instead (restore: another backup).
    public static func load(label: BackupLabel, layout: RepositoryLayout, storage: Storage, warn: (String) -> Void,
                            hint: String? = nil) throws -> Manifest {
        guard let manifest = try SealedFile.load(Manifest.self, from: try layout.manifest(label: label), in: storage, warn: warn) else {
            throw PGKeepError(.backupMissing, "the manifest of backup \(label) is missing from '\(storage.describe(try layout.backupDirectory(label: label)))'",
                              hint: hint ?? "the backup is damaged (see 'pgkeep --stanza=\(layout.stanza) verify')")
        }
        return manifest
    }
}
