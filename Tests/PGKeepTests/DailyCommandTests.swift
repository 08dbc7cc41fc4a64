import Foundation
import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepEngine
@testable import PGKeepConfig
import SystemPackage

/// `stop` and `start`: the stop files (`StopFile`) and what they stop.
@Suite("Stop files")
struct StopFileTests {
    let directory: TemporaryDirectory
    var lockPath: String { directory.path("lock") }
    let log = Log(consoleLevel: .off)

    init() throws { directory = try TemporaryDirectory("stop-file") }

    func expectStopped(_ stanza: String?, naming file: String) {
        let error = #expect(throws: PGKeepError.self) { try StopFile.refuse("backup", lockPath: lockPath, stanza: stanza) }
        #expect(error?.code == .stopped, "\(String(describing: error))")
        #expect(error?.message.contains(file) == true, "\(String(describing: error))")
        #expect(error?.hint?.contains("start") == true, "\(String(describing: error))")
    }

    @Test("stop --stanza creates <lock-path>/<stanza>.stop, which stops that stanza and no other")
    func stanzaStopFile() throws {
        let outcome = try StanzaStop(lockPath: lockPath, stanza: "main", log: log).stop(force: false)
        #expect(outcome.created)
        #expect(outcome.stopFile.path == lockPath + "/main.stop")
        #expect(FileManager.default.fileExists(atPath: lockPath + "/main.stop"))
        expectStopped("main", naming: lockPath + "/main.stop")
        try StopFile.refuse("backup", lockPath: lockPath, stanza: "other")
    }

    @Test("stop without a stanza creates all.stop, which stops every stanza")
    func allStopFile() throws {
        _ = try StanzaStop(lockPath: lockPath, stanza: nil, log: log).stop(force: false)
        expectStopped("main", naming: lockPath + "/all.stop")
        expectStopped("other", naming: lockPath + "/all.stop")
    }

    @Test("a second stop is not an error: it reports the stop file already there")
    func stopTwice() throws {
        let stop = StanzaStop(lockPath: lockPath, stanza: "main", log: log)
        #expect(try stop.stop(force: false).created)
        #expect(try stop.stop(force: false).created == false)
    }

    @Test("start removes the stop file and the stanza runs again; a start without one says so")
    func startRemovesTheStopFile() throws {
        let stop = StanzaStop(lockPath: lockPath, stanza: "main", log: log)
        _ = try stop.stop(force: false)
        #expect(try stop.start())
        try StopFile.refuse("backup", lockPath: lockPath, stanza: "main")
        #expect(try stop.start() == false)
    }

    @Test("the commands that change the repository are stopped; restore, archive-get, verify and info are not")
    func whichCommandsAreStopped() {
        let stopped = Set(CommandName.allCases.filter(\.isStoppable))
        #expect(stopped == [.backup, .archivePush, .expire, .stanzaCreate, .stanzaRepair, .stanzaUpgrade, .annotate])
    }

    /// A stand-in for a running backup: a process that holds `lockFile` with flock and has
    /// written its pid into it, as StanzaLock does. Started through a shell (Shell.run resets the
    /// signal mask, which a Foundation Process would inherit blocked from the test runner);
    /// returns its pid once it holds the lock.
    func lockHolder(_ lockFile: String, stanza: String) throws -> Int32 {
        try FileManager.default.createDirectory(atPath: lockPath, withIntermediateDirectories: true)
        let started = try Shell.run("/bin/bash", ["-c", "( exec 9<>\"$0\"; flock -x 9; printf '%s\\n' $BASHPID >&9; exec sleep 60 ) </dev/null >/dev/null 2>&1 & echo $!", lockFile]).check()
        let pid = try #require(Int32(started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        for _ in 0..<500 {
            if try StanzaLock.holders(lockPath: lockPath, stanza: stanza, kinds: [.backup]).map(\.pid) == [pid] { return pid }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        throw HarnessError("the lock holder \(pid) never took '\(lockFile)'")
    }

