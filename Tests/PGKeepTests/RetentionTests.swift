import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

/// Retention selection (pgBackRest semantics), pure: from backup.info entries to a plan.
@Suite("Retention")
struct RetentionTests {
    static let day: Int64 = 86_400
    static let now: Int64 = 1_800_000_000

    /// A backup stopping at `stop`, with a WAL range named from `segment`.
    static func backup(_ label: String, stop: Int64, type: BackupType = .full, prior: String? = nil,
                       segment: Int = 2, timeline: UInt32 = 1, databaseID: Int = 1) -> BackupSummary {
        func name(_ n: Int) -> String {
            let tli = String(timeline, radix: 16, uppercase: true)
            let seg = String(n, radix: 16, uppercase: true)
            return String(repeating: "0", count: 8 - tli.count) + tli + "00000000" + String(repeating: "0", count: 8 - seg.count) + seg
        }
        return BackupSummary(label: BackupLabel(label)!, type: type, prior: prior.flatMap(BackupLabel.init),
                             references: prior.flatMap(BackupLabel.init).map { [$0] } ?? [],
                             databaseID: databaseID, timestampStart: stop - 30, timestampStop: stop,
                             lsnStart: LSN(UInt64(segment) << 24), lsnStop: LSN((UInt64(segment) << 24) + 100),
                             walStart: name(segment), walStop: name(segment + 1), timeline: timeline,
                             size: 1, repoSize: 1, fileCount: 1, compressType: .lz4)
    }

    // Labels deliberately out of stop-time order: a clock set back, or a restored repository.
    static let fulls = [
        backup("20260105-000000F", stop: now - 40 * day, segment: 0x10),
        backup("20260101-000000F", stop: now - 20 * day, segment: 0x20),
        backup("20260110-000000F", stop: now - 10 * day, segment: 0x30),
        backup("20260102-000000F", stop: now - 1 * day, segment: 0x40),
    ]

    @Test("count retention keeps the N newest full backups by stop time, not by label")
    func fullCount() {
        let plan = Retention.plan(backups: Self.fulls, policy: RetentionPolicy(full: 2), now: Self.now)
        #expect(Set(plan.expiredLabels.map(\.text)) == ["20260105-000000F", "20260101-000000F"])
        #expect(plan.retained.map(\.label.text) == ["20260110-000000F", "20260102-000000F"])
        // Dependents before parents; here newest first.
        #expect(plan.expiredLabels.map(\.text) == ["20260101-000000F", "20260105-000000F"])
        // Default WAL retention follows the full count: WAL from the oldest retained full's start stays.
        #expect(plan.archive?.boundaryLabel.text == "20260110-000000F")
        #expect(plan.archive?.boundaryStart == "000000010000000000000030")
    }

    @Test("count retention at or above the number of fulls expires nothing")
    func fullCountNothing() {
        for keep in [4, 5, 100] {
            let plan = Retention.plan(backups: Self.fulls, policy: RetentionPolicy(full: keep), now: Self.now)
            #expect(plan.expired.isEmpty, "retention-full=\(keep)")
        }
        // With fewer fulls than the archive count, WAL is kept too.
        #expect(Retention.plan(backups: Self.fulls, policy: RetentionPolicy(full: 5), now: Self.now).archive == nil)
    }

    @Test("time retention: a full goes only when a newer full already stopped N days ago")
    func fullTime() {
        func expired(_ days: Int) -> Set<String> {
            Set(Retention.plan(backups: Self.fulls, policy: RetentionPolicy(full: days, fullType: .time), now: Self.now)
                .expiredLabels.map(\.text))
        }
        #expect(expired(15) == ["20260105-000000F"])                       // the 20-day-old covers the window
        #expect(expired(5) == ["20260105-000000F", "20260101-000000F"])    // the 10-day-old covers it
        #expect(expired(60) == [])                                          // nothing is old enough
        #expect(expired(1) == ["20260105-000000F", "20260101-000000F", "20260110-000000F"]) // one always stays
        let plan = Retention.plan(backups: Self.fulls, policy: RetentionPolicy(full: 15, fullType: .time), now: Self.now)
        // WAL: from the oldest retained full onward.
        #expect(plan.archive?.boundaryLabel.text == "20260101-000000F")
    }

    static let chain = [
        backup("20260101-000000F", stop: now - 9 * day, segment: 0x10),
        backup("20260101-000000F_20260102-000000D", stop: now - 8 * day, type: .diff, prior: "20260101-000000F", segment: 0x12),
        backup("20260101-000000F_20260103-000000I", stop: now - 7 * day, type: .incr, prior: "20260101-000000F_20260102-000000D", segment: 0x14),
        backup("20260101-000000F_20260104-000000D", stop: now - 6 * day, type: .diff, prior: "20260101-000000F", segment: 0x16),
        backup("20260105-000000F", stop: now - 5 * day, segment: 0x20),
        backup("20260105-000000F_20260106-000000D", stop: now - 4 * day, type: .diff, prior: "20260105-000000F", segment: 0x22),
    ]

