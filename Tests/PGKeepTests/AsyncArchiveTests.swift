import Testing
@testable import PGKeep
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
