import Foundation
import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("LSN")
struct LSNTests {
    @Test("parses %X/%X into the 64-bit position and prints it back upper-case", arguments: [
        ("0/5000028", UInt64(0x5000028)),
        ("16/B374D848", UInt64(0x16_B374_D848)),
        ("0/0", UInt64(0)),
        ("FFFFFFFF/FFFFFFFF", UInt64.max),
        ("1/0", UInt64(1) << 32),
    ])
    func parseAndFormat(text: String, value: UInt64) throws {
        let lsn = try #require(LSN(text))
        #expect(lsn.value == value)
        #expect(lsn.description == text)
    }

    @Test("accepts lower-case hex like the pg_lsn type but prints upper-case")
    func lowerCaseInput() throws {
        let lsn = try #require(LSN("16/b374d848"))
        #expect(lsn.description == "16/B374D848")
        #expect(LSN("00000000/00000001")?.description == "0/1")
    }

    @Test("rejects text pg_lsn_in would reject", arguments: [
        "", "0", "/", "/1", "1/", "123456789/0", "0/123456789", "0/5000028 ", " 0/5000028",
        "G/0", "0/0/0", "-1/0", "0x1/0", "0\\5",
    ])
    func rejects(text: String) {
        #expect(LSN(text) == nil)
    }

    @Test("orders, adds and subtracts byte positions")
    func arithmetic() throws {
        let a = try #require(LSN("0/5000028"))
        let b = try #require(LSN("0/5014668"))
        #expect(a < b)
        #expect(b.distance(from: a) == 0x14640)
        #expect(a.distance(from: b) == nil)
        #expect(a.advanced(by: 0x14640) == b)
        #expect(LSN(high: 0, low: 0xFFFF_FFFF).advanced(by: 1).description == "1/0")
        #expect(LSN(high: 0x16, low: 0xB374_D848).high == 0x16)
        #expect(!LSN.invalid.isValid && a.isValid)
    }

    @Test("gives the offset inside a segment (XLogSegmentOffset)")
    func offsetInSegment() throws {
        #expect(try #require(LSN("0/5000028")).offset(in: .default) == 0x28)
        let oneMiB = try #require(WALSegmentSize(bytes: 1 << 20))
        #expect(try #require(LSN("1/00123456")).offset(in: oneMiB) == 0x23456)
    }

    @Test("is Codable as its text form")
    func codable() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        let data = try encoder.encode([try #require(LSN("16/B374D848"))])
        #expect(String(decoding: data, as: UTF8.self) == #"["16/B374D848"]"#)
        let decoded = try JSONDecoder().decode([LSN].self, from: data)
        #expect(decoded == [LSN(0x16_B374_D848)])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([LSN].self, from: Data(#"["nope"]"#.utf8)) }
    }
}
