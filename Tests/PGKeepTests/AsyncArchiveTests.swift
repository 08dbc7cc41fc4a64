import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig
import TestSupport

@Suite("Asynchronous archiving: spool and queue")
struct AsyncArchiveUnitTests {
    let directory: TemporaryDirectory
    init() throws { directory = try TemporaryDirectory("async") }

    @Test("a recorded failure comes back with its code, message and hint; success replaces it")
    func spoolStatusRoundTrip() throws {
        let spool = AsyncSpool(spoolPath: directory.path, stanza: "main")
        let name = "000000010000000000000007"
        #expect(try spool.pushStatus(name) == nil)
        try spool.recordFailure(name, PGKeepError(.archiveDuplicate, "already archived\nwith different content", hint: "check the stanza"))
        guard case .failed(let error)? = try spool.pushStatus(name) else {
            Issue.record("no failure recorded")
            return
        }
        #expect(error.code == .archiveDuplicate)
        #expect(error.message.contains(name) && error.message.contains("already archived with different content"))
        #expect(error.hint == "check the stanza")
        try spool.recordSuccess(name)
        guard case .ok? = try spool.pushStatus(name) else {
            Issue.record("success not recorded")
            return
        }
        #expect(!directory.exists("archive/main/out/\(name).error"))
        #expect(directory.files(under: "archive/main/out").allSatisfy { !$0.contains("pgkeep-tmp") })
    }

    @Test("a success is an empty .ok created in place, also when the spool does not exist yet, and recording it again is harmless")
    func okMarker() throws {
        let spool = AsyncSpool(spoolPath: directory.path("new/spool"), stanza: "main")
        let name = "000000010000000000000009"
        try spool.recordSuccess(name)
        try spool.recordSuccess(name)
        #expect(directory.files(under: "new/spool/archive/main/out") == ["\(name).ok"])
        #expect(try directory.read("new/spool/archive/main/out/\(name).ok") == [])
        guard case .ok? = try spool.pushStatus(name) else {
            Issue.record("success not recorded")
            return
        }
    }

    @Test("the pusher's queue: .ready files without a status, timeline history files first, then by name")
    func pendingQueueOrder() throws {
        let status = "data/pg_wal/archive_status/"
        for name in ["000000010000000000000003", "000000010000000000000001", "00000002.history",
                     "000000020000000000000004", "000000010000000000000002"] {
            try directory.write(status + name + ".ready", [])
        }
        try directory.write(status + "000000010000000000000000.done", [])
        try directory.write(status + "not-a-wal-file.ready", [])
        let spool = AsyncSpool(spoolPath: directory.path("spool"), stanza: "main")
        try spool.recordSuccess("000000010000000000000002")
        try spool.recordFailure("000000010000000000000003", PGKeepError(.walInvalid, "bad"))
        let settings = ArchivePushAsync.Settings(spool: spool, lockPath: directory.path("lock"), dataDirectory: directory.path("data"),
                                                 processMax: 2, timeout: 1, logPath: nil, logLevelFile: .off)
        let pusher = ArchivePushAsync(settings: settings, stanza: "main", log: Log(consoleLevel: .off)) { _ in
            fatalError("the queue test pushes nothing")
        }
        #expect(try pusher.pendingFiles() == ["00000002.history", "000000010000000000000001", "000000020000000000000004"])
    }

    @Test("the prefetch window holds as many following segments as the queue allows, at least one")
    func prefetchWindow() throws {
        let segmentSize = WALSegmentSize(bytes: 16 << 20)!
        let start = WALSegmentName("0000000100000000000000FE", segmentSize: segmentSize)!
        func window(_ queueMax: Int) -> [String] {
            let settings = ArchiveGetAsync.Settings(spool: AsyncSpool(spoolPath: directory.path, stanza: "main"), lockPath: directory.path,
                                                    dataDirectory: directory.path, queueMax: queueMax, processMax: 1,
                                                    bufferSize: 1 << 16, logPath: nil, logLevelFile: .off)
            let getter = ArchiveGetAsync(settings: settings, stanza: "main", log: Log(consoleLevel: .off)) { _ in
                fatalError("the window test fetches nothing")
            }
            return getter.window(after: start).map(\.name)
        }
        #expect(window(64 << 20) == ["0000000100000000000000FF", "000000010000000100000000",
                                     "000000010000000100000001", "000000010000000100000002"])
        #expect(window(0) == ["0000000100000000000000FF"])
    }
}

@Suite("Asynchronous archive-get: hand-over")
struct AsyncArchiveGetHandOverTests {
    /// An async getter over `fixture`'s repository whose prefetcher never starts: the test holds
    /// the archive-get-async lock (a forked prefetcher has no place in a test process).
    struct Setup {
        let fixture: ArchiveFixture
        let spool: AsyncSpool
        let lock: StanzaLock
        let getter: ArchiveGetAsync

