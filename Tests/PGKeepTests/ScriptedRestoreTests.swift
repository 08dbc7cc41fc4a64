import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig
import SystemPackage

/// `RestoreRun`, the same code `pgkeep restore` runs, writing into a `ScriptedHost`: a backup of
/// a scripted cluster (`ScriptedBackupTests.Setup`) is restored onto a second scripted host, so
/// the write steps (directories, files and their attributes, pg_control last, delta clean) run
/// through the `PostgresHostWriting` seam without touching a disk.
@Suite("Restore onto a scripted host")
struct ScriptedRestoreTests {
    static let dataDirectory = "/srv/restore/data"

    /// A backup of the scripted cluster and a second, empty scripted host to restore it onto.
    struct Setup {
        let backup: ScriptedBackupTests.Setup
        let summary: BackupSummary
        let target = ScriptedHost()

        /// `configure` adds to the scripted cluster before it is backed up.
        init(configure: (ScriptedBackupTests.Setup) -> Void = { _ in }) throws {
            backup = try ScriptedBackupTests.Setup()
            configure(backup)
            summary = try backup.backup()
        }

        /// `configure` changes the options first.
        func restore(delta: Bool = false, _ configure: (inout RestoreOptions) -> Void = { _ in }) throws -> RestoreReport {
            var options = RestoreOptions(dataDirectory: ScriptedRestoreTests.dataDirectory, set: summary.label, bufferSize: 1 << 16,
                                         processMax: 2, restoreCommand: "pgkeep --stanza=demo archive-get %f \"%p\"")
            options.delta = delta
            configure(&options)
            let run = RestoreRun(storage: backup.storage, host: target, layout: backup.layout, options: options, log: Log(consoleLevel: .off))
            _ = try run.run()
            return try #require(run.report)
        }

        func file(_ relative: String) -> (bytes: [UInt8], mode: UInt32, mtime: Int64)? {
            guard case .file(let bytes, let mode, let mtime) = target.node(ScriptedRestoreTests.dataDirectory + "/" + relative) else { return nil }
            return (bytes, mode, mtime)
        }
    }

    @Test("a restore onto a scripted host writes every backed-up file with its bytes, mode and modification time")
    func writesFilesWithAttributes() throws {
        // One file with a mode other than the host's default for new files (0600), so a restore
        // that forgot to set the recorded mode fails.
        let setup = try Setup { $0.host.addFile(ScriptedBackupTests.dataDirectory + "/base/5/16385", [9, 9, 9], mode: 0o640, mtime: 1_795_000_000) }
        _ = try setup.restore()
        let manifest = try setup.backup.manifest(setup.summary)
        let relation = try #require(manifest.files.first { $0.name == "pg_data/base/5/16384" })
        let restored = try #require(setup.file("base/5/16384"))
        #expect(restored.bytes == ScriptedBackupTests.relation)
        #expect(restored.mode == relation.mode)
        #expect(restored.mtime == relation.mtime)
        let groupReadable = try #require(setup.file("base/5/16385"))
        #expect(groupReadable.bytes == [9, 9, 9])
        #expect(groupReadable.mode == 0o640)
        #expect(groupReadable.mtime == 1_795_000_000)
        #expect(setup.file("PG_VERSION")?.bytes == Array("15\n".utf8))
    }

    @Test("a restore onto a scripted host makes the backup's directories, empty ones included, with their modes")
    func makesDirectories() throws {
        let setup = try Setup()
        _ = try setup.restore()
        let manifest = try setup.backup.manifest(setup.summary)
        let status = try #require(try setup.target.status(FilePath(Self.dataDirectory + "/pg_wal/archive_status")))
        #expect(status.kind == .directory)
        let recorded = try #require(manifest.paths.first { $0.name == "pg_data/pg_wal/archive_status" })
        #expect(status.mode == RestoreRun.permissions(recorded.mode))
    }

