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
}
