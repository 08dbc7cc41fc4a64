#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig
import SystemPackage

/// A repository that runs out of space (scenario 5 of the fault checklist), driven through the
/// library's own write paths against `FaultyStorage`, so the disk-full behaviour is checked on
/// every machine. The end-to-end version on a real full file system is
/// Tests/IntegrationTests/FaultTests.swift, which needs a mount.
@Suite("Disk full")
struct DiskFullTests {
    static let now: Int64 = 1_800_000_000

    /// Every file in `storage` with its bytes: what "nothing changed" compares.
    static func snapshot(_ storage: Storage, _ directory: StoragePath = .root) throws -> [StoragePath: [UInt8]] {
        var files: [StoragePath: [UInt8]] = [:]
        for entry in try storage.list(directory) {
            let path = try directory.appending(entry.name)
            if entry.kind == .directory {
                files.merge(try snapshot(storage, path)) { old, _ in old }
            } else {
                files[path] = try storage.readSmallFile(path)
            }
        }
        return files
    }

    /// The disk-full error a command must give: code 38, the path, the cause, and a hint.
    static func expectDiskFull(_ error: any Error, naming path: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let error = error as? PGKeepError else {
            Issue.record("not a PGKeepError: \(error)", sourceLocation: sourceLocation)
            return
        }
        #expect(error.code == .diskFull, "\(error)", sourceLocation: sourceLocation)
        #expect(error.code.rawValue == 38, sourceLocation: sourceLocation)
        #expect(error.message.contains(path) && error.message.contains("No space left on device"), "\(error)", sourceLocation: sourceLocation)
        #expect(error.hint?.contains("free space") == true, "\(error)", sourceLocation: sourceLocation)
    }

    @Test("FaultyStorage keeps the storage contract while space lasts", arguments: StorageConformance.checks)
    func conformance(_ check: StorageCheck) throws {
        try check.run(FaultyStorage(MemoryStorage(), freeBytes: 1 << 30))
    }

    @Test("FaultyStorage: a write beyond the free space fails with disk-full and leaves the old file; commit and remove give space back")
    func faultyStorageAccounting() throws {
        let storage = FaultyStorage(MemoryStorage(), freeBytes: 100)
        let path = try StoragePath("dir/file")
        try storage.writeSmallFile(path, Array(repeating: 1, count: 60))
        #expect(storage.freeBytes == 40)
        #expect(throws: PGKeepError.self) { try storage.writeSmallFile(path, Array(repeating: 2, count: 50)) }
        #expect(storage.diskFullFailures == 1)
        #expect(try storage.readSmallFile(path) == Array(repeating: 1, count: 60))
        #expect(storage.freeBytes == 40, "the aborted write gave its bytes back")
        // A replacement of 40 bytes fits; committing it frees the 60 of the old file.
        try storage.writeSmallFile(path, Array(repeating: 3, count: 40))
        #expect(storage.freeBytes == 60)
        try storage.removeTree(try StoragePath("dir"))
        #expect(storage.freeBytes == 100)
    }

    @Test("FaultyStorage: createExclusive takes its bytes from the free space, gives them back when refused, and fails with disk-full when they are not there")
    func faultyStorageExclusiveCreate() throws {
        let storage = FaultyStorage(MemoryStorage(), freeBytes: 100)
        let path = try StoragePath("lock/main/backup.lease")
        #expect(try storage.createExclusive(path, Array(repeating: 1, count: 60)))
        #expect(storage.freeBytes == 40)
        #expect(try storage.createExclusive(path, Array(repeating: 2, count: 30)) == false)
        #expect(storage.freeBytes == 40, "the refused create gave its bytes back")
        try storage.remove(path)
        #expect(storage.freeBytes == 100)
        #expect(throws: PGKeepError.self) { try storage.createExclusive(path, Array(repeating: 3, count: 101)) }
        #expect(storage.diskFullFailures == 1)
        #expect(try storage.info(path) == nil)
        #expect(storage.freeBytes == 100)
    }

