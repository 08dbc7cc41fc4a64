import Foundation
import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig
import TestSupport

private let codecs: [CompressionType] = [.lz4, .zst]

/// Small buffers so that modest inputs already span many buffer fills.
private let smallBuffer = 4_096

private func compress(_ type: CompressionType, _ input: [UInt8], feeding: Feeding = .whole,
                      level: Int? = nil, bufferSize: Int = smallBuffer) throws -> [UInt8] {
    let filter = try #require(try type.makeCompressFilter(level: level ?? type.defaultLevel, bufferSize: bufferSize))
    return try run(filter, input, feeding: feeding)
}

/// A frame with the codec's own content checksum, as pgkeep wrote them before 0.4.
private func compressWithContentChecksum(_ type: CompressionType, _ input: [UInt8]) throws -> [UInt8] {
    let filter: Filter = type == .lz4
        ? try LZ4CompressFilter(level: type.defaultLevel, bufferSize: smallBuffer, contentChecksum: true)
        : try ZstdCompressFilter(level: type.defaultLevel, bufferSize: smallBuffer, contentChecksum: true)
    return try run(filter, input)
}

private func decompress(_ type: CompressionType, _ input: [UInt8], feeding: Feeding = .whole,
                        bufferSize: Int = smallBuffer) throws -> [UInt8] {
    let filter = try #require(try type.makeDecompressFilter(bufferSize: bufferSize))
    return try run(filter, input, feeding: feeding)
}

/// Inputs named for what is special about them.
private let samples: [(name: String, bytes: [UInt8])] = [
    ("empty", []),
    ("one byte", [0x2A]),
    ("tiny text", Array("pgkeep".utf8)),
    ("random, larger than the buffer", Samples.random(200_000, seed: 11)),
    ("highly compressible", Samples.compressible(1_000_000)),
    ("all zeros", [UInt8](repeating: 0, count: 300_000)),
]

private let feedings: [Feeding] = [
    .whole, .drip, .random(seed: 1, maxSlice: 10), .random(seed: 2, maxSlice: 5_000), .random(seed: 3, maxSlice: 70_000),
]

private func expectCompressionError(_ error: any Error, containing text: String? = nil,
                                    sourceLocation: SourceLocation = #_sourceLocation) {
    guard let error = error as? PGKeepError else {
        Issue.record("expected a PGKeepError, got \(error)", sourceLocation: sourceLocation)
        return
    }
    #expect(error.code == .compression, sourceLocation: sourceLocation)
    #expect(error.hint != nil, sourceLocation: sourceLocation)
    if let text {
        #expect(error.message.contains(text), "message: \(error.message)", sourceLocation: sourceLocation)
    }
}

// MARK: Round trips

@Test("each codec round-trips empty, tiny, random and compressible input", arguments: codecs)
func roundTrip(type: CompressionType) throws {
    for sample in samples {
        let stored = try compress(type, sample.bytes)
        #expect(try decompress(type, stored) == sample.bytes, "\(type) \(sample.name)")
        if sample.name == "highly compressible" {
            #expect(stored.count < sample.bytes.count / 5, "\(type) should shrink repetitive text")
        }
    }
}

@Test("compressing empty input still writes a valid frame that decompresses to nothing", arguments: codecs)
func emptyInputMakesFrame(type: CompressionType) throws {
    let stored = try compress(type, [])
    #expect(!stored.isEmpty)
    #expect(try decompress(type, stored).isEmpty)
    // A frame for empty input starts with the format's magic number like any other.
    let magic: [UInt8] = type == .lz4 ? [0x04, 0x22, 0x4D, 0x18] : [0x28, 0xB5, 0x2F, 0xFD]
    #expect(Array(stored.prefix(4)) == magic)
    // Both formats keep the content-checksum flag in bit 2 of the byte after the magic number
    // (lz4 FLG, zstd Frame_Header_Descriptor). It is off: the SHA-256s of the stored and original
    // bytes cover every frame, and the codec's own checksum cost up to as much as lz4 itself.
    #expect(stored[4] & 0x04 == 0)
    #expect(try compressWithContentChecksum(type, [])[4] & 0x04 != 0)
}

