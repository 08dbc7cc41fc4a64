import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepEngine
import SystemPackage

/// `stanza-upgrade`, the same code the command runs, against a scripted host whose pg_control
/// changes from the PostgreSQL 15 fixture to the 17 one (what pg_upgrade does to a cluster).
@Suite("stanza-upgrade against a scripted host")
struct StanzaUpgradeTests {
    static let dataDirectory = "/srv/pg/data"
    static let pg17 = PostgresFixture.LaterMajor.all.first { $0.major == 17 }!

    struct Setup {
        let host = ScriptedHost()
        let storage = MemoryStorage()
        let layout = try! RepositoryLayout(stanza: "main")
        let locks: TemporaryDirectory

        /// A stanza created for the PostgreSQL 15 fixture, whose host then holds the 17 fixture.
        init() throws {
            locks = try TemporaryDirectory("stanza-upgrade")
            host.addFile(StanzaUpgradeTests.dataDirectory + "/global/pg_control", try PostgresFixture.pgControl())
            _ = try StanzaCreate(storage: storage, host: host, layout: layout, log: Log(consoleLevel: .off))
                .run(dataDirectory: StanzaUpgradeTests.dataDirectory)
            host.addFile(StanzaUpgradeTests.dataDirectory + "/global/pg_control", try StanzaUpgradeTests.pg17.pgControl())
        }

        func upgrade() throws -> StanzaUpgrade.Outcome {
            try StanzaUpgrade(storage: storage, host: host, layout: layout,
                              options: StanzaUpgradeOptions(dataDirectory: FilePath(StanzaUpgradeTests.dataDirectory), lockPath: locks.path("lock")),
                              log: Log(consoleLevel: .off)).run()
        }

        var archiveInfo: ArchiveInfo { get throws { try InfoFiles.loadArchiveInfo(storage, layout, warn: { _ in }) } }
        var backupInfo: BackupInfo { get throws { try InfoFiles.loadBackupInfo(storage, layout, warn: { _ in }) } }
    }

    @Test("after pg_upgrade to 17, the new cluster is database 2 (archive id 17-2) in both info files, with database 1 kept in the history")
    func recordsTheNewCluster() throws {
        let setup = try Setup()
        guard case .upgraded(let from, let to) = try setup.upgrade() else { Issue.record("not upgraded"); return }
        #expect(from.version == 15 && from.id == 1)
        #expect(to.version == 17 && to.id == 2 && to.systemIdentifier == Self.pg17.systemIdentifier && to.archiveID == "17-2")
        for info in [try setup.archiveInfo.history, try setup.backupInfo.history] {
            #expect(info.map(\.archiveID) == ["15-1", "17-2"])
        }
        #expect(try setup.archiveInfo.current == to && setup.backupInfo.current == to)
        #expect(try setup.backupInfo.current.catalogVersion == Self.pg17.catalogVersion)
    }

    @Test("stanza-upgrade run again for the same cluster changes nothing")
    func secondRunIsANoOp() throws {
        let setup = try Setup()
        _ = try setup.upgrade()
        let before = try setup.storage.readSmallFile(setup.layout.backupInfo)
        #expect(try setup.upgrade() == .alreadyCurrent(try setup.archiveInfo.current))
        #expect(try setup.storage.readSmallFile(setup.layout.backupInfo) == before)
    }

    @Test("an upgrade interrupted between archive.info and backup.info is completed with the same database id")
    func completesAHalfUpgrade() throws {
        let setup = try Setup()
        var archiveInfo = try setup.archiveInfo
        let identity = DatabaseIdentity(control: try PGControl(bytes: try Self.pg17.pgControl(), path: "pg_control"), id: 2)
        archiveInfo.current = identity
        archiveInfo.history.append(identity)
        try SealedFile.save(archiveInfo, to: setup.layout.archiveInfo, in: setup.storage)
        guard case .upgraded(_, let to) = try setup.upgrade() else { Issue.record("not completed"); return }
        #expect(to == identity)
        #expect(try setup.backupInfo.current == identity && setup.backupInfo.history.map(\.id) == [1, 2])
        #expect(try setup.archiveInfo.history.map(\.id) == [1, 2], "archive.info is not given the entry twice")
    }

    @Test("going back to the cluster the stanza left (15 after the upgrade to 17) is refused with stanza-mismatch and changes nothing")
    func refusesGoingBack() throws {
        let setup = try Setup()
        _ = try setup.upgrade()
        setup.host.addFile(Self.dataDirectory + "/global/pg_control", try PostgresFixture.pgControl())
        let before = try setup.storage.readSmallFile(setup.layout.archiveInfo)
        let error = #expect(throws: PGKeepError.self) { _ = try setup.upgrade() }
        #expect(error?.code == .stanzaMismatch && error?.message.contains("database 1") == true, "\(String(describing: error))")
        #expect(try setup.storage.readSmallFile(setup.layout.archiveInfo) == before)
    }

