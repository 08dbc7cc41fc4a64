import PGKeepCore

/// The block map of a block-incremental file (repo-layout.md §3.4): for every fixed-size block of
/// the file, where its bytes are stored (which backup's block object, at which offset, how many
/// stored bytes) and a hash of its original bytes (`BlockHashKind`: XXH3-128 in maps written by
/// this version, SHA-256 in maps of chains begun before it).
///
/// A backup that finds a large file changed compares the file block by block against the prior
/// backup's map and stores only the blocks whose hash differs; the new map points the others
/// at the objects that already hold them. A restore reads the newest map only and reassembles the
/// file from the objects it names, in block order: within one object the blocks a map uses always
/// appear in increasing offset order, so every object is read once, front to back, without
/// seeking.
///
/// The binary form (all integers big-endian):
///
///     magic       8 bytes   "PGKBMAP2" (block hashes XXH3-128) or "PGKBMAP1" (SHA-256)
///     blockSize   u32       bytes per block (the last block may be shorter)
///     fileSize    u64       bytes of the file the map describes
///     refCount    u16       entries in the reference table
///     references  refCount x { labelLength u8, label (UTF-8), compression u8 (0 none, 1 lz4, 2 zst) }
///     blockCount  u32       ceil(fileSize / blockSize)
///     blocks      blockCount x { reference u16, offset u64, length u32, hash (16 or 32 bytes) }
///
/// The map file itself is covered by the size and SHA-256 recorded in the manifest entry.
public struct BlockMap: Equatable, Sendable {
    public struct Reference: Equatable, Hashable, Sendable {
        public var label: BackupLabel
        /// How each block in that backup's block object is compressed (one frame per block).
        public var compression: CompressionType

        package init(label: BackupLabel, compression: CompressionType) {
            self.label = label
            self.compression = compression
        }
    }

    public struct Block: Equatable, Sendable {
        /// Index into `references`.
        public var reference: UInt16
        /// Offset and length of the stored (compressed) block in the reference's block object.
        public var offset: UInt64
        public var length: UInt32
        /// Hash of the block's original bytes, of the map's `hashKind`.
        public var checksum: BlockDigest

        package init(reference: UInt16, offset: UInt64, length: UInt32, checksum: BlockDigest) {
            self.reference = reference
            self.offset = offset
            self.length = length
            self.checksum = checksum
        }
    }

    /// The hash every block's `checksum` has; it decides the magic.
    public var hashKind: BlockHashKind
    public var blockSize: Int
    public var fileSize: UInt64
    public var references: [Reference]
    public var blocks: [Block]

    public init(hashKind: BlockHashKind = .xxh3_128, blockSize: Int, fileSize: UInt64 = 0, references: [Reference] = [],
                blocks: [Block] = []) {
        self.hashKind = hashKind
        self.blockSize = blockSize
        self.fileSize = fileSize
        self.references = references
        self.blocks = blocks
    }

    static let magicSHA256 = Array("PGKBMAP1".utf8)
    static let magicXXH3 = Array("PGKBMAP2".utf8)

    static func blockRecordSize(_ kind: BlockHashKind) -> Int { 2 + 8 + 4 + kind.byteCount }

    /// The original size of block `index` of a file of `fileSize` bytes.
    public static func blockLength(index: Int, blockSize: Int, fileSize: UInt64) -> Int {
        let start = UInt64(index) * UInt64(blockSize)
        return Int(min(UInt64(blockSize), fileSize - min(fileSize, start)))
    }

    /// The number of blocks a file of `fileSize` bytes has.
    public static func blockCount(blockSize: Int, fileSize: UInt64) -> Int {
        // Rounded up without `fileSize + blockSize - 1`, which overflows for a size read from a
        // damaged map.
        let size = UInt64(blockSize)
        return Int(fileSize / size + (fileSize % size == 0 ? 0 : 1))
    }

    /// The index of `reference` in the table, adding it when missing.
    public mutating func referenceIndex(_ reference: Reference) throws -> UInt16 {
        if let index = references.firstIndex(of: reference) { return UInt16(index) }
        guard references.count < Int(UInt16.max) else {
            throw PGKeepError(.internal, "block map has too many references")
        }
        references.append(reference)
        return UInt16(references.count - 1)
    }

    /// The labels the map's blocks use.
    public var usedLabels: [BackupLabel] {
        Set(blocks.map { references[Int($0.reference)].label }).sorted()
    }

