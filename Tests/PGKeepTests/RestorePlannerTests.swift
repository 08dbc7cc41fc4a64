import FoundationEssentials
import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig
import TestSupport

/// The archive used throughout, with 16 MiB segments:
///
///     TL1  backup B1 (0/2000028-0/2000100, stopped at t=1000)    backup B2 (0/5000028-0/5000100, t=2000)
///      `-- TL2 forks at 0/4000200 (after B1, before B2)
///            `-- TL3 forks at 0/7000080
///     segments: TL1 02 03 04 05 06 | TL2 04 05 06 07 | TL3 07 08
@Suite("Restore planner")
struct RestorePlannerTests {
    static func backup(_ label: String, timeline: UInt32 = 1, start: String, stop: String, stopTime: Int64) -> BackupSummary {
        BackupSummary(label: BackupLabel(label)!, type: .full, prior: nil, references: [], databaseID: 1,
                      timestampStart: stopTime - 10, timestampStop: stopTime, lsnStart: LSN(start)!, lsnStop: LSN(stop)!,
                      walStart: "", walStop: "", timeline: timeline, size: 100, repoSize: 50, fileCount: 3, compressType: .lz4)
    }

    static let b1 = backup("20261127-100000F", start: "0/2000028", stop: "0/2000100", stopTime: 1000)
    static let b2 = backup("20261127-110000F", start: "0/5000028", stop: "0/5000100", stopTime: 2000)

    static func catalog(without: Set<String> = []) throws -> ArchiveCatalog {
        let tl2 = try TimelineHistory(timeline: 2, text: "1\t0/4000200\tat restore point \"fork\"\n", path: "00000002.history")
        let tl3 = try TimelineHistory(timeline: 3, text: "1\t0/4000200\tat restore point \"fork\"\n\n2\t0/7000080\tno recovery target specified\n",
                                      path: "00000003.history")
        var names = ["02", "03", "04", "05", "06"].map { "0000000100000000000000" + $0 }
        names += ["04", "05", "06", "07"].map { "0000000200000000000000" + $0 }
        names += ["07", "08"].map { "0000000300000000000000" + $0 }
        return ArchiveCatalog(histories: [tl2, tl3],
                              segments: Dictionary(uniqueKeysWithValues: names.filter { !without.contains($0) }.map { ($0, UInt64(1000)) }))
    }

    static func target(_ kind: RecoveryTarget.Kind, _ value: RecoveryTarget.Value? = nil, timeline: RecoveryTarget.Timeline = .latest) -> RecoveryTarget {
        RecoveryTarget(kind: kind, value: value, exclusive: false, timeline: timeline, action: .promote)
    }

    static func choose(_ target: RecoveryTarget, set: BackupLabel? = nil, catalog: ArchiveCatalog) throws(PGKeepError) -> RestorePlanner.Choice {
        try RestorePlanner.choose(backups: [b1, b2], request: .init(target: target, set: set)) { _ in catalog }
    }

    static func plan(_ target: RecoveryTarget, set: BackupLabel? = nil, pastArchive: Bool = false, catalog: ArchiveCatalog) throws -> RestorePlan {
        let choice = try choose(target, set: set, catalog: catalog)
        return RestorePlanner.plan(stanza: "main", choice: choice, request: .init(target: target, set: set, pastArchive: pastArchive),
                                   contents: .init(segmentSize: .default, fileCount: 3, bytes: 100, repoBytes: 50),
                                   catalog: catalog, dataDirectory: "/pg")
    }

    // MARK: timelines

