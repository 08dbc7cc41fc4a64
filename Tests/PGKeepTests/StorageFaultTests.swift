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

/// Repository storage that fails the way disks and file systems do besides running full (fault
/// checklist scenarios 5 to 8): a temporary file that cannot be created, a write(2) or rename(2)
/// that fails with EIO, an object that reads short. Each test scripts one fault into
/// `FaultyStorage`, asserts it happened, and then that the command failed loudly and lost
/// nothing: no half-written object under its final name, no WAL file delivered short, no backup
/// recorded without its manifest, and the next run succeeds.
@Suite("Storage faults")
struct StorageFaultTests {
    static let now: Int64 = 1_800_000_000

    // MARK: The fault driver itself

    @Test("a scripted fault happens once, at the nth operation on a matching path, and is recorded")
    func faultHappensOnceAtTheNthMatchingOperation() throws {
        let infoFiles: @Sendable (StoragePath) -> Bool = { $0.name.hasSuffix(".info") }
        let storage = FaultyStorage(MemoryStorage(), faults: [.commit(nth: 2, matching: infoFiles)])
        try storage.writeSmallFile(try StoragePath("a/x.info"), [1])
        try storage.writeSmallFile(try StoragePath("a/other"), [2])
        #expect(throws: PGKeepError.self) { try storage.writeSmallFile(try StoragePath("a/y.info"), [3]) }
        #expect(try storage.info(try StoragePath("a/y.info")) == nil, "the failed commit published nothing")
        try storage.writeSmallFile(try StoragePath("a/y.info"), [4])
        #expect(try storage.readSmallFile(try StoragePath("a/y.info")) == [4])
        #expect(storage.injected == [.init(kind: .commit(errno: EIO), path: try StoragePath("a/y.info"))])
    }

    @Test("a short read ends the object early while its listed size stays whole")
    func shortReadEndsEarly() throws {
        let path = try StoragePath("wal/object")
        let memory = MemoryStorage()
        try memory.writeSmallFile(path, Samples.random(10_000, seed: 3))
        let storage = FaultyStorage(memory, faults: [.shortRead(keeping: 4096)])
        #expect(try storage.readSmallFile(path)?.count == 4096)
        #expect(try storage.info(path)?.size == 10_000)
        #expect(try storage.readSmallFile(path)?.count == 10_000, "only the first read is cut short")
    }

    // MARK: archive-get