    @Test("expiring a full takes every backup that depends on it, dependents first")
    func fullTakesDependents() {
        let plan = Retention.plan(backups: Self.chain, policy: RetentionPolicy(full: 1), now: Self.now)
        #expect(plan.expiredLabels.map(\.text) == [
            "20260101-000000F_20260104-000000D", "20260101-000000F_20260103-000000I",
            "20260101-000000F_20260102-000000D", "20260101-000000F",
        ])
        #expect(plan.retained.map(\.label.text) == ["20260105-000000F", "20260105-000000F_20260106-000000D"])
        let dependents = Retention.dependents(of: BackupLabel("20260101-000000F_20260102-000000D")!, in: Self.chain)
        #expect(dependents.map(\.label.text) == ["20260101-000000F_20260103-000000I"])
    }

    @Test("diff retention counts fulls as diffs, expires older diffs with their incrementals, never fulls")
    func diffCount() {
        let plan = Retention.plan(backups: Self.chain, policy: RetentionPolicy(diff: 3), now: Self.now)
        // Newest full+diff first: 0106D, 0105F, 0104D kept; 0102D goes with its incr 0103I; 0101F stays.
        #expect(Set(plan.expiredLabels.map(\.text)) == ["20260101-000000F_20260102-000000D", "20260101-000000F_20260103-000000I"])
        #expect(plan.expiredLabels.first?.text == "20260101-000000F_20260103-000000I")
        // Diff archive type with the diff count: the boundary is the oldest of the 3 newest full/diff backups.
        let wal = Retention.plan(backups: Self.chain, policy: RetentionPolicy(diff: 3, archiveType: .diff), now: Self.now)
        #expect(wal.archive?.boundaryLabel.text == "20260101-000000F_20260104-000000D")
    }

    @Test("archive retention keeps WAL from the boundary's start and every retained backup's consistency range")
    func walToKeep() throws {
        let plan = Retention.plan(backups: Self.fulls, policy: RetentionPolicy(full: 3, archive: 1), now: Self.now)
        #expect(plan.expiredLabels.map(\.text) == ["20260105-000000F"])
        let keep = try #require(plan.archive)
        #expect(keep.boundaryLabel.text == "20260102-000000F")
        let order = [1]
        // Before the boundary only the retained backups' own ranges (0x20-0x21, 0x30-0x31) stay.
        #expect(!keep.keeps(walFile: "000000010000000000000010", databaseID: 1, order: order))   // expired backup's WAL
        #expect(keep.keeps(walFile: "000000010000000000000020", databaseID: 1, order: order))
        #expect(keep.keeps(walFile: "000000010000000000000021", databaseID: 1, order: order))
        #expect(!keep.keeps(walFile: "000000010000000000000022", databaseID: 1, order: order))
        #expect(keep.keeps(walFile: "000000010000000000000030.00000028.backup", databaseID: 1, order: order))
        #expect(!keep.keeps(walFile: "00000001000000000000003F", databaseID: 1, order: order))
        // From the boundary on, everything, later timelines included; history files always.
        #expect(keep.keeps(walFile: "000000010000000000000040", databaseID: 1, order: order))
        #expect(keep.keeps(walFile: "0000000100000001000000A0", databaseID: 1, order: order))
        #expect(keep.keeps(walFile: "000000020000000000000001", databaseID: 1, order: order))
        #expect(keep.keeps(walFile: "00000002.history", databaseID: 1, order: order))
        // WAL of an older cluster identity with no retained backup goes; a newer one stays.
        #expect(!keep.keeps(walFile: "000000010000000000000050", databaseID: 0, order: [0, 1, 2]))
        #expect(keep.keeps(walFile: "000000010000000000000001", databaseID: 2, order: [0, 1, 2]))
    }

    @Test("no archive retention and no full count: WAL is kept")
    func walKeptWithoutRetention() {
        #expect(Retention.plan(backups: Self.fulls, policy: RetentionPolicy(), now: Self.now).archive == nil)
        #expect(Retention.plan(backups: Self.fulls, policy: RetentionPolicy(full: 2, archiveType: .incr), now: Self.now).archive == nil)
    }

    @Test("expire --set refuses a backup others depend on and the only full; expires a leaf")
    func adhoc() throws {
        #expect(throws: PGKeepError.self) {
            try Retention.planAdhoc(backups: Self.chain, set: BackupLabel("20260101-000000F_20260102-000000D")!, policy: .init())
        }
        do {
            _ = try Retention.planAdhoc(backups: Self.chain, set: BackupLabel("20260101-000000F")!, policy: .init())
            Issue.record("expired a full with dependents")
        } catch {
            let error = error as? PGKeepError
            #expect(error?.code == .expireRefused)
            #expect(error?.message.contains("20260101-000000F_20260103-000000I") == true, "\(String(describing: error))")
        }
        do {
            _ = try Retention.planAdhoc(backups: [Self.fulls[0]], set: Self.fulls[0].label, policy: .init())
            Issue.record("expired the only full")
        } catch {
            #expect((error as? PGKeepError)?.code == .expireRefused)
        }
        do {
            _ = try Retention.planAdhoc(backups: Self.fulls, set: BackupLabel("20300101-000000F")!, policy: .init())
            Issue.record("expired a missing backup")
        } catch {
            #expect((error as? PGKeepError)?.code == .backupMissing)
        }
        let plan = try Retention.planAdhoc(backups: Self.chain, set: BackupLabel("20260101-000000F_20260103-000000I")!, policy: .init())
        #expect(plan.expiredLabels.map(\.text) == ["20260101-000000F_20260103-000000I"])
        #expect(plan.retained.count == 5)
        #expect(plan.archive == nil)
    }
}
