import SystemPackage
import PGKeepCore

/// Jobs and results for bundles (repo-layout.md §3.6): many small files stored as independent
/// frames, one after another, in one repository object. A bundle job is a plain `Sendable` list
/// of files like every other job, so whoever executes jobs (the local `Mover`, later the remote
/// agent) runs it the same way: one worker writes or reads the whole bundle, front to back.
extension FileJob {
    /// Backup: store each file as its own frame, appended to one bundle object written atomically.
    public struct StoreBundle: Sendable, Hashable {
        /// The bundle id recorded in the manifest (`bundle` of each entry).
        public var bundle: Int
        public var destination: StoragePath
        /// In the order they are appended.
        public var files: [BundledFile]

        public init(bundle: Int, destination: StoragePath, files: [BundledFile]) {
            self.bundle = bundle
            self.destination = destination
            self.files = files
        }
    }

    /// One cluster file of a `StoreBundle`. `id` is the caller's (the listing index).
    public struct BundledFile: Sendable, Hashable {
        public var id: Int
        public var source: FilePath
        public var limit: UInt64
        public var compression: CompressionType
        public var compressLevel: Int
        /// Checksum mode, as `StoreFile.unchangedSize`/`unchangedChecksum`.
        public var unchangedSize: UInt64?
        public var unchangedChecksum: SHA256Digest?
        public var pageCheck: PageCheck?

        public init(id: Int, source: FilePath, limit: UInt64, compression: CompressionType, compressLevel: Int) {
            self.id = id
            self.source = source
            self.limit = limit
            self.compression = compression
            self.compressLevel = compressLevel
        }
    }

    /// Restore: read one bundle object once, front to back, writing the files the restore needs.
    public struct RestoreBundle: Sendable, Hashable {
        public var source: StoragePath
        /// In strictly increasing `offset` order.
        public var files: [BundledRestore]

        public init(source: StoragePath, files: [BundledRestore]) {
            self.source = source
            self.files = files
        }
    }

    /// One file of a `RestoreBundle`: its frame's offset, and the usual restore expectations
    /// (`file.source` is the bundle, for messages).
    public struct BundledRestore: Sendable, Hashable {
        public var id: Int
        public var offset: UInt64
        public var file: RestoreFile

        public init(id: Int, offset: UInt64, file: RestoreFile) {
            self.id = id
            self.offset = offset
            self.file = file
        }
    }

    /// Verify: read one bundle object once; check the whole object and each listed frame.
    public struct VerifyBundle: Sendable, Hashable {
        public var source: StoragePath
        /// Size and SHA-256 of the whole object, when a manifest records them (its own backup's).
        public var repoSize: UInt64?
        public var repoChecksum: SHA256Digest?
        /// In increasing `offset` order.
        public var frames: [Frame]

        public init(source: StoragePath, repoSize: UInt64?, repoChecksum: SHA256Digest?, frames: [Frame]) {
            self.source = source
            self.repoSize = repoSize
            self.repoChecksum = repoChecksum
            self.frames = frames
        }

        public struct Frame: Sendable, Hashable {
            public var offset: UInt64
            /// What the frame must hash to (`file.source` is the bundle).
            public var file: VerifyFile

            public init(offset: UInt64, file: VerifyFile) {
                self.offset = offset
                self.file = file
            }
        }
    }
}

/// What storing one file of a bundle produced.
public enum BundledFileOutcome: Sendable, Hashable {
    /// Stored at `offset` in the bundle: original bytes and their SHA-256, the frame's bytes and theirs.
    case stored(offset: UInt64, size: UInt64, checksum: SHA256Digest, repoSize: UInt64, repoChecksum: SHA256Digest,
                pageErrors: [UInt32])
    /// Checksum mode found it identical to the prior backup's: not stored.
    case unchanged
    /// Gone before it could be opened.
    case vanished
}

/// What a bundle store job produced.
public struct BundleStoreResult: Sendable, Hashable {
    public var bundle: Int
    /// The object's size and SHA-256; nil when no file was stored (nothing was written).
    public var repoSize: UInt64?
    public var repoChecksum: SHA256Digest?
    /// One per file of the job, in job order.
    public var files: [Item] = []

    public struct Item: Sendable, Hashable {
        public var id: Int
        public var outcome: BundledFileOutcome
    }

    public init(bundle: Int) { self.bundle = bundle }
}

/// What restoring one file of a bundle did: written (`kept` false) or kept by a delta restore.
public struct BundledRestoreOutcome: Sendable, Hashable {
    public var id: Int
    public var size: UInt64
    public var kept: Bool
}

/// What re-reading a bundle found: the whole object, and each frame (in job order).
public struct BundleVerifyFinding: Sendable, Hashable {
    public var whole: VerifyFinding
    public var frames: [VerifyFinding]
}
