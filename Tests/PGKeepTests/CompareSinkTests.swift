import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

/// Runs `stream` through `filters` into a `CompareSink` over `reference`; nil when they are
/// identical, else the offset of the mismatch.
private func compare(_ stream: [UInt8], with reference: [UInt8], filters: [Filter] = [], writeSize: Int = 4_096,
                     referenceRead: Int = .max, buffer: Int = 1_000) throws -> UInt64? {
    let sink = CompareSink(reference: MemorySource(reference, maxRead: referenceRead), buffer: IOBuffer(size: buffer))
    do {
        try FilterChain(filters).run(from: MemorySource(stream, maxRead: writeSize), into: sink, buffer: IOBuffer(size: writeSize))
        try sink.finish()
        return nil
    } catch let mismatch as CompareSink.Mismatch {
        return mismatch.offset
    }
}

private let sample: [UInt8] = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 7) }

@Test("identical streams compare equal whatever the slice sizes on either side",
      arguments: [(1, 1), (7, 1_000), (4_096, 333), (100_000, 65_536)])
func compareIdentical(_ sizes: (write: Int, buffer: Int)) throws {
    #expect(try compare(sample, with: sample, writeSize: sizes.write, referenceRead: 3_333, buffer: sizes.buffer) == nil)
    #expect(try compare([], with: [], writeSize: sizes.write, buffer: sizes.buffer) == nil)
}

@Test("the first differing byte is reported, in the first slice, the middle and the last byte")
func compareDiffers() throws {
    for offset in [0, 4_095, 4_096, 50_001, sample.count - 1] {
        var other = sample
        other[offset] ^= 0x01
        // Compared a buffer at a time: the offset is that of the slice holding the difference.
        let found = try #require(try compare(other, with: sample), "offset \(offset)")
        #expect(found <= UInt64(offset) && UInt64(offset) - found < 1_000, "offset \(offset)")
        #expect(try compare(other, with: sample, writeSize: 1, buffer: 1) == UInt64(offset))
    }
}

@Test("a stream shorter or longer than the reference is a mismatch at the shorter length")
func compareLengths() throws {
    #expect(try compare(Array(sample.dropLast()), with: sample) == UInt64(sample.count - 1))
    #expect(try compare(sample, with: Array(sample.dropLast())) != nil)
    #expect(try compare([], with: sample) == 0)
    #expect(try compare(sample, with: []) == 0)
}

@Test("a decompressed stream compares equal to its original, also with the frame checksum left unchecked",
      arguments: [CompressionType.lz4, .zst], [FrameChecksum.verify, .skip])
func compareDecompressed(_ type: CompressionType, _ check: FrameChecksum) throws {
    let stored = MemorySink()
    let compressor = try #require(try type.makeCompressFilter(level: type.defaultLevel, bufferSize: 16_384))
    try FilterChain([compressor]).run(from: MemorySource(sample), into: stored, buffer: IOBuffer(size: 16_384))
    let decompress = { try #require(try type.makeDecompressFilter(bufferSize: 4_096, frameChecksum: check)) }
    #expect(try compare(stored.bytes, with: sample, filters: [try decompress()], writeSize: 777) == nil)

    var other = sample
    other[77_777] ^= 0x80
    #expect(try compare(stored.bytes, with: other, filters: [try decompress()], writeSize: 777) != nil)
}

@Test("with the lz4 frame checksum skipped, a damaged block is still an error or a mismatch, never a match")
func compareDamagedLZ4() throws {
    let stored = MemorySink()
    let compressor = try #require(try CompressionType.lz4.makeCompressFilter(level: 1, bufferSize: 16_384))
    try FilterChain([compressor]).run(from: MemorySource(sample), into: stored, buffer: IOBuffer(size: 16_384))
    // Up to the last 4 bytes, the content checksum itself: damage there leaves the content intact.
    for position in stride(from: 20, to: stored.bytes.count - 4, by: max(1, stored.bytes.count / 50)) {
        var damaged = stored.bytes
        damaged[position] ^= 0x10
        let filter = try #require(try CompressionType.lz4.makeDecompressFilter(bufferSize: 4_096, frameChecksum: .skip))
        let result: UInt64?
        do {
            result = try compare(damaged, with: sample, filters: [filter])
        } catch {
            continue  // a decoding error: never a match either
        }
        #expect(result != nil, "byte \(position) damaged")
    }
}