@Test("frames written with a content checksum (pgkeep before 0.4) still decode", arguments: codecs)
func framesWithContentChecksumDecode(type: CompressionType) throws {
    for sample in samples {
        let stored = try compressWithContentChecksum(type, sample.bytes)
        #expect(stored[4] & 0x04 != 0)
        #expect(try decompress(type, stored) == sample.bytes, "\(type) \(sample.name)")
        #expect(try decompress(type, stored, feeding: .random(seed: 23, maxSlice: 777)) == sample.bytes)
    }
}

@Test("compression gives a decodable frame however the input is sliced", arguments: codecs, feedings)
func compressSliced(type: CompressionType, feeding: Feeding) throws {
    // Drip-feeding a megabyte one byte per call is slow in debug builds; smaller inputs show the same.
    let inputs = feeding.isDrip
        ? [Samples.random(20_000, seed: 5), Samples.compressible(60_000)]
        : samples.map(\.bytes)
    for input in inputs {
        let stored = try compress(type, input, feeding: feeding)
        #expect(try decompress(type, stored) == input, "\(type) \(feeding) \(input.count) bytes")
    }
}

@Test("decompression gives the original bytes however the stored stream is sliced", arguments: codecs, feedings)
func decompressSliced(type: CompressionType, feeding: Feeding) throws {
    for input in [Samples.random(30_000, seed: 6), Samples.compressible(200_000), []] {
        let stored = try compress(type, input)
        #expect(try decompress(type, stored, feeding: feeding) == input, "\(type) \(feeding) \(input.count) bytes")
    }
}

@Test("decompression works with output buffers from one byte upwards", arguments: codecs, [1, 7, 65_536, 1 << 20])
func decompressBufferSizes(type: CompressionType, bufferSize: Int) throws {
    let input = Samples.compressible(100_000) + Samples.random(10_000, seed: 8)
    let stored = try compress(type, input)
    #expect(try decompress(type, stored, bufferSize: bufferSize) == input)
    #expect(try decompress(type, stored, feeding: .random(seed: 9, maxSlice: 300), bufferSize: bufferSize) == input)
}

@Test("compression works with buffers from one byte upwards", arguments: codecs, [1, 100, 65_536])
func compressBufferSizes(type: CompressionType, bufferSize: Int) throws {
    let input = Samples.compressible(50_000) + Samples.random(50_000, seed: 10)
    for feeding in [Feeding.whole, .random(seed: 4, maxSlice: 1_000)] {
        let stored = try compress(type, input, feeding: feeding, bufferSize: bufferSize)
        #expect(try decompress(type, stored) == input, "\(type) buffer \(bufferSize) \(feeding)")
    }
}

@Test("the compressor pushes whole buffers downstream, not one write per input slice", arguments: codecs)
func compressorBatchesOutput(type: CompressionType) throws {
    let filter = try #require(try type.makeCompressFilter(level: type.defaultLevel, bufferSize: 65_536))
    let sink = MemorySink()
    let input = Samples.random(400_000, seed: 12)
    try input.withUnsafeBytes { all in
        for range in Feeding.random(seed: 13, maxSlice: 512).slices(count: all.count) {
            try filter.process(UnsafeRawBufferPointer(rebasing: all[range]), next: sink)
        }
    }
    try filter.finish(next: sink)
    #expect(sink.writes < 20, "\(sink.writes) writes for \(sink.bytes.count) bytes")
    #expect(try decompress(type, sink.bytes) == input)
}

@Test("every valid level round-trips", arguments: codecs)
func everyLevel(type: CompressionType) throws {
    let input = Samples.compressible(40_000) + Samples.random(2_000, seed: 14)
    for level in type.validLevels {
        let stored = try compress(type, input, level: level)
        #expect(try decompress(type, stored) == input, "\(type) level \(level)")
    }
}

