import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
import Foundation

/// Backup annotations (`backup --annotation`, `annotate`), on a scripted cluster.
@Suite("Backup annotations")
struct AnnotationTests {
    static func annotate(_ setup: ScriptedBackupTests.Setup, _ label: BackupLabel, _ changes: [String: String]) throws -> [String: String] {
        let options = AnnotateOptions(label: label, changes: changes, lockPath: setup.lockDirectory.path("lock"))
        return try BackupAnnotation(storage: setup.storage, layout: setup.layout, options: options, log: Log(consoleLevel: .off)).run()
    }

    @Test("backup --annotation records the notes in the manifest and the backup.info entry")
    func backupRecordsAnnotations() throws {
        let setup = try ScriptedBackupTests.Setup()
        let summary = try setup.backup { $0.annotation = ["ticket": "CHG-42", "reason": "before upgrade"] }
        #expect(try setup.manifest(summary).annotation == ["ticket": "CHG-42", "reason": "before upgrade"])
        #expect(try setup.backups.first?.annotation == ["ticket": "CHG-42", "reason": "before upgrade"])
    }

    @Test("annotate adds and changes keys, and removes a key given with an empty value, in the manifest and backup.info alike")
    func annotateChangesAndRemoves() throws {
        let setup = try ScriptedBackupTests.Setup()
        let summary = try setup.backup { $0.annotation = ["ticket": "CHG-42", "reason": "before upgrade"] }
        let notes = try Self.annotate(setup, summary.label, ["ticket": "CHG-43", "reason": "", "owner": "dba team"])
        #expect(notes == ["ticket": "CHG-43", "owner": "dba team"])
        #expect(try setup.manifest(summary).annotation == notes)
        #expect(try setup.backups.first?.annotation == notes)
    }

    @Test("removing every note leaves no annotation key at all")
    func removingEveryNote() throws {
        let setup = try ScriptedBackupTests.Setup()
        let summary = try setup.backup { $0.annotation = ["ticket": "CHG-42"] }
        #expect(try Self.annotate(setup, summary.label, ["ticket": ""]).isEmpty)
        #expect(try setup.manifest(summary).annotation == nil)
        #expect(try setup.backups.first?.annotation == nil)
    }

    @Test("annotate leaves the rest of the manifest as it was: its file entries and features")
    func annotateKeepsTheManifest() throws {
        let setup = try ScriptedBackupTests.Setup()
        let summary = try setup.backup()
        let before = try setup.manifest(summary)
        _ = try Self.annotate(setup, summary.label, ["note": "x"])
        let after = try setup.manifest(summary)
        #expect(after.files == before.files)
        #expect(after.backup.label == before.backup.label && after.readerFeatures == before.readerFeatures)
    }

    @Test("annotate of a backup the stanza does not have fails with backup-missing and writes nothing")
    func annotateUnknownBackup() throws {
        let setup = try ScriptedBackupTests.Setup()
        _ = try setup.backup()
        let info = try setup.storage.readSmallFile(setup.layout.backupInfo)
        let error = #expect(throws: PGKeepError.self) { _ = try Self.annotate(setup, BackupLabel("20200101-000000F")!, ["a": "b"]) }
        #expect(error?.code == .backupMissing)
        #expect(try setup.storage.readSmallFile(setup.layout.backupInfo) == info)
    }

    @Test("info shows the notes: JSON as pgBackRest's annotation object, text as annotation(s) lines; absent without notes")
    func infoShowsAnnotations() throws {
        let setup = try ScriptedBackupTests.Setup()
        _ = try setup.backup()
        _ = try setup.backup { $0.annotation = ["ticket": "CHG-42"] }
        let report = InfoReport(storage: setup.storage, log: Log(consoleLevel: .off))
        let stanzas = try report.collect(only: "demo")
        let json = try JSONSerialization.jsonObject(with: Data(try report.json(stanzas).utf8)) as? [[String: Any]]
        let backups = json?.first?["backup"] as? [[String: Any]] ?? []
        #expect(backups.count == 2)
        #expect(backups.first?["annotation"] == nil)
        #expect(backups.last?["annotation"] as? [String: String] == ["ticket": "CHG-42"])
        #expect(report.text(stanzas).contains("annotation(s)\n                ticket: CHG-42\n"))
    }

    @Test("a manifest's annotation round-trips through its JSON, keys needing escapes included")
    func manifestRoundTrip() throws {
        var manifest = ManifestSample.make()
        manifest.annotation = ["quote\"key": "tab\tvalue", "é": ""]
        let sealed = try SealedFile.seal(manifest)
        let storage = MemoryStorage()
        try storage.writeSmallFile(try StoragePath("m"), sealed)
        let loaded = try #require(try SealedFile.load(Manifest.self, from: try StoragePath("m"), in: storage))
        #expect(loaded.annotation == manifest.annotation)
    }
}

