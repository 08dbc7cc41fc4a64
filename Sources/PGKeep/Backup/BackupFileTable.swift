import PGKeepCore
import PGKeepRepository

/// The manifest's file entries while a backup runs, one compact record per listed file.
///
/// A backup holds an entry for every file of the cluster from the moment it is stored (or found
/// unchanged, or resumed) until the manifest is written. A `Manifest.FileEntry` is 200 bytes plus
/// its name; here a file costs one fixed 96-byte record: the name, mtime, mode and owners are those of the
/// listing (every entry the backup writes takes them from it, `BackupRun.reused` included), the
/// reference is an index into a short table of labels, and the rare parts (block-incremental
/// details, damaged pages) live in side tables keyed by the file's index. `entries` rebuilds the
/// `FileEntry` values one at a time, in listing order, for the (partial) manifest writer.
struct BackupFileTable {
    private struct Record {
        var size: UInt64 = 0
        var repoSize: UInt64 = 0
        var bundleOffset: UInt64 = 0
        var checksum: SHA256Digest = .zero
        var repoChecksum: SHA256Digest = .zero
        /// 0: no entry; otherwise 1 + index into `labels`.
        var reference: UInt16 = 0
        var compression: CompressionType = .none
        /// -1: not bundled.
        var bundle: Int32 = -1
    }

    private var records: [Record]
    private var blocks: [Int: BlockDetails] = [:]
    private var pageErrors: [Int: [UInt32]] = [:]
    private var labels: [BackupLabel] = []
    private var labelIndex: [BackupLabel: UInt16] = [:]
    /// Files with an entry.
    private(set) var count = 0

    init(fileCount: Int) {
        records = Array(repeating: Record(), count: fileCount)
    }

    /// Whether file `index` has its entry.
    func contains(_ index: Int) -> Bool { records[index].reference != 0 }

    /// Records the entry of file `index`. Its name, mtime, mode and owners must be the listing's.
    mutating func set(_ index: Int, _ entry: Manifest.FileEntry) throws {
        var record = Record()
        record.size = entry.size
        record.repoSize = entry.repoSize
        record.checksum = entry.checksum
        record.repoChecksum = entry.repoChecksum
        record.compression = entry.compression
        record.reference = try labelNumber(entry.reference)
        if let bundle = entry.bundle {
            guard let narrow = Int32(exactly: bundle), narrow >= 0 else {
                throw PGKeepError(.internal, "bundle number \(bundle) of '\(entry.name)' is out of range")
            }
            record.bundle = narrow
            record.bundleOffset = entry.bundleOffset ?? 0
        }
        blocks[index] = BlockDetails(of: entry)
        pageErrors[index] = entry.pageChecksumErrors
        if records[index].reference == 0 { count += 1 }
        records[index] = record
    }

    /// The entry of file `index` (listed as `file`), or nil when it has none.
    func entry(_ index: Int, file: ClusterWalker.ListedFile) -> Manifest.FileEntry? {
        let record = records[index]
        guard record.reference != 0 else { return nil }
        var entry = Manifest.FileEntry(name: file.name, size: record.size, mtime: file.mtime, mode: file.mode, user: file.user,
                                       group: file.group, checksum: record.checksum, repoSize: record.repoSize,
                                       repoChecksum: record.repoChecksum, compression: record.compression,
                                       reference: labels[Int(record.reference) - 1])
        if record.bundle >= 0 {
            entry.bundle = Int(record.bundle)
            entry.bundleOffset = record.bundleOffset
        }
        blocks[index]?.apply(to: &entry)
        entry.pageChecksumErrors = pageErrors[index]
        return entry
    }

    /// Every entry in listing order; `files` is the listing the table was made for.
    func entries(_ files: ClusterWalker.FileList) -> some Sequence<Manifest.FileEntry> {
        files.indices.lazy.compactMap { self.entry($0, file: files[$0]) }
    }

    /// The labels entries reference.
    var references: Set<BackupLabel> {
        var used = Set<UInt16>()
        for record in records where record.reference != 0 { used.insert(record.reference) }
        return Set(used.map { labels[Int($0) - 1] })
    }

    /// How many entries reference `label`.
    func count(referencing label: BackupLabel) -> Int {
        guard let number = labelIndex[label] else { return 0 }
        return records.reduce(0) { $0 + ($1.reference == number ? 1 : 0) }
    }

    /// Whether an entry stored in block-incremental form satisfies `condition` (given its reference).
    func containsBlockIncremental(where condition: (BackupLabel) -> Bool) -> Bool {
        blocks.contains { index, block in block.blockSize != nil && condition(labels[Int(records[index].reference) - 1]) }
    }

    /// Files whose pages failed their checksum, with the blocks, in listing order.
    var damagedPages: [(index: Int, blocks: [UInt32])] {
        pageErrors.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// The reference number of `label`, adding it to the table.
    private mutating func labelNumber(_ label: BackupLabel) throws -> UInt16 {
        if let number = labelIndex[label] { return number }
        guard labels.count < Int(UInt16.max) - 1 else {
            throw PGKeepError(.internal, "a backup references more than \(UInt16.max - 1) other backups")
        }
        labels.append(label)
        let number = UInt16(labels.count)
        labelIndex[label] = number
        return number
    }
}

/// The block-incremental keys of a file entry (`blockSize`, `blockMapSize`, `blockMapChecksum`),
/// kept aside by the compact per-file tables: only files of 1 MiB or more have them.
struct BlockDetails {
    var blockSize: Int?
    var mapSize: UInt64?
    var mapChecksum: SHA256Digest?

    /// nil when the entry has none of the keys.
    init?(of entry: Manifest.FileEntry) {
        guard entry.blockSize != nil || entry.blockMapSize != nil || entry.blockMapChecksum != nil else { return nil }
        blockSize = entry.blockSize
        mapSize = entry.blockMapSize
        mapChecksum = entry.blockMapChecksum
    }

    func apply(to entry: inout Manifest.FileEntry) {
        entry.blockSize = blockSize
        entry.blockMapSize = mapSize
        entry.blockMapChecksum = mapChecksum
    }
}