    @Test("archive-push into a full repository fails with disk-full naming the object's path, stores nothing, changes nothing, and succeeds once space is freed")
    func archivePushFull() throws {
        let directory = try TemporaryDirectory("disk-full")
        let memory = MemoryStorage(name: "full")
        let layout = try RepositoryLayout(stanza: "demo")
        try SealedFile.save(ArchiveInfo(current: ArchiveFixture.identity), to: layout.archiveInfo, in: memory)
        try SealedFile.save(BackupInfo(current: ArchiveFixture.identity), to: layout.backupInfo, in: memory)
        let before = try Self.snapshot(memory)
        let wal = try directory.write("pg_wal/" + ArchiveFixture.segmentName, ArchiveFixture.segment)
        // Uncompressed, the 16 MiB segment does not fit into 1 MiB.
        let storage = FaultyStorage(memory, freeBytes: 1 << 20)
        let push = ArchivePush(storage: storage, layout: layout, compression: .none, compressLevel: 0, bufferSize: 1 << 16,
                               log: Log(consoleLevel: .off))

        let error = try #require(#expect(throws: (any Error).self) { try push.push(walPath: wal, dataDirectory: nil) })
        Self.expectDiskFull(error, naming: memory.describe(try layout.archiveDirectory(archiveID: "15-1")))
        #expect(storage.diskFullFailures == 1)
        #expect(try Self.snapshot(memory) == before, "no object, partial or whole, and the info files are byte-identical")
        #expect(storage.freeBytes == 1 << 20, "the failed write released everything it held")

        storage.freeBytes = 32 << 20
        guard case .stored = try push.push(walPath: wal, dataDirectory: nil) else {
            Issue.record("the push after freeing space did not store the segment")
            return
        }
        let object = try #require(try ArchiveLookup.find(walFile: ArchiveFixture.segmentName, archiveID: "15-1", storage: memory, layout: layout).first)
        #expect(try memory.readSmallFile(object.object) == ArchiveFixture.segment)
    }

    @Test("a backup copying files into a full repository fails with disk-full, keeps what was stored before, and shows no half-written file", arguments: [1, 2])
    func backupCopyFull(processMax: Int) throws {
        let directory = try TemporaryDirectory("disk-full")
        let memory = MemoryStorage(name: "full")
        let layout = try RepositoryLayout(stanza: "demo")
        let label = BackupLabel("20260101-000000F")!
        // A prior backup's file and the info files: they must come out byte-identical.
        try SealedFile.save(BackupInfo(current: ArchiveFixture.identity), to: layout.backupInfo, in: memory)
        try memory.writeSmallFile(try layout.backupFile(label: BackupLabel("20251231-000000F")!, name: "pg_data/PG_VERSION", compression: .none),
                                  Array("15\n".utf8))
        let before = try Self.snapshot(memory)

        // Five 64 KiB cluster files stored uncompressed, with room for three and a half.
        let size = 64 << 10
        var sources: [StoragePath: [UInt8]] = [:]
        var jobs: [FileJob] = []
        for n in 0..<5 {
            let bytes = Samples.random(size, seed: UInt64(n + 1))
            let name = "pg_data/base/1/\(16384 + n)"
            let destination = try layout.backupFile(label: label, name: name, compression: .none)
            sources[destination] = bytes
            jobs.append(FileJob(id: n, operation: .store(.init(source: FilePath(try directory.write("cluster/\(n)", bytes)), destination: destination,
                                                               limit: .max, compression: .none, compressLevel: 0)),
                                size: UInt64(size)))
        }
        let storage = FaultyStorage(memory, freeBytes: UInt64(size * 7 / 2))
        let error = try #require(#expect(throws: (any Error).self) {
            try Mover(storage: storage, host: LocalHost(), processMax: processMax, bufferSize: 1 << 14).run(jobs) { _, _ in }
        })
        Self.expectDiskFull(error, naming: memory.describe(try layout.backupDirectory(label: label)))
        #expect(storage.diskFullFailures >= 1)

        let after = try Self.snapshot(memory)
        #expect(before.allSatisfy { after[$0.key] == $0.value }, "what was stored before is byte-identical")
        let written = after.filter { before[$0.key] == nil }
        #expect(written.count <= 3, "at most three files fit: \(written.keys)")
        for (path, bytes) in written {
            #expect(bytes == sources[path], "\(path) is either missing or whole")
        }
    }

    /// Three full backups on a memory repository; expiring with retention 1 removes the two older.
    func threeBackups() throws -> (MemoryRepository, [BackupSummary]) {
        try MemoryRepository.threeFullBackups(before: Self.now)
    }

    func expire(_ repo: MemoryRepository, in storage: Storage) throws -> ExpireOutcome {
        try ExpireRun(storage: storage, layout: repo.layout,
                      options: ExpireOptions(policy: RetentionPolicy(full: 1), set: nil, dryRun: false, lockPath: "/nonexistent"),
                      log: repo.log).runLocked(now: Self.now)
    }

    @Test("expire in a completely full repository fails with disk-full naming backup.info and leaves every file byte-identical")
    func expireWithoutSpace() throws {
        let (repo, backups) = try threeBackups()
        let before = try Self.snapshot(repo.storage)
        let storage = FaultyStorage(repo.storage, freeBytes: 0)

        let error = try #require(#expect(throws: (any Error).self) { try expire(repo, in: storage) })
        Self.expectDiskFull(error, naming: repo.storage.describe(repo.layout.backupInfo))
        #expect(try Self.snapshot(repo.storage) == before, "backup.info, its copy, every backup and all WAL are unchanged")
        #expect(try InfoFiles.loadBackupInfo(repo.storage, repo.layout, warn: { _ in }).backups.map(\.label) == backups.map(\.label))
        #expect(try repo.verify().problems == [])
    }

    @Test("expire with its locks (the host's flock, the repository lease) needs only the lease's few hundred bytes more, and leaves no lease behind")
    func lockedExpireWithAlmostNoSpace() throws {
        let (repo, backups) = try threeBackups()
        let infoSize = try #require(try repo.storage.info(repo.layout.backupInfo)).size
        let storage = FaultyStorage(repo.storage, freeBytes: infoSize + 1024)
        let locks = try TemporaryDirectory("expire-locks")
        let outcome = try ExpireRun(storage: storage, layout: repo.layout,
                                    options: ExpireOptions(policy: RetentionPolicy(full: 1), set: nil, dryRun: false, lockPath: locks.path),
                                    log: repo.log).run(now: Self.now)
        #expect(outcome.expired.map(\.label) == [backups[1].label, backups[0].label])
        #expect(try repo.storage.info(repo.layout.backupLease) == nil)
        #expect(try repo.verify().problems == [])
    }

    @Test("expire needs no more free space than the size of backup.info, and frees the expired backups' space")
    func expireWithAlmostNoSpace() throws {
        let (repo, backups) = try threeBackups()
        let infoSize = try #require(try repo.storage.info(repo.layout.backupInfo)).size
        let storage = FaultyStorage(repo.storage, freeBytes: infoSize)

        let outcome = try expire(repo, in: storage)
        #expect(outcome.expired.map(\.label) == [backups[1].label, backups[0].label])
        #expect(try InfoFiles.loadBackupInfo(repo.storage, repo.layout, warn: { _ in }).backups.map(\.label) == [backups[2].label])
        #expect(try repo.storage.readSmallFile(repo.layout.backupInfo) == repo.storage.readSmallFile(try SealedFile.copyPath(of: repo.layout.backupInfo)))
        #expect(storage.freeBytes > infoSize + 2 * 40_000, "the two expired backups' files gave their space back")
        #expect(try repo.verify().problems == [])
    }
}

