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