    @Test("archive-get of a copy that reads short fails with checksum-mismatch, stops recovery, and leaves nothing at %p",
          arguments: [CompressionType.none, .lz4, .zst])
    func archiveGetShortReadDeliversNothing(compression: CompressionType) throws {
        let repo = try MemoryRepository()
        let name = MemoryRepository.segmentName(3)
        try repo.push(name, bytes: Samples.random(Int(MemoryRepository.segmentSize.bytes), seed: 9), compression: compression)
        let storage = FaultyStorage(repo.storage, faults: [.shortRead(keeping: 2000, matching: { $0.name.hasPrefix(name) })])
        let directory = try TemporaryDirectory("short-read")
        let destination = try directory.makeDirectory("pg_wal") + "/RECOVERYXLOG"

        let error = try #require(#expect(throws: PGKeepError.self) {
            try ArchiveGet(storage: storage, layout: repo.layout, bufferSize: 1 << 16, log: repo.log).get(walFile: name, destination: destination)
        })
        #expect(storage.injected.map { $0.path.name.prefix(24) } == [Substring(name)], "the WAL object read short")
        #expect(error.code == .checksumMismatch, "\(error)")
        #expect(error.message.contains(name), "\(error)")
        #expect(error.hint?.contains("archive-push") == true)
        #expect(ErrorCode.archiveGetExitStatus(error.code) > 125, "PostgreSQL must stop recovery, not take it for the end of WAL")
        #expect(try Posix.listDirectory(directory.path("pg_wal")) == [], "neither %p nor a temporary file is left")
    }

    @Test("archive-get after a short read of one copy delivers the file from an intact copy of the same content")
    func archiveGetShortReadFallsBackToAnotherCopy() throws {
        let repo = try MemoryRepository()
        let name = MemoryRepository.segmentName(3)
        let bytes = Samples.random(Int(MemoryRepository.segmentSize.bytes), seed: 11)
        try repo.push(name, bytes: bytes, compression: .none)
        try repo.push(name, bytes: bytes, compression: .zst)
        let storage = FaultyStorage(repo.storage, faults: [.shortRead(keeping: 100, matching: { $0.name.hasPrefix(name) })])
        let directory = try TemporaryDirectory("short-read")
        let destination = directory.path("RECOVERYXLOG")

        try ArchiveGet(storage: storage, layout: repo.layout, bufferSize: 1 << 16, log: repo.log).get(walFile: name, destination: destination)
        #expect(storage.injected.map { $0.path.name.prefix(24) } == [Substring(name)], "one WAL object read short")
        #expect(try directory.read("RECOVERYXLOG") == bytes)
    }

    // MARK: archive-push

    /// A repository with its info files, the fixture segment in a pg_wal directory, and a push.
    struct PushSetup {
        let memory = MemoryStorage(name: "faults")
        let layout = try! RepositoryLayout(stanza: "demo")
        let directory: TemporaryDirectory
        let wal: String

        init() throws {
            directory = try TemporaryDirectory("push-faults")
            try SealedFile.save(ArchiveInfo(current: ArchiveFixture.identity), to: layout.archiveInfo, in: memory)
            try SealedFile.save(BackupInfo(current: ArchiveFixture.identity), to: layout.backupInfo, in: memory)
            wal = try directory.write("pg_wal/" + ArchiveFixture.segmentName, ArchiveFixture.segment)
        }

        func push(into storage: Storage) throws -> ArchivePush.Outcome {
            try ArchivePush(storage: storage, layout: layout, compression: .lz4, compressLevel: 1, bufferSize: 1 << 16,
                            log: Log(consoleLevel: .off)).push(walPath: wal, dataDirectory: nil)
        }

        func storedSegment() throws -> [UInt8]? {
            guard let object = try ArchiveLookup.find(walFile: ArchiveFixture.segmentName, archiveID: "15-1", storage: memory, layout: layout).first
            else { return nil }
            let sink = CollectSink(limit: 1 << 26)
            try FilterChain([try CompressionType.lz4.makeDecompressFilter(bufferSize: 1 << 16)!])
                .run(from: try #require(try memory.openRead(object.object)), into: sink, buffer: IOBuffer(size: 1 << 16))
            return sink.bytes
        }
    }

    @Test("archive-push whose rename into the archive fails reports the object's path, publishes nothing, and stores the segment when retried",
          arguments: [EIO, EROFS])
    func archivePushFailedRenamePublishesNothing(errno: Int32) throws {
        let setup = try PushSetup()
        let before = try DiskFullTests.snapshot(setup.memory)
        let storage = FaultyStorage(setup.memory, faults: [.commit(errno: errno)])

        let error = try #require(#expect(throws: PGKeepError.self) { try setup.push(into: storage) })
        #expect(storage.injected.count == 1)
        #expect(error.message.contains(setup.memory.describe(try setup.layout.archiveDirectory(archiveID: "15-1"))), "\(error)")
        #expect(error.message.contains(String(cString: strerror(errno))), "\(error)")
        #expect(error.code.rawValue < 126)
        #expect(try DiskFullTests.snapshot(setup.memory) == before, "no object and no temporary file")

        guard case .stored = try setup.push(into: storage) else {
            Issue.record("the retried push did not store the segment")
            return
        }
        #expect(try setup.storedSegment() == ArchiveFixture.segment)
    }

    @Test("archive-push whose temporary file cannot be created reports the archive directory and changes nothing")
    func archivePushUncreatableTemporaryFile() throws {
        let setup = try PushSetup()
        let before = try DiskFullTests.snapshot(setup.memory)
        let storage = FaultyStorage(setup.memory, faults: [.openWrite(errno: EACCES)])

        let error = try #require(#expect(throws: PGKeepError.self) { try setup.push(into: storage) })
        #expect(storage.injected.count == 1)
        #expect(error.message.contains(setup.memory.describe(try setup.layout.archiveDirectory(archiveID: "15-1"))), "\(error)")
        #expect(error.message.contains("Permission denied"), "\(error)")
        #expect(error.hint != nil)
        #expect(try DiskFullTests.snapshot(setup.memory) == before)
    }

    // MARK: backup

    @Test("a backup copy whose write fails with EIO names the file, and every object under its final name is whole",
          arguments: [1, 2])
    func backupCopyWriteErrorLeavesWholeObjects(processMax: Int) throws {
        let directory = try TemporaryDirectory("write-error")
        let memory = MemoryStorage(name: "faults")
        let layout = try RepositoryLayout(stanza: "demo")
        let label = BackupLabel("20260101-000000F")!
        var sources: [StoragePath: [UInt8]] = [:]
        var jobs: [FileJob] = []
        for n in 0..<5 {
            let bytes = Samples.random(64 << 10, seed: UInt64(n + 20))
            let destination = try layout.backupFile(label: label, name: "pg_data/base/1/\(16384 + n)", compression: .none)
            sources[destination] = bytes
            jobs.append(FileJob(id: n, operation: .store(.init(source: FilePath(try directory.write("cluster/\(n)", bytes)), destination: destination,
                                                               limit: .max, compression: .none, compressLevel: 0)),
                                size: UInt64(bytes.count)))
        }
        // The 16 KiB buffer writes each file in four chunks: the fault hits the third file.
        let storage = FaultyStorage(memory, faults: [.write(nth: 10)])
        let error = try #require(#expect(throws: PGKeepError.self) {
            try Mover(storage: storage, host: LocalHost(), processMax: processMax, bufferSize: 1 << 14).run(jobs) { _, _ in }
        })
        let injected = try #require(storage.injected.first)
        #expect(error.message.contains(memory.describe(injected.path)), "\(error)")
        #expect(error.message.contains("Input/output error"), "\(error)")
        let written = try DiskFullTests.snapshot(memory)
        #expect(written[injected.path] == nil, "the file whose write failed is not published")
        for (path, bytes) in written {
            #expect(bytes == sources[path], "\(path) is whole")
        }
    }

    @Test("a backup whose manifest cannot be committed records no backup, and the next backup completes")
    func backupManifestCommitFailure() throws {
        let storage = FaultyStorage(MemoryStorage(), faults: [.commit(matching: { $0.name == "backup.manifest" })])
        let setup = try ScriptedBackupTests.Setup(storage: storage)
        #expect(throws: PGKeepError.self) { try setup.backup() }
        #expect(storage.injected.map(\.path.name) == ["backup.manifest"])
        #expect(try setup.backups.isEmpty, "no backup.info entry without a manifest")

        let summary = try setup.backup()
        #expect(try setup.backups.map(\.label) == [summary.label])
        #expect(try setup.manifest(summary).files.contains { $0.name == "pg_data/base/5/16384" })
    }

    @Test("a backup whose backup.info cannot be committed leaves the manifest unrecorded, and the next backup completes")
    func backupInfoCommitFailure() throws {
        let storage = FaultyStorage(MemoryStorage(), faults: [.commit(nth: 3, matching: { $0.name == "backup.info" })])
        let setup = try ScriptedBackupTests.Setup(storage: storage)  // commits backup.info once
        _ = try setup.backup()  // the second commit
        #expect(throws: PGKeepError.self) { try setup.backup() }
        #expect(storage.injected.map(\.path.name) == ["backup.info"])
        #expect(try setup.backups.count == 1)

        let summary = try setup.backup()
        #expect(try setup.backups.count == 2)
        #expect(try setup.backups.last?.label == summary.label)
    }

    // MARK: restore

    @Test("a restore of an object that reads short fails with checksum-mismatch naming the object, and leaves no file under its name",
          arguments: [CompressionType.none, .lz4])
    func restoreShortReadLeavesNoFile(compression: CompressionType) throws {
        let memory = MemoryStorage(name: "faults")
        let directory = try TemporaryDirectory("restore-short")
        let bytes = Samples.random(200_000, seed: 5)
        let object = try StoragePath("backup/demo/20260101-000000F/pg_data/base/1/16384" + (compression.fileExtension.map { "." + $0 } ?? ""))
        let stored = try Mover(storage: memory, host: LocalHost(), processMax: 1, bufferSize: 1 << 16)
            .store(bytes: bytes, destination: object, compression: compression, compressLevel: compression.defaultLevel)
        let destination = try directory.makeDirectory("data/base/1") + "/16384"
        let job = FileJob(id: 0, operation: .restore(.init(source: object, destination: destination, compression: compression,
                                                           size: UInt64(bytes.count), checksum: stored.checksum, repoSize: stored.repoSize,
                                                           repoChecksum: stored.repoChecksum, mode: 0o600, mtime: Self.now)),
                          size: UInt64(bytes.count))
        let storage = FaultyStorage(memory, faults: [.shortRead(keeping: 50_000, matching: { $0 == object })])

        let error = try #require(#expect(throws: PGKeepError.self) {
            try Mover(storage: storage, host: LocalHost(), processMax: 1, bufferSize: 1 << 16).run([job]) { _, _ in }
        })
        #expect(storage.injected.count == 1)
        #expect(error.code == .checksumMismatch, "\(error)")
        #expect(error.message.contains(memory.describe(object)), "\(error)")
        #expect(try Posix.lstat(destination) == nil, "no short file under the file's name")
    }

    // MARK: expire

    @Test("expire whose backup.info copy cannot be committed keeps every backup it lists, and the next expire completes")
    func expireCopyCommitFailure() throws {
        let (repo, backups) = try MemoryRepository.threeFullBackups(before: Self.now)
        let storage = FaultyStorage(repo.storage, faults: [.commit(matching: { $0.name == "backup.info.copy" })])
        let expire = ExpireRun(storage: storage, layout: repo.layout,
                               options: ExpireOptions(policy: RetentionPolicy(full: 1), set: nil, dryRun: false, lockPath: "/nonexistent"),
                               log: repo.log)

        #expect(throws: PGKeepError.self) { try expire.runLocked(now: Self.now) }
        #expect(storage.injected.map(\.path.name) == ["backup.info.copy"])
        let listed = try InfoFiles.loadBackupInfo(repo.storage, repo.layout, warn: { _ in }).backups.map(\.label)
        for label in listed {
            #expect(try repo.storage.info(try repo.layout.manifest(label: label)) != nil, "listed backup \(label) is still whole")
        }
        #expect(try repo.verify().problems == [])

        _ = try expire.runLocked(now: Self.now)
        #expect(try InfoFiles.loadBackupInfo(repo.storage, repo.layout, warn: { _ in }).backups.map(\.label) == [backups[2].label])
        #expect(try repo.storage.list(repo.layout.backupRoot).filter { $0.kind == .directory }.map(\.name) == [backups[2].label.text])
        #expect(try repo.verify().problems == [])
    }
}
