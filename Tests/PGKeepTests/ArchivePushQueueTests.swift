import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig
import SystemPackage
import TestSupport

/// `--archive-push-queue-max`: what counts as the queue, what the decision drops, what is
/// acknowledged and what is recorded, and how every reader reports the drop.
@Suite("archive-push-queue-max: queue, decision, record, readers")
struct ArchivePushQueueTests {
    let directory: TemporaryDirectory
    init() throws { directory = try TemporaryDirectory("queue") }

    static let mib: UInt64 = 1 << 20
    static func segment(_ n: UInt64, timeline: UInt32 = 1, size: UInt64 = 16 << 20) -> String {
        WALSegmentName(timeline: TimelineID(rawValue: timeline), segmentNumber: n, segmentSize: WALSegmentSize(bytes: size)!).name
    }

    @Test("the queue is the .ready complete segments without a .ok, .error ones included, history, partial and backup history files left out")
    func queueAccounting() throws {
        let status = "data/pg_wal/archive_status/"
        let names = (1...4).map { Self.segment($0) }
        for name in names + ["00000002.history", Self.segment(5) + ".partial", Self.segment(1) + ".00000028.backup"] {
            try directory.write(status + name + ".ready", [])
        }
        try directory.write(status + Self.segment(0) + ".done", [])
        let spool = AsyncSpool(spoolPath: directory.path("spool"), stanza: "main")
        try spool.recordSuccess(names[0])
        try spool.recordFailure(names[1], PGKeepError(.fileWrite, "repository unwritable"))
        let queue = try ArchivePushQueue.read(statusDirectory: FilePath(directory.path(status)), segmentSize: 16 << 20) { name, _ in
            try Posix.lstat(spool.okFile(name)) != nil
        }
        #expect(queue.segments == Array(names.dropFirst()))
        #expect(queue.bytes == 48 * Self.mib)
    }

    @Test("nothing is dropped up to the maximum; past it the oldest go until the rest fits; a maximum below one segment drops all")
    func decision() {
        let names = (1...5).map { Self.segment($0) }
        let queue = ArchivePushQueue(segments: names.reversed(), segmentSize: 16 << 20)
        #expect(queue.decide(max: 80 * Self.mib).drop.isEmpty, "exactly at the maximum is not past it")
        #expect(queue.decide(max: 1 << 30) == .init(drop: [], keep: names, queueBytes: 80 * Self.mib))
        let past = queue.decide(max: 32 * Self.mib)
        #expect(past.drop == Array(names.prefix(3)))
        #expect(past.keep == Array(names.suffix(2)))
        #expect(past.queueBytes == 80 * Self.mib)
        #expect(queue.decide(max: 40 * Self.mib).drop == Array(names.prefix(3)), "a partial segment's worth does not keep one more")
        #expect(queue.decide(max: 1 * Self.mib).drop == names)
    }

