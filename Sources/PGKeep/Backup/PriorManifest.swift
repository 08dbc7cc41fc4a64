#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PGKeepCore
import PGKeepRepository

/// The manifest of the backup a diff or incr backup builds on, kept compact.
///
/// A diff/incr backup holds its prior's file entries from the moment it loads the manifest until
/// the manifest is written: the plan compares every listed file with its prior entry, and the copy
/// needs the prior checksums and block maps. As `Manifest.FileEntry` values (200 bytes plus a name
/// allocation each, in an array grown by doubling) the entries of a 100 000-file cluster took over
/// 30 MB, most of an incremental backup's memory. Here they are decoded as they stream in, never
/// collected as `FileEntry` values.
package struct PriorManifest {
    /// Everything but the files (`manifest.files` is empty).
    var manifest: Manifest
    package var files: PriorFileTable

    var backup: Manifest.Backup { manifest.backup }
    var database: Manifest.Database { manifest.database }

    /// From a whole manifest (tests, and callers that have one already).
    init(_ manifest: Manifest) throws {
        var files = PriorFileTable()
        for entry in manifest.files { try files.append(entry) }
        files.indexNames()
        var header = manifest
        header.files = []
        self.init(manifest: header, files: files)
    }

    private init(manifest: Manifest, files: PriorFileTable) {
        self.manifest = manifest
        self.files = files
    }
}

extension PriorManifest: StreamReadable, FormatVersioned {
    package var format: Int { manifest.format }
    package var readerFeatures: [String]? { manifest.readerFeatures }
    package var writerFeatures: [String]? { manifest.writerFeatures }
    package static var highestReadableFormat: Int { Manifest.highestReadableFormat }

    package static func readJSONBody(from reader: inout JSONStreamReader) throws -> PriorManifest {
        var files = PriorFileTable()
        let manifest = try Manifest.readJSON(from: &reader) { try files.append($0) }
        files.indexNames()
        return PriorManifest(manifest: manifest, files: files)
    }
}

