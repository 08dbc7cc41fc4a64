import Foundation
import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig
import SystemPackage
import TestSupport

@Suite("info: stanza status and WAL ranges")
struct InfoReportTests {
    let storage = MemoryStorage()
    let layout = try! RepositoryLayout(stanza: "main")
    let identity = DatabaseIdentity(id: 1, systemIdentifier: 7_000_000_000_000_000_001, version: 15,
                                    controlVersion: 1300, catalogVersion: 202209061)

    func report() throws -> InfoReport.Stanza {
        try InfoReport(storage: storage, log: Log(consoleLevel: .off)).collect(only: "main")[0]
    }

    func put(_ path: String, _ bytes: [UInt8] = [1, 2, 3]) throws {
        let writer = try storage.openWrite(try StoragePath(path))
        try bytes.withUnsafeBytes { try writer.write($0) }
        try writer.commit()
    }

    func archive(_ name: String) throws {
        let object = RepositoryLayout.archiveObjectName(walFile: name, checksum: try SHA256Digest.of(Array(name.utf8)), compression: .lz4)
        try put("archive/main/15-1/\(name.prefix(16))/\(object)")
    }

    @Test("a backup another host runs (its live repository lease) shows as running, with its host; a stale lease does not")
    func leaseOfAnotherHostShowsAsRunning() throws {
        try SealedFile.save(ArchiveInfo(current: identity), to: layout.archiveInfo, in: storage)
        try SealedFile.save(BackupInfo(current: identity), to: layout.backupInfo, in: storage)
        let now = Clock.now()
        func lease(command: String, renewed: Int64) throws {
            let holder = LeaseHolder(host: "db2", pid: 4242, command: command, since: renewed - 5, renewed: renewed, duration: 60, token: "1")
            try storage.writeSmallFile(layout.backupLease, try SealedFile.seal(holder))
        }
        try lease(command: "backup", renewed: now)
        let running = try report().status.lock.backup
        #expect(running.held && running.holder?.host == "db2" && running.holder?.pid == 4242)
        let text = InfoReport(storage: storage, log: Log(consoleLevel: .off)).text([try report()])
        #expect(text.contains("backup running on host 'db2' (pid 4242)"), "\(text)")

        try lease(command: "expire", renewed: now)
        let expiring = try report().status.lock.backup
        #expect(!expiring.held && expiring.holder?.command == "expire")

        try lease(command: "backup", renewed: now - 3600)
        storage.setModified(layout.backupLease, seconds: now - 3600)
        let stale = try report().status.lock.backup
        #expect(!stale.held && stale.holder == nil)
    }

    @Test("a lease this host's killed backup left (its pid is gone) is not a running backup")
    func leaseOfDeadLocalProcessIsNotRunning() throws {
        try SealedFile.save(ArchiveInfo(current: identity), to: layout.archiveInfo, in: storage)
        try SealedFile.save(BackupInfo(current: identity), to: layout.backupInfo, in: storage)
        var dead: Int32 = 4_000_000
        while Posix.processExists(dead) { dead += 1 }
        let now = Clock.now()
        let holder = LeaseHolder(host: Posix.hostName(), pid: dead, command: "backup", since: now, renewed: now, duration: 60, token: "1")
        try storage.writeSmallFile(layout.backupLease, try SealedFile.seal(holder))
        let lock = try report().status.lock.backup
        #expect(!lock.held && lock.holder == nil)
    }

    @Test("codes follow pgBackRest: missing stanza path 1, missing stanza data 3, no valid backups 2, info files of two clusters 99 (other)")
    func statusCodes() throws {
        #expect(try report().status.code == 1)

        try SealedFile.save(ArchiveInfo(current: identity), to: layout.archiveInfo, in: storage)
        let missing = try report().status
        #expect(missing.code == 3)
        #expect(missing.message.contains("backup.info"))

        try SealedFile.save(BackupInfo(current: identity), to: layout.backupInfo, in: storage)
        #expect(try report().status.code == 2)

        var other = identity
        other.systemIdentifier += 1
        try SealedFile.save(BackupInfo(current: other), to: layout.backupInfo, in: storage)
        let mismatch = try report().status
        #expect(mismatch.code == 99)
        #expect(mismatch.message.contains("\(other.systemIdentifier)") && mismatch.message.contains("\(identity.systemIdentifier)"))
    }

    @Test("the JSON has pgBackRest's repo[] (key, cipher, status) and repo-key in db[], archive[].database and backup[].database, which pgbackrest_exporter reads")
    func exporterFields() throws {
        try SealedFile.save(ArchiveInfo(current: identity), to: layout.archiveInfo, in: storage)
        try SealedFile.save(BackupInfo(current: identity), to: layout.backupInfo, in: storage)
        try archive("000000010000000000000001")
        let json = try InfoReport(storage: storage, log: Log(consoleLevel: .off)).json(try InfoReport(storage: storage, log: Log(consoleLevel: .off)).collect(only: "main"))
        let stanza = try #require((try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])?.first)
        let repo = try #require((stanza["repo"] as? [[String: Any]])?.first)
        #expect(repo["key"] as? Int == 1 && repo["cipher"] as? String == "none")
        #expect((repo["status"] as? [String: Any])?["code"] as? Int == 2, "the stanza's own status: no valid backups")
        #expect((stanza["db"] as? [[String: Any]])?.first?["repo-key"] as? Int == 1)
        #expect(((stanza["archive"] as? [[String: Any]])?.first?["database"] as? [String: Any])?["repo-key"] as? Int == 1)
    }