@Test("a level outside the valid range is refused before any codec sees it")
func invalidLevels() throws {
    for (type, level) in [(CompressionType.lz4, 13), (.lz4, -1), (.zst, 0), (.zst, 20), (.zst, -3), (.none, 1)] {
        let error = #expect(throws: PGKeepError.self, "\(type) level \(level)") {
            _ = try type.makeCompressFilter(level: level, bufferSize: smallBuffer)
        }
        #expect(error?.code == .optionInvalid)
        #expect(error?.message.contains("\(level)") == true)
    }
}

// MARK: Damaged input

@Test("a truncated stream is reported as truncated at finish, wherever it was cut", arguments: codecs)
func truncatedStream(type: CompressionType) throws {
    for input in [Samples.random(50_000, seed: 15), Samples.compressible(50_000), []] {
        let stored = try compress(type, input)
        for keep in Set([0, 1, 3, 4, 5, stored.count / 2, stored.count - 4, stored.count - 1]) where keep < stored.count {
            let filter = try #require(try type.makeDecompressFilter(bufferSize: smallBuffer))
            let sink = MemorySink()
            // Every prefix of a valid stream is acceptable input so far: only finish can tell.
            try Array(stored.prefix(keep)).withUnsafeBytes { try filter.process($0, next: sink) }
            do {
                try filter.finish(next: sink)
                Issue.record("\(type): a stream cut to \(keep) of \(stored.count) bytes decoded without error")
            } catch {
                expectCompressionError(error, containing: "truncated")
            }
        }
    }
}

// Frames without a content checksum rely on the SHA-256s recorded for them (MoverTests,
// BundleTests and the archive tests flip stored bytes and expect checksum-mismatch); a frame with
// one is also checked by the decoder itself.
@Test("a flipped byte anywhere after the header of a frame with a content checksum is caught", arguments: codecs)
func flippedByte(type: CompressionType) throws {
    for input in [Samples.random(50_000, seed: 16), Samples.compressible(200_000)] {
        let stored = try compressWithContentChecksum(type, input)
        var rng = SeededGenerator(seed: 17)
        // The middle, plus positions spread over the stream past the header (some header bits, such
        // as zstd's window size, may legitimately change without changing the content).
        var positions = [stored.count / 2]
        for _ in 0..<40 { positions.append(Int.random(in: 20..<stored.count, using: &rng)) }
        for position in positions {
            var damaged = stored
            damaged[position] ^= 0x5A
            #expect(throws: PGKeepError.self, "\(type) flip at \(position) of \(stored.count)") {
                _ = try decompress(type, damaged)
            }
        }
    }
}

@Test("restore's decompressor (output verified by SHA-256) decodes every sample however it is fed, and still reports truncation",
      arguments: codecs)
func outputVerifiedDecoder(type: CompressionType) throws {
    for sample in samples {
        let stored = try compress(type, sample.bytes)
        for feeding in feedings {
            let filter = try #require(try type.makeDecompressFilter(bufferSize: smallBuffer, frameChecksum: .skip))
            #expect(try run(filter, stored, feeding: feeding) == sample.bytes, "\(type) \(sample.name) \(feeding)")
            // Reused after reset, as a worker does for the next file.
            try filter.reset()
            #expect(try run(filter, stored) == sample.bytes, "\(type) \(sample.name) after reset")
        }
        for keep in [stored.count - 1, stored.count - 4, stored.count / 2] where keep > 0 {
            let filter = try #require(try type.makeDecompressFilter(bufferSize: smallBuffer, frameChecksum: .skip))
            do {
                _ = try run(filter, Array(stored.prefix(keep)))
                Issue.record("\(type) \(sample.name): cut to \(keep) of \(stored.count) bytes decoded without error")
            } catch {
                expectCompressionError(error)
            }
        }
    }
}

