import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("Timeline history files")
struct TimelineHistoryTests {
    @Test("parses a real history file whose time-target reason leaves a blank line")
    func realTimeTarget() throws {
        let text = try PostgresFixture.text("pg15-00000002.history")
        #expect(text.hasSuffix("+00\n\n"))
        let history = try TimelineHistory(timeline: 2, text: text, path: "00000002.history")
        #expect(history.entries == [
            .init(parent: 1, switchPoint: LSN("0/5000EE0")!, reason: "before 2026-11-26 23:07:18.633468+00"),
        ])
    }

    @Test("parses a real grandchild history: the parent's lines, blank lines, then its own")
    func realGrandchild() throws {
        let history = try TimelineHistory(timeline: 3, text: try PostgresFixture.text("pg15-00000003.history"), path: "00000003.history")
        #expect(history.entries.map(\.parent) == [1, 2])
        #expect(history.entries.map(\.switchPoint.description) == ["0/5000EE0", "0/60000A0"])
        #expect(history.entries[1].reason == "no recovery target specified")
        #expect(history.ancestry == [1, 2, 3])
    }

    @Test("parses the documented examples and keeps quoted reasons intact")
    func documentedExamples() throws {
        let history = try TimelineHistory(timeline: 2, text: "1\t0/60000C8\tat restore point \"rp1\"\n", path: "h")
        #expect(history.entries == [.init(parent: 1, switchPoint: LSN("0/60000C8")!, reason: "at restore point \"rp1\"")])
        let empty = try TimelineHistory(timeline: 4, text: "1\t0/B000160\n", path: "h")
        #expect(empty.entries.first?.reason == "")
    }

    @Test("skips comment lines, white-space lines, and tolerates CRLF")
    func skipsCommentsAndBlanks() throws {
        let text = "# written by hand\n   \n\t# indented comment\n1\t0/5000EE0\tbefore x\r\n\r\n2 0/60000A0  reached consistency \n"
        let history = try TimelineHistory(timeline: 3, text: text, path: "h")
        #expect(history.entries.map(\.parent) == [1, 2])
        #expect(history.entries.map(\.reason) == ["before x", "reached consistency"])
    }

    @Test("refuses timeline IDs that do not strictly increase")
    func nonIncreasing() {
        let error = #expect(throws: PGKeepError.self) {
            try TimelineHistory(timeline: 5, text: "2\t0/5000000\ta\n2\t0/6000000\tb\n", path: "/repo/00000005.history")
        }
        #expect(error?.code == .formatInvalid)
        #expect(error?.message.contains("/repo/00000005.history") == true)
        #expect(error?.message.contains("line 2") == true)
    }

    @Test("refuses a history that lists a timeline not below its own")
    func notBelowOwn() {
        let error = #expect(throws: PGKeepError.self) { try TimelineHistory(timeline: 2, text: "1\t0/5000000\ta\n2\t0/6000000\tb\n", path: "h") }
        #expect(error?.message.contains("not below its own timeline 2") == true)
    }

    @Test("refuses lines without a numeric timeline or switch point", arguments: [
        "x\t0/5000000\treason\n", "1\n", "1\t\n", "1\tnot-an-lsn\treason\n", "1\t0/\treason\n", "-1\t0/5\tr\n",
    ])
    func syntaxErrors(text: String) {
        let error = #expect(throws: PGKeepError.self) { try TimelineHistory(timeline: 9, text: text, path: "h") }
        #expect(error?.message.contains("syntax error") == true)
    }

    @Test("answers switch points and which timeline wrote an LSN or a segment")
    func lookups() throws {
        let history = try TimelineHistory(timeline: 3, text: try PostgresFixture.text("pg15-00000003.history"), path: "h")
        #expect(history.switchPoint(for: 1)?.description == "0/5000EE0")
        #expect(history.switchPoint(for: 2)?.description == "0/60000A0")
        #expect(history.switchPoint(for: 3) == nil)
        #expect(history.beginning(of: 1) == .invalid)
        #expect(history.beginning(of: 3)?.description == "0/60000A0")
        #expect(history.beginning(of: 7) == nil)
        #expect(history.timeline(at: LSN("0/5000EDF")!) == 1)
        #expect(history.timeline(at: LSN("0/5000EE0")!) == 2)
        #expect(history.timeline(at: LSN("0/7000000")!) == 3)
        // Segment 5 holds the 1 -> 2 switch, segment 6 the 2 -> 3 switch: each is read from the child.
        #expect(history.timeline(forSegmentNumber: 4, segmentSize: .default) == 1)
        #expect(history.timeline(forSegmentNumber: 5, segmentSize: .default) == 2)
        #expect(history.timeline(forSegmentNumber: 6, segmentSize: .default) == 3)
        #expect(TimelineHistory(timeline: 1).timeline(forSegmentNumber: 6, segmentSize: .default) == 1)
        #expect(TimelineHistory.fileName(for: 10) == "0000000A.history")
    }
}