        init() throws {
            fixture = try ArchiveFixture()
            _ = try fixture.push(try fixture.writeWAL(ArchiveFixture.segmentName), compression: .lz4)
            spool = AsyncSpool(spoolPath: fixture.directory.path("spool"), stanza: "demo")
            let lockPath = fixture.directory.path("lock")
            try Posix.mkdirs(lockPath)
            lock = try StanzaLock(lockPath: lockPath, stanza: "demo", kind: .archiveGetAsync)
            let settings = ArchiveGetAsync.Settings(spool: spool, lockPath: lockPath, dataDirectory: try fixture.dataDirectory(),
                                                    queueMax: 16 << 20, processMax: 1, bufferSize: 1 << 20, logPath: nil,
                                                    logLevelFile: .off)
            let log = Log(consoleLevel: .off)
            log.openFile(directory: fixture.directory.path("log"), name: "archive-get.log", level: .info)
            let (storage, layout) = (fixture.storage, fixture.layout)
            getter = ArchiveGetAsync(settings: settings, stanza: "demo", log: log) { log in
                ArchiveGet(storage: storage, layout: layout, bufferSize: 1 << 20, log: log)
            }
        }

        /// Puts `bytes` in the spool as the prefetched copy of the fixture segment.
        func spool(_ bytes: [UInt8]) throws -> String {
            try Posix.mkdirs(spool.inDirectory)
            let path = spool.prefetched(ArchiveFixture.segmentName, checksum: try SHA256Digest.of(ArchiveFixture.segment))
            _ = try fixture.directory.write(String(path.dropFirst(fixture.directory.path.count + 1)), bytes)
            return path
        }

        var destination: String { fixture.directory.path("restore/pg_wal/RECOVERYXLOG") }
    }

    @Test("an intact prefetched segment is handed over from the spool")
    func intact() throws {
        let setup = try Setup()
        let spooled = try setup.spool(ArchiveFixture.segment)
        try setup.getter.get(walFile: ArchiveFixture.segmentName, destination: setup.destination)
        #expect(try setup.fixture.directory.read("restore/pg_wal/RECOVERYXLOG") == ArchiveFixture.segment)
        #expect(try Posix.lstat(spooled) == nil)
        #expect(try setup.fixture.logged().contains("handed over"))
    }

    @Test("a short, long or empty prefetched segment is discarded and the segment fetched from the repository",
          arguments: ["long", "truncate", "empty"])
    func damaged(_ damage: String) throws {
        let setup = try Setup()
        var bytes = ArchiveFixture.segment
        switch damage {
        case "long": bytes += [0]
        case "truncate": bytes.removeLast(8192)
        default: bytes = []
        }
        let spooled = try setup.spool(bytes)
        try setup.getter.get(walFile: ArchiveFixture.segmentName, destination: setup.destination)
        #expect(try setup.fixture.directory.read("restore/pg_wal/RECOVERYXLOG") == ArchiveFixture.segment)
        #expect(try Posix.lstat(spooled) == nil, "the damaged spool file is gone")
        let log = try setup.fixture.logged()
        #expect(log.contains("WARN") && log.contains(spooled) && log.contains("from the repository"), "\(log)")
        #expect(!log.contains("handed over"), "\(log)")
    }

    @Test("with a short prefetched segment and a damaged archive, async archive-get fails as a checksum mismatch, never as missing")
    func damagedEverywhere() throws {
        let setup = try Setup()
        var bytes = ArchiveFixture.segment
        bytes.removeLast(1)
        _ = try setup.spool(bytes)
        try setup.fixture.damage("archive/demo/15-1/" + setup.fixture.archived[0])
        let error = try #require(#expect(throws: PGKeepError.self) {
            try setup.getter.get(walFile: ArchiveFixture.segmentName, destination: setup.destination)
        })
        #expect(error.code == .checksumMismatch, "\(error)")
        #expect(setup.fixture.directory.files(under: "restore").isEmpty)
    }
}

@Suite("Asynchronous archive-push: repairs")
struct AsyncArchivePushRepairTests {
    @Test("the background pusher replaces a damaged archived copy with the identical segment and counts the repair")
    func countsRepairs() throws {
        let fixture = try ArchiveFixture()
        let wal = try fixture.writeWAL(ArchiveFixture.segmentName)
        _ = try fixture.push(wal, compression: .lz4)
        try fixture.damage("archive/demo/15-1/" + fixture.archived[0])
        try fixture.directory.write("pgdata/pg_wal/archive_status/\(ArchiveFixture.segmentName).ready", [])

        let spool = AsyncSpool(spoolPath: fixture.directory.path("spool"), stanza: "demo")
        let settings = ArchivePushAsync.Settings(spool: spool, lockPath: fixture.directory.path("lock"),
                                                 dataDirectory: fixture.directory.path("pgdata"), processMax: 1, timeout: 10,
                                                 logPath: nil, logLevelFile: .off)
        let log = Log(consoleLevel: .off)
        log.openFile(directory: fixture.directory.path("log"), name: "archive-push-async.log", level: .info)
        let (storage, layout) = (fixture.storage, fixture.layout)
        let pusher = ArchivePushAsync(settings: settings, stanza: "demo", log: log) { log in
            ArchivePush(storage: storage, layout: layout, compression: .lz4, compressLevel: 1, bufferSize: 1 << 20, log: log)
        }
        try pusher.drainQueue()

        guard case .ok? = try spool.pushStatus(ArchiveFixture.segmentName) else { Issue.record("no .ok recorded"); return }
        let logged = try fixture.logged("archive-push-async.log")
        #expect(logged.contains("1 files pushed") && logged.contains("1 of them replaced a damaged archived copy"), "\(logged)")
        try fixture.get(ArchiveFixture.segmentName, to: fixture.directory.path("restore/pg_wal/RECOVERYXLOG"))
        #expect(try fixture.directory.read("restore/pg_wal/RECOVERYXLOG") == ArchiveFixture.segment)
    }
}
