import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

/// The backup side: size and SHA-256 of the original, compression, size and SHA-256 of what is
/// stored, all in one read pass.
private final class StoreChain {
    let originalCount = ByteCountFilter()
    let originalHash: SHA256Filter
    let storedCount = ByteCountFilter()
    let storedHash: SHA256Filter
    let chain: FilterChain

    init(_ type: CompressionType, bufferSize: Int = 8_192) throws {
        originalHash = try SHA256Filter()
        storedHash = try SHA256Filter()
        let compress = try #require(try type.makeCompressFilter(level: type.defaultLevel, bufferSize: bufferSize))
        chain = FilterChain([originalCount, originalHash, compress, storedCount, storedHash])
    }

    /// Stores `input` and returns the stored bytes plus every observer's result.
    func store(_ input: [UInt8], readSize: Int = 5_000) throws -> Result {
        let sink = MemorySink()
        let read = try chain.run(from: MemorySource(input, maxRead: 3_333), into: sink, buffer: IOBuffer(size: readSize))
        return Result(stored: sink.bytes, read: read,
                      originalCount: originalCount.count, originalHash: try #require(originalHash.digest),
                      storedCount: storedCount.count, storedHash: try #require(storedHash.digest))
    }

    struct Result: Equatable {
        var stored: [UInt8]
        var read: UInt64
        var originalCount: UInt64
        var originalHash: SHA256Digest
        var storedCount: UInt64
        var storedHash: SHA256Digest
    }
}

/// The restore side: the same observers around a decompressor, in reverse order.
private final class RestoreChain {
    let storedCount = ByteCountFilter()
    let storedHash: SHA256Filter
    let originalCount = ByteCountFilter()
    let originalHash: SHA256Filter
    let chain: FilterChain

    init(_ type: CompressionType, bufferSize: Int = 8_192) throws {
        storedHash = try SHA256Filter()
        originalHash = try SHA256Filter()
        let decompress = try #require(try type.makeDecompressFilter(bufferSize: bufferSize))
        chain = FilterChain([storedCount, storedHash, decompress, originalCount, originalHash])
    }