    @Test("a restore puts pg_control in place by a rename after every directory is synced, and leaves no restore marker")
    func controlFileLast() throws {
        let setup = try Setup()
        _ = try setup.restore()
        let events = setup.target.events
        let control = Self.dataDirectory + "/global/pg_control"
        let rename = try #require(events.firstIndex(of: "rename \(control).pgkeep-tmp -> \(control)"))
        let lastDirectorySync = try #require(events.lastIndex { $0 == "syncDirectory \(Self.dataDirectory)/global" })
        #expect(lastDirectorySync > rename, "the rename itself is synced")
        #expect(events[..<rename].contains("syncDirectory \(Self.dataDirectory)/base/5"), "directories are synced before the rename")
        #expect(setup.file("global/pg_control") != nil)
        #expect(setup.file("global/pg_control.pgkeep-tmp") == nil)
        #expect(setup.file(RestoreMarker.fileName) == nil)
    }

    @Test("a restore writes the recovery signal file and restore_command through the host")
    func writesRecoverySettings() throws {
        let setup = try Setup()
        _ = try setup.restore()
        #expect(setup.file("recovery.signal")?.bytes == [])
        let autoConf = try #require(setup.file("postgresql.auto.conf"))
        #expect(String(decoding: autoConf.bytes, as: UTF8.self).contains("restore_command = 'pgkeep --stanza=demo archive-get %f \"%p\"'"))
    }

    @Test("a restore onto a scripted host makes a tablespace's link again, holding its recorded location")
    func makesTablespaceLink() throws {
        let setup = try Setup { cluster in
            cluster.host.addLink(ScriptedBackupTests.dataDirectory + "/pg_tblspc/16400", destination: "/srv/ts1")
            cluster.host.addDirectory("/srv/ts1")
            cluster.host.sql.tablespaceList = [PGTablespace(oid: 16400, name: "ts1", location: "/srv/ts1")]
        }
        _ = try setup.restore()
        guard case .link(let destination) = setup.target.node(Self.dataDirectory + "/pg_tblspc/16400") else {
            Issue.record("no link at pg_tblspc/16400: \(String(describing: setup.target.node(Self.dataDirectory + "/pg_tblspc/16400")))")
            return
        }
        #expect(destination == "/srv/ts1")
    }

    @Test("a delta restore onto a scripted host removes the files, directories and links the backup does not have")
    func deltaRemovesStrays() throws {
        let setup = try Setup()
        _ = try setup.restore()
        setup.target.addFile(Self.dataDirectory + "/base/5/99999", [1, 2, 3])
        setup.target.addDirectory(Self.dataDirectory + "/stray/inner")
        setup.target.addLink(Self.dataDirectory + "/stray-link", destination: "/elsewhere")
        let report = try setup.restore(delta: true)
        #expect(setup.target.node(Self.dataDirectory + "/base/5/99999") == nil)
        #expect(setup.target.node(Self.dataDirectory + "/stray") == nil)
        #expect(setup.target.node(Self.dataDirectory + "/stray-link") == nil)
        // The strays (file, link, directory and its child) and what the first restore wrote
        // itself that the backup does not have (recovery.signal, postgresql.auto.conf).
        #expect(report.removed == 6)
        #expect(setup.file("base/5/16384")?.bytes == ScriptedBackupTests.relation, "a file the backup has stays")
    }

    @Test("a delta restore is refused when the postmaster.pid on the host names a process the host runs, and changes nothing")
    func deltaRefusesLivePostmasterOnTheHost() throws {
        let setup = try Setup()
        _ = try setup.restore()
        setup.target.addFile(Self.dataDirectory + "/postmaster.pid", Array("4242\n\(Self.dataDirectory)\n".utf8))
        setup.target.addFile(Self.dataDirectory + "/base/5/99999", [1, 2, 3])
        setup.target.processes = [4242]
        let error = try #require(#expect(throws: PGKeepError.self) { try setup.restore(delta: true) })
        #expect(error.code == .pgRunning)
        #expect(error.message.contains("names process 4242"), "\(error)")
        #expect(setup.target.node(Self.dataDirectory + "/base/5/99999") != nil, "nothing was removed")

        setup.target.processes = []
        _ = try setup.restore(delta: true)
        #expect(setup.target.node(Self.dataDirectory + "/base/5/99999") == nil, "a stale postmaster.pid does not stop the restore")
    }

