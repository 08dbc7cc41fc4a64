import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
import SystemPackage

/// `backup --archive-check` / `--no-archive-check` and `--archive-copy` on a scripted cluster
/// (`ScriptedBackupTests.Setup`), whose backup needs WAL segment 000000010000000000000006.
@Suite("Backup archive check and archive copy")
struct ArchiveCopyTests {
    static let segment = "000000010000000000000006"
    static let segmentBytes = [UInt8](repeating: 3, count: 16 << 20)

    /// A scripted cluster whose needed segment is archived whole (a real segment's size), or,
    /// with `damaged`, under the right name with other bytes.
    static func setup(damaged: Bool = false) throws -> ScriptedBackupTests.Setup {
        let setup = try ScriptedBackupTests.Setup(archiveWAL: false)
        let object = RepositoryLayout.archiveObjectName(walFile: segment, checksum: try SHA256Digest.of(segmentBytes), compression: .none)
        var bytes = segmentBytes
        if damaged { bytes[100] = 4 }
        try setup.storage.writeSmallFile(try setup.layout.archiveParent(archiveID: "15-1", walFile: segment).appending(object), bytes)
        return setup
    }

    @Test("--archive-copy stores the backup's WAL as a pg_data/pg_wal entry with the archived checksum, and records the option")
    func archiveCopyStoresTheWAL() throws {
        let setup = try Self.setup()
        let summary = try setup.backup { $0.archiveCopy = true }
        let manifest = try setup.manifest(summary)
        let entry = try #require(manifest.files.first { $0.name == "pg_data/pg_wal/\(Self.segment)" })
        #expect(entry.checksum == (try SHA256Digest.of(Self.segmentBytes)))
        #expect(entry.size == UInt64(Self.segmentBytes.count))
        #expect(entry.reference == summary.label)
        #expect(manifest.options.archiveCopy == true && manifest.options.archiveCheck == true)
        #expect(summary.archiveCopy == true)
        let stored = try #require(try setup.storage.readSmallFile(try setup.layout.backupFile(label: summary.label, name: entry.name, compression: entry.compression)))
        #expect(try SHA256Digest.of(stored) == entry.repoChecksum)
    }

    @Test("without --archive-copy the backup stores no WAL")
    func noArchiveCopyStoresNoWAL() throws {
        let setup = try Self.setup()
        let summary = try setup.backup()
        let manifest = try setup.manifest(summary)
        #expect(!manifest.files.contains { $0.name.hasPrefix("pg_data/pg_wal/") })
        #expect(manifest.options.archiveCopy == false)
        #expect(summary.archiveCopy == nil)
    }

    @Test("--archive-copy of an archived segment whose bytes do not match its name fails the backup, which is not recorded")
    func damagedArchivedSegmentFailsTheBackup() throws {
        let setup = try Self.setup(damaged: true)
        let error = #expect(throws: PGKeepError.self) { _ = try setup.backup { $0.archiveCopy = true } }
        #expect(error?.code == .checksumMismatch)
        #expect(error?.message.contains(Self.segment) == true, "\(String(describing: error))")
        #expect(try setup.backups.isEmpty)
    }

    @Test("--archive-copy with --no-archive-check is refused before the backup starts")
    func archiveCopyNeedsArchiveCheck() throws {
        let setup = try Self.setup()
        let error = #expect(throws: PGKeepError.self) {
            _ = try setup.backup { $0.archiveCopy = true; $0.archiveCheck = false }
        }
        #expect(error?.code == .optionInvalid)
        #expect(!setup.host.sql.calls.contains("startBackup"))
    }

    @Test("--no-archive-check records the backup without waiting for its WAL, with a warning")
    func noArchiveCheckDoesNotWait() throws {
        let setup = try ScriptedBackupTests.Setup(archiveWAL: false)
        let logDirectory = try TemporaryDirectory("backup-log")
        let log = Log(consoleLevel: .off)
        log.openFile(directory: logDirectory.path, name: "backup.log", level: .info)
        let summary = try setup.backup(archiveTimeout: 0.1, log: log) { $0.archiveCheck = false }
        #expect(try setup.backups.map(\.label) == [summary.label])
        #expect(try setup.manifest(summary).options.archiveCheck == false)
        let text = try String(contentsOfFile: logDirectory.path("backup.log"), encoding: .utf8)
        #expect(text.contains("WARN") && text.contains("--no-archive-check"), "\(text)")
    }

    @Test("the restore plan counts the WAL a backup stores as present when the archive lacks it")
    func planCountsStoredWAL() throws {
        let setup = try Self.setup()
        let summary = try setup.backup { $0.archiveCopy = true }
        let manifest = try setup.manifest(summary)
        #expect(ArchiveCatalog().adding(walStoredIn: manifest).segments[Self.segment] != nil)
        let withoutCopy = try setup.backup()
        #expect(ArchiveCatalog().adding(walStoredIn: try setup.manifest(withoutCopy)).segments.isEmpty)
    }
}
