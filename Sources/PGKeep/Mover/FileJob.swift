import SystemPackage
import PGKeepCore
import PGKeepRepository

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

    /// The cluster files the job moves: a bundle's members, otherwise one. Progress counts files,
    /// not jobs, so that its "n/m files" agrees with the summary lines.
    public var fileCount: Int {
        switch operation {
        case .storeBundle(let bundle): return bundle.files.count
        case .restoreBundle(let bundle): return bundle.files.count
        case .verifyBundle(let bundle): return bundle.frames.count
        case .store, .restore, .storeBlocks, .restoreBlocks, .verify, .zeroFill: return 1
        }
    }

    public enum Operation: Sendable, Hashable {
        /// Backup: read at most `limit` bytes of a cluster file, hash, compress, hash again, store.
        case store(StoreFile)
        /// Restore: read a stored object, verify, decompress, verify, write a cluster file.
        case restore(RestoreFile)
        /// Backup of a large file in blocks: store only the blocks that differ from the prior map.
        case storeBlocks(StoreBlocks)
        /// Restore of a block-incremental file: reassemble it from the objects its map names.
        case restoreBlocks(RestoreBlocks)
        /// Verify: read a stored object, hash it, decompress, hash again; write nothing.
        case verify(VerifyFile)
        /// Bundles of small files (BundleJob.swift): store, restore, verify one bundle object.
        case storeBundle(StoreBundle)
        case restoreBundle(RestoreBundle)
        case verifyBundle(VerifyBundle)
        /// Selective restore: a file of an excluded database, written as a sparse file of its
        /// recorded size holding only zeros; nothing is read from the repository.
        case zeroFill(ZeroFill)
    }

    public struct ZeroFill: Sendable, Hashable {
        public var destination: String
        public var size: UInt64
        public var mode: UInt32
        public var mtime: Int64
        public var ownerUID: UInt32?
        public var ownerGID: UInt32?

        public init(destination: String, size: UInt64, mode: UInt32, mtime: Int64) {
            self.destination = destination
            self.size = size
            self.mode = mode
            self.mtime = mtime
        }
    }

    /// Verify PostgreSQL page checksums while storing a relation file (docs/postgres-internals.md §7.2).
    public struct PageCheck: Sendable, Hashable {
        /// Pages whose LSN is at or after this (the backup start) changed during the backup: not judged.
        public var startLSN: UInt64
        /// Relation segment number (`.1`, `.2`, ...) and blocks per segment, for the block numbers.
        public var segment: UInt32
        public var relsegSize: UInt32

        public init(startLSN: UInt64, segment: UInt32, relsegSize: UInt32) {
            self.startLSN = startLSN
            self.segment = segment
            self.relsegSize = relsegSize
        }
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
        /// The cluster file, on the database host.
        public var source: FilePath
        public var destination: StoragePath
        public var limit: UInt64
        public var compression: CompressionType
        public var compressLevel: Int
        /// Checksum mode (diff/incr with `--delta`, or a file whose time cannot be trusted): when
        /// the file still has this size and SHA-256, it is not stored and the job reports
        /// `.unchanged`.
        public var unchangedSize: UInt64?
        public var unchangedChecksum: SHA256Digest?
        public var pageCheck: PageCheck?

        public init(source: FilePath, destination: StoragePath, limit: UInt64, compression: CompressionType, compressLevel: Int) {
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
        /// Delta restore: when the destination already has this size and SHA-256, keep it (only
        /// its mode, owner and time are set) and report `.kept`.
        public var keepMatching = false

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

    /// The prior backup's block map of a file, to compare against.
    public struct PriorBlocks: Sendable, Hashable {
        public var map: StoragePath
        public var mapSize: UInt64
        public var mapChecksum: SHA256Digest
        /// The prior file's size and SHA-256: equal ones mean the file did not change.
        public var size: UInt64
        public var checksum: SHA256Digest

        public init(map: StoragePath, mapSize: UInt64, mapChecksum: SHA256Digest, size: UInt64, checksum: SHA256Digest) {
            self.map = map
            self.mapSize = mapSize
            self.mapChecksum = mapChecksum
            self.size = size
            self.checksum = checksum
        }
    }

    public struct StoreBlocks: Sendable, Hashable {
        public var source: FilePath
        public var limit: UInt64
        public var label: BackupLabel
        public var blockObject: StoragePath
        public var blockMap: StoragePath
        public var blockSize: Int
        public var compression: CompressionType
        public var compressLevel: Int
        public var prior: PriorBlocks?
        /// Without a prior map: when the file still has this size and SHA-256 (a file that grew
        /// into block-incremental size unchanged cannot; this is for prior whole-file entries in
        /// checksum mode), report `.unchanged`.
        public var unchangedSize: UInt64?
        public var unchangedChecksum: SHA256Digest?
        public var pageCheck: PageCheck?

        public init(source: FilePath, limit: UInt64, label: BackupLabel, blockObject: StoragePath, blockMap: StoragePath,
                    blockSize: Int, compression: CompressionType, compressLevel: Int, prior: PriorBlocks?) {
            self.source = source
            self.limit = limit
            self.label = label
            self.blockObject = blockObject
            self.blockMap = blockMap
            self.blockSize = blockSize
            self.compression = compression
            self.compressLevel = compressLevel
            self.prior = prior
        }
    }

    public struct RestoreBlocks: Sendable, Hashable {
        /// The stanza, to find the block objects of the labels the map names.
        public var stanza: String
        /// The manifest name of the file (block objects are `<label>/<name>.pgkb`).
        public var name: String
        public var map: StoragePath
        public var mapSize: UInt64
        public var mapChecksum: SHA256Digest
        public var destination: String
        public var size: UInt64
        public var checksum: SHA256Digest
        public var mode: UInt32
        public var mtime: Int64
        public var ownerUID: UInt32?
        public var ownerGID: UInt32?
        public var keepMatching = false

        public init(stanza: String, name: String, map: StoragePath, mapSize: UInt64, mapChecksum: SHA256Digest, destination: String,
                    size: UInt64, checksum: SHA256Digest, mode: UInt32, mtime: Int64) {
            self.stanza = stanza
            self.name = name
            self.map = map
            self.mapSize = mapSize
            self.mapChecksum = mapChecksum
            self.destination = destination
            self.size = size
            self.checksum = checksum
            self.mode = mode
            self.mtime = mtime
        }
    }
}

/// What storing a file in blocks produced.
public struct BlockStoreResult: Sendable, Hashable {
    /// Original bytes read and their SHA-256.
    public var size: UInt64
    public var checksum: SHA256Digest
    /// This backup's block object (changed blocks only) and its SHA-256.
    public var repoSize: UInt64
    public var repoChecksum: SHA256Digest
    public var mapSize: UInt64
    public var mapChecksum: SHA256Digest
    /// Original bytes of the blocks stored (the changed ones).
    public var changedBytes: UInt64
    public var changedBlocks: Int
    public var blockSize: Int
    /// The other backups whose block objects the new map uses.
    public var otherLabels: [BackupLabel]
    /// Blocks whose page checksum failed twice (only with a `PageCheck`).
    public var pageErrors: [UInt32] = []
}

/// What executing a job found.
public enum FileJobResult: Sendable, Hashable {
    /// Stored: bytes read and their SHA-256, stored bytes and their SHA-256.
    /// `pageErrors`: blocks whose page checksum failed twice (only with a `PageCheck`).
    case stored(size: UInt64, checksum: SHA256Digest, repoSize: UInt64, repoChecksum: SHA256Digest, pageErrors: [UInt32] = [])
    /// The source vanished before it could be opened (PostgreSQL dropped it); it leaves the manifest.
    case vanished
    /// Restored and verified against both checksums.
    case restored(size: UInt64)
    /// Stored in blocks (see `BlockStoreResult`).
    case storedBlocks(BlockStoreResult)
    /// Checksum mode found the file identical to the prior backup's: nothing was stored.
    case unchanged
    /// Delta restore found the destination already identical: it was kept.
    case kept(size: UInt64)
    /// Selective restore wrote a sparse, zero-filled file of this size.
    case zeroFilled(size: UInt64)
    /// Re-read: what was found. A damaged object is a finding, not an error, so one bad file does
    /// not stop a verify from checking the rest.
    case verified(VerifyFinding)
    /// Bundle jobs: per-file outcomes (BundleJob.swift).
    case storedBundle(BundleStoreResult)
    case restoredBundle([BundledRestoreOutcome])
    case verifiedBundle(BundleVerifyFinding)
}

extension FileJob.VerifyFile {
    /// Judges what re-reading measured against what the job expects, in the order a reader
    /// would want to hear it: stored size, stored SHA-256, original size, original SHA-256.
    /// `sizeNote` is appended to a stored-size mismatch (a bundle frame: the bundle is shorter).
    func finding(repoSize: UInt64, repoChecksum: SHA256Digest, size: UInt64, checksum: SHA256Digest,
                 sizeNote: String = "") -> VerifyFinding {
        if let expected = self.repoSize, expected != repoSize {
            return VerifyFinding(status: .sizeMismatch, repoSize: repoSize, size: size,
                                 detail: "stored size \(repoSize) bytes, expected \(expected)\(sizeNote)")
        }
        if let expected = self.repoChecksum, expected != repoChecksum {
            return VerifyFinding(status: .checksumMismatch, repoSize: repoSize, size: size,
                                 detail: "stored SHA-256 \(repoChecksum.hex), expected \(expected.hex)")
        }
        if let expected = self.size, expected != size {
            return VerifyFinding(status: .sizeMismatch, repoSize: repoSize, size: size,
                                 detail: "original size \(size) bytes, expected \(expected)")
        }
        if let expected = self.checksum, expected != checksum {
            return VerifyFinding(status: .checksumMismatch, repoSize: repoSize, size: size,
                                 detail: "original SHA-256 \(checksum.hex), expected \(expected.hex)")
        }
        return VerifyFinding(status: .ok, repoSize: repoSize, size: size)
    }
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