    @Test("stop --force terminates the process holding the stanza's backup lock and waits for the lock to be free")
    func stopForceTerminatesTheHolder() throws {
        let pid = try lockHolder(lockPath + "/main-backup.lock", stanza: "main")
        defer { kill(pid, SIGKILL) }
        let outcome = try StanzaStop(lockPath: lockPath, stanza: "main", log: log).stop(force: true)
        #expect(outcome.terminated.map(\.pid) == [pid])
        #expect(outcome.stillRunning.isEmpty)
        #expect(try StanzaLock.holders(lockPath: lockPath, stanza: "main", kinds: [.backup]).isEmpty)
    }

    @Test("stop --force leaves another stanza's running commands alone")
    func stopForceIsPerStanza() throws {
        let pid = try lockHolder(lockPath + "/other-backup.lock", stanza: "other")
        defer { kill(pid, SIGKILL) }
        let outcome = try StanzaStop(lockPath: lockPath, stanza: "main", log: log).stop(force: true)
        #expect(outcome.terminated.isEmpty)
        #expect(try StanzaLock.holders(lockPath: lockPath, stanza: "other", kinds: [.backup]).map(\.pid) == [pid])
    }
}

/// `stanza-delete`, the same code the command runs, against a scripted host and a memory repository.
@Suite("stanza-delete against a scripted host")
struct StanzaDeleteTests {
    func delete(_ setup: ScriptedBackupTests.Setup, dataDirectory: String? = ScriptedBackupTests.dataDirectory,
                force: Bool = false) throws -> StanzaDelete.Outcome {
        let options = StanzaDeleteOptions(dataDirectory: dataDirectory.map { FilePath($0) }, force: force,
                                          lockPath: setup.lockDirectory.path("lock"))
        return try StanzaDelete(storage: setup.storage, host: setup.host, layout: setup.layout, options: options,
                                log: Log(consoleLevel: .off)).run()
    }

    func stop(_ setup: ScriptedBackupTests.Setup) throws {
        _ = try StanzaStop(lockPath: setup.lockDirectory.path("lock"), stanza: setup.layout.stanza, log: Log(consoleLevel: .off)).stop(force: false)
    }

    func expectInUse(_ body: () throws -> Void, mentioning text: String) {
        let error = #expect(throws: PGKeepError.self, performing: body)
        #expect(error?.code == .stanzaInUse, "\(String(describing: error))")
        #expect(error?.description.contains(text) == true, "\(String(describing: error))")
    }

    @Test("stanza-delete of a stanza that is not stopped is refused naming the stop file, and deletes nothing")
    func refusedUnlessStopped() throws {
        let setup = try ScriptedBackupTests.Setup()
        _ = try setup.backup()
        let before = try setup.storage.list(setup.layout.backupRoot)
        expectInUse({ _ = try delete(setup) }, mentioning: "demo.stop")
        #expect(try setup.storage.list(setup.layout.backupRoot) == before)
    }

    @Test("stanza-delete is refused while postmaster.pid names a live process, unless --force")
    func refusedWhileRunning() throws {
        let setup = try ScriptedBackupTests.Setup()
        try stop(setup)
        setup.host.processes = [4242]  // the Setup's postmaster.pid
        expectInUse({ _ = try delete(setup) }, mentioning: "live process 4242")
        #expect(try setup.storage.info(setup.layout.archiveInfo) != nil)
        #expect(try delete(setup, force: true) == .deleted)
    }

    @Test("stanza-delete without --pg1-path is refused, since it cannot check the cluster is down")
    func refusedWithoutDataDirectory() throws {
        let setup = try ScriptedBackupTests.Setup()
        try stop(setup)
        expectInUse({ _ = try delete(setup, dataDirectory: nil) }, mentioning: "no --pg1-path")
    }

