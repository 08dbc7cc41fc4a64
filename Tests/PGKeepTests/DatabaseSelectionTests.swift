import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
import SystemPackage

/// Selective restore (`--db-include`, `--db-exclude`): which databases come back as zero-filled
/// files (`DatabaseSelection`), and what a restore writes for them.
@Suite("Selective restore")
struct DatabaseSelectionTests {
    /// A manifest with the three system databases and two user databases.
    static func manifest() -> Manifest {
        var manifest = Manifest(
            backup: .init(label: BackupLabel("20261204-120000F")!, type: .full, timestampStart: 0, timestampStop: 0,
                          lsnStart: LSN(0), lsnStop: LSN(0), walStart: "", walStop: "", timeline: 1),
            database: .init(id: 1, systemIdentifier: 1, version: 150000, controlVersion: 1300, catalogVersion: 202209061,
                            walSegmentSize: 16 << 20, pageChecksums: true),
            options: .init(compressType: .lz4, compressLevel: 1, bufferSize: 1 << 16, processMax: 1, startFast: true))
        manifest.databases = [Manifest.DatabaseEntry(oid: 1, name: "template1"), .init(oid: 4, name: "template0"), .init(oid: 5, name: "postgres"),
                              .init(oid: 16390, name: "app"), .init(oid: 16391, name: "scratch")]
        return manifest
    }

    static func excluded(include: [String] = [], exclude: [String] = []) throws -> [String] {
        try DatabaseSelection(.init(include: include, exclude: exclude), manifest: manifest()).excluded.map(\.name)
    }

    static func refusal(include: [String] = [], exclude: [String] = []) -> PGKeepError? {
        do {
            _ = try DatabaseSelection(.init(include: include, exclude: exclude), manifest: manifest())
            return nil
        } catch {
            return error as? PGKeepError
        }
    }

    @Test("--db-include keeps the named database and the system ones, and zero-fills every other user database")
    func includeZeroFillsTheOtherUserDatabases() throws {
        #expect(try Self.excluded(include: ["app"]) == ["scratch"])
    }

    @Test("--db-include of a system database alone zero-fills every user database")
    func includeOfPostgresAloneZeroFillsUserDatabases() throws {
        #expect(try Self.excluded(include: ["postgres"]) == ["app", "scratch"])
    }

    @Test("--db-exclude zero-fills only the named database")
    func excludeZeroFillsTheNamedDatabase() throws {
        #expect(try Self.excluded(exclude: ["scratch"]) == ["scratch"])
    }

    @Test("a database may be named by its oid")
    func databasesByOID() throws {
        #expect(try Self.excluded(exclude: ["16390"]) == ["app"])
    }

    @Test("a database the backup does not have is refused as an invalid option, the hint listing the backup's databases")
    func unknownDatabaseRefused() throws {
        let error = try #require(Self.refusal(include: ["ap"]))
        #expect(error.code == .optionInvalid)
        #expect(error.message.contains("'ap'"))
        #expect(error.hint?.contains("app (16390)") == true)
    }

    @Test("--db-exclude of a system database is refused")
    func excludingASystemDatabaseRefused() throws {
        let error = try #require(Self.refusal(exclude: ["template1"]))
        #expect(error.code == .optionInvalid)
        #expect(error.message.contains("system database"))
    }

    @Test("a database both included and excluded is refused")
    func includedAndExcludedRefused() throws {
        let error = try #require(Self.refusal(include: ["app"], exclude: ["16390"]))
        #expect(error.code == .optionInvalid)
        #expect(error.message.contains("both"))
    }

    @Test("the zero-filled files are every file of the excluded database, in base/ and in tablespaces, except PG_VERSION")
    func zeroFilledNames() throws {
        let selection = try DatabaseSelection(.init(exclude: ["app"]), manifest: Self.manifest())
        #expect(selection.zeroFills("pg_data/base/16390/16400"))
        #expect(selection.zeroFills("pg_data/base/16390/16400_fsm"))
        #expect(selection.zeroFills("pg_data/base/16390/pg_filenode.map"))
        #expect(selection.zeroFills("pg_tblspc/16500/PG_15_202209061/16390/16401.1"))
        #expect(!selection.zeroFills("pg_data/base/16390/PG_VERSION"))
        #expect(!selection.zeroFills("pg_tblspc/16500/PG_15_202209061/16390/PG_VERSION"))
        #expect(!selection.zeroFills("pg_data/base/16391/16400"))
        #expect(!selection.zeroFills("pg_data/base/5/1259"))
        #expect(!selection.zeroFills("pg_data/global/1262"))
        #expect(!selection.zeroFills("pg_data/base/16390"))
    }

    @Test("a restore writes an excluded database's files as zeros of their recorded sizes, reading nothing for them, and restores PG_VERSION as stored")
    func restoreWritesZeros() throws {
        let data = ScriptedBackupTests.dataDirectory
        let relation = [UInt8](repeating: 7, count: 24576)
        let setup = try ScriptedRestoreTests.Setup { backup in
            backup.host.sql.databaseList.append(PGDatabase(oid: 16390, name: "app"))
            backup.host.addFile(data + "/base/16390/PG_VERSION", Array("15\n".utf8))
            backup.host.addFile(data + "/base/16390/16400", relation)
        }
        // Without its stored object: a restore that read it would fail.
        let entry = try #require(try setup.backup.manifest(setup.summary).files.first { $0.name == "pg_data/base/16390/16400" })
        try setup.backup.storage.remove(try setup.backup.layout.backupFile(label: entry.reference, name: entry.name, compression: entry.compression))
        let report = try setup.restore { $0.databases = .init(exclude: ["app"]) }
        #expect(setup.file("base/16390/16400")?.bytes == [UInt8](repeating: 0, count: relation.count))
        #expect(setup.file("base/16390/PG_VERSION")?.bytes == Array("15\n".utf8))
        #expect(setup.file("base/5/16384")?.bytes == ScriptedBackupTests.relation)
        #expect(report.zeroFilled == 1)
        #expect(setup.target.events.contains("extend \(ScriptedRestoreTests.dataDirectory)/base/16390/16400 \(relation.count)"))
    }
}