@Test("lz4's content checksum (frames of pgkeep before 0.4) is checked unless the caller verifies the output itself")
func lz4ContentChecksumOnlySkippedWhenVerified() throws {
    let input = Samples.random(50_000, seed: 21)
    var stored = try compressWithContentChecksum(.lz4, input)
    // The frame ends with the 4-byte XXH32 of the content: damage only that.
    stored[stored.count - 1] ^= 0x01
    #expect(throws: PGKeepError.self) { _ = try decompress(.lz4, stored) }
    let verified = try #require(try CompressionType.lz4.makeDecompressFilter(bufferSize: smallBuffer, frameChecksum: .skip))
    // The content itself is intact; restore's SHA-256 of the output is what judges it.
    #expect(try run(verified, stored) == input)
}

@Test("bytes after the end of the frame are an error, in the same or a later call", arguments: codecs)
func trailingGarbage(type: CompressionType) throws {
    let input = Samples.compressible(10_000)
    let stored = try compress(type, input)
    for extra in [[UInt8](repeating: 0, count: 1), Array("garbage".utf8), try compress(type, input)] {
        for feeding in [Feeding.whole, .drip, .random(seed: 18, maxSlice: 64)] {
            do {
                _ = try decompress(type, stored + extra, feeding: feeding)
                Issue.record("\(type) \(feeding): \(extra.count) trailing bytes were accepted")
            } catch {
                expectCompressionError(error, containing: "after the end")
            }
        }
    }
    // The frame's end exactly at a call boundary, the extra bytes in the next call.
    let filter = try #require(try type.makeDecompressFilter(bufferSize: smallBuffer))
    let sink = MemorySink()
    try stored.withUnsafeBytes { try filter.process($0, next: sink) }
    #expect(throws: PGKeepError.self) {
        try [UInt8(1)].withUnsafeBytes { try filter.process($0, next: sink) }
    }
}

@Test("input that is not a frame at all is refused", arguments: codecs)
func notAFrame(type: CompressionType) throws {
    for input in [Array("this is plain text, not compressed".utf8), Samples.random(1_000, seed: 19)] {
        #expect(throws: PGKeepError.self) { _ = try decompress(type, input) }
    }
    // The other codec's frame.
    let other: CompressionType = type == .lz4 ? .zst : .lz4
    #expect(throws: PGKeepError.self) { _ = try decompress(type, try compress(other, Array("abc".utf8))) }
}

// MARK: Reuse

@Test("a compressor reused after reset writes the same bytes as a fresh one, even after an abandoned stream",
      arguments: codecs)
func compressorReuse(type: CompressionType) throws {
    let inputs = [Samples.compressible(120_000), [], Samples.random(30_000, seed: 20)]
    let fresh = try inputs.map { try compress(type, $0) }

    let filter = try #require(try type.makeCompressFilter(level: type.defaultLevel, bufferSize: smallBuffer))
    for _ in 0..<2 {
        for (index, input) in inputs.enumerated() {
            try filter.reset()
            #expect(try run(filter, input) == fresh[index], "\(type) input \(index)")
        }
        // Abandon a stream half way; reset must leave no trace of it.
        try filter.reset()
        try Samples.random(50_000, seed: 21).withUnsafeBytes { try filter.process($0, next: MemorySink()) }
    }
    try filter.reset()
    #expect(try run(filter, inputs[0]) == fresh[0])
}

@Test("a decompressor reused after reset works again, also after a corrupt or truncated stream", arguments: codecs)
func decompressorReuse(type: CompressionType) throws {
    let input = Samples.compressible(80_000)
    let stored = try compressWithContentChecksum(type, input)
    var corrupt = stored
    corrupt[corrupt.count / 2] ^= 0xFF

    let filter = try #require(try type.makeDecompressFilter(bufferSize: smallBuffer))
    #expect(try run(filter, stored) == input)
    try filter.reset()
    #expect(throws: PGKeepError.self) { _ = try run(filter, corrupt) }
    try filter.reset()
    #expect(try run(filter, stored, feeding: .random(seed: 22, maxSlice: 999)) == input)
    try filter.reset()
    #expect(throws: PGKeepError.self) { _ = try run(filter, Array(stored.prefix(stored.count / 3))) }
    try filter.reset()
    #expect(try run(filter, stored) == input)
}