    @Test("stanza-delete of a stopped stanza with a backup removes its backups, archive, info files and lease directory")
    func deletesEverything() throws {
        let setup = try ScriptedBackupTests.Setup()
        _ = try setup.backup()
        try stop(setup)
        #expect(try delete(setup) == .deleted)
        for path in [setup.layout.backupRoot, setup.layout.archiveRoot, setup.layout.backupLease.parent] {
            #expect(try setup.storage.info(path) == nil, "\(path) is gone")
        }
        let missing = #expect(throws: PGKeepError.self) {
            _ = try InfoFiles.loadBackupInfo(setup.storage, setup.layout, warn: { _ in })
        }
        #expect(missing?.code == .stanzaMissing)
    }

    @Test("stanza-delete of a stanza that does not exist reports it and succeeds, so an interrupted delete can be run again")
    func deleteMissingStanza() throws {
        let setup = try ScriptedBackupTests.Setup()
        try stop(setup)
        #expect(try delete(setup) == .deleted)
        #expect(try delete(setup) == .notFound)
    }
}

/// `check`, the same code the command runs, against a scripted host and a memory repository.
@Suite("check against a scripted host")
struct CheckTests {
    static let segment = "000000010000000000000007"

    func check(_ setup: ScriptedBackupTests.Setup, timeout: Double = 5) throws -> CheckRun.Report {
        let options = CheckOptions(dataDirectory: FilePath(ScriptedBackupTests.dataDirectory),
                                   connection: PGConnectionOptions(socketPath: "/nowhere", port: 1, user: nil, database: "postgres"),
                                   archiveTimeout: timeout, lockPath: setup.lockDirectory.path("lock"))
        return try CheckRun(storage: setup.storage, host: setup.host, layout: setup.layout, options: options, log: Log(consoleLevel: .off)).run()
    }

    /// Puts the segment the scripted switch completes into the archive, as archive-push would.
    func archiveSwitchedSegment(_ setup: ScriptedBackupTests.Setup) throws {
        let object = RepositoryLayout.archiveObjectName(walFile: Self.segment, checksum: try SHA256Digest.of([7]), compression: .none)
        try setup.storage.writeSmallFile(try setup.layout.archiveParent(archiveID: "15-1", walFile: Self.segment).appending(object), [7])
    }

    func expectFailure(_ setup: ScriptedBackupTests.Setup, timeout: Double = 5, code: ErrorCode, mentioning text: String) {
        let error = #expect(throws: PGKeepError.self) { _ = try check(setup, timeout: timeout) }
        #expect(error?.code == code, "\(String(describing: error))")
        #expect(error?.description.contains(text) == true, "\(String(describing: error))")
    }

    @Test("check passes when the switched segment reaches the archive, and publishes nothing in the repository")
    func passes() throws {
        let setup = try ScriptedBackupTests.Setup(archiveWAL: false)
        try archiveSwitchedSegment(setup)
        let before = try setup.storage.list(setup.layout.archiveRoot)
        let report = try check(setup)
        #expect(report.lines.last?.contains("WAL segment \(Self.segment) archived") == true, "\(report.lines)")
        #expect(setup.host.sql.calls.contains("switchWAL"))
        #expect(try setup.storage.list(setup.layout.archiveRoot) == before, "the write probe was abandoned")
    }

    @Test("check fails with archive-timeout naming the segment and pg_stat_archiver's failure when the WAL never arrives")
    func timesOut() throws {
        let setup = try ScriptedBackupTests.Setup(archiveWAL: false)
        setup.host.sql.archiver = ArchiverStatus(lastArchived: "000000010000000000000006", lastFailed: Self.segment, failedCount: 3)
        let error = #expect(throws: PGKeepError.self) { _ = try check(setup, timeout: 0.2) }
        #expect(error?.code == .archiveTimeout)
        #expect(error?.message.contains(Self.segment) == true && error?.message.contains("3 failures") == true, "\(String(describing: error))")
        #expect(error?.hint?.contains("archive_command fails") == true, "\(String(describing: error))")
    }

    @Test("check fails with db-config when archive_command does not run pgkeep archive-push")
    func foreignArchiveCommand() throws {
        let setup = try ScriptedBackupTests.Setup()
        setup.host.sql.set("archive_command", "false")
        expectFailure(setup, code: .dbConfig, mentioning: "archive_command 'false' does not run pgkeep archive-push")
        #expect(!setup.host.sql.calls.contains("switchWAL"))
    }

