import CXXHash

/// How a block map identifies the content of a block (repo-layout.md §3.4).
///
/// A block hash only answers "did this block change since the prior backup?"; the integrity of a
/// restored file rests on the whole-file SHA-256 in the manifest, which restore always checks.
/// That is why block maps written since format-1 addition "PGKBMAP2" use XXH3-128: hashing every
/// block with SHA-256 as well as the whole file doubled the hashing cost of every large file in
/// every backup (SHA-256 runs at ~1.6 GB/s per core here, XXH3 at more than ten times that). A
/// 128-bit hash makes an accidental match of a changed block (which restore would then report
/// as a whole-file checksum mismatch, never as wrong data) as unlikely as a SHA-256 collision is
/// for practical purposes. Maps written with SHA-256 ("PGKBMAP1") stay readable, and a chain
/// keeps the kind its first map used, so an incremental backup can always compare.
public enum BlockHashKind: Sendable, Equatable {
    case sha256
    case xxh3_128

    /// Bytes of one digest of this kind in a map.
    public var byteCount: Int {
        switch self {
        case .sha256: return 32
        case .xxh3_128: return 16
        }
    }
}

/// A block's digest: up to 32 bytes, of one `BlockHashKind`. Kept as words (the bytes in
/// big-endian order), like `SHA256Digest`, so a map of 8,000 blocks is one flat array.
public struct BlockDigest: Hashable, Sendable, CustomStringConvertible {
    public let kind: BlockHashKind
    private var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0

    /// A digest of `kind` from its `kind.byteCount` bytes, nil for another length.
    public init?(kind: BlockHashKind, bytes: UnsafeRawBufferPointer) {
        guard bytes.count == kind.byteCount else { return nil }
        self.kind = kind
        var words: [UInt64] = [0, 0, 0, 0]
        for index in 0..<bytes.count { words[index / 8] = words[index / 8] << 8 | UInt64(bytes[index]) }
        (w0, w1, w2, w3) = (words[0], words[1], words[2], words[3])
    }

    public init(_ digest: SHA256Digest) {
        self = digest.withUnsafeBytes { BlockDigest(kind: .sha256, bytes: $0)! }
    }

    /// XXH3-128 in its canonical byte order: high half first, each half big-endian.
    init(xxh3 hash: XXH128_hash_t) {
        kind = .xxh3_128
        w0 = hash.high64
        w1 = hash.low64
    }

    /// Calls `body` with the digest's `kind.byteCount` bytes, in order, without allocating.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var bigEndian = (w0.bigEndian, w1.bigEndian, w2.bigEndian, w3.bigEndian)
        let count = kind.byteCount
        return try Swift.withUnsafeBytes(of: &bigEndian) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    public var description: String { bytes.map { Hex.upper($0, width: 2).lowercased() }.joined() }
}

/// Hashes one block at a time, of one kind; one per worker, reused for every block.
package final class BlockHasher {
    package let kind: BlockHashKind
    private let sha256: SHA256Hasher?

    package init(kind: BlockHashKind) throws {
        self.kind = kind
        sha256 = kind == .sha256 ? try SHA256Hasher() : nil
    }

    package func digest(_ bytes: UnsafeRawBufferPointer) throws -> BlockDigest {
        switch kind {
        case .xxh3_128:
            return BlockDigest(xxh3: XXH3_128bits(bytes.baseAddress, bytes.count))
        case .sha256:
            let hasher = sha256!
            try hasher.reset()
            try hasher.update(bytes)
            return BlockDigest(try hasher.finalize())
        }
    }
}
