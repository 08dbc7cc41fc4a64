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
    /// The bundle objects this backup wrote (repo-layout.md §3.6), by id; absent when it wrote none.
    public var bundles: [BundleEntry]? = nil

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
        /// The second recorded before the file listing began; the backup waited into the next
        /// second before listing, so any later change to a file gets a later mtime. Absent in
        /// manifests written before diff/incr existed.
        public var timestampCopyStart: Int64? = nil
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
    }

    /// The data directory or a tablespace: where its files came from.
    public struct Target: Codable, Sendable, Hashable {
        public enum Kind: String, Codable, Sendable { case dataDirectory, tablespace }
        public var name: String             // "pg_data" or "pg_tblspc/<oid>"
        public var kind: Kind
        public var path: String             // absolute location on the database host
        public var tablespaceOID: UInt32?
        public var tablespaceName: String?
    }

    /// A directory to recreate (even when empty: PostgreSQL needs its skeleton).
    public struct PathEntry: Codable, Sendable, Hashable {
        public var name: String
        public var mode: UInt32
        public var user: String?
        public var group: String?
    }

    /// A symbolic link (tablespace links under `pg_data/pg_tblspc`).
    public struct LinkEntry: Codable, Sendable, Hashable {
        public var name: String
        public var destination: String
        public var user: String?
        public var group: String?
    }

    /// One file: its attributes in the cluster, its checksums, and where its bytes are stored.
    public struct FileEntry: Codable, Sendable, Hashable {
        public var name: String
        /// Bytes copied (the size when the copy read it, which may differ from the listing: files
        /// that grow or shrink during an online backup are repaired by WAL replay).
        public var size: UInt64
        public var mtime: Int64
        public var mode: UInt32
        public var user: String?
        public var group: String?
        /// SHA-256 of the file's bytes as copied.
        public var checksum: SHA256Digest
        /// Size and SHA-256 of the stored (compressed) object.
        public var repoSize: UInt64
        public var repoChecksum: SHA256Digest
        public var compression: CompressionType
        /// The backup whose directory holds the stored object; a full backup references itself.
        public var reference: BackupLabel
        /// Block-incremental storage (repo-layout.md §3.4): the block size in bytes. When set, the
        /// file is stored as a block object `<name>.pgkb` plus a block map `<name>.pgkm` in the
        /// `reference` backup, and `repoSize`/`repoChecksum` describe that block object.
        public var blockSize: Int? = nil
        /// Size and SHA-256 of the block map `<name>.pgkm` in the `reference` backup.
        public var blockMapSize: UInt64? = nil
        public var blockMapChecksum: SHA256Digest? = nil

        /// Block numbers whose PostgreSQL page checksum failed while the file was copied (read
        /// twice, page LSN before the backup start); absent when every page verified or the file
        /// is not a relation file of a cluster with data checksums.
        public var pageChecksumErrors: [UInt32]? = nil

        /// Bundled storage (repo-layout.md §3.6): the file's stored frame lies in the bundle object
        /// `<reference>/bundle/<bundle>` at byte `bundleOffset`, `repoSize` bytes long;
        /// `repoSize`/`repoChecksum` describe the frame. Absent for a file stored on its own.
        public var bundle: Int? = nil
        public var bundleOffset: UInt64? = nil

        /// Whether the file's stored frame lies in a bundle.
        public var isBundled: Bool { bundle != nil }

        /// Whether the file is stored in block-incremental form.
        public var isBlockIncremental: Bool { blockSize != nil }
    }

    /// Totals for backup.info.
    public var totalSize: UInt64 { files.reduce(0) { $0 + $1.size } }
    public var totalRepoSize: UInt64 { Self.repoSize(of: files, label: backup.label) }

    /// The bytes the objects of `files` stored by backup `label` take (block maps included).
    static func repoSize<Files: Sequence<FileEntry>>(of files: Files, label: BackupLabel) -> UInt64 {
        files.reduce(0) { $0 + ($1.reference == label ? $1.repoSize + ($1.blockMapSize ?? 0) : 0) }
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
