/// How a stored object's bytes encode the original bytes: the one value a reader needs to get the
/// original back, recorded with every object (a manifest's `compressType` per file, the extension
/// of an archived WAL object's name; repo-layout.md §3 and §3.4). A cipher joins it with the
/// encryption issue; every place that builds a chain for an object goes through `ObjectCodec`, so
/// that stage is added once.
public struct ObjectEncoding: Hashable, Sendable, CustomStringConvertible {
    public var compression: CompressionType

    public init(compression: CompressionType) {
        self.compression = compression
    }

    public var description: String { compression.rawValue }
}

/// Which observers a chain runs: the size and SHA-256 of the original bytes (before encoding) and
/// of the stored bytes (after it). Each costs a pass over the bytes in cache (hashing is the
/// expensive one), so a chain asks only for what its caller records or checks.
public struct CodecObservers: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let originalSize = CodecObservers(rawValue: 1)
    public static let originalSHA256 = CodecObservers(rawValue: 2)
    public static let storedSize = CodecObservers(rawValue: 4)
    public static let storedSHA256 = CodecObservers(rawValue: 8)

    public static let original: CodecObservers = [.originalSize, .originalSHA256]
    public static let stored: CodecObservers = [.storedSize, .storedSHA256]
    public static let all: CodecObservers = [.original, .stored]
}

/// The one place that turns an `ObjectEncoding` into filter chains: original → encode → stored for
/// writing, stored → decode → original for reading, with the observers a caller asks for.
///
/// One instance per worker (or per command on a single thread): the compressor and decompressor
/// contexts, the OpenSSL SHA-256 contexts and the chains built from them are created on first use
/// and reused for every later object, since creating a zstd context or an EVP context per file
/// costs more than compressing a small file. The observers are shared by every chain of the
/// instance; after a run, `original` and `stored` hold that run's sizes and digests. Not
/// thread-safe, by design: a worker runs one chain at a time.
public final class ObjectCodec {
    /// The size and SHA-256 of one side of the encoding, as observed by the last run.
    public final class Observed {
        let count = ByteCountFilter()
        let hash: SHA256Filter

        init() throws(PGKeepError) { hash = try SHA256Filter() }

        /// Bytes seen by the last run that observed the size.
        public var size: UInt64 { count.count }

        /// The SHA-256 of the last run that observed it; an internal error before it finished.
        public func digest() throws -> SHA256Digest { try hash.finishedDigest() }
    }

    /// Output buffer size of the codecs' own buffers (compressed or decompressed bytes).
    public let bufferSize: Int
    public let original: Observed
    public let stored: Observed

    private struct Key: Hashable {
        enum Direction: Hashable { case write(level: Int), read(FrameChecksum, slice: Int), measure }
        var direction: Direction
        var encoding: ObjectEncoding
        var observers: CodecObservers
        var inspector: ObjectIdentifier?
    }
    private var chains: [Key: FilterChain] = [:]

    public init(bufferSize: Int) throws(PGKeepError) {
        self.bufferSize = bufferSize
        original = try Observed()
        stored = try Observed()
    }

    /// original → [original observers] → [`inspector`] → encode at `level` → [stored observers].
    /// `inspector` sees the original bytes after they are observed (the page checksum check of a
    /// backup); it must be the same instance on every call for the chain to be reused.
    public func writeChain(_ encoding: ObjectEncoding, level: Int, observing: CodecObservers = .all,
                           inspector: Filter? = nil) throws(PGKeepError) -> FilterChain {
        let key = Key(direction: .write(level: level), encoding: encoding, observers: observing,
                      inspector: inspector.map { ObjectIdentifier($0) })
        if let chain = chains[key] { return chain }
        var filters = observers(original, observing.contains(.originalSize), observing.contains(.originalSHA256))
        if let inspector { filters.append(inspector) }
        if let compressor = try encoding.compression.makeCompressFilter(level: level, bufferSize: bufferSize) {
            filters.append(compressor)
        }
        filters += observers(stored, observing.contains(.storedSize), observing.contains(.storedSHA256))
        return remember(FilterChain(filters), key)
    }

    /// stored → [stored observers] → decode → [original observers].
    ///
    /// `frameChecksum: .skip` lets a codec leave its own frame checksum unchecked, for callers
    /// that compare every decoded byte or its SHA-256 with a recorded value anyway (restore, the
    /// duplicate check of archive-push); verify keeps it. `slice` is the decoded output's buffer
    /// size when it must differ from `bufferSize` (a comparison that wants slices in cache).
    public func readChain(_ encoding: ObjectEncoding, observing: CodecObservers = .all,
                          frameChecksum: FrameChecksum = .verify, slice: Int? = nil) throws(PGKeepError) -> FilterChain {
        let output = slice ?? bufferSize
        let key = Key(direction: .read(frameChecksum, slice: output), encoding: encoding, observers: observing, inspector: nil)
        if let chain = chains[key] { return chain }
        var filters = observers(stored, observing.contains(.storedSize), observing.contains(.storedSHA256))
        if let decompressor = try encoding.compression.makeDecompressFilter(bufferSize: output, frameChecksum: frameChecksum) {
            filters.append(decompressor)
        }
        filters += observers(original, observing.contains(.originalSize), observing.contains(.originalSHA256))
        return remember(FilterChain(filters), key)
    }

    /// Observers only, on original bytes that are neither encoded nor decoded (hashing a file
    /// before deciding where to store it).
    public func measureChain(observing: CodecObservers = .original) -> FilterChain {
        let key = Key(direction: .measure, encoding: ObjectEncoding(compression: .none), observers: observing, inspector: nil)
        if let chain = chains[key] { return chain }
        return remember(FilterChain(observers(original, observing.contains(.originalSize), observing.contains(.originalSHA256))), key)
    }

    private func observers(_ side: Observed, _ size: Bool, _ hash: Bool) -> [Filter] {
        (size ? [side.count] : []) + (hash ? [side.hash] : [])
    }

    private func remember(_ chain: FilterChain, _ key: Key) -> FilterChain {
        chains[key] = chain
        return chain
    }
}