/// The prior manifest's file entries, in manifest order: one fixed record per entry (checksums as
/// raw digests, reference and owners as numbers into short tables) plus its name in one shared
/// byte arena; the rare parts (block-incremental details, damaged pages) live in side tables.
/// About 140 bytes per file. Subscripting rebuilds the whole `FileEntry`.
package struct PriorFileTable {
    private struct Record {
        var size: UInt64
        var mtime: Int64
        var repoSize: UInt64
        var bundleOffset: UInt64
        var checksum: SHA256Digest
        var repoChecksum: SHA256Digest
        var nameStart: UInt32
        var mode: UInt32
        /// -1: not bundled.
        var bundle: Int32
        var nameLength: UInt16
        /// Index into `labels`.
        var reference: UInt16
        /// Numbers into `owners`; 0 is "no name".
        var user: UInt16
        var group: UInt16
        var compression: CompressionType
    }

    private var records: [Record] = []
    private var names: [UInt8] = []
    private var blocks: [Int: BlockDetails] = [:]
    private var pageErrors: [Int: [UInt32]] = [:]
    private var labels = InternTable<BackupLabel>(of: "backups referenced by the prior manifest")
    /// Owner names; number 0 is "no name".
    private var owners = InternTable<String?>(of: "owner names in the prior manifest", preset: [nil])
    /// Entry indexes ordered by name bytes (equal names by index), for `index(of:)`.
    private var byName: [Int32] = []

    package var count: Int { records.count }

    /// Adds the next entry; `indexNames` must follow the last one.
    mutating func append(_ entry: Manifest.FileEntry) throws {
        let name = entry.name.utf8
        guard let start = UInt32(exactly: names.count), let length = UInt16(exactly: name.count), records.count < Int32.max else {
            throw PGKeepError(.internal, "the prior manifest is too large to hold in memory (at '\(entry.name)')")
        }
        var bundle: Int32 = -1
        if let number = entry.bundle {
            guard let narrow = Int32(exactly: number), narrow >= 0 else {
                throw PGKeepError(.internal, "bundle number \(number) of '\(entry.name)' is out of range")
            }
            bundle = narrow
        }
        let index = records.count
        names.append(contentsOf: name)
        records.append(Record(size: entry.size, mtime: entry.mtime, repoSize: entry.repoSize, bundleOffset: entry.bundleOffset ?? 0,
                              checksum: entry.checksum, repoChecksum: entry.repoChecksum, nameStart: start, mode: entry.mode,
                              bundle: bundle, nameLength: length, reference: try labels.number(of: entry.reference),
                              user: try owners.number(of: entry.user), group: try owners.number(of: entry.group), compression: entry.compression))
        if let block = BlockDetails(of: entry) { blocks[index] = block }
        if let errors = entry.pageChecksumErrors { pageErrors[index] = errors }
    }

    /// Orders the entries by name for `index(of:)`.
    mutating func indexNames() {
        var order = (0..<Int32(records.count)).map { $0 }
        names.withUnsafeBufferPointer { arena in
            records.withUnsafeBufferPointer { records in
                order.sort { a, b in
                    let order = Self.compare(arena, records[Int(a)], records[Int(b)])
                    return order != 0 ? order < 0 : a < b
                }
            }
        }
        byName = order
    }

    /// The entry named `name`; with duplicate names (no manifest pgkeep writes has them), the last.
    func index(of name: String) -> Int? {
        var name = name
        return name.withUTF8 { key in
            names.withUnsafeBufferPointer { arena in
                records.withUnsafeBufferPointer { records in
                    // The first entry whose name is not less than `key`.
                    var low = 0, high = byName.count
                    while low < high {
                        let middle = (low + high) / 2
                        if Self.compare(arena, records[Int(byName[middle])], key) < 0 { low = middle + 1 } else { high = middle }
                    }
                    var found: Int?
                    while low < byName.count, Self.compare(arena, records[Int(byName[low])], key) == 0 {
                        found = Int(byName[low])
                        low += 1
                    }
                    return found
                }
            }
        }
    }

    /// The attributes the plan compares, without building the entry.
    func size(_ index: Int) -> UInt64 { records[index].size }
    func mtime(_ index: Int) -> Int64 { records[index].mtime }
    func mode(_ index: Int) -> UInt32 { records[index].mode }

    subscript(index: Int) -> Manifest.FileEntry {
        let record = records[index]
        let name = names.withUnsafeBufferPointer {
            String(decoding: UnsafeBufferPointer(rebasing: $0[Int(record.nameStart)..<Int(record.nameStart) + Int(record.nameLength)]),
                   as: UTF8.self)
        }
        var entry = Manifest.FileEntry(name: name, size: record.size, mtime: record.mtime, mode: record.mode,
                                       user: owners[record.user], group: owners[record.group], checksum: record.checksum,
                                       repoSize: record.repoSize, repoChecksum: record.repoChecksum, compression: record.compression,
                                       reference: labels[record.reference])
        if record.bundle >= 0 {
            entry.bundle = Int(record.bundle)
            entry.bundleOffset = record.bundleOffset
        }
        blocks[index]?.apply(to: &entry)
        entry.pageChecksumErrors = pageErrors[index]
        return entry
    }

    /// Byte order of the names of `a` and `b`: negative, zero or positive.
    private static func compare(_ arena: UnsafeBufferPointer<UInt8>, _ a: Record, _ b: Record) -> Int {
        compare(arena, a, UnsafeBufferPointer(rebasing: arena[Int(b.nameStart)..<Int(b.nameStart) + Int(b.nameLength)]))
    }

    /// Byte order of the name of `a` and `key`.
    private static func compare(_ arena: UnsafeBufferPointer<UInt8>, _ a: Record, _ key: UnsafeBufferPointer<UInt8>) -> Int {
        let name = UnsafeBufferPointer(rebasing: arena[Int(a.nameStart)..<Int(a.nameStart) + Int(a.nameLength)])
        let common = min(name.count, key.count)
        if common > 0, let x = name.baseAddress, let y = key.baseAddress {
            let order = memcmp(x, y, common)
            if order != 0 { return Int(order) }
        }
        return name.count - key.count
    }
}