/// `info --output=json` against what monitoring reads (docs/monitoring.md), and
/// `info --set`.
@Suite("info JSON for monitoring, and info --set")
struct InfoMonitoringTests {
    /// A scripted cluster with a tablespace and a file large enough to be stored in blocks.
    static func setup() throws -> ScriptedBackupTests.Setup {
        let setup = try ScriptedBackupTests.Setup()
        setup.host.sql.databaseList.append(PGDatabase(oid: 16390, name: "app"))
        setup.host.addFile(ScriptedBackupTests.dataDirectory + "/base/5/16500", [UInt8](repeating: 9, count: 3 << 20))
        return setup
    }

    static func json(_ setup: ScriptedBackupTests.Setup, set: BackupLabel? = nil) throws -> [String: Any] {
        let report = InfoReport(storage: setup.storage, log: Log(consoleLevel: .off), set: set)
        let text = try report.json(try report.collect(only: "demo"))
        return try #require((try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]])?.first)
    }

    static func value(_ object: Any?, _ path: String) -> Any? {
        var current = object
        for key in path.split(separator: ".") {
            if let array = current as? [Any] { current = array.first }
            current = (current as? [String: Any])?[String(key)]
        }
        return current
    }

    @Test("every field pgbackrest_exporter reads is present, with pgBackRest's key names")
    func everyExporterField() throws {
        let setup = try Self.setup()
        _ = try setup.backup { $0.annotation = ["ticket": "CHG-42"] }
        let stanza = try Self.json(setup)
        for path in ["name", "status.code", "status.lock.backup.held", "repo.key", "repo.cipher", "repo.status.code",
                     "archive.database.id", "archive.database.repo-key", "archive.id", "archive.min", "archive.max",
                     "db.id", "db.repo-key", "db.version", "db.system-id",
                     "backup.label", "backup.type", "backup.annotation", "backup.error", "backup.archive.start", "backup.archive.stop",
                     "backup.lsn.start", "backup.lsn.stop", "backup.timestamp.start", "backup.timestamp.stop", "backup.backrest.version",
                     "backup.database.id", "backup.database.repo-key", "backup.info.size", "backup.info.delta",
                     "backup.info.repository.size", "backup.info.repository.delta",
                     "backup.info.repository.size-map", "backup.info.repository.delta-map"] {
            #expect(Self.value(stanza, path) != nil, "\(path) is missing")
        }
        let backup = (stanza["backup"] as? [[String: Any]])?.first
        #expect(backup?.keys.contains("prior") == true && backup?.keys.contains("reference") == true, "prior and reference are null for a full backup, not absent")
        #expect(Self.value(stanza, "backup.backrest.version") as? String == PGKeepVersion.current)
        #expect((Self.value(stanza, "backup.info.repository.size-map") as? Int ?? 0) > 0)
    }

    @Test("without --set the backups carry no database-ref, link or tablespace, as pgBackRest's info")
    func noDetailWithoutSet() throws {
        let setup = try Self.setup()
        _ = try setup.backup()
        let backup = try #require((try Self.json(setup)["backup"] as? [[String: Any]])?.first)
        #expect(backup["database-ref"] == nil && backup["link"] == nil && backup["tablespace"] == nil)
    }

    @Test("info --set shows only that backup, with its database list; link and tablespace are null when it has none")
    func setShowsOneBackupWithDetail() throws {
        let setup = try Self.setup()
        let first = try setup.backup()
        _ = try setup.backup()
        let stanza = try Self.json(setup, set: first.label)
        let backups = try #require(stanza["backup"] as? [[String: Any]])
        #expect(backups.map { $0["label"] as? String } == [first.label.text])
        let databases = backups[0]["database-ref"] as? [[String: Any]]
        #expect(databases?.map { $0["name"] as? String } == ["template1", "postgres", "app"])
        #expect(databases?.map { $0["oid"] as? Int } == [1, 5, 16390])
        #expect(backups[0].keys.contains("link") && backups[0]["link"] is NSNull)
        #expect(backups[0].keys.contains("tablespace") && backups[0]["tablespace"] is NSNull)
        let text = InfoReport(storage: setup.storage, log: Log(consoleLevel: .off), set: first.label)
        #expect(text.text(try text.collect(only: "demo")).contains("database list: template1 (1), postgres (5), app (16390)"))
    }

    @Test("info --set of a label the stanza lacks reports status 6, requested backup not found")
    func setOfAnUnknownBackup() throws {
        let setup = try Self.setup()
        _ = try setup.backup()
        let status = try Self.json(setup, set: BackupLabel("20200101-000000F")!)["status"] as? [String: Any]
        #expect(status?["code"] as? Int == 6)
        #expect(status?["message"] as? String == "requested backup not found")
    }
}