    @Test("restored files get the owners the manifest records only where the host writes as root")
    func ownersOnlyAsRootOnTheHost() throws {
        let asUser = try Setup()
        _ = try asUser.restore()
        #expect(asUser.target.owners.isEmpty, "no lchown as another user: the files are the writer's")

        let asRoot = try Setup()
        asRoot.target.asRoot = true
        _ = try asRoot.restore()
        #expect(asRoot.target.owners[FilePath(Self.dataDirectory + "/base/5/16384")] != nil, "as root every restored file is given its owner")
    }
}

/// The write operations of `LocalHost` on a real directory: what restore relies on.
@Suite("LocalHost writes")
struct LocalHostWritingTests {
    @Test("a file created through LocalHost has its bytes, the mode and time set, and is renamed and removed by the host")
    func fileLifecycle() throws {
        let directory = try TemporaryDirectory("local-host-write")
        let host = LocalHost()
        let base = FilePath(directory.path("a/b"))
        try host.makeDirectories(base, mode: 0o700)
        #expect(try host.status(base)?.kind == .directory)
        let temporary = base.appending("f.tmp"), final = base.appending("f")
        let writer = try host.createFile(temporary, mode: 0o600, temporaryFor: final)
        try [UInt8]([1, 2, 3]).withUnsafeBytes { try writer.write($0) }
        #expect(writer.written == 3)
        try writer.sync()
        try writer.close()
        try host.setMode(temporary, mode: 0o640)
        try host.setModificationTime(temporary, seconds: 1_700_000_000)
        try host.rename(temporary, to: final)
        try host.syncDirectory(base)
        let status = try #require(try host.status(final))
        #expect(status.size == 3 && status.mode & 0o777 == 0o640 && status.mtime == 1_700_000_000)
        #expect(try host.remove(final))
        #expect(try host.remove(final) == false, "removing a missing file is not an error")
    }

    @Test("a link made through LocalHost holds its destination as given, and rmdir of a missing directory succeeds")
    func linkAndRemoveDirectory() throws {
        let directory = try TemporaryDirectory("local-host-link")
        let host = LocalHost()
        let link = FilePath(directory.path("link"))
        try host.makeLink(link, destination: "../somewhere")
        #expect(try host.readLink(link) == "../somewhere")
        #expect(try host.status(link)?.kind == .link)
        try host.removeDirectory(FilePath(directory.path("missing")))
    }
}

/// What a restore's progress says, against what it did.
@Suite("Restore progress")
struct RestoreProgressTests {
    @Test("a restore's progress counts the bundled files too: it ends at n/n files, n being the files it says it restored")
    func progressCountsBundledFiles() throws {
        let backup = try ScriptedBackupTests.Setup()
        for n in 0..<5 { backup.host.addFile(ScriptedBackupTests.dataDirectory + "/base/5/\(17000 + n)", [UInt8](repeating: UInt8(n), count: 100)) }
        let summary = try backup.backup { $0.bundle = BundleOptions(enabled: true, limit: BundleOptions.defaultLimit, size: BundleOptions.defaultSize) }
        #expect(try backup.manifest(summary).files.contains { $0.bundle != nil }, "the small files are bundled")
        let logDirectory = try TemporaryDirectory("restore-log")
        let log = Log(consoleLevel: .off)
        log.openFile(directory: logDirectory.path, name: "restore.log", level: .info)
        let options = RestoreOptions(dataDirectory: ScriptedRestoreTests.dataDirectory, set: summary.label, bufferSize: 1 << 16,
                                     processMax: 2, restoreCommand: "pgkeep --stanza=demo archive-get %f \"%p\"")
        _ = try RestoreRun(storage: backup.storage, host: ScriptedHost(), layout: backup.layout, options: options, log: log).run()
        let text = try String(contentsOfFile: logDirectory.path("restore.log"), encoding: .utf8)
        let files = try backup.manifest(summary).files.count
        #expect(text.contains("restore 100%") && text.contains("\(files)/\(files) files"), "\(text)")
        #expect(text.contains("restored \(files) files"), "\(text)")
    }
}
