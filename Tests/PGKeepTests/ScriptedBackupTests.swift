import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig
import SystemPackage

/// `BackupRun`, the same code `pgkeep backup` runs, against a `ScriptedHost` (a data directory in
/// memory and a scripted server) and an in-memory repository, so that its outcomes and error
/// paths run without PostgreSQL. The end-to-end backups are in Tests/IntegrationTests.
@Suite("Backup against a scripted host")
struct ScriptedBackupTests {
    static let dataDirectory = "/srv/pg/data"
    static let relation = [UInt8](repeating: 7, count: 24_576)

    /// A stanza for the fixture cluster, a host with its pg_control and a few files, and the
    /// WAL segment the scripted backup needs already in the archive.
    struct Setup {
        let host = ScriptedHost()
        let storage: Storage
        let layout = try! RepositoryLayout(stanza: "demo")
        let lockDirectory: TemporaryDirectory

        init(storage: Storage = MemoryStorage(), archiveWAL: Bool = true) throws {
            self.storage = storage
            lockDirectory = try TemporaryDirectory("scripted-backup")
            try SealedFile.save(ArchiveInfo(current: ArchiveFixture.identity), to: layout.archiveInfo, in: storage)
            try SealedFile.save(BackupInfo(current: ArchiveFixture.identity), to: layout.backupInfo, in: storage)
            let data = ScriptedBackupTests.dataDirectory
            host.addFile(data + "/global/pg_control", try PostgresFixture.pgControl())
            host.addFile(data + "/PG_VERSION", Array("15\n".utf8))
            host.addFile(data + "/postgresql.conf", Array("archive_mode = on\n".utf8))
            host.addFile(data + "/postmaster.pid", Array("4242\n".utf8))
            host.addFile(data + "/base/5/16384", ScriptedBackupTests.relation)
            host.addFile(data + "/pg_wal/000000010000000000000006", [UInt8](repeating: 1, count: 4096))
            host.addDirectory(data + "/pg_wal/archive_status")
            if archiveWAL {
                // The segment holding the scripted start and stop LSNs (0/6000028, 0/6000100).
                let name = "000000010000000000000006"
                let object = RepositoryLayout.archiveObjectName(walFile: name, checksum: try SHA256Digest.of([1]), compression: .none)
                try storage.writeSmallFile(try layout.archiveParent(archiveID: "15-1", walFile: name).appending(object), [1])
            }
        }

        /// A full backup, lz4, two workers, no bundles; `configure` changes the options first.
        func backup(archiveTimeout: Double = 5, log: Log = Log(consoleLevel: .off),
                    _ configure: (inout BackupOptions) -> Void = { _ in }) throws -> BackupSummary {
            var options = BackupOptions(dataDirectory: FilePath(ScriptedBackupTests.dataDirectory),
                                        connection: PGConnectionOptions(socketPath: "/nowhere", port: 1, user: nil, database: "postgres"),
                                        type: .full, compression: .lz4, compressLevel: 1, bufferSize: 1 << 16, processMax: 2,
                                        startFast: true, archiveTimeout: archiveTimeout, lockPath: lockDirectory.path("lock"))
            options.bundle = BundleOptions(enabled: false, limit: BundleOptions.defaultLimit, size: BundleOptions.defaultSize)
            configure(&options)
            return try BackupRun(storage: storage, host: host, layout: layout, options: options, log: log).run()
        }

        func manifest(_ summary: BackupSummary) throws -> Manifest {
            try #require(try SealedFile.load(Manifest.self, from: try layout.manifest(label: summary.label), in: storage))
        }

        var backups: [BackupSummary] {
            get throws { try InfoFiles.loadBackupInfo(storage, layout, warn: { _ in }).backups }
        }
    }