    @Test("latest follows the highest timeline that forked after the backup's stop, through every ancestor")
    func latestFollowsDescendants() throws {
        let catalog = try Self.catalog()
        let path = try RestorePlanner.resolve(.latest, backup: Self.b1, catalog: catalog).get()
        #expect(path.target == 3)
        #expect(path.steps == [
            .init(timeline: 1, begin: LSN("0/2000028")!, end: LSN("0/4000200")!),
            .init(timeline: 2, begin: LSN("0/4000200")!, end: LSN("0/7000080")!),
            .init(timeline: 3, begin: LSN("0/7000080")!, end: nil),
        ])
        // From B2, timelines 2 and 3 forked before it was consistent: latest stays on timeline 1.
        let fromB2 = try RestorePlanner.resolve(.latest, backup: Self.b2, catalog: catalog).get()
        #expect(fromB2.target == 1)
        #expect(fromB2.steps == [.init(timeline: 1, begin: LSN("0/5000028")!, end: nil)])
        #expect(try RestorePlanner.resolve(.current, backup: Self.b1, catalog: catalog).get().target == 1)
        #expect(try RestorePlanner.resolve(.id(2), backup: Self.b1, catalog: catalog).get().steps.map(\.timeline) == [1, 2])
    }

    @Test("a fork exactly at the backup's stop LSN is followed: recovery to immediate then promote forks there")
    func forkAtStopLSN() throws {
        let history = try TimelineHistory(timeline: 2, text: "1\t0/2000100\treached consistency\n", path: "h")
        let path = try RestorePlanner.path(from: Self.b1, to: 2, catalog: ArchiveCatalog(histories: [history])).get()
        #expect(path.steps.map(\.timeline) == [1, 2])
    }

    @Test("a target timeline that forked before the backup, does not descend from it, or does not exist is refused")
    func timelineRefusals() throws {
        let catalog = try Self.catalog()
        let forked = RestorePlanner.resolve(.id(2), backup: Self.b2, catalog: catalog)
        #expect(forked.failure?.code == .timelineInvalid)
        #expect(forked.failure?.message.contains("forked from timeline 1 at 0/4000200, before backup 20261127-110000F was consistent (stop LSN 0/5000100)") == true)
        let missing = RestorePlanner.resolve(.id(5), backup: Self.b1, catalog: catalog)
        #expect(missing.failure?.message.contains("00000005.history") == true)
        let onTwo = Self.backup("20261127-120000F", timeline: 2, start: "0/6000028", stop: "0/6000100", stopTime: 3000)
        let notDescendant = RestorePlanner.resolve(.id(1), backup: onTwo, catalog: catalog)
        #expect(notDescendant.failure?.message.contains("does not descend from timeline 2") == true)
        // A backup on timeline 2 whose own history file is missing still restores on its own timeline.
        #expect(try RestorePlanner.resolve(.current, backup: onTwo, catalog: ArchiveCatalog()).get().target == 2)
    }

    // MARK: WAL

    @Test("the WAL runs from the backup's start along the timeline path, the switch segment read from the child")
    func walAcrossTimelines() throws {
        let catalog = try Self.catalog()
        let path = try RestorePlanner.resolve(.latest, backup: Self.b1, catalog: catalog).get()
        let all = RestorePlanner.listWAL(backup: Self.b1, path: path, end: .endOfArchive, segmentSize: .default, catalog: catalog)
        #expect(all.segments.map(\.name) == [
            "000000010000000000000002", "000000010000000000000003", "000000020000000000000004", "000000020000000000000005",
            "000000020000000000000006", "000000030000000000000007", "000000030000000000000008",
        ])
        #expect(all.missing.isEmpty)
        #expect(all.repoBytes == 7000)
        #expect(all.consistencySegment.name == "000000010000000000000002")

        let toLSN = RestorePlanner.listWAL(backup: Self.b1, path: path, end: .lsn(LSN("0/6000010")!), segmentSize: .default, catalog: catalog)
        #expect(toLSN.segments.last?.name == "000000020000000000000006")
        let immediate = RestorePlanner.listWAL(backup: Self.b1, path: path, end: .consistency, segmentSize: .default, catalog: catalog)
        #expect(immediate.segments.map(\.name) == ["000000010000000000000002"])

        // On timeline 1 alone the same archive ends at segment 6; timeline 2's copies are not on the path.
        let current = try RestorePlanner.resolve(.current, backup: Self.b1, catalog: catalog).get()
        let onOne = RestorePlanner.listWAL(backup: Self.b1, path: current, end: .endOfArchive, segmentSize: .default, catalog: catalog)
        #expect(onOne.segments.map(\.name) == (2...6).map { "00000001000000000000000\($0)" })
    }

    @Test("a segment missing inside the range is a gap; missing segments after the last one are the end of the archive")
    func gaps() throws {
        let catalog = try Self.catalog(without: ["000000020000000000000005"])
        let path = try RestorePlanner.resolve(.latest, backup: Self.b1, catalog: catalog).get()
        let listing = RestorePlanner.listWAL(backup: Self.b1, path: path, end: .endOfArchive, segmentSize: .default, catalog: catalog)
        #expect(listing.missing.map(\.name) == ["000000020000000000000005"])
        #expect(listing.segments.count == 7)

        let ended = try Self.catalog(without: ["000000030000000000000008"])
        let shorter = RestorePlanner.listWAL(backup: Self.b1, path: path, end: .endOfArchive, segmentSize: .default, catalog: ended)
        #expect(shorter.missing.isEmpty)
        #expect(shorter.segments.last?.name == "000000030000000000000007")

        // An LSN target past the end of the archive needs segments that are not there.
        let past = RestorePlanner.listWAL(backup: Self.b1, path: path, end: .lsn(LSN("0/9000000")!), segmentSize: .default, catalog: catalog)
        #expect(past.missing.map(\.name) == ["000000020000000000000005", "000000030000000000000009"])
    }

    // MARK: backup choice

    @Test("time targets take the newest backup whose whole stop second is before the target")
    func chooseForTime() throws {
        let catalog = try Self.catalog()
        func chosen(_ seconds: Int64, micros: Int64 = 0) throws -> String {
            let text = TargetTime(seconds: seconds).text.replacingOccurrences(of: "+00:00", with: micros == 0 ? "+00" : ".\(micros)+00")
            return try Self.choose(Self.target(.time, .time(try TargetTime.parse(text))), catalog: catalog).backup.label.text
        }
        #expect(try chosen(1500) == Self.b1.label.text)
        #expect(try chosen(2000, micros: 5) == Self.b1.label.text, "B2 stopped within the target's second")
        #expect(try chosen(2001) == Self.b2.label.text)
        let choice = try Self.choose(Self.target(.time, .time(TargetTime(seconds: 1500))), catalog: catalog)
        #expect(choice.skipped.map(\.label) == [Self.b2.label])
        #expect(choice.reason.contains("stop time"))
        let none = #expect(throws: PGKeepError.self) { try Self.choose(Self.target(.time, .time(TargetTime(seconds: 900))), catalog: catalog) }
        #expect(none?.code == .targetUnreachable)
    }

    @Test("LSN targets take the newest backup whose stop LSN is at or before the target")
    func chooseForLSN() throws {
        let catalog = try Self.catalog()
        #expect(try Self.choose(Self.target(.lsn, .lsn(LSN("0/5000100")!), timeline: .current), catalog: catalog).backup.label == Self.b2.label)
        #expect(try Self.choose(Self.target(.lsn, .lsn(LSN("0/50000FF")!), timeline: .current), catalog: catalog).backup.label == Self.b1.label)
        let none = #expect(throws: PGKeepError.self) { try Self.choose(Self.target(.lsn, .lsn(LSN("0/100")!)), catalog: catalog) }
        #expect(none?.code == .targetUnreachable)
    }

    @Test("backups the target timeline forked away from are skipped; --set is honoured even when it cannot work")
    func chooseAlongTimeline() throws {
        let catalog = try Self.catalog()
        let onTwo = try Self.choose(Self.target(.xid, .xid(731), timeline: .id(2)), catalog: catalog)
        #expect(onTwo.backup.label == Self.b1.label)
        #expect(onTwo.skipped.first?.reason.contains("forked") == true)
        #expect(try Self.choose(Self.target(.default), catalog: catalog).backup.label == Self.b2.label)

        let forced = try Self.choose(Self.target(.default, timeline: .id(2)), set: Self.b2.label, catalog: catalog)
        #expect(forced.backup.label == Self.b2.label)
        #expect(forced.path.failure?.code == .timelineInvalid)
        let unknown = #expect(throws: PGKeepError.self) {
            try Self.choose(Self.target(.default), set: BackupLabel("20261127-130000F")!, catalog: catalog)
        }
        #expect(unknown?.code == .backupMissing)
    }

    // MARK: reading the archive

    @Test("the catalog reads history files (compressed or not, checksums verified) and complete segments only")
    func catalogFromStorage() throws {
        let storage = MemoryStorage()
        let layout = try RepositoryLayout(stanza: "main")
        func store(_ name: String, _ bytes: [UInt8], compression: CompressionType = .none, checksumOf: [UInt8]? = nil) throws {
            let checksum = try SHA256Digest.of(checksumOf ?? bytes)
            let parent = try layout.archiveParent(archiveID: "15-1", walFile: name)
            var stored = bytes
            if let compressor = try compression.makeCompressFilter(level: compression.defaultLevel, bufferSize: 1 << 16) {
                let sink = CollectingSink(limit: 1 << 20, what: "an archived history file")
                try FilterChain([compressor]).run(from: MemorySource(bytes), into: sink, buffer: IOBuffer(size: 1 << 16))
                stored = sink.bytes
            }
            try storage.writeSmallFile(try parent.appending(RepositoryLayout.archiveObjectName(walFile: name, checksum: checksum, compression: compression)), stored)
        }
        try store("00000002.history", Array("1\t0/4000200\tat restore point \"fork\"\n".utf8), compression: .lz4)
        try store("000000010000000000000002", [1, 2, 3])
        try store("000000010000000000000003", [4, 5, 6, 7])
        try store("000000010000000000000003", [9], compression: .zst)
        try store("000000010000000000000004.partial", [1])
        try store("000000010000000000000002.00000028.backup", [1])

        let catalog = try ArchiveCatalog.load(storage: storage, layout: layout, archiveID: "15-1", bufferSize: 1 << 16)
        #expect(catalog.histories.keys.sorted() == [2])
        #expect(catalog.history(of: 2)?.entries.first?.switchPoint == LSN("0/4000200"))
        #expect(catalog.history(of: 1)?.entries.isEmpty == true)
        #expect(catalog.history(of: 3) == nil)
        #expect(catalog.segments.keys.sorted() == ["000000010000000000000002", "000000010000000000000003"])
        #expect(catalog.segments["000000010000000000000002"] == 3)
        #expect(catalog.conflicting == ["000000010000000000000003"])
        #expect(try ArchiveCatalog.load(storage: storage, layout: layout, archiveID: "15-9", bufferSize: 1 << 16).segments.isEmpty)

        try store("00000003.history", Array("1\t0/4000200\tx\n".utf8), checksumOf: [0])
        let damaged = #expect(throws: PGKeepError.self) {
            try ArchiveCatalog.load(storage: storage, layout: layout, archiveID: "15-1", bufferSize: 1 << 16)
        }
        #expect(damaged?.code == .checksumMismatch)
        #expect(damaged?.message.contains("00000003.history") == true)
    }

    // MARK: plans

    @Test("a restorable plan names the backup, timeline path, WAL, sizes and settings, as text and JSON")
    func restorablePlan() throws {
        let plan = try Self.plan(Self.target(.lsn, .lsn(LSN("0/7000100")!), timeline: .id(3)), catalog: try Self.catalog())
        #expect(plan.isRestorable)
        try plan.check()
        #expect(plan.backup.label == Self.b1.label)
        #expect(plan.targetTimeline == 3)
        #expect(plan.wal.segments.count == 6)
        #expect(plan.wal.historyFiles == ["00000003.history"])
        #expect(plan.wal.bytes == 6 * (16 << 20))
        #expect(plan.read.backupRepoBytes == 50 && plan.read.walRepoBytes == 6000)
        #expect(plan.write.files == 4)
        #expect(plan.recovery.settings.map(\.name) == ["recovery_target_lsn", "recovery_target_timeline", "recovery_target_action"])
        #expect(plan.recovery.settings.map(\.value) == ["0/7000100", "3", "promote"])

        let text = plan.text()
        #expect(text.contains("000000010000000000000002 .. 000000010000000000000003 (2)"))
        #expect(text.contains("000000030000000000000007"))
        #expect(text.contains("result:        restorable"))
        let decoded = try JSONDecoder().decode(RestorePlan.self, from: Data(try plan.json().utf8))
        #expect(decoded.wal.segments == plan.wal.segments)
        #expect(decoded.timelinePath.map(\.timeline) == [1, 2, 3])
    }

    @Test("targets before the backup's consistency point, WAL gaps and forked timelines are problems with their codes")
    func refusedPlans() throws {
        let catalog = try Self.catalog()
        let early = try Self.plan(Self.target(.lsn, .lsn(LSN("0/5000000")!), timeline: .current), set: Self.b2.label, catalog: catalog)
        #expect(early.problems.map(\.code) == [ErrorCode.targetUnreachable.rawValue])
        let error = #expect(throws: PGKeepError.self) { try early.check() }
        #expect(error?.code == .targetUnreachable)
        #expect(error?.message.contains("nothing was written") == true)
        let earlyTime = try Self.plan(Self.target(.time, .time(TargetTime(seconds: 1999)), timeline: .current), set: Self.b2.label, catalog: catalog)
        #expect(earlyTime.problems.map(\.code) == [ErrorCode.targetUnreachable.rawValue])

        let gap = try Self.plan(Self.target(.default), set: Self.b1.label, catalog: try Self.catalog(without: ["000000020000000000000005"]))
        #expect(gap.problems.map(\.code) == [ErrorCode.walMissing.rawValue])
        #expect(gap.problems[0].message.contains("gap"))
        #expect(gap.wal.missing == ["000000020000000000000005"])
        #expect(gap.text().contains("PROBLEM"))

        let pastEnd = try Self.plan(Self.target(.lsn, .lsn(LSN("0/9000000")!), timeline: .id(3)), set: Self.b1.label, catalog: catalog)
        #expect(pastEnd.problems.map(\.code) == [ErrorCode.walMissing.rawValue])
        #expect(pastEnd.problems.first?.message.contains("the archive ends at 000000030000000000000008, before the target") == true)

        let unconsistent = try Self.plan(Self.target(.immediate), set: Self.b1.label, catalog: try Self.catalog(without: ["000000010000000000000002"]))
        #expect(unconsistent.problems.first?.message.contains("cannot become consistent") == true)

        let forked = try Self.plan(Self.target(.default, timeline: .id(3)), set: Self.b2.label, catalog: catalog)
        #expect(forked.problems.map(\.code) == [ErrorCode.timelineInvalid.rawValue])
        #expect(forked.targetTimeline == nil)
    }

    // MARK: the end of the archive

    /// The fixture archive stored in a `MemoryStorage` (which stamps each object with the wall
    /// clock), read back as a restore reads it.
    static func storedCatalog() throws -> ArchiveCatalog {
        let storage = MemoryStorage()
        let layout = try RepositoryLayout(stanza: "main")
        let fixture = try catalog()
        for (timeline, history) in fixture.histories {
            let text = history.entries.map { "\($0.parent)\t\($0.switchPoint)\tfork\n" }.joined()
            try storeArchived(TimelineHistory.fileName(for: timeline), Array(text.utf8), storage: storage, layout: layout)
        }
        for name in fixture.segments.keys.sorted() {
            try storeArchived(name, Array(name.utf8), storage: storage, layout: layout)
        }
        return try ArchiveCatalog.load(storage: storage, layout: layout, archiveID: "15-1", bufferSize: 1 << 16)
    }

    static func storeArchived(_ name: String, _ bytes: [UInt8], storage: MemoryStorage, layout: RepositoryLayout) throws {
        let parent = try layout.archiveParent(archiveID: "15-1", walFile: name)
        let object = RepositoryLayout.archiveObjectName(walFile: name, checksum: try SHA256Digest.of(bytes), compression: .none)
        try storage.writeSmallFile(try parent.appending(object), bytes)
    }

    /// A time target at `seconds` after the epoch, plus `fraction` ("999999") of a second.
    static func time(_ seconds: Int64, fraction: String = "") throws -> RecoveryTarget {
        let text = TargetTime(seconds: seconds).text.replacingOccurrences(of: "+00:00", with: (fraction.isEmpty ? "" : "." + fraction) + "+00")
        return target(.time, .time(try TargetTime.parse(text)))
    }

    @Test("a time target after the newest WAL segment of the path was stored is refused (72) naming the segment and its stored time, with hints; --target-past-archive makes it a note")
    func timeTargetPastTheArchive() throws {
        let catalog = try Self.storedCatalog()
        let now = Int64(Clock.nowPrecise())
        let plan = try Self.plan(try Self.time(now + 3600), catalog: catalog)
        #expect(plan.problems.map(\.code) == [ErrorCode.walMissing.rawValue], "\(plan.text())")
        let problem = try #require(plan.problems.first)
        // B2 is chosen; timelines 2 and 3 forked before it, so the path is timeline 1's, whose segment 6 was stored last.
        #expect(problem.message.contains("is past the end of the archive") && problem.message.contains("000000010000000000000006"), "\(problem.message)")
        #expect(problem.message.contains("was stored at " + TargetTime(seconds: now).text.prefix(13)), "the stored time is named: \(problem.message)")
        #expect(problem.message.contains("recovery ended before configured recovery target was reached"))
        let hint = try #require(problem.hint)
        #expect(hint.contains("pg_switch_wal()") && hint.contains("--type=default") && hint.contains("--target-past-archive"), "\(hint)")
        let refused = #expect(throws: PGKeepError.self) { try plan.check() }
        #expect(refused?.code == .walMissing && refused?.message.contains("nothing was written") == true)

        let anyway = try Self.plan(try Self.time(now + 3600), pastArchive: true, catalog: catalog)
        #expect(anyway.isRestorable, "\(anyway.text())")
        #expect(anyway.notes.contains { $0.contains("past the end of the archive") && $0.contains("restoring anyway (--target-past-archive)") })
        #expect(anyway.wal.segments.last == "000000010000000000000006")
    }

    @Test("a time target before the newest segment's stored time, or within a second after it, is restorable and noted with that time")
    func timeTargetWithinTheArchive() throws {
        var catalog = try Self.catalog()
        let names = catalog.segments.keys.sorted()
        let stored: Int64 = 5_000_000_000_000 // 5000 s after the epoch, in nanoseconds
        catalog.segmentsStored = Dictionary(uniqueKeysWithValues: names.map { ($0, stored - 1_000_000_000) })
        catalog.segmentsStored["000000030000000000000008"] = stored
        for seconds in [Int64(4000), 5000] {
            let plan = try Self.plan(try Self.time(seconds, fraction: seconds == 5000 ? "999999" : ""), set: Self.b1.label, catalog: catalog)
            #expect(plan.isRestorable, "\(seconds): \(plan.text())")
            #expect(plan.notes.contains { $0.contains("000000030000000000000008, was stored at \(TargetTime(seconds: 5000))") }, "\(plan.notes)")
        }
        #expect(!(try Self.plan(try Self.time(5001), set: Self.b1.label, catalog: catalog).isRestorable))
    }

    @Test("the bound is the newest stored time of every segment of the path, not the last one's; a segment of another timeline does not count; unknown stored times skip the check")
    func timeTargetBound() throws {
        var catalog = try Self.catalog()
        catalog.segmentsStored = Dictionary(uniqueKeysWithValues: catalog.segments.keys.map { ($0, Int64(1_000_000_000_000)) })
        // Segment 5 of timeline 2 was pushed again later (or late, asynchronously).
        catalog.segmentsStored["000000020000000000000005"] = 3_000_000_000_000
        // Timeline 1's segment 6 is not on the path to timeline 3 (it forked at segment 4).
        catalog.segmentsStored["000000010000000000000006"] = 9_000_000_000_000
        #expect(try Self.plan(try Self.time(2500), set: Self.b1.label, catalog: catalog).isRestorable)
        let past = try Self.plan(try Self.time(3001), set: Self.b1.label, catalog: catalog)
        #expect(past.problems.first?.message.contains("000000020000000000000005") == true, "\(past.text())")
        // On timeline 1 alone, segment 6 is on the path.
        #expect(try Self.plan(Self.target(.time, try Self.time(8000).value, timeline: .current), set: Self.b1.label, catalog: catalog).isRestorable)

        catalog.segmentsStored["000000020000000000000006"] = 0
        #expect(try Self.plan(try Self.time(3001), set: Self.b1.label, catalog: catalog).isRestorable, "a storage that cannot tell a time proves nothing")
    }

    @Test("an LSN target past the archive is a note with --target-past-archive, but WAL archive-push dropped stays refused")
    func lsnTargetPastTheArchive() throws {
        let target = Self.target(.lsn, .lsn(LSN("0/9000000")!), timeline: .id(3))
        let anyway = try Self.plan(target, set: Self.b1.label, pastArchive: true, catalog: try Self.catalog())
        #expect(anyway.isRestorable, "\(anyway.text())")
        #expect(anyway.notes.contains { $0.contains("the archive ends at 000000030000000000000008, before the target") && $0.contains("--target-past-archive") })
        #expect(anyway.wal.missing == ["000000030000000000000009"])

        var dropped = try Self.catalog()
        dropped.dropped = [DroppedWAL(start: "000000030000000000000009", stop: "000000030000000000000009", walSegmentSize: .default,
                                      droppedAt: 3000, queueSize: 1 << 30, queueMax: 1 << 29)]
        let gone = try Self.plan(target, set: Self.b1.label, pastArchive: true, catalog: dropped)
        #expect(gone.problems.map(\.code) == [ErrorCode.walMissing.rawValue], "dropped WAL exists nowhere to put into pg_wal: \(gone.text())")
        #expect(gone.problems.first?.message.contains("dropped by archive-push-queue-max") == true)
    }

    @Test("latest notes the archived timelines it did not follow")
    func notesTimelinesNotFollowed() throws {
        let plan = try Self.plan(Self.target(.default), catalog: try Self.catalog())
        #expect(plan.backup.label == Self.b2.label)
        #expect(plan.targetTimeline == 1)
        #expect(plan.notes.contains { $0.contains("timeline 2 is not followed") })
        #expect(plan.notes.contains { $0.contains("timeline 3 is not followed") })
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
