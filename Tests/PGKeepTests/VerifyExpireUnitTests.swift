import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

/// A small repository in memory: real sealed info files and manifests, stored objects written
/// through the mover, WAL objects named by their checksum, with 1 MiB segments to stay small.
final class MemoryRepository {
    let storage = MemoryStorage(name: "verify")
    let layout = try! RepositoryLayout(stanza: "main")
    let identity = DatabaseIdentity(id: 1, systemIdentifier: PostgresFixture.systemIdentifier, version: 15,
                                    controlVersion: 1300, catalogVersion: 202209061)
    static let segmentSize = WALSegmentSize(bytes: 1 << 20)!
    let log = Log(consoleLevel: .off)

    init() throws {
        try SealedFile.save(ArchiveInfo(current: identity), to: layout.archiveInfo, in: storage)
        try SealedFile.save(BackupInfo(current: identity), to: layout.backupInfo, in: storage)
    }

    /// Segments 1 to 6 archived and three full backups over them, two each, stopped 300, 200 and
    /// 100 seconds before `now`: what a retention of one full expires two of.
    static func threeFullBackups(before now: Int64) throws -> (MemoryRepository, [BackupSummary]) {
        let repo = try MemoryRepository()
        for n in 1...6 { try repo.push(segmentName(UInt64(n))) }
        let backups = [
            try repo.backup("20260101-000000F", stop: now - 300, first: 1, last: 2),
            try repo.backup("20260102-000000F", stop: now - 200, first: 3, last: 4),
            try repo.backup("20260103-000000F", stop: now - 100, first: 5, last: 6),
        ]
        return (repo, backups)
    }

    static func segmentName(_ number: UInt64, timeline: UInt32 = 1) -> String {
        WALSegmentName(timeline: TimelineID(rawValue: timeline), segmentNumber: number, segmentSize: segmentSize).name
    }

    /// Archives a segment (or any WAL file name) with deterministic content; returns its object.
    @discardableResult
    func push(_ name: String, bytes: [UInt8]? = nil, compression: CompressionType = .none) throws -> StoragePath {
        var content = bytes ?? [UInt8](repeating: 0, count: Int(Self.segmentSize.bytes))
        if bytes == nil { for (i, b) in name.utf8.enumerated() { content[i * 4096] = b } }
        let checksum = try SHA256Digest.of(content)
        let object = try layout.archiveParent(archiveID: identity.archiveID, walFile: name)
            .appending(RepositoryLayout.archiveObjectName(walFile: name, checksum: checksum, compression: compression))
        var stored = content
        if compression != .none {
            let sink = CollectSink(limit: 1 << 30)
            try FilterChain([try compression.makeCompressFilter(level: compression.defaultLevel, bufferSize: 1 << 16)!])
                .run(from: MemorySource(content), into: sink, buffer: IOBuffer(size: 1 << 16))
            stored = sink.bytes
        }
        try storage.writeSmallFile(object, stored)
        return object
    }

