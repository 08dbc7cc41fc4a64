/// One file to move, as a plain `Sendable` value: the backup and restore planners produce lists of
/// these, and whoever executes them (the local `Mover` today, the remote agent later) needs nothing
/// else. Ordering and results are by `id`.
public struct FileJob: Sendable, Hashable {
    public var id: Int
    public var operation: Operation
    /// Bytes expected to move, for largest-first scheduling and progress.
    public var size: UInt64

    public init(id: Int, operation: Operation, size: UInt64) {
        self.id = id
        self.operation = operation
        self.size = size
    }

    public enum Operation: Sendable, Hashable {
        /// Backup: read at most `limit` bytes of a cluster file, hash, compress, hash again, store.
        case store(StoreFile)
        /// Restore: read a stored object, verify, decompress, verify, write a cluster file.
        case restore(RestoreFile)
        /// Verify: read a stored object, hash it, decompress, hash again; write nothing.
        case verify(VerifyFile)
    }

    /// One stored object to re-read, with what it must hash to. Expectations left nil are only
    /// measured (archived WAL has no recorded stored checksum: its name carries the original's).
    public struct VerifyFile: Sendable, Hashable {
        public var source: StoragePath
        public var compression: CompressionType
        public var repoSize: UInt64?
        public var repoChecksum: SHA256Digest?
        public var size: UInt64?
        public var checksum: SHA256Digest?

        public init(source: StoragePath, compression: CompressionType, repoSize: UInt64?, repoChecksum: SHA256Digest?,
                    size: UInt64?, checksum: SHA256Digest?) {
            self.source = source
            self.compression = compression
            self.repoSize = repoSize
            self.repoChecksum = repoChecksum
            self.size = size
            self.checksum = checksum
        }
    }

    public struct StoreFile: Sendable, Hashable {
        public var source: String
        public var destination: StoragePath
        public var limit: UInt64
        public var compression: CompressionType
        public var compressLevel: Int

        public init(source: String, destination: StoragePath, limit: UInt64, compression: CompressionType, compressLevel: Int) {
            self.source = source
            self.destination = destination
            self.limit = limit
            self.compression = compression
            self.compressLevel = compressLevel
        }
    }

    public struct RestoreFile: Sendable, Hashable {
        public var source: StoragePath
        public var destination: String
        public var compression: CompressionType
        public var size: UInt64
        public var checksum: SHA256Digest
        public var repoSize: UInt64
        public var repoChecksum: SHA256Digest
        public var mode: UInt32
        public var mtime: Int64
        /// Owner to set, when the restore runs as root; nil keeps the running user.
        public var owner: (uid: UInt32, gid: UInt32)? {
            get { ownerUID.flatMap { uid in ownerGID.map { (uid, $0) } } }
            set { ownerUID = newValue?.uid; ownerGID = newValue?.gid }
        }
        var ownerUID: UInt32?
        var ownerGID: UInt32?

        public init(source: StoragePath, destination: String, compression: CompressionType, size: UInt64,
                    checksum: SHA256Digest, repoSize: UInt64, repoChecksum: SHA256Digest, mode: UInt32, mtime: Int64) {
            self.source = source
            self.destination = destination
            self.compression = compression
            self.size = size
            self.checksum = checksum
            self.repoSize = repoSize
            self.repoChecksum = repoChecksum
            self.mode = mode
            self.mtime = mtime
        }
    }
}

/// What executing a job found.
public enum FileJobResult: Sendable, Hashable {
    /// Stored: bytes read and their SHA-256, stored bytes and their SHA-256.
    case stored(size: UInt64, checksum: SHA256Digest, repoSize: UInt64, repoChecksum: SHA256Digest)
    /// The source vanished before it could be opened (PostgreSQL dropped it); it leaves the manifest.
    case vanished
    /// Restored and verified against both checksums.
    case restored(size: UInt64)
    /// Re-read: what was found. A damaged object is a finding, not an error, so one bad file does
    /// not stop a verify from checking the rest.
    case verified(VerifyFinding)
}

/// What re-reading one stored object found.
public struct VerifyFinding: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable, Codable {
        case ok
        /// The object does not exist.
        case missing
        /// The stored or the original size differs from the expectation.
        case sizeMismatch = "size-mismatch"
        /// The stored or the original SHA-256 differs from the expectation.
        case checksumMismatch = "checksum-mismatch"
        /// The object could not be read or decompressed.
        case unreadable
    }
    public var status: Status
    /// Stored bytes read and original bytes after decompression (0 when missing or unreadable).
    public var repoSize: UInt64
    public var size: UInt64
    /// What differed, for the report; empty when ok.
    public var detail: String

    public init(status: Status, repoSize: UInt64 = 0, size: UInt64 = 0, detail: String = "") {
        self.status = status
        self.repoSize = repoSize
        self.size = size
        self.detail = detail
    }
}