    @Test("records are per run of consecutive segments of one timeline and cover only their range")
    func recordRuns() throws {
        let size = WALSegmentSize(bytes: 16 << 20)!
        let segments = ["000000010000000000000003", "0000000100000000000000FF", "000000010000000100000000",
                        "000000010000000000000004", "000000020000000000000005"].compactMap { WALSegmentName($0, segmentSize: size) }
        let records = DroppedWAL.records(for: segments, droppedAt: 7, queueSize: 1, queueMax: 1)
        #expect(records.map(\.fileName) == ["000000010000000000000003-000000010000000000000004",
                                            "0000000100000000000000FF-000000010000000100000000",
                                            "000000020000000000000005-000000020000000000000005"])
        #expect(records[1].covers("000000010000000100000000") && !records[1].covers("000000010000000100000001"))
        #expect(!records[0].covers("000000020000000000000003"), "another timeline")
        #expect(DroppedWAL.isRecordName(records[0].fileName) && !DroppedWAL.isRecordName(records[0].fileName + ".copy"))
    }

    /// A data directory with the fixture's pg_control (16 MiB segments) and `ready` segments queued.
    func dataDirectory(ready: [String]) throws -> String {
        _ = try directory.write("data/global/pg_control", try PostgresFixture.pgControl())
        _ = try directory.makeDirectory("data/pg_wal/archive_status")
        for name in ready { _ = try directory.write("data/pg_wal/archive_status/\(name).ready", []) }
        return directory.path("data")
    }

    func pusher(storage: Storage, queueMax: UInt64?) -> ArchivePushAsync {
        let layout = try! RepositoryLayout(stanza: "main")
        let settings = ArchivePushAsync.Settings(spool: AsyncSpool(spoolPath: directory.path("spool"), stanza: "main"),
                                                 lockPath: directory.path("lock"), dataDirectory: directory.path("data"),
                                                 processMax: 1, timeout: 1, logPath: nil, logLevelFile: .off, queueMax: queueMax)
        return ArchivePushAsync(settings: settings, stanza: "main", log: Log(consoleLevel: .off)) { log in
            ArchivePush(storage: storage, layout: layout, compression: .none, compressLevel: 0, bufferSize: 1 << 16, log: log)
        }
    }

    @Test("past the maximum the oldest segments are acknowledged as dropped, the record waits in the spool while the repository is full, then lands in the archive id directory; archive-get still finds nothing")
    func dropAcknowledgeRecord() throws {
        let memory = MemoryStorage(name: "repo")
        let layout = try RepositoryLayout(stanza: "main")
        let identity = DatabaseIdentity(id: 1, systemIdentifier: PostgresFixture.systemIdentifier, version: 15,
                                        controlVersion: 1300, catalogVersion: 202209061)
        try SealedFile.save(ArchiveInfo(current: identity), to: layout.archiveInfo, in: memory)
        let full = FaultyStorage(memory, freeBytes: 0)
        let names = (1...5).map { Self.segment($0) }
        _ = try dataDirectory(ready: names + ["00000002.history"])
        let pusher = pusher(storage: full, queueMax: 32 * Self.mib)
        let spool = pusher.settings.spool
        try spool.recordFailure(names[0], PGKeepError(.diskFull, "repository full"))

        var limiter = QueueLimiter(max: 32 * Self.mib)
        try limiter.enforce(pusher)
        for name in names.prefix(3) {
            guard case .dropped(let message, let hint)? = try spool.pushStatus(name) else {
                Issue.record("\(name) is not acknowledged as dropped")
                continue
            }
            #expect(message.contains(name) && message.contains("80MiB") && message.contains("archive-push-queue-max 32MiB"), "\(message)")
            #expect(hint?.contains("\(names[0])...\(names[2])") == true && hint?.contains("new backup") == true, "\(hint ?? "")")
        }
        #expect(!directory.exists("spool/archive/main/out/\(names[0]).error"), "a dropped segment's failure is superseded")
        #expect(try spool.pushStatus(names[3]) == nil && spool.pushStatus(names[4]) == nil)
        #expect(try spool.pushStatus("00000002.history") == nil, "history files are never dropped")
        #expect(full.diskFullFailures > 0)
        #expect(try spool.pendingDrops().map(\.file) == ["\(names[0])-\(names[2]).dropped"])
        #expect(try DroppedWAL.loadAll(storage: memory, layout: layout, archiveID: "15-1").isEmpty)

        // What fits stays queued: deciding again drops nothing more.
        try limiter.enforce(pusher)
        #expect(try spool.pushStatus(names[3]) == nil)

        // The repository takes writes again: the pending record is written and leaves the spool.
        full.freeBytes = 1 << 30
        try limiter.flushPendingDrops(pusher)
        #expect(try spool.pendingDrops().isEmpty)
        let records = try DroppedWAL.loadAll(storage: memory, layout: layout, archiveID: "15-1")
        #expect(records.count == 1)
        #expect(records.first?.start == names[0] && records.first?.stop == names[2])
        #expect(records.first?.queueSize == 80 * Self.mib && records.first?.queueMax == 32 * Self.mib)
        #expect(try memory.info(try DroppedWAL.directory(layout: layout, archiveID: "15-1").appending(records[0].fileName + ".copy")) != nil)

        // A dropped segment is never mistaken for a stored one.
        #expect(try ArchiveLookup.find(walFile: names[1], archiveID: "15-1", storage: memory, layout: layout).isEmpty)
        let catalog = try ArchiveCatalog.load(storage: memory, layout: layout, archiveID: "15-1", bufferSize: 1 << 16)
        #expect(catalog.segments.isEmpty)
        #expect(catalog.dropRecord(for: names[1])?.start == names[0])
        #expect(catalog.dropRecord(for: names[3]) == nil)

        // The call PostgreSQL makes for a dropped segment succeeds and consumes the acknowledgement.
        try pusher.push(walPath: "pg_wal/" + names[0])
        #expect(try spool.pushStatus(names[0]) == nil)
        // As PostgreSQL does once archive_command succeeded.
        _ = try Posix.unlink(directory.path("data/pg_wal/archive_status/\(names[0]).ready"))
        _ = try directory.write("data/pg_wal/archive_status/\(names[0]).done", [])

        // More WAL arrives while the repository still cannot keep up: one more of the oldest goes each time.
        _ = try directory.write("data/pg_wal/archive_status/\(Self.segment(6)).ready", [])
        try limiter.enforce(pusher)
        guard case .dropped? = try spool.pushStatus(names[3]) else {
            Issue.record("the oldest queued segment was not dropped")
            return
        }
        #expect(try spool.pushStatus(names[4]) == nil)
        #expect(try DroppedWAL.loadAll(storage: memory, layout: layout, archiveID: "15-1").map(\.fileName)
                == ["\(names[0])-\(names[2])", "\(names[3])-\(names[3])"])
    }

    // MARK: synchronous archive-push

    @Test("synchronous archive_status: the queue is the .ready segments without a .done, found beside %p's segment or under the data directory")
    func synchronousStatusDirectory() {
        #expect(SynchronousQueueLimit.statusDirectory(walPath: "pg_wal/" + Self.segment(2), dataDirectory: nil) == "pg_wal/archive_status")
        #expect(SynchronousQueueLimit.statusDirectory(walPath: "/d/pg_wal/" + Self.segment(2), dataDirectory: "/other") == "/d/pg_wal/archive_status")
        #expect(SynchronousQueueLimit.statusDirectory(walPath: Self.segment(2), dataDirectory: "/d") == "/d/pg_wal/archive_status")
        #expect(SynchronousQueueLimit.statusDirectory(walPath: Self.segment(2), dataDirectory: nil) == "./pg_wal/archive_status")
    }

    /// A repository for stanza main (archive.info only) behind a storage that can be made full.
    func synchronousRepository() throws -> (memory: MemoryStorage, full: FaultyStorage, push: ArchivePush) {
        let memory = MemoryStorage(name: "repo")
        let layout = try RepositoryLayout(stanza: "main")
        try SealedFile.save(ArchiveInfo(current: ArchiveFixture.identity), to: layout.archiveInfo, in: memory)
        let full = FaultyStorage(memory, freeBytes: 0)
        return (memory, full, ArchivePush(storage: full, layout: layout, compression: .none, compressLevel: 0, bufferSize: 1 << 16, log: Log(consoleLevel: .off)))
    }

    @Test("synchronous archive-push past the maximum acknowledges the oldest segment it cannot store, records the drop in the spool while the repository refuses it and moves it in with the next successful push; history files, newer segments and a queue within the maximum are never dropped")
    func synchronousDrop() throws {
        let (memory, full, push) = try synchronousRepository()
        let layout = try RepositoryLayout(stanza: "main")
        let current = ArchiveFixture.segmentName
        #expect(current == Self.segment(2))
        // Segment 1 is archived (.done; a .ready left beside it by a crash does not count), 2...4 wait.
        let data = try dataDirectory(ready: [Self.segment(1), current, Self.segment(3), Self.segment(4), "00000002.history"])
        _ = try directory.write("data/pg_wal/archive_status/\(Self.segment(1)).done", [])
        let wal = try directory.write("data/pg_wal/" + current, ArchiveFixture.segment)
        let history = try directory.write("data/pg_wal/00000002.history", Array("1\t0/3000000\tno recovery target specified\n".utf8))
        let log = Log(consoleLevel: .off)
        let spool = AsyncSpool(spoolPath: directory.path("spool"), stanza: "main")

        // 48MiB waiting is within 64MiB: the push's failure goes to PostgreSQL, which retries.
        #expect(throws: (any Error).self) { try SynchronousQueueLimit(max: 64 * Self.mib, spool: spool, log: log).push(walPath: wal, dataDirectory: nil, with: push) }
        let limit = SynchronousQueueLimit(max: 32 * Self.mib, spool: spool, log: log)
        #expect(throws: (any Error).self, "history files are never dropped") { try limit.push(walPath: history, dataDirectory: data, with: push) }
        _ = try directory.write("data/pg_wal/" + Self.segment(4), ArchiveFixture.segment)
        #expect(throws: (any Error).self, "the newest segments stay queued") {
            try limit.push(walPath: self.directory.path("data/pg_wal/" + Self.segment(4)), dataDirectory: nil, with: push)
        }

        // Past the maximum: the oldest is acknowledged, the record waits in the spool.
        guard case .dropped(let error) = try limit.push(walPath: wal, dataDirectory: nil, with: push) else {
            Issue.record("\(current) was not dropped")
            return
        }
        #expect(error.code == .archiveDropped)
        #expect(error.message.contains("WAL segment \(current) was dropped") && error.message.contains("48MiB (3 segments)")
                && error.message.contains("archive-push-queue-max 32MiB"), "\(error.message)")
        #expect(error.message.contains("REFUSED THE RECORD") && error.message.contains("kept in '\(spool.outDirectory)'"), "\(error.message)")
        #expect(error.hint?.contains("\(current)...\(current)") == true && error.hint?.contains("new backup") == true, "\(error.hint ?? "")")
        #expect(try spool.pendingDrops().map(\.file) == ["\(current)-\(current).dropped"])
        #expect(try ArchiveLookup.find(walFile: current, archiveID: "15-1", storage: memory, layout: layout).isEmpty)

        // Without a spool the drop still happens, and says the record is lost.
        guard case .dropped(let unrecorded) = try SynchronousQueueLimit(max: 32 * Self.mib, spool: nil, log: log)
            .push(walPath: wal, dataDirectory: data, with: push) else {
            Issue.record("\(current) was not dropped without a spool")
            return
        }
        #expect(unrecorded.message.contains("no --spool-path is set") && unrecorded.message.contains("only record of the drop"), "\(unrecorded.message)")

        // The repository takes writes again: the segment is stored (never dropped while it can be),
        // and the pending record moves into the archive id's dropped/ directory.
        full.freeBytes = 1 << 30
        guard case .pushed(.stored) = try limit.push(walPath: wal, dataDirectory: nil, with: push) else {
            Issue.record("\(current) was not stored once the repository took writes")
            return
        }
        #expect(try spool.pendingDrops().isEmpty)
        let records = try DroppedWAL.loadAll(storage: memory, layout: layout, archiveID: "15-1")
        #expect(records.map(\.fileName) == ["\(current)-\(current)"])
        #expect(records.first?.queueSize == 48 * Self.mib && records.first?.queueMax == 32 * Self.mib)
    }

    @Test("synchronous archive-push records a drop directly in the repository when it takes the record but not the segment")
    func synchronousDropRecordedInRepository() throws {
        let (memory, full, push) = try synchronousRepository()
        let layout = try RepositoryLayout(stanza: "main")
        // Room for a small record, not for an uncompressed 16MiB segment.
        full.freeBytes = 1 << 20
        _ = try dataDirectory(ready: [Self.segment(2), Self.segment(3), Self.segment(4)])
        let wal = try directory.write("data/pg_wal/" + Self.segment(2), ArchiveFixture.segment)
        guard case .dropped(let error) = try SynchronousQueueLimit(max: 32 * Self.mib, spool: nil, log: Log(consoleLevel: .off))
            .push(walPath: wal, dataDirectory: nil, with: push) else {
            Issue.record("not dropped")
            return
        }
        #expect(!error.message.contains("REFUSED"), "\(error.message)")
        #expect(full.diskFullFailures > 0)
        #expect(try DroppedWAL.loadAll(storage: memory, layout: layout, archiveID: "15-1").map(\.start) == [Self.segment(2)])
    }

    @Test("the planner names dropped segments in its wal-missing problem and lists them; a drop past the end of the archive is a note")
    func plannerReportsDrops() throws {
        var catalog = try RestorePlannerTests.catalog(without: ["000000010000000000000003", "000000010000000000000004"])
        let size = WALSegmentSize.default
        catalog.dropped = DroppedWAL.records(for: ["000000010000000000000003", "000000010000000000000004"].compactMap { WALSegmentName($0, segmentSize: size) },
                                             droppedAt: 1_800_000_000, queueSize: 48 << 20, queueMax: 32 << 20)
        let plan = try RestorePlannerTests.plan(RestorePlannerTests.target(.default, timeline: .current), set: RestorePlannerTests.b1.label, catalog: catalog)
        let problem = try #require(plan.problems.first { $0.code == ErrorCode.walMissing.rawValue })
        #expect(problem.message.contains("dropped by archive-push-queue-max") && problem.message.contains("000000010000000000000003...000000010000000000000004"),
                "\(problem.message)")
        #expect(plan.wal.dropped == ["000000010000000000000003", "000000010000000000000004"])
        #expect(plan.text().contains("dropped by archive-push-queue-max"))

        // Dropped after the last archived segment: recovery to the end of the archive is possible, and says where it ends.
        var ended = try RestorePlannerTests.catalog(without: ["000000010000000000000006"])
        ended.dropped = DroppedWAL.records(for: [WALSegmentName("000000010000000000000006", segmentSize: size)!],
                                           droppedAt: 1_800_000_000, queueSize: 48 << 20, queueMax: 32 << 20)
        let toEnd = try RestorePlannerTests.plan(RestorePlannerTests.target(.default, timeline: .current), set: RestorePlannerTests.b2.label, catalog: ended)
        #expect(toEnd.problems.isEmpty, "\(toEnd.problems)")
        #expect(toEnd.notes.contains { $0.contains("recovery ends at 000000010000000000000005") && $0.contains("dropped by archive-push-queue-max") }, "\(toEnd.notes)")
    }

    @Test("verify reports dropped runs as wal-gap warnings with reason dropped (also after the last archived segment), and a backup needing dropped WAL as a wal-missing problem")
    func verifyReportsDrops() throws {
        let repo = try MemoryRepository()
        for n: UInt64 in [1, 2, 5, 6] { try repo.push(MemoryRepository.segmentName(n)) }
        let a = try repo.backup("20260101-000000F", stop: VerifyExpireUnitTests.now - 3600, first: 1, last: 2)
        let size = MemoryRepository.segmentSize
        for run in [[3, 4], [7, 8]] as [[UInt64]] {
            for record in DroppedWAL.records(for: run.map { WALSegmentName(timeline: 1, segmentNumber: $0, segmentSize: size) },
                                             droppedAt: VerifyExpireUnitTests.now, queueSize: 3 << 20, queueMax: 1 << 20) {
                try record.save(storage: repo.storage, layout: repo.layout, archiveID: "15-1")
            }
        }
        let report = try repo.verify()
        #expect(report.problems == [], "\(report.problems)")
        #expect(report.status == "ok", "a gap is not damage: every backup still restores to consistency")
        let gaps = report.archive.first?.timelines.first?.gaps ?? []
        #expect(gaps == [.init(start: MemoryRepository.segmentName(3), stop: MemoryRepository.segmentName(4), reason: "dropped", droppedAt: VerifyExpireUnitTests.now),
                         .init(start: MemoryRepository.segmentName(7), stop: MemoryRepository.segmentName(8), reason: "dropped", droppedAt: VerifyExpireUnitTests.now)])
        let warnings = report.warnings.filter { $0.kind == "wal-gap" }
        #expect(warnings.count == 2 && warnings.allSatisfy { $0.reason == "dropped" })
        #expect(warnings.contains { $0.message.contains("backup \(a.label) recover only to before \(MemoryRepository.segmentName(3))") }, "\(warnings)")
        #expect(warnings.contains { $0.message.contains("no backup was taken after it") })
        #expect(!report.warnings.contains { $0.kind == "unknown-file" }, "the dropped/ directory is pgkeep's own")

        // A backup whose consistency range covers a dropped segment cannot be restored: a problem.
        let b = try repo.backup("20260102-000000F", stop: VerifyExpireUnitTests.now - 60, first: 4, last: 5)
        let broken = try repo.verify()
        let missing = broken.problems.filter { $0.kind == "wal-missing" }
        #expect(missing.map(\.walFile) == [MemoryRepository.segmentName(4)])
        #expect(missing.first?.reason == "dropped" && missing.first?.backups == [b.label.text])
        #expect(missing.first?.message.contains("archive-push dropped it") == true)
        #expect(broken.backups.first { $0.label == b.label.text }?.status == "error")
    }

    @Test("info lists dropped runs that are still not stored (JSON archive[].dropped, a text WARNING)")
    func infoReportsDrops() throws {
        let repo = try MemoryRepository()
        for n: UInt64 in [1, 2, 5] { try repo.push(MemoryRepository.segmentName(n)) }
        _ = try repo.backup("20260101-000000F", stop: VerifyExpireUnitTests.now - 3600, first: 1, last: 2)
        let size = MemoryRepository.segmentSize
        // 5 was dropped, then stored after all (PostgreSQL asked again): only 3...4 are a gap.
        for record in DroppedWAL.records(for: (3...5).map { WALSegmentName(timeline: 1, segmentNumber: $0, segmentSize: size) },
                                         droppedAt: VerifyExpireUnitTests.now, queueSize: 3 << 20, queueMax: 1 << 20) {
            try record.save(storage: repo.storage, layout: repo.layout, archiveID: "15-1")
        }
        let info = InfoReport(storage: repo.storage, log: Log(consoleLevel: .off))
        let stanzas = try info.collect(only: "main")
        #expect(stanzas[0].archive[0].dropped == [.init(start: MemoryRepository.segmentName(3), stop: MemoryRepository.segmentName(4), at: VerifyExpireUnitTests.now)])
        #expect(try info.json(stanzas).contains("\"dropped\":[{\"at\":\(VerifyExpireUnitTests.now),\"start\":\"\(MemoryRepository.segmentName(3))\""))
        let text = info.text(stanzas)
        #expect(text.contains("WARNING: WAL \(MemoryRepository.segmentName(3))...\(MemoryRepository.segmentName(4)) was dropped by archive-push-queue-max"), "\(text)")
        #expect(text.contains("until a new backup"))
    }
}
