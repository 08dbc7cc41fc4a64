import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("object codec: one chain builder for every stored object")
struct ObjectCodecTests {
    static let original: [UInt8] = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31 / 7) }

    final class Collect: ByteSink {
        var bytes: [UInt8] = []
        func write(_ chunk: UnsafeRawBufferPointer) throws { bytes.append(contentsOf: chunk) }
    }

    @Test("what a write chain stores, its read chain decodes back, with equal sizes and SHA-256 observed on both sides",
          arguments: CompressionType.allCases)
    func roundTrip(compression: CompressionType) throws {
        let codec = try ObjectCodec(bufferSize: 1 << 14)
        let encoding = ObjectEncoding(compression: compression)
        let stored = Collect()
        try codec.writeChain(encoding, level: compression.defaultLevel).run(from: MemorySource(Self.original), into: stored,
                                                                             buffer: IOBuffer(size: 4096))
        let written = (size: codec.original.size, digest: try codec.original.digest(),
                       storedSize: codec.stored.size, storedDigest: try codec.stored.digest())
        #expect(written.size == UInt64(Self.original.count))
        #expect(written.digest == (try SHA256Digest.of(Self.original)))
        #expect(written.storedSize == UInt64(stored.bytes.count))
        #expect(written.storedDigest == (try SHA256Digest.of(stored.bytes)))

        let decoded = Collect()
        try codec.readChain(encoding).run(from: MemorySource(stored.bytes), into: decoded, buffer: IOBuffer(size: 4096))
        #expect(decoded.bytes == Self.original)
        let readOriginal = try codec.original.digest()
        let readStored = try codec.stored.digest()
        #expect(codec.original.size == written.size && readOriginal == written.digest)
        #expect(codec.stored.size == written.storedSize && readStored == written.storedDigest)
    }

    @Test("a chain is built once per encoding, level and observers, then reused with its contexts")
    func chainsAreReused() throws {
        let codec = try ObjectCodec(bufferSize: 1 << 14)
        let lz4 = ObjectEncoding(compression: .lz4)
        #expect(try codec.writeChain(lz4, level: 1) === codec.writeChain(lz4, level: 1))
        #expect(try codec.writeChain(lz4, level: 1) !== codec.writeChain(lz4, level: 2))
        #expect(try codec.writeChain(lz4, level: 1) !== codec.writeChain(lz4, level: 1, observing: []))
        #expect(try codec.readChain(lz4) === codec.readChain(lz4))
        #expect(try codec.readChain(lz4) !== codec.readChain(lz4, frameChecksum: .skip))
        #expect(codec.measureChain() === codec.measureChain())
    }

    @Test("an observer that was not asked for is not run: its digest reads as unfinished")
    func onlyRequestedObservers() throws {
        let codec = try ObjectCodec(bufferSize: 1 << 14)
        try codec.measureChain(observing: .originalSHA256).run(from: MemorySource(Self.original), into: DiscardSink(),
                                                                buffer: IOBuffer(size: 4096))
        #expect(try codec.original.digest() == SHA256Digest.of(Self.original))
        #expect(codec.original.size == 0)
        #expect(throws: PGKeepError.self) { try codec.stored.digest() }
    }

    @Test("an inspector sees the original bytes between the original observers and the encoder")
    func inspectorSeesOriginalBytes() throws {
        final class Tap: Filter {
            var seen: [UInt8] = []
            func process(_ input: UnsafeRawBufferPointer, next: ByteSink) throws { seen.append(contentsOf: input); try next.write(input) }
            func finish(next: ByteSink) throws {}
            func reset() throws { seen = [] }
        }
        let codec = try ObjectCodec(bufferSize: 1 << 14)
        let tap = Tap()
        try codec.writeChain(ObjectEncoding(compression: .zst), level: 1, inspector: tap)
            .run(from: MemorySource(Self.original), into: DiscardSink(), buffer: IOBuffer(size: 4096))
        #expect(tap.seen == Self.original)
    }
}
