import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("Intern tables")
struct InternTableTests {
    @Test("values are numbered in first-seen order after the preset ones, and the same value keeps its number")
    func numbering() throws {
        var owners = InternTable<String?>(of: "owner names", preset: [nil])
        #expect(try owners.number(of: nil) == 0)
        #expect(try owners.number(of: "postgres") == 1)
        #expect(try owners.number(of: "root") == 2)
        #expect(try owners.number(of: "postgres") == 1)
        #expect(owners[1] == "postgres" && owners[0] == nil)
        #expect(owners.values.count == 3)
    }

    @Test("more values than a UInt16 can number is an internal error naming what they are")
    func overflow() throws {
        var table = InternTable<Int>(of: "listing directories")
        for value in 0...Int(UInt16.max) { _ = try table.number(of: value) }
        let error = #expect(throws: PGKeepError.self) { try table.number(of: -1) }
        #expect(error?.code == .internal && error?.message.contains("listing directories") == true)
        #expect(try table.number(of: 65_535) == 65_535)
    }
}
