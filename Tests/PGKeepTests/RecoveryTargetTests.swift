import SystemPackage
import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("Recovery targets")
struct RecoveryTargetTests {
    func parse(_ type: String, _ target: String? = nil, exclusive: Bool = false, timeline: String = "latest",
               action: String = "pause", explicitAction: Bool = false) throws(PGKeepError) -> RecoveryTarget {
        try RecoveryTarget.parse(type: type, target: target, exclusive: exclusive, explicitExclusive: exclusive,
                                 timeline: timeline, action: action, explicitAction: explicitAction)
    }

    func failure(_ body: () throws -> Void) -> PGKeepError? {
        do { try body() } catch { return error as? PGKeepError }
        return nil
    }

    @Test("times with a zone are read as PostgreSQL reads timestamptz, to the microsecond")
    func times() throws {
        let utc = try TargetTime.parse("2026-11-27 14:03:27+00")
        #expect(utc.seconds == 1_795_788_207)
        #expect(utc.text == "2026-11-27 14:03:27+00:00")
        #expect(try TargetTime.parse("2026-11-27T14:03:27Z") == utc)
        #expect(try TargetTime.parse("2026-11-27 14:03:27 UTC").microseconds == utc.microseconds)
        #expect(try TargetTime.parse("2026-11-27 15:33:27+01:30").microseconds == utc.microseconds)
        #expect(try TargetTime.parse("2026-11-27 15:33:27+0130").microseconds == utc.microseconds)
        #expect(try TargetTime.parse("2026-11-27 09:03:27-05").microseconds == utc.microseconds)
        let fraction = try TargetTime.parse("2026-11-27 14:03:27.5+00")
        #expect(fraction.microseconds == utc.microseconds + 500_000)
        #expect(fraction.text == "2026-11-27 14:03:27.5+00:00")
        #expect(try TargetTime.parse("2026-11-27 14:03:27.000001+00").microseconds == utc.microseconds + 1)
        #expect(try TargetTime.parse("2026-11-27 14:03+00").microseconds == utc.microseconds - 27_000_000)
        #expect(try TargetTime.parse("2024-02-29 00:00:00+00").seconds == 1_709_164_800)
        #expect(try TargetTime.parse("1970-01-01 00:00:00+00").seconds == 0)
        #expect(TargetTime(seconds: 1_795_788_207).text == "2026-11-27 14:03:27+00:00")
    }

    @Test("a time without a zone, with an abbreviation or malformed is refused with a hint", arguments: [
        "2026-11-27 14:03:27", "2026-11-27 14:03:27 CET", "2026-11-27", "27/11/2026 14:03:27+00", "2026-13-01 00:00:00+00",
        "2025-02-29 00:00:00+00", "2026-11-27 24:00:00+00", "2026-11-27 14:03:27.1234567+00", "2026-11-27 14:03:27+16",
        "now", "2026-11-27 14:03:27+00 extra", "2026-11-27 14:3:27+00",
    ])
    func badTimes(text: String) {
        let error = failure { _ = try TargetTime.parse(text) }
        #expect(error?.code == .targetInvalid)
        #expect(error?.message.contains(text) == true)
        #expect(error?.hint != nil)
    }

    @Test("a time without zone gets a hint that shows the fix")
    func missingZoneHint() {
        let error = failure { _ = try TargetTime.parse("2026-11-27 14:03:27") }
        #expect(error?.message.contains("no time zone") == true)
        #expect(error?.hint?.contains("'2026-11-27 14:03:27+00'") == true)
    }

    @Test("xid, lsn and name targets are checked")
    func values() throws {
        #expect(try parse("xid", "731").value == .xid(731))
        #expect(try parse("lsn", "0/5014668").value == .lsn(LSN("0/5014668")!))
        #expect(try parse("name", "before upgrade").value == .name("before upgrade"))
        for bad in ["0x2DB", "-1", "7.5", "0731", "", "abc"] {
            #expect(failure { _ = try parse("xid", bad) }?.code == .targetInvalid, "\(bad)")
        }
        let wide = failure { _ = try parse("xid", "4294967297") }
        #expect(wide?.hint?.contains("low 32 bits (1 here)") == true)
        #expect(failure { _ = try parse("xid", "2") }?.message.contains("reserved") == true)
        for bad in ["0/0", "5014668", "0/5014668/1", "G/1", "0/123456789"] {
            #expect(failure { _ = try parse("lsn", bad) }?.code == .targetInvalid, "\(bad)")
        }
        #expect(failure { _ = try parse("name", String(repeating: "n", count: 64)) }?.message.contains("63") == true)
        #expect(try parse("name", String(repeating: "n", count: 63)).value == .name(String(repeating: "n", count: 63)))
    }