    @Test("stanza-upgrade of a stanza that was never created fails with stanza-missing")
    func missingStanza() throws {
        let host = ScriptedHost()
        host.addFile(Self.dataDirectory + "/global/pg_control", try Self.pg17.pgControl())
        let locks = try TemporaryDirectory("stanza-upgrade")
        let error = #expect(throws: PGKeepError.self) {
            _ = try StanzaUpgrade(storage: MemoryStorage(), host: host, layout: try RepositoryLayout(stanza: "main"),
                                  options: StanzaUpgradeOptions(dataDirectory: FilePath(Self.dataDirectory), lockPath: locks.path("lock")),
                                  log: Log(consoleLevel: .off)).run()
        }
        #expect(error?.code == .stanzaMissing)
    }

    @Test("before stanza-upgrade, a backup of the upgraded cluster is refused with a hint naming stanza-upgrade")
    func backupHintsAtStanzaUpgrade() throws {
        let setup = try Setup()
        let control = try PGControl(bytes: try Self.pg17.pgControl(), path: "pg_control")
        let error = #expect(throws: PGKeepError.self) {
            try StanzaCheck.verify(control: control, dataDirectory: Self.dataDirectory, archiveInfo: try setup.archiveInfo,
                                   backupInfo: try setup.backupInfo, stanza: "main")
        }
        #expect(error?.code == .stanzaMismatch && error?.hint?.contains("stanza-upgrade") == true, "\(String(describing: error))")
    }
}

/// archive-get after stanza-upgrade: the WAL a recovering cluster is given comes from its own
/// database's archive id, never from another database's segment of the same name.
@Suite("archive-get across an upgraded stanza")
struct ArchiveGetHistoryTests {
    static let name = "000000010000000000000005"
    static let old = ArchiveFixture.identity                        // 15-1
    static let new = DatabaseIdentity(id: 2, systemIdentifier: 7715297844352457182, version: 17,
                                      controlVersion: 1700, catalogVersion: 202406281)

    /// An upgraded stanza whose two archive ids both hold a different segment named `name`.
    func setup() throws -> ArchiveFixture {
        let fixture = try ArchiveFixture()
        var info = ArchiveInfo(current: Self.old)
        info.current = Self.new
        info.history.append(Self.new)
        try SealedFile.save(info, to: fixture.layout.archiveInfo, in: fixture.storage)
        for (identity, byte) in [(Self.old, UInt8(15)), (Self.new, UInt8(17))] {
            let bytes = [UInt8](repeating: byte, count: 64)
            let object = RepositoryLayout.archiveObjectName(walFile: Self.name, checksum: try SHA256Digest.of(bytes), compression: .none)
            try fixture.storage.writeSmallFile(try fixture.layout.archiveParent(archiveID: identity.archiveID, walFile: Self.name).appending(object), bytes)
        }
        return fixture
    }

    func get(_ fixture: ArchiveFixture, recovering: DatabaseIdentity?) throws -> [UInt8]? {
        let destination = fixture.directory.path("restore/pg_wal/RECOVERYXLOG")
        try ArchiveGet(storage: fixture.storage, layout: fixture.layout, bufferSize: 1 << 16, log: fixture.log,
                       recovering: recovering.map { (systemIdentifier: $0.systemIdentifier, version: $0.version) })
            .get(walFile: Self.name, destination: destination)
        return try fixture.directory.read("restore/pg_wal/RECOVERYXLOG")
    }

    @Test("a restored pre-upgrade (PostgreSQL 15) cluster gets the segment from 15-1, not the 17 cluster's of the same name")
    func oldClusterGetsItsOwnWAL() throws {
        #expect(try get(try setup(), recovering: Self.old)?.first == 15)
    }

    @Test("the upgraded cluster gets the segment from 17-2")
    func newClusterGetsItsOwnWAL() throws {
        #expect(try get(try setup(), recovering: Self.new)?.first == 17)
    }

    @Test("a cluster that is none of the stanza's databases is refused with archive-mismatch naming them")
    func foreignClusterIsRefused() throws {
        let stranger = DatabaseIdentity(id: 9, systemIdentifier: 42, version: 16, controlVersion: 1300, catalogVersion: 1)
        let error = #expect(throws: PGKeepError.self) { _ = try get(try setup(), recovering: stranger) }
        #expect(error?.code == .archiveMismatch && error?.message.contains("15-1") == true && error?.message.contains("17-2") == true,
                "\(String(describing: error))")
    }
}

@Suite("A major pgkeep does not know")
struct UnknownMajorTests {
    @Test("a PostgreSQL 19 data directory is refused with db-version naming 19 (from PG_VERSION) and the supported majors")
    func postgres19() throws {
        let host = ScriptedHost()
        let pg19 = try PostgresFixture.pgControl().patched(at: 8, UInt32(1900))
        host.addFile("/srv/pg19/global/pg_control", pg19)
        host.addFile("/srv/pg19/PG_VERSION", Array("19\n".utf8))
        let error = #expect(throws: PGKeepError.self) {
            _ = try StanzaCreate(storage: MemoryStorage(), host: host, layout: try RepositoryLayout(stanza: "main"), log: Log(consoleLevel: .off))
                .run(dataDirectory: "/srv/pg19")
        }
        #expect(error?.code == .dbVersion && error?.message.contains("PostgreSQL 19") == true, "\(String(describing: error))")
        #expect(error?.hint?.contains("15, 16, 17, 18") == true, "\(String(describing: error))")
    }
}