@Suite("Restore onto a full file system")
struct RestoreSpaceTests {
    @Test("a restore's disk-full error names the full file system and the bytes the backup needs there, and hints at --delta")
    func diskFullExplained() throws {
        let directory = try TemporaryDirectory("restore-space")
        let data = try directory.makeDirectory("data")
        let low = PGKeepError.system(.fileWrite, "unable to write", path: data + "/base/5/16384", errno: ENOSPC)
        let label = BackupLabel("20260101-000000F")!

        let explained = try #require(RestoreSpace.explain(low, label: label, roots: [data, "/elsewhere"]) { $0 == data ? 123_456_789 : 1 } as? PGKeepError)
        #expect(explained.code == .diskFull)
        #expect(explained.message.hasPrefix(low.message), "the original cause and path come first: \(explained.message)")
        #expect(explained.message.contains("backup \(label) needs 117.7MB (123456789 bytes) under '\(data)'"), "\(explained.message)")
        // /proc/self/mountinfo names the mount holding the directory (at least "/").
        #expect(explained.message.contains("on the file system mounted at '/"), "\(explained.message)")
        #expect(explained.message.contains("free"), "\(explained.message)")
        #expect(explained.hint?.contains("123456789 bytes") == true && explained.hint?.contains("--delta") == true, "\(explained.hint ?? "")")
    }

    @Test("a restore that failed while writing files, other than for space, keeps its code, message and hint, and adds that the directory cannot start and --delta finishes it")
    func unfinishedRestoreSaysHowToFinish() throws {
        let denied = PGKeepError.system(.fileOpen, "unable to open", path: "/repo/backup/main/x/pg_data/PG_VERSION", errno: EACCES)
        let explained = try #require(RestoreRun.unfinished(denied, dataDirectory: "/srv/data") as? PGKeepError)
        #expect(explained.code == .fileOpen && explained.message == denied.message)
        #expect(explained.hint?.hasPrefix(denied.hint ?? "-") == true, "the cause's own hint comes first: \(explained.hint ?? "")")
        #expect(explained.hint?.contains("'/srv/data' is left half-restored without global/pg_control") == true
                && explained.hint?.contains("--delta") == true, "\(explained.hint ?? "")")
        let full = PGKeepError.system(.fileWrite, "unable to write", path: "/srv/data/base/5/1", errno: ENOSPC)
        #expect((RestoreRun.unfinished(full, dataDirectory: "/srv/data") as? PGKeepError)?.hint == full.hint, "disk-full says so already")
    }

    @Test("a restore error other than disk-full passes through unchanged")
    func otherErrorsUnchanged() throws {
        let other = PGKeepError(.checksumMismatch, "stored file damaged", hint: "restore another backup")
        let passed = try #require(RestoreSpace.explain(other, label: BackupLabel("20260101-000000F")!, roots: ["/x"]) { _ in 1 } as? PGKeepError)
        #expect(passed.code == .checksumMismatch && passed.message == other.message && passed.hint == other.hint)
    }
}
