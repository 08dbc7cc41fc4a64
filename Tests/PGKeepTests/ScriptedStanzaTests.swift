import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

/// stanza-create and stanza-repair read the cluster's pg_control through the database host
/// (`PostgresHost`), so they work where the data directory is not on this machine: here it exists
/// only in a `ScriptedHost`.
@Suite("Stanza commands against a scripted host")
struct ScriptedStanzaTests {
    static let dataDirectory = "/srv/pg/scripted-only/data"

    static func host() throws -> ScriptedHost {
        let host = ScriptedHost()
        host.addFile(dataDirectory + "/global/pg_control", try PostgresFixture.pgControl())
        return host
    }

    @Test("stanza-create records the cluster whose pg_control the host holds")
    func stanzaCreateReadsPGControlOnTheHost() throws {
        let storage = MemoryStorage()
        let layout = try RepositoryLayout(stanza: "main")
        let outcome = try StanzaCreate(storage: storage, host: try Self.host(), layout: layout, log: Log(consoleLevel: .off))
            .run(dataDirectory: Self.dataDirectory)
        #expect(outcome == .created)
        let info = try InfoFiles.loadArchiveInfo(storage, layout, warn: { _ in })
        #expect(info.current.systemIdentifier == PostgresFixture.systemIdentifier)
        #expect(info.current.version == 15)
    }

    @Test("stanza-create records a PostgreSQL 16, 17 or 18 cluster with its major and system identifier",
          arguments: PostgresFixture.LaterMajor.all)
    func stanzaCreateLaterMajor(_ fixture: PostgresFixture.LaterMajor) throws {
        let storage = MemoryStorage()
        let layout = try RepositoryLayout(stanza: "main")
        let host = ScriptedHost()
        host.addFile(Self.dataDirectory + "/global/pg_control", try fixture.pgControl())
        #expect(try StanzaCreate(storage: storage, host: host, layout: layout, log: Log(consoleLevel: .off))
            .run(dataDirectory: Self.dataDirectory) == .created)
        let info = try InfoFiles.loadArchiveInfo(storage, layout, warn: { _ in })
        #expect(info.current.version == fixture.major)
        #expect(info.current.systemIdentifier == fixture.systemIdentifier)
        #expect(try InfoFiles.loadBackupInfo(storage, layout, warn: { _ in }).current.catalogVersion == fixture.catalogVersion)
    }

    @Test("stanza-create refuses a PostgreSQL 14 cluster with db-version, naming 14 and the supported majors, and writes nothing")
    func stanzaCreateRefusesUnsupportedMajor() throws {
        let pg14 = try PostgresFixture.pgControl().patched(at: 12, UInt32(202107181)).withRecomputedControlCRC()
        let host = ScriptedHost()
        host.addFile(Self.dataDirectory + "/global/pg_control", pg14)
        let storage = MemoryStorage()
        let error = try #require(#expect(throws: PGKeepError.self) {
            try StanzaCreate(storage: storage, host: host, layout: try RepositoryLayout(stanza: "main"), log: Log(consoleLevel: .off))
                .run(dataDirectory: Self.dataDirectory)
        })
        #expect(error.code == .dbVersion)
        #expect(error.message.contains("PostgreSQL 14"), "\(error)")
        #expect(error.hint?.contains("15, 16, 17, 18") == true, "\(error)")
        #expect(try storage.list(.root).isEmpty, "nothing was written")
    }

    @Test("stanza-create names the host's path when its pg_control is missing")
    func stanzaCreateMissingPGControlOnTheHost() throws {
        let storage = MemoryStorage()
        let error = try #require(#expect(throws: PGKeepError.self) {
            try StanzaCreate(storage: storage, host: ScriptedHost(), layout: try RepositoryLayout(stanza: "main"), log: Log(consoleLevel: .off))
                .run(dataDirectory: Self.dataDirectory)
        })
        #expect(error.code == .fileMissing)
        #expect(error.message.contains(Self.dataDirectory + "/global/pg_control"), "\(error)")
        #expect(try storage.list(.root).isEmpty, "nothing was written")
    }

    @Test("stanza-repair with --pg1-path rebuilds the info files for the cluster whose pg_control the host holds")
    func stanzaRepairReadsPGControlOnTheHost() throws {
        let storage = MemoryStorage()
        let layout = try RepositoryLayout(stanza: "main")
        let host = try Self.host()
        _ = try StanzaCreate(storage: storage, host: host, layout: layout, log: Log(consoleLevel: .off)).run(dataDirectory: Self.dataDirectory)
        try storage.remove(layout.backupInfo)
        try storage.remove(try SealedFile.copyPath(of: layout.backupInfo))
        let locks = try TemporaryDirectory("scripted-stanza")
        _ = try StanzaRepair(storage: storage, host: host, layout: layout,
                             options: StanzaRepairOptions(dataDirectory: Self.dataDirectory, force: false, dryRun: false, lockPath: locks.path),
                             log: Log(consoleLevel: .off)).run()
        let info = try InfoFiles.loadBackupInfo(storage, layout, warn: { _ in })
        #expect(info.current.systemIdentifier == PostgresFixture.systemIdentifier)
    }
}