    /// A full backup needing segments `first...last`, with `files` stored lz4-compressed.
    @discardableResult
    func backup(_ label: String, stop: Int64, first: UInt64, last: UInt64,
                files: [(String, [UInt8])] = [("pg_data/base/1/1259", Array(repeating: 7, count: 40_000)),
                                              ("pg_data/global/pg_control", Array(0..<255))]) throws -> BackupSummary {
        let label = BackupLabel(label)!
        let mover = Mover(storage: storage, host: LocalHost(), processMax: 1, bufferSize: 1 << 16)
        let walStart = Self.segmentName(first), walStop = Self.segmentName(last)
        var manifest = Manifest(
            backup: .init(label: label, type: .full, prior: nil, timestampStart: stop - 10, timestampStop: stop,
                          lsnStart: LSN(first << 20), lsnStop: LSN((last << 20) + 64), walStart: walStart, walStop: walStop, timeline: 1),
            database: .init(id: 1, systemIdentifier: identity.systemIdentifier, version: 15, controlVersion: 1300,
                            catalogVersion: 202209061, walSegmentSize: UInt32(Self.segmentSize.bytes), pageChecksums: true),
            options: .init(compressType: .lz4, compressLevel: 1, bufferSize: 1 << 16, processMax: 1, startFast: true))
        for (name, bytes) in files {
            let stored = try mover.store(bytes: bytes, destination: try layout.backupFile(label: label, name: name, compression: .lz4),
                                         compression: .lz4, compressLevel: 1)
            manifest.files.append(.init(name: name, size: UInt64(bytes.count), mtime: stop, mode: 0o600, user: nil, group: nil,
                                        checksum: stored.checksum, repoSize: stored.repoSize, repoChecksum: stored.repoChecksum,
                                        compression: .lz4, reference: label))
        }
        try SealedFile.save(manifest, to: try layout.manifest(label: label), in: storage)
        let summary = BackupSummary(label: label, type: .full, prior: nil, references: [], databaseID: 1,
                                    timestampStart: stop - 10, timestampStop: stop, lsnStart: manifest.backup.lsnStart,
                                    lsnStop: manifest.backup.lsnStop, walStart: walStart, walStop: walStop, timeline: 1,
                                    size: manifest.totalSize, repoSize: manifest.totalRepoSize, fileCount: manifest.files.count,
                                    compressType: .lz4)
        var info = try InfoFiles.loadBackupInfo(storage, layout, warn: { _ in })
        info.backups.append(summary)
        try SealedFile.save(info, to: layout.backupInfo, in: storage)
        return summary
    }

    func verify(set: String? = nil, sinceLast: Bool = false, processMax: Int = 2) throws -> VerifyReport {
        try VerifyRun(storage: storage, layout: layout,
                      options: VerifyOptions(set: set.flatMap(BackupLabel.init), sinceLast: sinceLast, processMax: processMax, bufferSize: 1 << 16),
                      log: log).run()
    }

    func flipByte(_ path: StoragePath, at offset: Int? = nil) throws {
        var bytes = try #require(try storage.readSmallFile(path))
        bytes[offset ?? bytes.count / 2] ^= 0x01
        try storage.writeSmallFile(path, bytes)
    }

    func walObject(_ name: String) throws -> StoragePath {
        try #require(try ArchiveLookup.find(walFile: name, archiveID: identity.archiveID, storage: storage, layout: layout).first).object
    }
}

@Suite("Verify and expire on a memory repository")
struct VerifyExpireUnitTests {
    static let now: Int64 = 1_800_000_000

    /// Two backups (segments 1-2 and 4-5) and WAL 1...6.
    func sound() throws -> (MemoryRepository, BackupSummary, BackupSummary) {
        let repo = try MemoryRepository()
        for n in 1...6 { try repo.push(MemoryRepository.segmentName(UInt64(n)), compression: n % 2 == 0 ? .zst : .none) }
        let a = try repo.backup("20260101-000000F", stop: Self.now - 3600, first: 1, last: 2)
        let b = try repo.backup("20260102-000000F", stop: Self.now - 60, first: 4, last: 5)
        return (repo, a, b)
    }

    @Test("a sound repository verifies clean and the state records what was proven")
    func clean() throws {
        let (repo, a, b) = try sound()
        let report = try repo.verify()
        #expect(report.problems == [], "\(report.problems)")
        #expect(report.warnings == [], "\(report.warnings)")
        #expect(report.status == "ok")
        #expect(report.checked.backupFiles == 4)
        #expect(report.checked.walFiles == 6)
        #expect(report.backups.map(\.status) == ["ok", "ok"])
        #expect(report.archive.first?.timelines.first?.ranges == [.init(start: MemoryRepository.segmentName(1), stop: MemoryRepository.segmentName(6))])

        let state = try #require(VerifyState.load(repo.storage, repo.layout, warn: { Issue.record("\($0)") }))
        #expect(state.backups.map(\.label) == [a.label, b.label])
        #expect(state.archive.first?.segments == [.init(start: MemoryRepository.segmentName(1), stop: MemoryRepository.segmentName(6))])
        #expect(state.archive.first?.walSegmentSize == MemoryRepository.segmentSize)
    }

