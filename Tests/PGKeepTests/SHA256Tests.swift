import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

/// Known-answer vectors from FIPS 180-2 (appendix B) and NIST's example values.
private let emptyDigest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
private let abcDigest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
private let millionADigest = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

private func digest(of bytes: [UInt8], using hasher: SHA256Hasher) throws -> SHA256Digest {
    try bytes.withUnsafeBytes { try hasher.update($0) }
    return try hasher.finalize()
}

@Test("SHA-256 of the empty input matches the FIPS 180-2 value")
func sha256Empty() throws {
    let hasher = try SHA256Hasher()
    #expect(try hasher.finalize().hex == emptyDigest)
    #expect(try SHA256Digest.of([UInt8]()).hex == emptyDigest)
    #expect(try SHA256Digest.of(UnsafeRawBufferPointer(start: nil, count: 0)).hex == emptyDigest)
}

@Test("SHA-256 of \"abc\" matches the FIPS 180-2 value")
func sha256ABC() throws {
    #expect(try digest(of: Array("abc".utf8), using: SHA256Hasher()).hex == abcDigest)
    #expect(try SHA256Digest.of("abc".utf8).hex == abcDigest)
}

@Test("SHA-256 of one million 'a's matches the FIPS 180-2 value, whole and in uneven pieces")
func sha256MillionA() throws {
    let input = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
    #expect(try SHA256Digest.of(input).hex == millionADigest)

    let hasher = try SHA256Hasher()
    try input.withUnsafeBytes { all in
        for range in Feeding.random(seed: 7, maxSlice: 9_000).slices(count: all.count) {
            try hasher.update(UnsafeRawBufferPointer(rebasing: all[range]))
        }
    }
    #expect(try hasher.finalize().hex == millionADigest)
}

@Test("a hasher reused after reset gives the same digests as a fresh one, even after an abandoned stream")
func sha256Reuse() throws {
    let hasher = try SHA256Hasher()
    #expect(try digest(of: Array("abc".utf8), using: hasher).hex == abcDigest)
    try hasher.reset()
    #expect(try hasher.finalize().hex == emptyDigest)
    try hasher.reset()
    // Abandon a stream half way: reset must discard it.
    try Array("garbage".utf8).withUnsafeBytes { try hasher.update($0) }
    try hasher.reset()
    #expect(try digest(of: Array("abc".utf8), using: hasher).hex == abcDigest)
    // Without reset, a second digest would silently cover nothing; it is refused instead.
    let error = #expect(throws: PGKeepError.self) { try Array("abc".utf8).withUnsafeBytes { try hasher.update($0) } }
    #expect(error?.code == .internal)
    #expect(throws: PGKeepError.self) { _ = try hasher.finalize() }
}

@Test("a digest round-trips through hex and bytes, and parsing rejects malformed text")
func sha256DigestText() throws {
    let value = try #require(SHA256Digest(hex: abcDigest))
    #expect(value.hex == abcDigest)
    #expect(value.description == abcDigest)
    #expect(value.bytes.count == 32)
    #expect(value.bytes.first == 0xba && value.bytes.last == 0xad)
    #expect(value.bytes.withUnsafeBytes { SHA256Digest(bytes: $0) } == value)
    #expect(SHA256Digest(hex: abcDigest.uppercased()) == value)
    #expect(SHA256Digest(hex: "") == nil)
    #expect(SHA256Digest(hex: String(abcDigest.dropLast())) == nil)
    #expect(SHA256Digest(hex: abcDigest + "0") == nil)
    #expect(SHA256Digest(hex: String(abcDigest.dropLast()) + "g") == nil)
    #expect(SHA256Digest(hex: String(abcDigest.dropLast(2)) + "é") == nil)
    #expect([UInt8](repeating: 0, count: 31).withUnsafeBytes { SHA256Digest(bytes: $0) } == nil)
}

@Test("digests compare by value and order like their hex text")
func sha256DigestOrder() throws {
    let a = try SHA256Digest.of("abc".utf8)
    let b = try SHA256Digest.of([UInt8]())
    #expect(a == (try SHA256Digest.of(Array("abc".utf8))))
    #expect(a != b)
    #expect((a < b) == (a.hex < b.hex))
    #expect(Set([a, b, a]).count == 2)
}

@Test("the SHA-256 filter passes bytes on unchanged and publishes its digest only after finish")
func sha256FilterObserves() throws {
    let filter = try SHA256Filter()
    let input = Samples.random(10_000, seed: 1)
    let sink = MemorySink()
    try input.withUnsafeBytes { try filter.process($0, next: sink) }
    #expect(filter.digest == nil)
    try filter.finish(next: sink)
    #expect(sink.bytes == input)
    #expect(filter.digest == (try SHA256Digest.of(input)))

    try filter.reset()
    #expect(filter.digest == nil)
    #expect(try run(filter, Array("abc".utf8), feeding: .drip) == Array("abc".utf8))
    #expect(filter.digest?.hex == abcDigest)
}

@Test("the byte-count filter counts what passes and starts over at reset")
func byteCountFilter() throws {
    let filter = ByteCountFilter()
    let input = Samples.random(1_234, seed: 2)
    #expect(try run(filter, input, feeding: .random(seed: 3, maxSlice: 100)) == input)
    #expect(filter.count == 1_234)
    try filter.reset()
    #expect(filter.count == 0)
    _ = try run(filter, [], feeding: .whole)
    #expect(filter.count == 0)
}