    @Test("the archive is reported per timeline, gaps flagged, across a log id boundary, with its stored size")
    func timelineRanges() throws {
        try SealedFile.save(ArchiveInfo(current: identity), to: layout.archiveInfo, in: storage)
        try SealedFile.save(BackupInfo(current: identity), to: layout.backupInfo, in: storage)
        for name in ["0000000100000000000000FE", "0000000100000000000000FF", "000000010000000100000000",
                     "000000020000000100000001", "000000020000000100000003"] {
            try archive(name)
        }
        try put("archive/main/15-1/00000002.history")
        let stanza = try report()
        let archive = try #require(stanza.archive.first)
        #expect(archive.min == "0000000100000000000000FE")
        #expect(archive.max == "000000020000000100000003")
        #expect(archive.timelines.map(\.timeline) == [1, 2])
        #expect(archive.timelines[0].continuous && archive.timelines[0].segments == 3)
        #expect(!archive.timelines[1].continuous && archive.timelines[1].segments == 2)
        #expect(archive.size == 6 * 3)
        #expect(stanza.repository.size == 6 * 3)
        let text = InfoReport(storage: storage, log: Log(consoleLevel: .off)).text([stanza])
        #expect(text.contains("timeline 2: 000000020000000100000001/000000020000000100000003, 2 segments, WITH GAPS"))
    }

    @Test("with --pg1-path, the stanza shows PostgreSQL's archiving backlog: complete segments marked .ready and not yet .done")
    func archiveQueueFromDataDirectory() throws {
        let data = try TemporaryDirectory("info-queue")
        try data.write("global/pg_control", try PostgresFixture.pgControl())
        for entry in ["000000010000000000000003.ready", "000000010000000000000004.ready", "000000010000000000000002.done",
                      "000000010000000000000002.ready", "00000002.history.ready", "000000010000000000000001.ready.tmp"] {
            try data.write("pg_wal/archive_status/\(entry)", [])
        }
        try SealedFile.save(ArchiveInfo(current: identity), to: layout.archiveInfo, in: storage)
        try SealedFile.save(BackupInfo(current: identity), to: layout.backupInfo, in: storage)
        let report = InfoReport(storage: storage, log: Log(consoleLevel: .off), pgPath: data.path)
        let stanza = try report.collect(only: "main")[0]
        let queue = try #require(stanza.archiveQueue)
        #expect(queue.segments == 2)
        #expect(queue.oldest == "000000010000000000000003")
        #expect(queue.size == 2 * 16 << 20)
        #expect(report.text([stanza]).contains("PostgreSQL archive queue: 2 segments (32.0MB) waiting in '\(data.path)/pg_wal/archive_status', oldest 000000010000000000000003"))
        #expect(try report.json([stanza]).contains("\"archive-queue\":{"))
    }

    @Test("the archiving backlog is read on the database host: a data directory that exists only there")
    func archiveQueueOnTheHost() throws {
        let data = "/srv/pg/scripted-only/data"
        let host = ScriptedHost()
        host.addFile(data + "/global/pg_control", try PostgresFixture.pgControl())
        for entry in ["000000010000000000000005.ready", "000000010000000000000006.ready", "000000010000000000000006.done"] {
            host.addFile(data + "/pg_wal/archive_status/" + entry, [])
        }
        try SealedFile.save(ArchiveInfo(current: identity), to: layout.archiveInfo, in: storage)
        try SealedFile.save(BackupInfo(current: identity), to: layout.backupInfo, in: storage)
        let report = InfoReport(storage: storage, log: Log(consoleLevel: .off), pgPath: data, host: host)
        let queue = try #require(try report.collect(only: "main")[0].archiveQueue)
        #expect(queue.error == nil)
        #expect(queue.segments == 1)
        #expect(queue.oldest == "000000010000000000000005")
        #expect(queue.path == data + "/pg_wal/archive_status")
    }

    @Test("an unreadable data directory leaves the repository report intact and says why the queue is unknown")
    func archiveQueueUnreadable() throws {
        try SealedFile.save(ArchiveInfo(current: identity), to: layout.archiveInfo, in: storage)
        try SealedFile.save(BackupInfo(current: identity), to: layout.backupInfo, in: storage)
        let report = InfoReport(storage: storage, log: Log(consoleLevel: .off), pgPath: "/nonexistent/pgdata")
        let stanza = try report.collect(only: "main")[0]
        #expect(stanza.status.code == 2)
        let queue = try #require(stanza.archiveQueue)
        #expect(queue.segments == nil)
        #expect(queue.error?.contains("/nonexistent/pgdata") == true)
    }

    @Test("without --stanza no data directory is read: the queue belongs to one cluster")
    func archiveQueueNeedsStanza() throws {
        try SealedFile.save(ArchiveInfo(current: identity), to: layout.archiveInfo, in: storage)
        try SealedFile.save(BackupInfo(current: identity), to: layout.backupInfo, in: storage)
        let stanzas = try InfoReport(storage: storage, log: Log(consoleLevel: .off), pgPath: "/nonexistent/pgdata").collect(only: nil)
        #expect(stanzas.map(\.archiveQueue) == [nil])
    }
}