    @Test("verify state survives save and load, and the copy takes over from a damaged main file")
    func stateRoundTrip() throws {
        let repo = try MemoryRepository()
        let state = VerifyState(updated: 42, backups: [.init(label: BackupLabel("20260101-000000F")!, timestampStop: 7, verifiedAt: 9)],
                                archive: [.init(archiveID: "15-1", walSegmentSize: .default,
                                                segments: [.init(start: "000000010000000000000001", stop: "000000010000000000000009")],
                                                files: ["00000002.history-" + String(repeating: "a", count: 64)])])
        try state.save(repo.storage, repo.layout)
        #expect(VerifyState.load(repo.storage, repo.layout, warn: { Issue.record("\($0)") }) == state)
        #expect(state.isProven(segment: "000000010000000000000005", archiveID: "15-1"))
        #expect(!state.isProven(segment: "00000001000000000000000A", archiveID: "15-1"))
        #expect(!state.isProven(segment: "000000020000000000000005", archiveID: "15-1"))
        #expect(!state.isProven(segment: "000000010000000000000005", archiveID: "15-2"))
        try repo.flipByte(repo.layout.verifyState, at: 20)
        var warned = false
        #expect(VerifyState.load(repo.storage, repo.layout, warn: { _ in warned = true }) == state)
        #expect(warned)

        let size = WALSegmentSize(bytes: 1 << 20)!
        let names = [1, 2, 3, 5, 6].map { WALSegmentName(timeline: TimelineID(rawValue: 1), segmentNumber: $0, segmentSize: size) }
            + [WALSegmentName(timeline: TimelineID(rawValue: 2), segmentNumber: 7, segmentSize: size)]
        #expect(VerifyState.ranges(of: names).map { "\($0.start.suffix(2))-\($0.stop.suffix(2))" } == ["01-03", "05-06", "07-07"])
    }

    @Test("--since-last re-reads only what is new, and keeps re-reporting what was damaged")
    func sinceLast() throws {
        let (repo, _, _) = try sound()
        _ = try repo.verify()
        try repo.push(MemoryRepository.segmentName(7))
        let c = try repo.backup("20260103-000000F", stop: Self.now, first: 7, last: 7)
        let report = try repo.verify(sinceLast: true)
        #expect(report.problems == [], "\(report.problems)")
        #expect(report.checked.walFiles == 1)
        #expect(report.checked.backupFiles == 2)
        #expect(report.checked.skipped == 6 + 4)
        #expect(report.backups.map(\.status) == ["skipped", "skipped", "ok"])

        // Damage in a proven backup is not seen by --since-last (that is its contract), but new
        // damage is, and stays reported until mended.
        try repo.flipByte(try repo.walObject(MemoryRepository.segmentName(8 - 1)))
        try repo.push(MemoryRepository.segmentName(8))
        let after = try repo.verify(sinceLast: true)
        #expect(after.problems.isEmpty, "segment 7 was proven: \(after.problems)")
        #expect(after.checked.walFiles == 1)
        let full = try repo.verify()
        #expect(full.problems.map(\.walFile) == [MemoryRepository.segmentName(7)])
        #expect(full.problems.first?.backups == [c.label.text])
        let again = try repo.verify(sinceLast: true)
        #expect(again.problems.map(\.walFile) == [MemoryRepository.segmentName(7)], "a damaged object is never recorded as proven")
    }