    @Test("option combinations that PostgreSQL would reject or ignore are refused")
    func combinations() throws {
        #expect(failure { _ = try parse("time") }?.message.contains("needs --target") == true)
        #expect(failure { _ = try parse("immediate", "0/1") }?.message.contains("not used with --type=immediate") == true)
        #expect(failure { _ = try parse("name", "rp", exclusive: true) }?.message.contains("--target-exclusive") == true)
        #expect(failure { _ = try parse("default", action: "promote", explicitAction: true) }?.code == .targetInvalid)
        #expect(failure { _ = try parse("standby", action: "promote", explicitAction: true) }?.code == .targetInvalid)
        #expect(failure { _ = try parse("full") }?.code == .targetInvalid)
        #expect(failure { _ = try parse("default", action: "resume") }?.code == .targetInvalid)
        for bad in ["0", "-1", "2x", "0x2", "newest", ""] {
            #expect(failure { _ = try parse("default", timeline: bad) }?.code == .targetInvalid, "\(bad)")
        }
        #expect(try parse("default", timeline: "12").timeline == .id(12))
        #expect(try parse("default", timeline: "current").timeline == .current)
    }

    @Test("recovery settings: the normalised target, inclusive flag, resolved timeline and action")
    func settings() throws {
        let time = try parse("time", "2026-11-27 15:33:27.25+01:30", exclusive: true, action: "promote", explicitAction: true)
        let written = time.settings(timeline: 1, backupTimeline: 1)
        #expect(written.map(\.name) == ["recovery_target_time", "recovery_target_inclusive", "recovery_target_timeline", "recovery_target_action"])
        #expect(written.map(\.value) == ["2026-11-27 15:33:27.25+01:30", "off", "current", "promote"])
        #expect(time.signalFile == "recovery.signal")

        let onChild = try parse("xid", "731").settings(timeline: 3, backupTimeline: 1)
        #expect(onChild.map(\.value) == ["731", "3", "pause"])
        #expect(try parse("immediate").settings(timeline: 1, backupTimeline: 1).map(\.value) == ["immediate", "current", "pause"])
        #expect(try parse("default").settings(timeline: 2, backupTimeline: 1).map(\.name) == ["recovery_target_timeline"])

        let standby = try parse("standby")
        #expect(standby.signalFile == "standby.signal")
        #expect(standby.settings(timeline: 1, backupTimeline: 1).map(\.value) == ["latest"], "a standby follows future timelines")
        #expect(try parse("standby", timeline: "current").settings(timeline: 1, backupTimeline: 1).map(\.value) == ["current"])
    }

    func resolve(_ arguments: [String]) throws -> Configuration {
        try Configuration.resolve(arguments: arguments, environment: [:]) { _ throws(Errno) in throw Errno.noSuchFileOrDirectory }
    }

    @Test("--type takes backup types for backup and recovery types for restore")
    func typeOptionPerCommand() throws {
        let restore = try resolve(["restore", "--stanza=main", "--pg1-path=/pg", "--type=time", "--target=x"])
        #expect(restore.string(.type) == "time")
        let defaulted = try resolve(["restore", "--stanza=main", "--pg1-path=/pg"])
        #expect(defaulted.string(.type) == "default")
        #expect(defaulted.string(.targetTimeline) == "latest")
        do {
            _ = try resolve(["backup", "--stanza=main", "--pg1-path=/pg", "--type=time"])
            Issue.record("backup --type=time was accepted")
        } catch {
            #expect((error as? PGKeepError)?.code == .optionInvalid)
        }
        #expect(Help.text(for: .restore).contains("--type=default|immediate|time|xid|lsn|name|standby"))
        #expect(Help.text(for: .backup).contains("--type=full"))
    }
}
