import Foundation
import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("Progress of backup and restore")
struct ProgressTests {
    @Test("sizes and durations read like info's")
    func formats() {
        #expect(ProgressFormat.bytes(812) == "812B")
        #expect(ProgressFormat.bytes(1536) == "1.5KB")
        #expect(ProgressFormat.bytes(UInt64(1.2 * 1024 * 1024 * 1024)) == "1.2GB")
        #expect(ProgressFormat.duration(0.2) == "1s")
        #expect(ProgressFormat.duration(38) == "38s")
        #expect(ProgressFormat.duration(185) == "3m05s")
        #expect(ProgressFormat.duration(7620) == "2h07m")
    }

    @Test("percent by bytes, rate and ETA from the bytes this run moved")
    func rateAndETA() {
        let mb: UInt64 = 1 << 20
        var p = ProgressSnapshot(bytesDone: 40 * mb, bytesTotal: 100 * mb, filesDone: 4, filesTotal: 10, elapsed: 4)
        #expect(p.percent == 40)
        #expect(p.rate == Double(10 * mb))
        #expect(p.eta == 6)
        #expect(ProgressFormat.line("backup", p) == "backup 40% 40.0MB/100.0MB, 4/10 files, 10.0MB/s, ETA 6s")

        // Referenced files count as done but moved nothing: they must not inflate the rate.
        p.bytesAtStart = 30 * mb
        #expect(p.rate == Double(10 * mb) / 4)
        #expect(p.eta == 24)

        // No rate in the first second, or before anything moved.
        p = ProgressSnapshot(bytesDone: 50, bytesTotal: 100, filesDone: 1, filesTotal: 2, elapsed: 0.5)
        #expect(p.rate == nil && p.eta == nil)
        #expect(ProgressFormat.line("restore", p) == "restore 50% 50B/100B, 1/2 files")
        p = ProgressSnapshot(bytesDone: 0, bytesTotal: 0, filesDone: 1, filesTotal: 4, elapsed: 3)
        #expect(p.percent == 25, "no bytes: by files")
        p = ProgressSnapshot(bytesDone: 100, bytesTotal: 100, filesDone: 2, filesTotal: 2, elapsed: 61)
        #expect(ProgressFormat.line("restore", p).hasSuffix(", done in 1m01s"))
    }

    @Test("off a terminal: a log line every 10% or 10 seconds, not per file; the backup record is written and removed")
    func reporterLogsAndRecords() throws {
        let scratch = try Scratch()
        let logDirectory = scratch.path("log")
        let log = Log(consoleLevel: .off)
        log.openFile(directory: logDirectory, name: "test.log", level: .info)
        var now = 100.0
        let recordPath = BackupProgressRecord.path(lockPath: scratch.path, stanza: "main")
        let reporter = ProgressReporter(operation: "backup", bytesTotal: 1000, filesTotal: 100, bytesDone: 100, filesDone: 10,
                                        log: log, onTerminal: false, record: (recordPath, "20261126-230501F"), clock: { now })
        var record = try #require(BackupProgressRecord.read(from: recordPath))
        #expect(record.size == 1000 && record.sizeComplete == 100 && record.files == 100 && record.filesComplete == 10)
        #expect(record.label == "20261126-230501F" && record.pid == getpid())

        for _ in 0..<9 { now += 0.1; reporter.advance(bytes: 5) }      // 145: still within 10-20%
        now += 0.1; reporter.advance(bytes: 55)                        // 200: crosses 20%
        now += 5; reporter.advance(bytes: 10)                          // 210: nothing new to log
        now += 6; reporter.advance(bytes: 10)                          // 220, 11 s after the last line
        let lines = try String(contentsOfFile: logDirectory + "/test.log", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2, "\(lines)")
        #expect(lines.first?.contains("backup 20% 200B/1000B, 20/100 files") == true, "\(lines)")
        #expect(lines.last?.contains("backup 22% 220B/1000B, 22/100 files") == true, "\(lines)")
        record = try #require(BackupProgressRecord.read(from: recordPath))
        #expect(record.sizeComplete == 220 && record.filesComplete == 22)

        reporter.finish(success: true)
        #expect(BackupProgressRecord.read(from: recordPath) == nil)
        #expect(!FileManager.default.fileExists(atPath: recordPath))
    }

    @Test("reaching 100% is logged once, by finish, with the elapsed time")
    func completionLoggedOnce() throws {
        let scratch = try Scratch()
        let log = Log(consoleLevel: .off)
        log.openFile(directory: scratch.path("log"), name: "test.log", level: .info)
        var now = 100.0
        let reporter = ProgressReporter(operation: "restore", bytesTotal: 1000, filesTotal: 2, log: log, onTerminal: false, clock: { now })
        now += 1; reporter.advance(bytes: 500, files: 1)
        now += 1; reporter.advance(bytes: 500, files: 1)
        reporter.finish(success: true)
        let lines = try String(contentsOfFile: scratch.path("log") + "/test.log", encoding: .utf8).split(separator: "\n")
        #expect(lines.filter { $0.contains("100%") }.count == 1, "\(lines)")
        #expect(lines.last?.contains("restore 100% 1000B/1000B, 2/2 files") == true && lines.last?.contains("2s") == true, "\(lines)")
    }

    @Test("info shows a running backup's progress while its lock is held, and nothing once it is released")
    func infoShowsRunningBackup() throws {
        let scratch = try Scratch()
        let lockPath = scratch.path("lock")
        let report = InfoReport(storage: MemoryStorage(), log: Log(consoleLevel: .off), lockPath: lockPath)
        do {
            let lock = try StanzaLock(lockPath: lockPath, stanza: "main", kind: .backup)
            defer { withExtendedLifetime(lock) {} }
            // flock locks belong to the open file description: the same process sees its own lock as held
            // only through another descriptor, which is what isFree opens.
            #expect(report.backupLock(stanza: "main").backup.held)
            #expect(report.backupLock(stanza: "main").backup.size == nil)
            try BackupProgressRecord(label: "20261126-230501F", pid: getpid(), size: 3 << 30, sizeComplete: UInt64(1.27 * Double(1 << 30)),
                                     files: 10, filesComplete: 4, updated: 0).write(to: BackupProgressRecord.path(lockPath: lockPath, stanza: "main"))
            let stanza = try report.stanza("main")
            #expect(stanza.status.lock.backup.held && stanza.status.lock.backup.size == 3 << 30)
            let text = report.text([stanza])
            #expect(text.contains("    backup running: 42% (1.3GB of 3.0GB)\n"), "\(text)")
            let json = try report.json([stanza])
            #expect(json.contains("\"lock\":{\"backup\":{\"held\":true,\"size\":3221225472,\"size-cplt\":1363652116}}"), "\(json)")
        }
        let stanza = try report.stanza("main")
        #expect(!stanza.status.lock.backup.held, "a record left behind counts for nothing without the lock")
        #expect(try report.json([stanza]).contains("\"lock\":{\"backup\":{\"held\":false}}"))
        #expect(!report.text([stanza]).contains("backup running"))
    }
}
