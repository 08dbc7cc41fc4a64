import PGKeepCore
import PGKeepRepository
import PGKeepMover

/// The seam between the manifest format and `verify`: which stored objects one manifest file entry
/// needs, and what each must hash to.
///
/// Today every entry needs exactly one object: `<reference>/<name>[.<ext>]`, whose stored bytes
/// must match `repoSize`/`repoChecksum` and whose decompressed bytes must match `size`/`checksum`.
/// A format that stores a file in several pieces (block-level incremental: changed block ranges
/// plus a block map, spread over several backups) returns one requirement per piece here; a piece
/// that is not the whole original leaves `size`/`checksum` nil and carries its own expectations.
/// Everything downstream (reference checks, de-duplication, workers, the report) works on this list.
///
/// A bundled entry (§3.6) needs one frame of a bundle object: `bundleOffset` is set, and the
/// expectations describe the frame. Verify groups the frames by bundle and reads each bundle once,
/// also checking the whole object against its manifest's `bundles` record (`Manifest.bundleObjects`).
public struct StoredObjectRequirement: Sendable, Hashable {
    /// The backup whose directory holds the object (`reference` in the manifest).
    public var holder: BackupLabel
    /// The manifest entry name the object belongs to, for reference checks and messages.
    public var entryName: String
    /// Where the object is stored.
    public var object: StoragePath
    public var compression: CompressionType
    /// Size and SHA-256 of the stored bytes.
    public var repoSize: UInt64?
    public var repoChecksum: SHA256Digest?
    /// Size and SHA-256 after decompression, when the object holds the whole original.
    public var size: UInt64?
    public var checksum: SHA256Digest?
    /// Set when the object is a bundle: where the entry's frame starts in it.
    public var bundleOffset: UInt64? = nil

    public init(holder: BackupLabel, entryName: String, object: StoragePath, compression: CompressionType,
                repoSize: UInt64?, repoChecksum: SHA256Digest?, size: UInt64?, checksum: SHA256Digest?) {
        self.holder = holder
        self.entryName = entryName
        self.object = object
        self.compression = compression
        self.repoSize = repoSize
        self.repoChecksum = repoChecksum
        self.size = size
        self.checksum = checksum
    }

    /// The worker job that re-reads the object.
    public var job: FileJob.VerifyFile {
        FileJob.VerifyFile(source: object, compression: compression, repoSize: repoSize, repoChecksum: repoChecksum,
                           size: size, checksum: checksum)
    }
}

extension Manifest.FileEntry {
    /// The stored objects this entry needs (see `StoredObjectRequirement`).
    public func storedObjects(layout: RepositoryLayout) throws -> [StoredObjectRequirement] {
        if isBlockIncremental {
            // Block-incremental (repo-layout §3.4): the block object is a run of independent frames,
            // checked as stored bytes; the block map is checked whole. Together they cover every
            // stored byte of the entry; blocks held by older backups are covered by those backups'
            // own entries.
            return [
                StoredObjectRequirement(holder: reference, entryName: name, object: try layout.blockObject(label: reference, name: name),
                                        compression: .none, repoSize: repoSize, repoChecksum: repoChecksum,
                                        size: repoSize, checksum: repoChecksum),
                StoredObjectRequirement(holder: reference, entryName: name, object: try layout.blockMap(label: reference, name: name),
                                        compression: .none, repoSize: blockMapSize, repoChecksum: blockMapChecksum,
                                        size: blockMapSize, checksum: blockMapChecksum),
            ]
        }
        if let bundle {
            guard let bundleOffset, bundleOffset <= UInt64.max - repoSize else {
                throw PGKeepError(.repositoryInvalid, "entry '\(name)' is in bundle \(bundle) without a valid offset")
            }
            var requirement = StoredObjectRequirement(holder: reference, entryName: name, object: try layout.bundle(label: reference, id: bundle),
                                                      compression: compression, repoSize: repoSize, repoChecksum: repoChecksum,
                                                      size: size, checksum: checksum)
            requirement.bundleOffset = bundleOffset
            return [requirement]
        }
        return [StoredObjectRequirement(holder: reference, entryName: name,
                                 object: try layout.backupFile(label: reference, name: name, compression: compression),
                                 compression: compression, repoSize: repoSize, repoChecksum: repoChecksum,
                                 size: size, checksum: checksum)]
    }

    /// Whether `other` (the holder's own entry) describes the same stored object this entry
    /// points at: a reference must resolve to an entry with the same stored bytes.
    public func isSameStoredObject(as other: Manifest.FileEntry) -> Bool {
        other.name == name && other.compression == compression && other.repoSize == repoSize
            && other.repoChecksum == repoChecksum && other.blockMapChecksum == blockMapChecksum
            && other.bundle == bundle && other.bundleOffset == bundleOffset
    }
}

extension Manifest {
    /// The bundle objects this backup wrote, each to be proven whole: every stored byte of a bundle
    /// is covered by its recorded size and SHA-256 (its frames' own checksums need not cover gaps).
    public func bundleObjects(layout: RepositoryLayout) throws -> [(object: StoragePath, entry: BundleEntry)] {
        try (bundles ?? []).map { (try layout.bundle(label: backup.label, id: $0.id), $0) }
    }
}
