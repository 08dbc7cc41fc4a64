import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("Timeline divergence")
struct TimelineDivergenceTests {
    /// Timeline 2 forked from timeline 1 at 0/5000100 (inside segment 5), its history stored at time 100.
    static func history() throws -> TimelineHistory {
        try TimelineHistory(timeline: TimelineID(rawValue: 2), text: "1\t0/5000100\tno recovery target specified\n", path: "00000002.history")
    }

    @Test("segments of the parent past the fork archived after the child's history are a divergence, named with the first and last")
    func lateParentSegmentsDiverge() throws {
        let segments: [String: Int64] = ["000000010000000000000004": 50, "000000010000000000000005": 150, "000000010000000000000006": 160,
                        "000000020000000000000005": 110]
        let found = TimelineDivergence.find(histories: [(try Self.history(), 100)], segments: segments, segmentSize: .default)
        #expect(found == [TimelineDivergence(timeline: 1, child: 2, switchPoint: LSN(0x5000100), segments: 2,
                                             first: "000000010000000000000005", last: "000000010000000000000006")])
        #expect(found[0].message.contains("timeline 1 continues past the point 0/5000100"))
    }

    @Test("the parent's WAL past the fork archived before the child began is a point-in-time recovery's abandoned future, not a divergence")
    func abandonedFutureIsNotDivergence() throws {
        let segments: [String: Int64] = ["000000010000000000000005": 40, "000000010000000000000006": 60, "000000020000000000000005": 110]
        #expect(TimelineDivergence.find(histories: [(try Self.history(), 100)], segments: segments, segmentSize: .default).isEmpty)
    }

    @Test("parent segments that end at or before the switch point are not past the fork")
    func segmentsBeforeTheForkDoNotCount() throws {
        let history = try TimelineHistory(timeline: TimelineID(rawValue: 2), text: "1\t0/6000000\tat end\n", path: "00000002.history")
        let segments: [String: Int64] = ["000000010000000000000005": 500]
        #expect(TimelineDivergence.find(histories: [(history, 100)], segments: segments, segmentSize: .default).isEmpty)
    }
}

@Suite("Restored cluster's archive settings")
struct ArchiveSettingsTests {
    @Test("postgresql.conf lines parse with and without '=', quotes, doubled quotes, backslash escapes and comments")
    func parsesConfigurationLines() {
        #expect(ArchiveSettings.parse("archive_mode = on  # comment")! == ("archive_mode", "on"))
        #expect(ArchiveSettings.parse("archive_mode on")! == ("archive_mode", "on"))
        #expect(ArchiveSettings.parse("archive_command = 'pgkeep --config=/etc/it''s\\\\x.conf archive-push %p'")!
                == ("archive_command", "pgkeep --config=/etc/it's\\x.conf archive-push %p"))
        #expect(ArchiveSettings.parse("# archive_mode = on") == nil)
        #expect(ArchiveSettings.parse("archive_command = 'unterminated") == nil)
    }

    @Test("a pgkeep archive_command naming the stanza archives into it only while archive_mode is on or always")
    func archivesIntoStanza() {
        let command = "'/usr/bin/pgkeep' '--stanza=main' archive-push %p"
        #expect(ArchiveSettings(mode: "on", command: command).archives(into: "main"))
        #expect(ArchiveSettings(mode: "always", command: command).archives(into: "main"))
        #expect(!ArchiveSettings(mode: "off", command: command).archives(into: "main"))
        #expect(!ArchiveSettings(mode: "on", command: command).archives(into: "other"))
        #expect(!ArchiveSettings(mode: "on", command: "cp %p /archive/%f").archives(into: "main"))
    }
}