    @Test("check fails with db-config when archive_command archives into another stanza")
    func otherStanza() throws {
        let setup = try ScriptedBackupTests.Setup()
        setup.host.sql.set("archive_command", "/usr/bin/pgkeep --stanza=prod archive-push %p")
        expectFailure(setup, code: .dbConfig, mentioning: "into stanza 'prod', not 'demo'")
    }

    @Test("check fails with db-config when archive_mode is off or archive_library is set")
    func archivingOff() throws {
        let off = try ScriptedBackupTests.Setup()
        off.host.sql.set("archive_mode", "off")
        expectFailure(off, code: .dbConfig, mentioning: "archive_mode is off")
        let library = try ScriptedBackupTests.Setup()
        library.host.sql.set("archive_library", "basic_archive")
        expectFailure(library, code: .dbConfig, mentioning: "archive_library is 'basic_archive'")
    }

    @Test("check fails with stop when archive-push is stopped on this host, before switching WAL")
    func stopped() throws {
        let setup = try ScriptedBackupTests.Setup()
        _ = try StanzaStop(lockPath: setup.lockDirectory.path("lock"), stanza: "demo", log: Log(consoleLevel: .off)).stop(force: false)
        expectFailure(setup, code: .stopped, mentioning: "demo.stop")
        #expect(!setup.host.sql.calls.contains("switchWAL"))
    }

    @Test("check of a stanza the repository lacks fails with stanza-missing")
    func missingStanza() throws {
        let setup = try ScriptedBackupTests.Setup()
        try setup.storage.removeTree(setup.layout.archiveRoot)
        try setup.storage.removeTree(setup.layout.backupRoot)
        expectFailure(setup, code: .stanzaMissing, mentioning: "archive.info")
    }

    @Test("check on a standby checks the stanza and the repository, and leaves archiving to the primary")
    func standby() throws {
        let setup = try ScriptedBackupTests.Setup(archiveWAL: false)
        setup.host.sql.inRecovery = true
        let report = try check(setup)
        #expect(report.lines.last?.contains("checked on the primary") == true, "\(report.lines)")
        #expect(!setup.host.sql.calls.contains("switchWAL"))
    }

    @Test("the stanza an archive_command names is read from --stanza=NAME and --stanza NAME, quoted or not",
          arguments: [("pgkeep --stanza=main archive-push %p", "main"), ("pgkeep --stanza 'main' archive-push %p", "main"),
                      ("pgkeep '--stanza=a-b' archive-push %p", "a-b"), ("pgkeep archive-push %p", nil)] as [(String, String?)])
    func stanzaInArchiveCommand(_ command: String, _ expected: String?) {
        #expect(CheckRun.stanzaNamed(in: command) == expected)
    }
}

/// What a backup says while it waits for PostgreSQL.
@Suite("Backup messages against a scripted host")
struct BackupMessageTests {
    func backupLog(startFast: Bool) throws -> String {
        let setup = try ScriptedBackupTests.Setup()
        let logDirectory = try TemporaryDirectory("backup-log")
        let log = Log(consoleLevel: .off)
        log.openFile(directory: logDirectory.path, name: "backup.log", level: .info)
        setup.host.sql.set("checkpoint_timeout", "5min")
        setup.host.sql.set("checkpoint_completion_target", "0.9")
        _ = try setup.backup(log: log) { $0.startFast = startFast }
        return try String(contentsOfFile: logDirectory.path("backup.log"), encoding: .utf8)
    }

    @Test("a backup without --start-fast says it waits for PostgreSQL's spread checkpoint, with its bound and the way out")
    func announcesTheCheckpointWait() throws {
        let text = try backupLog(startFast: false)
        #expect(text.contains("waiting for PostgreSQL's next checkpoint") && text.contains("checkpoint_timeout 5min")
                && text.contains("--start-fast"), "\(text)")
    }

    @Test("a backup with --start-fast does not announce a checkpoint wait")
    func startFastIsQuiet() throws {
        #expect(!(try backupLog(startFast: true)).contains("waiting for PostgreSQL's next checkpoint"))
    }
}