    @Test("a backup of a scripted host stores its files by PostgreSQL's exclusions and records the backup")
    func storesListedFiles() throws {
        let setup = try Setup()
        let summary = try setup.backup()
        let manifest = try setup.manifest(summary)
        let names = Set(manifest.files.map(\.name))
        #expect(names == ["pg_data/PG_VERSION", "pg_data/postgresql.conf", "pg_data/base/5/16384",
                          "pg_data/global/pg_control", "pg_data/backup_label"])
        let relation = try #require(manifest.files.first { $0.name == "pg_data/base/5/16384" })
        #expect(relation.checksum == (try SHA256Digest.of(Self.relation)))
        #expect(relation.user == "postgres")
        #expect(manifest.paths.contains { $0.name == "pg_data/pg_wal/archive_status" })
        #expect(try setup.backups.map(\.label) == [summary.label])
    }

    @Test("a backup of a scripted host runs start, stop, in one session, and never abandons a backup that succeeded")
    func sessionCalls() throws {
        let setup = try Setup()
        _ = try setup.backup()
        let calls = setup.host.sql.calls
        #expect(calls.filter { $0 == "connect" }.count == 1)
        let start = try #require(calls.firstIndex(of: "startBackup"))
        let stop = try #require(calls.firstIndex(of: "stopBackup"))
        #expect(start < stop)
        #expect(!calls.contains("abandonBackup"))
    }

    @Test("a file PostgreSQL drops after the listing leaves the manifest and the backup succeeds")
    func vanishedFile() throws {
        let setup = try Setup()
        setup.host.vanishWhenOpened(Self.dataDirectory + "/base/5/16384")
        let summary = try setup.backup()
        #expect(try !setup.manifest(summary).files.contains { $0.name == "pg_data/base/5/16384" })
        #expect(setup.host.openedPaths.contains(FilePath(Self.dataDirectory + "/base/5/16384")))
    }

    @Test("a backup whose repository fills up fails with disk-full, ends the backup in the server and records no backup")
    func repositoryFull() throws {
        let faulty = FaultyStorage(MemoryStorage(), freeBytes: 1 << 20)
        let setup = try Setup(storage: faulty)
        faulty.freeBytes = 600  // the info files are written; the backup's objects do not fit
        #expect(throws: PGKeepError.self) { try setup.backup() }
        #expect(faulty.diskFullFailures > 0)
        #expect(setup.host.sql.calls.contains("abandonBackup"))
        #expect(try setup.backups.isEmpty)
    }

    @Test("a backup whose WAL never reaches the archive fails with archive-timeout and records no backup")
    func archiveTimeout() throws {
        let setup = try Setup(archiveWAL: false)
        do {
            _ = try setup.backup(archiveTimeout: 0.2)
            Issue.record("the backup succeeded without its WAL")
        } catch let error as PGKeepError {
            #expect(error.code == .archiveTimeout)
            #expect(error.message.contains("000000010000000000000006"))
        }
        #expect(try setup.backups.isEmpty)
    }

    @Test("a server that fails pg_backup_stop fails the backup and records no backup")
    func stopFails() throws {
        let setup = try Setup()
        setup.host.sql.fail("stopBackup")
        #expect(throws: PGKeepError.self) { try setup.backup() }
        #expect(setup.host.sql.calls.contains("abandonBackup"))
        #expect(try setup.backups.isEmpty)
    }

    @Test("a standby is refused before a backup starts")
    func standbyRefused() throws {
        let setup = try Setup()
        setup.host.sql.inRecovery = true
        do {
            _ = try setup.backup()
            Issue.record("a standby was backed up")
        } catch let error as PGKeepError {
            #expect(error.code == .dbConfig)
        }
        #expect(!setup.host.sql.calls.contains("startBackup"))
    }
}

@Suite("Backup refuses an unsupported server")
struct UnsupportedServerTests {
    @Test("a backup against a PostgreSQL 14 server is refused with db-version naming 14 and the supported majors, before pg_backup_start")
    func refusesPostgreSQL14() throws {
        let setup = try ScriptedBackupTests.Setup()
        setup.host.sql.serverVersionNumber = 140_010
        let error = #expect(throws: PGKeepError.self) { _ = try setup.backup() }
        #expect(error?.code == .dbVersion)
        #expect(error?.message == "the server (server_version_num 140010) is PostgreSQL 14, which pgkeep does not support", "\(String(describing: error))")
        #expect(error?.hint == "pgkeep supports PostgreSQL 15, 16, 17, 18")
        #expect(!setup.host.sql.calls.contains("startBackup"))
    }
}