    func restore(_ stored: [UInt8]) throws -> [UInt8] {
        let sink = MemorySink()
        try chain.run(from: MemorySource(stored), into: sink, buffer: IOBuffer(size: 4_096))
        return sink.bytes
    }
}

private let codecs: [CompressionType] = [.lz4, .zst]

@Test("one pass computes size and SHA-256 of both the original and the stored bytes", arguments: codecs)
func storeChainObservesBothSides(type: CompressionType) throws {
    let input = Samples.compressible(250_000) + Samples.random(60_000, seed: 30)
    let store = try StoreChain(type)
    let result = try store.store(input)

    #expect(result.read == UInt64(input.count))
    #expect(result.originalCount == UInt64(input.count))
    #expect(result.originalHash == (try SHA256Digest.of(input)))
    #expect(result.storedCount == UInt64(result.stored.count))
    #expect(result.storedHash == (try SHA256Digest.of(result.stored)))
    #expect(result.stored.count < input.count)
}

@Test("writeLast of a whole stream equals write then finish: same observers, and the frame decodes to the input",
      arguments: codecs, [64, 4_096, 1 << 20])
func writeLastIsWriteThenFinish(type: CompressionType, bufferSize: Int) throws {
    let block = Samples.compressible(90_000) + Samples.random(41_072, seed: 31)  // 128 KiB, as a block-map block
    let store = try StoreChain(type, bufferSize: bufferSize)
    // Reused: the second round starts from a chain that already finished one stream.
    for round in 0..<2 {
        for input in [block, [], [0x2A], block] {
            try store.chain.reset()
            let sink = MemorySink()
            try input.withUnsafeBytes { try store.chain.writeLast($0, into: sink) }
            #expect(store.originalCount.count == UInt64(input.count), "round \(round)")
            #expect(store.originalHash.digest == (try SHA256Digest.of(input)))
            #expect(store.storedCount.count == UInt64(sink.bytes.count))
            #expect(store.storedHash.digest == (try SHA256Digest.of(sink.bytes)))
            #expect(try RestoreChain(type).restore(sink.bytes) == input, "\(type) buffer \(bufferSize), \(input.count) bytes")
        }
    }
}

@Test("the reverse chain restores the original and verifies both checksums", arguments: codecs)
func restoreChainVerifiesBothSides(type: CompressionType) throws {
    let input = Samples.compressible(250_000) + Samples.random(60_000, seed: 31)
    let stored = try StoreChain(type).store(input)
    let restore = try RestoreChain(type)

    #expect(try restore.restore(stored.stored) == input)
    #expect(restore.storedCount.count == stored.storedCount)
    #expect(restore.storedHash.digest == stored.storedHash)
    #expect(restore.originalCount.count == stored.originalCount)
    #expect(restore.originalHash.digest == stored.originalHash)
}

@Test("one chain reused for several streams gives the same results as fresh chains", arguments: codecs)
func chainReuse(type: CompressionType) throws {
    let inputs = [Samples.compressible(100_000), [], Samples.random(40_000, seed: 32), Array("abc".utf8)]
    let fresh = try inputs.map { try StoreChain(type).store($0) }

    let store = try StoreChain(type)
    let restore = try RestoreChain(type)
    for round in 0..<3 {
        for (index, input) in inputs.enumerated() {
            let result = try store.store(input)
            #expect(result == fresh[index], "\(type) round \(round) input \(index)")
            #expect(try restore.restore(result.stored) == input)
            #expect(restore.originalHash.digest == fresh[index].originalHash)
            #expect(restore.storedHash.digest == fresh[index].storedHash)
        }
    }
}

@Test("a chain that failed on a damaged stream works again for the next stream", arguments: codecs)
func chainRecoversAfterError(type: CompressionType) throws {
    let input = Samples.compressible(50_000)
    let stored = try StoreChain(type).store(input).stored
    // Damage the decoder sees by itself (frames carry no content checksum: the chain's SHA-256
    // catches damage inside the data, checked by the caller).
    var damaged = stored
    damaged[0] ^= 0x01

    let restore = try RestoreChain(type)
    #expect(throws: PGKeepError.self) { _ = try restore.restore(damaged) }
    #expect(throws: PGKeepError.self) { _ = try restore.restore(Array(stored.dropLast())) }
    #expect(try restore.restore(stored) == input)
    #expect(restore.originalHash.digest == (try SHA256Digest.of(input)))
}

@Test("the store chain works with tiny and uneven read buffers", arguments: codecs, [1, 17, 65_536])
func storeChainReadSizes(type: CompressionType, readSize: Int) throws {
    let input = Samples.compressible(30_000) + Samples.random(3_000, seed: 33)
    let reference = try StoreChain(type).store(input)
    let result = try StoreChain(type).store(input, readSize: readSize)
    #expect(result.originalHash == reference.originalHash)
    #expect(try RestoreChain(type).restore(result.stored) == input)
}

@Test("an uncompressed chain passes bytes through and both sides agree")
func uncompressedChain() throws {
    let input = Samples.random(20_000, seed: 34)
    let count = ByteCountFilter()
    let hash = try SHA256Filter()
    let chain = FilterChain([count, hash])
    let sink = MemorySink()
    try chain.run(from: MemorySource(input), into: sink, buffer: IOBuffer(size: 1_000))
    #expect(sink.bytes == input)
    #expect(count.count == 20_000)
    #expect(hash.digest == (try SHA256Digest.of(input)))

    let empty = FilterChain([])
    let emptySink = MemorySink()
    try empty.run(from: MemorySource(input), into: emptySink, buffer: IOBuffer(size: 999))
    #expect(emptySink.bytes == input)
}

@Test("run stops after the byte limit and reports how much it read")
func chainLimit() throws {
    let input = Samples.random(10_000, seed: 35)
    let hash = try SHA256Filter()
    let chain = FilterChain([hash])
    let sink = MemorySink()
    let read = try chain.run(from: MemorySource(input), into: sink, buffer: IOBuffer(size: 3_000), limit: 7_001)
    #expect(read == 7_001)
    #expect(sink.bytes == Array(input.prefix(7_001)))
    #expect(hash.digest == (try SHA256Digest.of(input.prefix(7_001))))
}

@Test("hashing through a discard sink gives the digest without keeping the bytes")
func discardSink() throws {
    let input = Samples.compressible(10_000)
    let hash = try SHA256Filter()
    try FilterChain([hash]).run(from: MemorySource(input), into: DiscardSink(), buffer: IOBuffer(size: 4_096))
    #expect(hash.digest == (try SHA256Digest.of(input)))
}