    @Test("damage is named exactly, with the backups it affects")
    func damage() throws {
        let (repo, a, b) = try sound()
        let stored = try repo.layout.backupFile(label: a.label, name: "pg_data/base/1/1259", compression: .lz4)
        try repo.flipByte(stored)
        let segment2 = try repo.walObject(MemoryRepository.segmentName(2))
        let bytes = try #require(try repo.storage.readSmallFile(segment2))
        try repo.storage.writeSmallFile(segment2, Array(bytes.prefix(bytes.count / 2)))   // a truncated zst frame
        let segment3 = try repo.walObject(MemoryRepository.segmentName(3))
        let plain = try #require(try repo.storage.readSmallFile(segment3))
        try repo.storage.writeSmallFile(segment3, Array(plain.prefix(4096)))      // truncated, stored as is
        try repo.storage.remove(try repo.walObject(MemoryRepository.segmentName(5)))

        let report = try repo.verify(processMax: 3)
        let problems = report.problems.map { "\($0.kind) \($0.walFile ?? $0.path) \($0.backups)" }
        #expect(Set(problems) == [
            "checksum-mismatch \(stored) [\"\(a.label)\"]",
            "checksum-mismatch \(MemoryRepository.segmentName(2)) [\"\(a.label)\"]",
            "size-mismatch \(MemoryRepository.segmentName(3)) []",
            "wal-missing \(MemoryRepository.segmentName(5)) [\"\(b.label)\"]",
        ], "\(report.problems)")
        #expect(report.warnings.map(\.kind) == ["wal-gap"])
        #expect(report.archive.first?.timelines.first?.gaps == [.init(start: MemoryRepository.segmentName(5), stop: MemoryRepository.segmentName(5))])
        #expect(report.backups.map(\.status) == ["error", "error"])
        let state = try #require(VerifyState.load(repo.storage, repo.layout, warn: { _ in }))
        #expect(state.backups.isEmpty)
        #expect(state.archive.first?.segments == [.init(start: MemoryRepository.segmentName(1), stop: MemoryRepository.segmentName(1)),
                                                  .init(start: MemoryRepository.segmentName(4), stop: MemoryRepository.segmentName(4)),
                                                  .init(start: MemoryRepository.segmentName(6), stop: MemoryRepository.segmentName(6))])

        // --set narrows to one backup and its WAL.
        let one = try repo.verify(set: b.label.text)
        #expect(one.backups.map(\.label) == [b.label.text])
        #expect(one.problems.map(\.kind) == ["wal-missing"])
        #expect(one.checked.walFiles == 1)
    }

    @Test("info files: a damaged main file with a good copy is a warning, both damaged is a problem")
    func infoTwins() throws {
        let (repo, _, _) = try sound()
        try repo.flipByte(repo.layout.backupInfo, at: 10)
        let warned = try repo.verify()
        #expect(warned.problems == [])
        #expect(warned.warnings.map { "\($0.kind) \($0.path)" } == ["copy-used backup/main/backup.info"])
        #expect(warned.backups.count == 2)

        try repo.flipByte(try SealedFile.copyPath(of: repo.layout.backupInfo), at: 10)
        let failed = try repo.verify()
        #expect(failed.problems.map { "\($0.kind) \($0.path)" } == ["info-invalid backup/main/backup.info"])
        #expect(failed.backups.isEmpty)
        #expect(failed.checked.walFiles == 6, "the archive is still verified")
    }

    @Test("a reference must resolve to a listed backup holding the same stored object")
    func references() throws {
        let (repo, a, b) = try sound()
        let path = try repo.layout.manifest(label: b.label)
        var manifest = try #require(try SealedFile.load(Manifest.self, from: path, in: repo.storage))
        var borrowed = try #require(try SealedFile.load(Manifest.self, from: repo.layout.manifest(label: a.label), in: repo.storage)).files[0]
        borrowed.name = "pg_data/base/1/1259"
        manifest.files[0] = borrowed                         // refers to a's object: resolves
        var dangling = borrowed
        dangling.name = "pg_data/base/1/2608"
        dangling.reference = BackupLabel("20251231-000000F")!  // not in backup.info
        manifest.files.append(dangling)
        var wrong = borrowed
        wrong.repoChecksum = try SHA256Digest.of([1, 2, 3])   // a's manifest disagrees
        wrong.name = "pg_data/base/1/1259"
        wrong.compression = .lz4
        manifest.files.append(wrong)
        try SealedFile.save(manifest, to: path, in: repo.storage)

        let report = try repo.verify()
        #expect(Set(report.problems.map { "\($0.kind) \($0.backups)" }) == ["reference-missing [\"\(b.label)\"]", "reference-invalid [\"\(b.label)\"]"],
                "\(report.problems)")
        #expect(report.backups.map(\.status) == ["ok", "error"])
    }

    @Test("expire: backup.info first, then directories and WAL; dry run removes nothing; interrupted directories handled")
    func expireOnMemory() throws {
        let repo = try MemoryRepository()
        for n in 1...9 { try repo.push(MemoryRepository.segmentName(UInt64(n))) }
        try repo.push("00000002.history", bytes: Array("1\t0/9000000\tno recovery target specified\n".utf8))
        let a = try repo.backup("20260101-000000F", stop: Self.now - 300, first: 2, last: 3)
        let b = try repo.backup("20260102-000000F", stop: Self.now - 200, first: 5, last: 5)
        let c = try repo.backup("20260103-000000F", stop: Self.now - 100, first: 7, last: 8)
        // An interrupted backup older than the newest listed one (no manifest): removed.
        try repo.storage.writeSmallFile(try repo.layout.backupFile(label: BackupLabel("20260101-120000F")!, name: "pg_data/PG_VERSION", compression: .none), [1])
        // A directory newer than every listed backup, without a manifest: may be running elsewhere, kept.
        let running = try repo.layout.backupFile(label: BackupLabel("20260104-000000F")!, name: "pg_data/PG_VERSION", compression: .none)
        try repo.storage.writeSmallFile(running, [1])

        func expire(_ policy: RetentionPolicy, set: String? = nil, dryRun: Bool = false) throws -> ExpireOutcome {
            try ExpireRun(storage: repo.storage, layout: repo.layout,
                          options: ExpireOptions(policy: policy, set: set.flatMap(BackupLabel.init), dryRun: dryRun, lockPath: "/nonexistent"),
                          log: repo.log).runLocked(now: Self.now)
        }
        func archived() throws -> [String] {
            try ArchiveListing(storage: repo.storage, layout: repo.layout, archiveID: "15-1").objects.map(\.walName)
        }
        let before = try archived()

        let dry = try expire(RetentionPolicy(full: 1), dryRun: true)
        #expect(dry.expired.map(\.label) == [b.label, a.label])
        #expect(dry.orphans == ["20260101-120000F"])
        #expect(dry.wal == [.init(archiveID: "15-1", first: MemoryRepository.segmentName(1), last: MemoryRepository.segmentName(6), count: 6)])
        #expect(try archived() == before)
        #expect(try InfoFiles.loadBackupInfo(repo.storage, repo.layout, warn: { _ in }).backups.count == 3)

        let outcome = try expire(RetentionPolicy(full: 2, archive: 1))
        #expect(outcome.expired.map(\.label) == [a.label])
        #expect(try InfoFiles.loadBackupInfo(repo.storage, repo.layout, warn: { _ in }).backups.map(\.label) == [b.label, c.label])
        #expect(try repo.storage.list(repo.layout.backupRoot).filter { $0.kind == .directory }.map(\.name)
                == [b.label.text, c.label.text, "20260104-000000F"])
        // b's consistency range (5) and everything from c's start (7) stay, and the history file.
        #expect(try archived() == [5, 7, 8, 9].map { MemoryRepository.segmentName(UInt64($0)) } + ["00000002.history"])
        #expect(try repo.verify().problems == [])

        // --set: expires one backup, then refuses the only full.
        _ = try expire(RetentionPolicy(), set: b.label.text)
        #expect(try InfoFiles.loadBackupInfo(repo.storage, repo.layout, warn: { _ in }).backups.map(\.label) == [c.label])
        do {
            _ = try expire(RetentionPolicy(), set: c.label.text)
            Issue.record("expired the only full backup")
        } catch {
            #expect((error as? PGKeepError)?.code == .expireRefused)
        }
    }

    @Test("expire removes drop records wholly before the oldest WAL kept (record and copy, a lone copy too), keeps those reaching into kept WAL; info shows no dropped WAL older than every backup's")
    func expireRemovesOldDropRecords() throws {
        let repo = try MemoryRepository()
        for n: UInt64 in [3, 5, 8, 9, 12] { try repo.push(MemoryRepository.segmentName(n)) }
        let name = { (n: UInt64) in MemoryRepository.segmentName(n) }
        let directory = try DroppedWAL.directory(layout: repo.layout, archiveID: "15-1")
        // 8 was dropped, then stored after all: [6...8] reaches into the WAL c keeps.
        for (first, last) in [(1, 2), (4, 4), (6, 8), (10, 11)] as [(UInt64, UInt64)] {
            try DroppedWAL(start: name(first), stop: name(last), walSegmentSize: MemoryRepository.segmentSize, droppedAt: Self.now - 400,
                           queueSize: 3 << 20, queueMax: 1 << 20).save(storage: repo.storage, layout: repo.layout, archiveID: "15-1")
        }
        // A crash of an earlier expire between a record and its copy: only the copy of [4...4] is left.
        try repo.storage.remove(try directory.appending("\(name(4))-\(name(4))"))
        _ = try repo.backup("20260101-000000F", stop: Self.now - 300, first: 3, last: 3)
        _ = try repo.backup("20260102-000000F", stop: Self.now - 200, first: 5, last: 5)
        _ = try repo.backup("20260103-000000F", stop: Self.now - 100, first: 8, last: 9)

        let info = InfoReport(storage: repo.storage, log: Log(consoleLevel: .off))
        let runs = { try info.collect(only: "main")[0].archive[0].dropped?.map { "\($0.start)-\($0.stop)" } ?? [] }
        #expect(try runs() == ["\(name(4))-\(name(4))", "\(name(6))-\(name(7))", "\(name(10))-\(name(11))"],
                "1...2 is older than every backup's WAL")

        func expire(dryRun: Bool) throws -> ExpireOutcome {
            try ExpireRun(storage: repo.storage, layout: repo.layout,
                          options: ExpireOptions(policy: RetentionPolicy(full: 1), set: nil, dryRun: dryRun, lockPath: "/nonexistent"),
                          log: repo.log).runLocked(now: Self.now)
        }
        let records = { try repo.storage.list(directory).map(\.name).sorted() }
        let before = try records()
        let dry = try expire(dryRun: true)
        #expect(dry.dropRecords == ["15-1/\(name(1))-\(name(2))", "15-1/\(name(4))-\(name(4))"])
        #expect(dry.lines.contains { $0.contains("would remove the record of WAL \(name(1))...\(name(2)) dropped by archive-push-queue-max from archive 15-1") }, "\(dry.lines)")
        #expect(try records() == before)

        let outcome = try expire(dryRun: false)
        #expect(outcome.expired.count == 2)
        #expect(outcome.dropRecords == dry.dropRecords)
        #expect(try records() == ["\(name(10))-\(name(11))", "\(name(10))-\(name(11)).copy", "\(name(6))-\(name(8))", "\(name(6))-\(name(8)).copy"].sorted())
        // c's WAL starts at 8: the part of [6...8] before it is needed by no restore.
        #expect(try runs() == ["\(name(10))-\(name(11))"])
        #expect(try expire(dryRun: false).dropRecords.isEmpty, "nothing more to remove")
    }

    @Test("a drop record is released when it ends before the oldest WAL retention keeps for its database identity")
    func dropRecordRelease() {
        let name = { (n: UInt64) in MemoryRepository.segmentName(n) }
        let retention = ArchiveRetention(boundaryLabel: BackupLabel("20260103-000000F")!, boundaryDatabaseID: 2, boundaryStart: name(8),
                                         ranges: [.init(databaseID: 1, start: name(5), stop: name(5)), .init(databaseID: 2, start: name(8), stop: name(9))])
        let order = [1, 2, 3]
        #expect(retention.releases(dropRecordEndingAt: name(7), databaseID: 2, order: order))
        #expect(!retention.releases(dropRecordEndingAt: name(8), databaseID: 2, order: order))
        #expect(!retention.releases(dropRecordEndingAt: name(1), databaseID: 3, order: order), "a newer identity keeps all its WAL")
        #expect(retention.releases(dropRecordEndingAt: name(4), databaseID: 1, order: order))
        #expect(!retention.releases(dropRecordEndingAt: name(6), databaseID: 1, order: order), "after a retained backup's range")
        let noBackup = ArchiveRetention(boundaryLabel: retention.boundaryLabel, boundaryDatabaseID: 2, boundaryStart: name(8), ranges: [])
        #expect(noBackup.releases(dropRecordEndingAt: name(60), databaseID: 1, order: order), "an older identity without backups keeps no WAL")
    }
}
