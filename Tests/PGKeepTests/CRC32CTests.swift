import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("CRC32C")
struct CRC32CTests {
    /// Bit-at-a-time reference, straight from the definition.
    static func reference(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return crc ^ 0xFFFF_FFFF
    }

    @Test("has the standard CRC-32C check value 0xE3069283 for \"123456789\"")
    func checkValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
    }

    @Test("slicing-by-8 agrees with the bitwise definition for every length up to 70")
    func agreesWithReference() {
        var generator = SystemRandomNumberGenerator()
        for length in 0...70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(CRC32C.checksum(bytes) == Self.reference(bytes), "length \(length)")
        }
    }

    @Test("gives the same value fed whole, one byte at a time, and at random split points")
    func dripFed() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let whole = CRC32C.checksum(bytes)
        var oneByOne = CRC32C()
        bytes.withUnsafeBytes { raw in
            for i in 0..<raw.count { oneByOne.update(UnsafeRawBufferPointer(rebasing: raw[i..<i + 1])) }
        }
        #expect(oneByOne.value == whole)
        for _ in 0..<20 {
            let cut = Int.random(in: 0...bytes.count)
            var split = CRC32C()
            bytes.withUnsafeBytes { raw in
                split.update(UnsafeRawBufferPointer(rebasing: raw[0..<cut]))
                split.update(UnsafeRawBufferPointer(rebasing: raw[cut...]))
            }
            #expect(split.value == whole, "split at \(cut)")
        }
    }

    @Test("matches the CRC stored in the real PostgreSQL 15 pg_control")
    func realPGControl() throws {
        let bytes = try PostgresFixture.pgControl()
        let stored = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 288, as: UInt32.self) }
        #expect(CRC32C.checksum(Array(bytes[0..<288])) == stored)
        #expect(stored == 0x2E51_5D69)
    }
}