    /// The binary form. Every block's checksum must be of `hashKind` (writers hash with one
    /// `BlockHasher`; a mixed map is a programming error and traps).
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32 + references.count * 40 + blocks.count * Self.blockRecordSize(hashKind))
        out += hashKind == .sha256 ? Self.magicSHA256 : Self.magicXXH3
        append(&out, UInt64(blockSize), bytes: 4)
        append(&out, fileSize, bytes: 8)
        append(&out, UInt64(references.count), bytes: 2)
        for reference in references {
            let label = Array(reference.label.text.utf8)
            out.append(UInt8(label.count))
            out += label
            out.append(Self.code(reference.compression))
        }
        append(&out, UInt64(blocks.count), bytes: 4)
        for block in blocks {
            append(&out, UInt64(block.reference), bytes: 2)
            append(&out, block.offset, bytes: 8)
            append(&out, UInt64(block.length), bytes: 4)
            precondition(block.checksum.kind == hashKind, "block map mixes hash kinds")
            block.checksum.withUnsafeBytes { out.append(contentsOf: $0) }
        }
        return out
    }

    /// Original bytes of the blocks backup `label` stored itself (the rest it reuses from the
    /// backups it references): what its backup copied of this file.
    package func originalBytes(storedBy label: BackupLabel) -> UInt64 {
        var total: UInt64 = 0
        for (index, block) in blocks.enumerated() where references[Int(block.reference)].label == label {
            total += UInt64(Self.blockLength(index: index, blockSize: blockSize, fileSize: fileSize))
        }
        return total
    }

    /// Maps larger than this are refused as damaged: 1 GiB in 8 KiB blocks needs ~6 MiB.
    static let readLimit = 64 << 20

    /// Loads the map at `path`, checking its size and SHA-256 against the manifest before parsing it.
    package static func load(_ path: StoragePath, size: UInt64, checksum: SHA256Digest, from storage: Storage) throws -> BlockMap {
        guard let bytes = try storage.readSmallFile(path, limit: readLimit) else {
            throw PGKeepError(.fileMissing, "block map '\(storage.describe(path))' is missing from the repository",
                              hint: "the backup is damaged; take a full backup, or restore another backup with --set")
        }
        let actual = try SHA256Digest.of(bytes)
        guard UInt64(bytes.count) == size, actual == checksum else {
            throw PGKeepError(.checksumMismatch,
                              "block map '\(storage.describe(path))' does not match the manifest: \(bytes.count) bytes with SHA-256 \(actual.hex), expected \(size) bytes with \(checksum.hex)",
                              hint: "the backup is damaged; take a full backup, or restore another backup with --set")
        }
        return try decode(bytes, name: storage.describe(path))
    }

    /// Parses and validates a map; `name` is used in error messages.
    public static func decode(_ bytes: [UInt8], name: String) throws -> BlockMap {
        var reader = Reader(bytes: bytes, name: name)
        let magic = try reader.take(8)
        let hashKind: BlockHashKind
        if magic == magicXXH3[...] {
            hashKind = .xxh3_128
        } else if magic == magicSHA256[...] {
            hashKind = .sha256
        } else {
            throw reader.invalid("it starts with neither PGKBMAP2 nor PGKBMAP1")
        }
        let recordSize = blockRecordSize(hashKind)
        let blockSize = Int(try reader.integer(4))
        guard blockSize >= 512, blockSize <= 64 << 20 else { throw reader.invalid("block size \(blockSize) is out of range") }
        let fileSize = try reader.integer(8)
        let referenceCount = Int(try reader.integer(2))
        var references: [Reference] = []
        for _ in 0..<referenceCount {
            let length = Int(try reader.integer(1))
            let text = String(decoding: try reader.take(length), as: UTF8.self)
            guard let label = BackupLabel(text) else { throw reader.invalid("reference '\(text)' is not a backup label") }
            guard let compression = Self.compression(code: UInt8(try reader.integer(1))) else {
                throw reader.invalid("reference \(text) has an unknown compression code")
            }
            references.append(Reference(label: label, compression: compression))
        }
        let blockCount = Int(try reader.integer(4))
        guard blockCount == Self.blockCount(blockSize: blockSize, fileSize: fileSize) else {
            throw reader.invalid("it has \(blockCount) blocks for \(fileSize) bytes in blocks of \(blockSize)")
        }
        guard reader.remaining == blockCount * recordSize else {
            throw reader.invalid("its length does not match its \(blockCount) blocks")
        }
        var blocks: [Block] = []
        blocks.reserveCapacity(blockCount)
        // Each object must be read front to back: offsets per reference strictly ascending.
        var nextOffset = [UInt64](repeating: 0, count: references.count)
        for index in 0..<blockCount {
            let reference = Int(try reader.integer(2))
            let offset = try reader.integer(8)
            let length = UInt32(try reader.integer(4))
            let digestBytes = try reader.take(hashKind.byteCount)
            guard let checksum = digestBytes.withUnsafeBytes({ BlockDigest(kind: hashKind, bytes: $0) }) else {
                throw reader.invalid("block \(index) has no checksum")
            }
            guard reference < references.count else { throw reader.invalid("block \(index) names reference \(reference) of \(references.count)") }
            guard offset >= nextOffset[reference] else {
                throw reader.invalid("block \(index) lies before the previous block of the same object")
            }
            let (end, overflow) = offset.addingReportingOverflow(UInt64(length))
            guard !overflow else { throw reader.invalid("block \(index) ends past the largest possible offset") }
            nextOffset[reference] = end
            blocks.append(Block(reference: UInt16(reference), offset: offset, length: length, checksum: checksum))
        }
        return BlockMap(hashKind: hashKind, blockSize: blockSize, fileSize: fileSize, references: references, blocks: blocks)
    }

    static func code(_ compression: CompressionType) -> UInt8 {
        switch compression {
        case .none: return 0
        case .lz4: return 1
        case .zst: return 2
        }
    }

    static func compression(code: UInt8) -> CompressionType? {
        switch code {
        case 0: return CompressionType.none
        case 1: return .lz4
        case 2: return .zst
        default: return nil
        }
    }

    private func append(_ out: inout [UInt8], _ value: UInt64, bytes: Int) {
        for shift in stride(from: (bytes - 1) * 8, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    private struct Reader {
        let bytes: [UInt8]
        let name: String
        var offset = 0

        var remaining: Int { bytes.count - offset }

        mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
            guard count <= remaining else { throw invalid("it is truncated") }
            defer { offset += count }
            return bytes[offset..<offset + count]
        }

        mutating func integer(_ count: Int) throws -> UInt64 {
            try take(count).reduce(0) { $0 << 8 | UInt64($1) }
        }

        func invalid(_ why: String) -> PGKeepError {
            PGKeepError(.formatInvalid, "block map '\(name)' is invalid: \(why)",
                        hint: "the backup is damaged; restore another backup with --set")
        }
    }
}