@Test("using a codec after finish without reset is refused instead of starting a second frame", arguments: codecs)
func useAfterFinish(type: CompressionType) throws {
    let compressor = try #require(try type.makeCompressFilter(level: type.defaultLevel, bufferSize: smallBuffer))
    _ = try run(compressor, Array("abc".utf8))
    #expect(throws: PGKeepError.self) { try [UInt8(1)].withUnsafeBytes { try compressor.process($0, next: MemorySink()) } }
    #expect(throws: PGKeepError.self) { try compressor.finish(next: MemorySink()) }

    let decompressor = try #require(try type.makeDecompressFilter(bufferSize: smallBuffer))
    _ = try run(decompressor, try compress(type, Array("abc".utf8)))
    #expect(throws: PGKeepError.self) { try decompressor.finish(next: MemorySink()) }
}

// MARK: Format

@Test("compression types name their extension, default level and range, and none makes no filter")
func compressionTypeTable() throws {
    #expect(CompressionType.allCases.map(\.rawValue) == ["none", "lz4", "zst"])
    #expect(CompressionType.none.fileExtension == nil)
    #expect(CompressionType.lz4.fileExtension == "lz4")
    #expect(CompressionType.zst.fileExtension == "zst")
    for type in CompressionType.allCases {
        #expect(type.validLevels.contains(type.defaultLevel))
    }
    #expect(try CompressionType.none.makeCompressFilter(level: 0, bufferSize: smallBuffer) == nil)
    #expect(try CompressionType.none.makeDecompressFilter(bufferSize: smallBuffer) == nil)
    #expect(try CompressionType.lz4.makeCompressFilter(level: 1, bufferSize: smallBuffer) is LZ4CompressFilter)
    #expect(try CompressionType.zst.makeDecompressFilter(bufferSize: smallBuffer) is ZstdDecompressFilter)
}

/// Runs a stock command line tool with `input` on stdin and returns its stdout.
private func runTool(_ path: String, _ arguments: [String], input: [UInt8]) throws -> [UInt8] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let stdin = Pipe(), stdout = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = FileHandle.nullDevice
    try process.run()
    // Write on another thread: a tool can fill its stdout pipe before it has read all of stdin.
    let writer = Thread {
        stdin.fileHandleForWriting.write(Data(input))
        try? stdin.fileHandleForWriting.close()
    }
    writer.start()
    let output = stdout.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    try #require(process.terminationStatus == 0, "\(path) \(arguments) exited \(process.terminationStatus)")
    return [UInt8](output)
}

private func toolPath(_ type: CompressionType) -> String { "/usr/bin/\(type == .lz4 ? "lz4" : "zstd")" }

@Test("stored files are standard frames: the stock lz4 and zstd tools read ours and we read theirs",
      .enabled(if: codecs.allSatisfy { FileManager.default.isExecutableFile(atPath: toolPath($0)) }),
      arguments: codecs)
func interoperatesWithStockTools(type: CompressionType) throws {
    let input = Samples.compressible(300_000) + Samples.random(20_000, seed: 23)
    let tool = toolPath(type)
    #expect(try runTool(tool, ["-d", "-c", "-q"], input: try compress(type, input)) == input)
    #expect(try runTool(tool, ["-d", "-c", "-q"], input: try compress(type, [])) == [])
    #expect(try decompress(type, try runTool(tool, ["-c", "-q"], input: input)) == input)
}

extension Feeding {
    fileprivate var isDrip: Bool {
        if case .drip = self { return true }
        return false
    }
}
