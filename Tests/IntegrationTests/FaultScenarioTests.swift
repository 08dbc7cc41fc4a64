import Foundation
import Testing
import TestSupport
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepMover
import PGKeepEngine
import PGKeepConfig

/// Fault scenarios of docs/fault-scenarios.md that no other suite covers end to end: info files
/// whose seals are valid but whose contents contradict the repository, info files destroyed and
/// rebuilt by stanza-repair, recovery targets the archive never reaches, WAL files of a timeline
/// switch (`.history`, `.partial`) pushed twice, and pg_rewind reading an old primary's WAL from
/// the archive.
/// Each makes the fault, checks the error (exit code, the path, the hint), and then shows that
/// nothing was lost: verify is clean again, and a restore recovers to the source's exact dump.
@Suite("Fault scenarios", .serialized)
struct FaultScenarioTests {
    /// Stable exit codes (Sources/PGKeep/Errors/PGKeepError.swift).
    enum Exit {
        static let archiveDuplicate: Int32 = 45
        static let archiveTimeout: Int32 = 46
        static let backupMissing: Int32 = 62
        static let lockHeld: Int32 = 63
        static let repositoryInvalid: Int32 = 64
        static let verifyFailed: Int32 = 65
        static let repairNotNeeded: Int32 = 67
    }

    /// `info --output=json` status code of a stanza whose info files disagree (pgBackRest's 99, other).
    static let infoStatusOther = 99

    /// Rewrites a sealed backup.info (and, when `copy`, its twin) through `change`, sealing the
    /// result again: the files stay checksum-valid, only their content is wrong.
    static func reseal(_ path: String, copy: Bool, _ change: (inout BackupInfo) -> Void) throws {
        var info = try SealedFile.open(BackupInfo.self, from: try readBytes(path), name: path)
        change(&info)
        let bytes = try SealedFile.seal(info)
        for file in copy ? [path, path + ".copy"] : [path] { try writeBytes(file, bytes) }
    }

    @Test("a checksum-valid backup.info for another cluster than archive.info: restore and --plan refuse with repository-invalid naming both files before writing, info reports the mismatch, verify names it; with the originals back nothing was lost")
    func backupInfoDisagreesWithArchiveInfo() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            var expected: ClusterDump?
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { cluster in
                try stanza.create(cluster)
                _ = try cluster.psql("create table t as select g, md5(g::text) as v from generate_series(1, 20000) g")
                try stanza.backup(cluster)
                _ = try cluster.psql("update t set v = 'after' where g % 7 = 0")
                try await cluster.switchWALAndWaitForArchive()
                expected = try cluster.dumpAllDatabases()
            }
            let infoPath = stanza.repository + "/backup/main/backup.info"
            let originals = try [infoPath, infoPath + ".copy"].map { ($0, try readBytes($0)) }

            // Both twins sealed again with another system identifier: no fallback can help, and the
            // seal alone cannot tell. Restoring would replay WAL archived for a different cluster.
            try Self.reseal(infoPath, copy: true) { $0.current.systemIdentifier &+= 1; $0.history = [$0.current] }
            let target = scratch.path("refused")
            let refused = try stanza.restore(into: target)
            #expect(refused.status == Exit.repositoryInvalid, "\(refused)")
            #expect(refused.stderr.contains(infoPath) && refused.stderr.contains(stanza.repository + "/archive/main/archive.info"),
                    "names both files: \(refused.stderr)")
            #expect(refused.stderr.contains("HINT") && refused.stderr.contains("verify"), "\(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: target), "nothing written")
            let plan = try stanza.run(["--pg1-path=\(target)", "restore", "--plan"])
            #expect(plan.status == Exit.repositoryInvalid, "\(plan)")

            let status = try stanza.info()["status"] as? [String: Any]
            #expect(status?["code"] as? Int == Self.infoStatusOther, "\(status ?? [:])")
            let verify = try stanza.run(["verify", "--output=json"])
            #expect(verify.status == Exit.verifyFailed, "\(verify)")
            #expect(verify.stdout.contains("info-mismatch"), "\(verify.stdout)")

            for (path, bytes) in originals { try writeBytes(path, bytes) }
            #expect(try stanza.run(["verify"]).status == 0)
            let restored = try await FaultTests.restoreAndRecover(stanza, scratch: scratch, name: "restored")
            #expect(restored.difference(from: try #require(expected)) == nil)
        }
    }

    /// A full and an incr backup, a commit after both archived, the cluster stopped; then the
    /// incr's manifest and its copy moved aside while backup.info (sealed, intact) still lists it.
    struct ListedWithoutManifest {
        let stanza: TestStanza
        let source: Cluster
        let first: String
        let second: String
        let directory: String
        let aside: String
        let expected: ClusterDump

        static func make(_ scratch: Scratch) async throws -> ListedWithoutManifest {
            let stanza = try TestStanza(scratch: scratch)
            var expected: ClusterDump?
            var first = "", second = ""
            let source = try Cluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand)
            try await withCluster(source) { cluster in
                try stanza.create(cluster)
                _ = try cluster.psql("create table t as select g, md5(g::text) as v from generate_series(1, 20000) g")
                first = try stanza.backup(cluster)
                _ = try cluster.psql("update t set v = 'second' where g % 5 = 0")
                second = try stanza.backup(cluster, ["--type=incr"])
                _ = try cluster.psql("insert into t values (-1, 'after both backups')")
                try await cluster.switchWALAndWaitForArchive()
                expected = try cluster.dumpAllDatabases()
            }
            let directory = stanza.repository + "/backup/main/" + second
            let aside = try scratch.directory("aside")
            for name in ["backup.manifest", "backup.manifest.copy"] {
                try FileManager.default.moveItem(atPath: directory + "/" + name, toPath: aside + "/" + name)
            }
            return ListedWithoutManifest(stanza: stanza, source: source, first: first, second: second, directory: directory,
                                         aside: aside, expected: try #require(expected))
        }
    }

    @Test("backup.info lists a backup whose manifest and copy are gone: restore of the latest stops with backup-missing naming its directory and hinting at the older backup, writing nothing; verify names the manifest")
    func listedBackupWithoutManifestIsRefused() async throws {
        try await withScratch { scratch in
            let setup = try await ListedWithoutManifest.make(scratch)
            let target = scratch.path("refused")
            let refused = try setup.stanza.restore(into: target)
            #expect(refused.status == Exit.backupMissing, "\(refused)")
            #expect(refused.stderr.contains(setup.directory), "names the backup's directory: \(refused.stderr)")
            #expect(refused.stderr.contains("--set=\(setup.first)"), "hints at the backup that can still be restored: \(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: target), "nothing written")
            let verify = try setup.stanza.run(["verify", "--output=json"])
            #expect(verify.status == Exit.verifyFailed, "\(verify)")
            #expect(verify.stdout.contains("backup/main/\(setup.second)/backup.manifest"), "\(verify.stdout)")
        }
    }

    @Test("with a listed backup's manifest gone, nothing else is lost: the older backup restores exactly, an incr on the damaged one is refused naming it, a full succeeds, and verify is clean once the manifest is back")
    func listedBackupWithoutManifestLosesNothingElse() async throws {
        try await withScratch { scratch in
            let setup = try await ListedWithoutManifest.make(scratch)
            let restored = try await FaultTests.restoreAndRecover(setup.stanza, scratch: scratch, name: "first", set: setup.first)
            #expect(restored.difference(from: setup.expected) == nil)
            // An incr now has the damaged backup as its newest prior; pgkeep must not build on a
            // backup it cannot read. A full backup always works.
            try await withCluster(setup.source) { cluster in
                let incr = try setup.stanza.run(TestStanza.clusterOptions(cluster) + ["backup", "--type=incr", "--start-fast"])
                #expect(incr.status == Exit.backupMissing, "\(incr)")
                #expect(incr.stderr.contains("prior backup \(setup.second)") && incr.stderr.contains(setup.directory), "\(incr.stderr)")
                try setup.stanza.backup(cluster, ["--type=full"])
            }
            for name in ["backup.manifest", "backup.manifest.copy"] {
                try FileManager.default.moveItem(atPath: setup.aside + "/" + name, toPath: setup.directory + "/" + name)
            }
            let clean = try setup.stanza.run(["verify"])
            #expect(clean.status == 0, "\(clean)")
        }
    }

    /// A full and a block-incremental backup, a commit after both archived, the cluster stopped;
    /// then both twins of backup.info and of archive.info overwritten with garbage.
    struct DestroyedInfoFiles {
        let stanza: TestStanza
        let source: Cluster
        let labels: [String]
        let expected: ClusterDump
        let backupInfo: String
        /// backup.info, its copy, archive.info, its copy.
        let infoFiles: [String]
        let originals: [[UInt8]]
        static let garbage = Array("destroyed\n".utf8)

        static func make(_ scratch: Scratch) async throws -> DestroyedInfoFiles {
            let stanza = try TestStanza(scratch: scratch)
            var expected: ClusterDump?
            var labels: [String] = []
            let source = try Cluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand)
            try await withCluster(source) { cluster in
                try stanza.create(cluster)
                // Big enough (~1.4 MB) for a block-incremental table; frozen before the full backup, so the
                // incr changes few of its blocks and its copied size must come from the block map.
                _ = try cluster.psql("create table t as select g, md5(g::text) as v from generate_series(1, 20000) g")
                _ = try cluster.psql("vacuum (freeze) t")
                labels.append(try stanza.backup(cluster))
                _ = try cluster.psql("update t set v = 'incr' where g <= 10")
                labels.append(try stanza.backup(cluster, ["--type=incr"]))
                _ = try cluster.psql("insert into t values (-1, 'after both backups')")
                try await cluster.switchWALAndWaitForArchive()
                expected = try cluster.dumpAllDatabases()
            }
            let backupInfo = stanza.repository + "/backup/main/backup.info"
            let archiveInfo = stanza.repository + "/archive/main/archive.info"
            let infoFiles = [backupInfo, backupInfo + ".copy", archiveInfo, archiveInfo + ".copy"]
            let originals = try infoFiles.map { try readBytes($0) }
            for path in infoFiles { try writeBytes(path, garbage) }
            return DestroyedInfoFiles(stanza: stanza, source: source, labels: labels, expected: try #require(expected),
                                      backupInfo: backupInfo, infoFiles: infoFiles, originals: originals)
        }
    }

    @Test("both twins of backup.info and of archive.info destroyed: restore stops with repository-invalid naming backup.info and hinting stanza-repair, writing nothing, and info reports it")
    func destroyedInfoFilesStopRestore() async throws {
        try await withScratch { scratch in
            let damaged = try await DestroyedInfoFiles.make(scratch)
            let target = scratch.path("refused")
            let refused = try damaged.stanza.restore(into: target)
            #expect(refused.status == Exit.repositoryInvalid, "\(refused)")
            #expect(refused.stderr.contains(damaged.backupInfo) && refused.stderr.contains("HINT") && refused.stderr.contains("stanza-repair"),
                    "\(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: target), "nothing written")
            let status = try damaged.stanza.info()["status"] as? [String: Any]
            #expect(status?["code"] as? Int == Self.infoStatusOther, "\(status ?? [:])")
            #expect((status?["message"] as? String)?.contains("stanza-repair") == true, "\(status ?? [:])")
        }
    }

    @Test("stanza-repair rebuilds destroyed info files byte for byte after a dry run that writes nothing, keeping the destroyed ones aside")
    func stanzaRepairRebuildsDestroyedInfoFiles() async throws {
        try await withScratch { scratch in
            let damaged = try await DestroyedInfoFiles.make(scratch)
            let (stanza, backupInfo, infoFiles) = (damaged.stanza, damaged.backupInfo, damaged.infoFiles)
            let dryRun = try stanza.run(["--pg1-path=\(damaged.source.dataDirectory)", "stanza-repair", "--dry-run"])
            #expect(dryRun.status == 0, "\(dryRun)")
            #expect(dryRun.stdout.contains("would write '\(backupInfo)' and its copy:"), "\(dryRun.stdout)")
            #expect(try infoFiles.allSatisfy { try readBytes($0) == DestroyedInfoFiles.garbage }, "the dry run wrote nothing")

            let repair = try stanza.run(["--pg1-path=\(damaged.source.dataDirectory)", "stanza-repair"])
            #expect(repair.status == 0, "\(repair)")
            for label in damaged.labels { #expect(repair.stdout.contains("backup \(label): found"), "\(repair.stdout)") }
            for (path, original) in zip(infoFiles, damaged.originals) {
                #expect(try readBytes(path) == original, "\(path) is rebuilt exactly as backup and stanza-create wrote it")
            }
            let aside = try FileManager.default.contentsOfDirectory(atPath: stanza.repository + "/backup/main")
                .filter { $0.hasPrefix("backup.info.damaged-") || $0.hasPrefix("backup.info.copy.damaged-") }
            #expect(aside.count == 2, "\(aside)")
            for name in aside { #expect(try readBytes(stanza.repository + "/backup/main/" + name) == DestroyedInfoFiles.garbage) }
        }
    }

    @Test("after stanza-repair rebuilt destroyed info files, info lists both backups, verify is clean, a second repair is refused as not needed, and a restore equals the dump")
    func repairedRepositoryIsWhole() async throws {
        try await withScratch { scratch in
            let damaged = try await DestroyedInfoFiles.make(scratch)
            let stanza = damaged.stanza
            try stanza.run(["--pg1-path=\(damaged.source.dataDirectory)", "stanza-repair"]).check()

            #expect(try stanza.labels() == damaged.labels)
            let verify = try stanza.run(["verify", "--output=json"])
            #expect(verify.status == 0, "\(verify)")
            let verified = try JSONSerialization.jsonObject(with: Data(verify.stdout.utf8)) as? [String: Any]
            #expect(verified?["status"] as? String == "ok", "\(verify.stdout)")
            #expect((verified?["warnings"] as? [Any])?.isEmpty == true, "no copy-used or other warning left: \(verify.stdout)")
            let again = try stanza.run(["stanza-repair"])
            #expect(again.status == Exit.repairNotNeeded, "\(again)")
            #expect(again.stderr.contains("HINT") && again.stderr.contains("--force"), "\(again.stderr)")

            let restored = try await FaultTests.restoreAndRecover(stanza, scratch: scratch, name: "restored")
            #expect(restored.difference(from: damaged.expected) == nil)
        }
    }

    /// A backup and one commit after it, archived; the cluster stopped, so no WAL follows. The
    /// returned time (a day later) and xid (1000 later) are never reached.
    static func archiveEndingBeforeTargets(_ stanza: TestStanza, scratch: Scratch) async throws
        -> (expected: ClusterDump, laterTime: String, laterXID: String) {
        var expected: ClusterDump?
        var laterTime = "", laterXID = ""
        try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { cluster in
            try stanza.create(cluster)
            _ = try cluster.psql("create table marker(id int primary key)")
            try stanza.backup(cluster)
            _ = try cluster.psql("insert into marker values (1)")
            try await cluster.switchWALAndWaitForArchive()
            expected = try cluster.dumpAllDatabases()
            laterTime = try cluster.psql("select to_char(now() at time zone 'UTC' + interval '1 day', 'YYYY-MM-DD HH24:MI:SS') || '+00'")
            laterXID = String(Int(try cluster.psql("select txid_current()"))! + 1000)
        }
        return (try #require(expected), laterTime, laterXID)
    }

    @Test("a time target after the newest archived segment was stored is refused before writing (72, --plan too), naming that segment, with hints")
    func timeTargetPastTheArchiveRefused() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let (_, laterTime, _) = try await Self.archiveEndingBeforeTargets(stanza, scratch: scratch)
            // The newest segment is the one the shutdown switched to and archived.
            let archived = stanza.repositoryFiles(under: "archive/\(stanza.name)").map { String($0.split(separator: "/").last!.prefix(24)) }
            let newest = archived.filter { WALFileName($0)?.kind == .segment }.max()
            let lastSegment = try #require(newest)
            let time = ["--type=time", "--target=\(laterTime)", "--target-action=promote"]
            let refusedData = try scratch.directory("refused") + "/data"
            let plan = try stanza.restore(into: refusedData, time + ["--plan"])
            let refused = try stanza.restore(into: refusedData, time)
            for result in [plan, refused] {
                #expect(result.status == 72, "\(result)")
                let output = result.stdout + result.stderr
                #expect(output.contains("is past the end of the archive") && output.contains(lastSegment)
                        && output.contains("was stored at"), "the message names the newest segment and when it was stored: \(output)")
                #expect(output.contains("HINT") && output.contains("pg_switch_wal()") && output.contains("--type=default")
                        && output.contains("--target-past-archive"), "\(output)")
            }
            #expect(refused.stderr.contains("nothing was written"), "\(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: refusedData + "/PG_VERSION"), "the refused restore wrote nothing")
        }
    }

    /// A time target restored anyway (`--target-past-archive`), and an xid target, which the
    /// planner cannot place before replay.
    enum UnreachedTarget: String, CaseIterable, CustomTestStringConvertible {
        case time, xid
        var testDescription: String { rawValue }
    }

    @Test("a target past the end of the archive stops recovery with 'recovery ended before configured recovery target was reached' instead of promoting with partial data; --delta to the end of the archive then recovers every commit",
          arguments: UnreachedTarget.allCases)
    func targetPastTheArchiveStopsRecovery(_ target: UnreachedTarget) async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let (expected, laterTime, laterXID) = try await Self.archiveEndingBeforeTargets(stanza, scratch: scratch)
            let options = switch target {
            case .time: ["--type=time", "--target=\(laterTime)", "--target-action=promote", "--target-past-archive"]
            case .xid: ["--type=xid", "--target=\(laterXID)", "--target-action=promote"]
            }
            let name = target.rawValue
            let data = try scratch.directory(name) + "/data"
            let restore = try stanza.restore(into: data, options)
            #expect(restore.status == 0, "\(restore)")
            if target == .time {
                let logged = try String(contentsOfFile: stanza.logPath + "/main-restore.log", encoding: .utf8)
                #expect(logged.contains("restoring anyway (--target-past-archive)"), "the override is logged: \(logged)")
            }
            let cluster = try Cluster(name: name, scratch: scratch, existingDataDirectory: data, extraConf: ["archive_mode = off"])
            defer { try? cluster.stop(mode: .immediate) }
            try cluster.start(wait: false)
            let log = try await ArchiveGetFatalTests.startupOutcome(cluster)
            #expect(!cluster.isRunning, "a target never reached must not promote:\n\(log)")
            #expect(log.contains("FATAL:  recovery ended before configured recovery target was reached"), "\(log)")
            #expect(!log.contains("selected new timeline ID") && !log.contains("ready to accept connections"), "\(log)")

            // The operator's way out: restore again (over the same directory) to the end of the archive.
            try stanza.restore(into: data, ["--delta"]).check()
            let restored = try await FaultTests.recover(data, scratch: scratch, name: name + "-end", amcheck: false)
            #expect(restored.difference(from: expected) == nil)
        }
    }

    @Test("pg_rewind --restore-target-wal of a diverged old primary whose pg_wal lost the WAL around and after the fork: pg_rewind fetches it from the archive through the old primary's restore_command (pgkeep archive-get, run from '/', without PGDATA or a spool); the rewound old primary then follows the promoted standby's timeline and has exactly its data")
    func pgRewindFetchesWALThroughArchiveGet() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            // A's restore_command logs into a directory of its own, so its log shows what pg_rewind
            // fetched; its spool path must never appear (archive-get without --archive-async).
            let (rewindLog, spool) = (try scratch.directory("log-rewind", mode: 0o750), scratch.path("spool-rewind"))
            let restoreCommand = stanza.binary.commandLine([
                "--stanza=\(stanza.name)", "--repo1-path=\(stanza.repository)", "--lock-path=\(stanza.lockPath)",
                "--log-path=\(rewindLog)", "--spool-path=\(spool)", "archive-get", "%f", "%p",
            ])
            let a = try Cluster(name: "a", scratch: scratch, archiveCommand: stanza.archiveCommand,
                                extraConf: ["restore_command = \(Cluster.quoteSetting(restoreCommand))"])
            defer { try? a.stop(mode: .immediate) }
            try a.start()
            try stanza.create(a)
            _ = try a.psql("create table t(id int primary key, v text); insert into t select g, 'common' from generate_series(1, 1000) g")
            try stanza.backup(a)

            // B: a standby restored by pgkeep, streaming from A; it keeps its WAL for A to follow later.
            let bData = try scratch.directory("b") + "/data"
            try stanza.restore(into: bData, ["--type=standby"]).check()
            let b = try Cluster(name: "b", scratch: scratch, existingDataDirectory: bData,
                                extraConf: ["archive_mode = off", "primary_conninfo = \(Cluster.quoteSetting(a.primaryConnInfo))", "wal_keep_size = '1GB'"])
            defer { try? b.stop(mode: .immediate) }
            try b.start()
            _ = try a.psql("insert into t values (1001, 'streamed')")
            try await b.waitForReplay(of: try a.psql("select pg_current_wal_lsn()"))

            // Failover: B is promoted and written to, while A goes on alone on timeline 1.
            try b.promote()
            // pg_rewind reads the source's timeline from its control file, which a checkpoint updates.
            _ = try b.psql("checkpoint")
            _ = try b.psql("insert into t select g, 'after the failover, on b' from generate_series(2001, 3000) g; update t set v = 'changed on b' where id <= 100")
            let history = try String(contentsOfFile: bData + "/pg_wal/00000002.history", encoding: .utf8)
            let switchPoint = history.split(separator: "\n").last?.split(separator: "\t").dropFirst().first.map(String.init)
            let fork = try #require(switchPoint, "\(history)")
            _ = try a.psql("insert into t select g, 'lost on a' from generate_series(5001, 9000) g; update t set v = 'lost on a' where id > 900 and id <= 1000")
            // A's WAL past the fork is archived, and its shutdown checkpoint lies segments later.
            try await a.switchWALAndWaitForArchive()
            _ = try a.psql("insert into t values (9001, 'lost on a')")
            try await a.switchWALAndWaitForArchive()
            let forkSegment = try a.psql("select pg_walfile_name('\(fork)')")
            try a.stop(mode: .fast)

            // A's shutdown checkpoint recycled its segments before the last checkpoint; any archived
            // one left goes too. pg_rewind needs those from the last common checkpoint through the
            // fork to A's end: at least the fork segment through the one before the redo segment.
            let control = try Cluster.runTool("pg_controldata", ["-D", a.dataDirectory]).check().stdout
            let redoLine = control.split(separator: "\n").first { $0.hasPrefix("Latest checkpoint's REDO WAL file:") }
            let redoName = try #require(redoLine?.split(separator: " ").last.map(String.init), "\(control)")
            let redo = try #require(WALSegmentName(redoName, segmentSize: .default))
            let first = try #require(WALSegmentName(forkSegment, segmentSize: .default))
            let pgWAL = a.dataDirectory + "/pg_wal"
            for name in try FileManager.default.contentsOfDirectory(atPath: pgWAL)
            where WALFileName(name)?.kind == .segment && name < redoName && FileManager.default.fileExists(atPath: pgWAL + "/archive_status/\(name).done") {
                try FileManager.default.removeItem(atPath: pgWAL + "/" + name)
            }
            let needed = (first.segmentNumber..<redo.segmentNumber).map { WALSegmentName(timeline: 1, segmentNumber: $0, segmentSize: .default).name }
            #expect(needed.count >= 2, "the fork segment \(forkSegment) and later ones lie before the redo segment \(redoName)")
            for name in needed {
                #expect(!FileManager.default.fileExists(atPath: pgWAL + "/" + name), "\(name) is only in the archive")
            }

            // pg_rewind runs A's restore_command for the WAL A's pg_wal lacks (docs/postgres-internals.md §5.3).
            let rewind = try Cluster.runTool("pg_rewind", ["--target-pgdata=\(a.dataDirectory)", "--source-server=\(b.primaryConnInfo) dbname=postgres",
                                                           "--restore-target-wal"], timeout: .seconds(300))
            #expect(rewind.succeeded, "\(rewind)")
            let fetched = (try? String(contentsOfFile: rewindLog + "/\(stanza.name)-archive-get.log", encoding: .utf8)) ?? ""
            for name in needed {
                #expect(fetched.contains("fetched \(name) from"), "pg_rewind fetched \(name) with archive-get: \(fetched)")
            }
            #expect(!FileManager.default.fileExists(atPath: spool), "archive-get made no spool")

            // A becomes a standby of B: pg_rewind brought B's settings over; A gets its own port and socket, and B as primary.
            _ = FileManager.default.createFile(atPath: a.dataDirectory + "/standby.signal", contents: Data())
            try PostgresUser.takeOwnership(of: a.dataDirectory + "/standby.signal")
            let rewound = try Cluster(name: "a-rewound", scratch: scratch, existingDataDirectory: a.dataDirectory,
                                      extraConf: ["primary_conninfo = \(Cluster.quoteSetting(b.primaryConnInfo))"])
            defer { try? rewound.stop(mode: .immediate) }
            try rewound.start()
            try await rewound.waitForReplay(of: try b.psql("select pg_current_wal_lsn()"))
            #expect(try rewound.psql("select pg_is_in_recovery()") == "t")
            #expect(try rewound.psql("select received_tli from pg_stat_wal_receiver") == "2", "A streams B's timeline")
            #expect(try rewound.psql("select count(*) from t where v = 'lost on a'") == "0")
            let expected = try b.dumpAllDatabases()
            #expect(try rewound.dumpAllDatabases().difference(from: expected) == nil)
        }
    }

    @Test("through the binary: a timeline history file and a partial segment pushed again are accepted when identical and refused with archive-duplicate (45) when different, the stored ones delivered unchanged")
    func historyAndPartialRepush() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let wal = try scratch.directory("wal", mode: 0o700)
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { cluster in
                try stanza.create(cluster)
                let segment = try await cluster.switchWALAndWaitForArchive()
                let pg1 = "--pg1-path=\(cluster.dataDirectory)"

                // Timeline 10 (0000000A: hexadecimal names), as a promotion would archive it.
                let history = "0000000A.history"
                let pushes: [(name: String, original: [UInt8], other: [UInt8])] = try {
                    let full = wal + "/" + segment
                    try stanza.check(["archive-get", segment, full])
                    var segmentBytes = try readBytes(full)
                    let original = segmentBytes
                    segmentBytes[segmentBytes.count / 2] ^= 0x01
                    return [
                        (history, Array("1\t0/3000000\tno recovery target specified\n".utf8),
                         Array("1\t0/4000000\tno recovery target specified\n".utf8)),
                        (segment + ".partial", original, segmentBytes),
                    ]
                }()
                for push in pushes {
                    let path = wal + "/" + push.name
                    _ = FileManager.default.createFile(atPath: path, contents: Data(push.original))
                    try PostgresUser.takeOwnership(of: path)
                    try stanza.check([pg1, "archive-push", path])
                    #expect(try stanza.run([pg1, "archive-push", path]).status == 0, "an identical re-push of \(push.name) succeeds")

                    try writeBytes(path, push.other)
                    let refused = try stanza.run([pg1, "archive-push", path])
                    #expect(refused.status == Exit.archiveDuplicate, "\(push.name): \(refused)")
                    #expect(refused.stderr.contains(push.name) && refused.stderr.contains("kept unchanged"), "\(refused.stderr)")

                    let fetched = wal + "/fetched-" + push.name
                    try stanza.check(["archive-get", push.name, fetched])
                    #expect(try readBytes(fetched) == push.original, "\(push.name) is stored as first pushed")
                }
                // The archiver was never disturbed by the refused pushes.
                _ = try cluster.psql("select txid_current()")
                try await cluster.switchWALAndWaitForArchive()
                #expect(try cluster.psql("select failed_count from pg_stat_archiver") == "0")
            }
        }
    }

    /// Two hosts on one repository, host A's backup holding the repository lease while it waits
    /// (archiving broken) for WAL that never comes; `during` runs while it does, past the lease
    /// duration. Returns A's result once its backup gave up.
    static func whileHostAHoldsTheLease(_ hostA: TestStanza, _ source: Cluster, lease: [String],
                                        during: () async throws -> Void) async throws -> ShellResult {
        _ = try source.psql("alter system set archive_command = 'false'")
        _ = try source.psql("select pg_reload_conf()")
        try await Task.sleep(for: .milliseconds(500))
        let options = TestStanza.clusterOptions(source)
        let slow = Task.detached {
            try hostA.run(options + ["backup", "--start-fast", "--archive-timeout=12"] + lease + hostA.leaseOptions)
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while clock.now < deadline, !FileManager.default.fileExists(atPath: hostA.leasePath) {
            try await Task.sleep(for: .milliseconds(50))
        }
        // Longer than the 3 s lease: only A's renewals keep it live.
        try await Task.sleep(for: .seconds(4))
        try await during()
        let result = try await slow.value
        _ = try source.psql("alter system set archive_command = \(quoteLiteral(hostA.archiveCommand))")
        _ = try source.psql("select pg_reload_conf()")
        return result
    }

    @Test("two hosts sharing a repository: while host A's backup holds the repository lease, host B's backup and expire (other flocks) fail with 63 naming the lease and host A, also past the lease duration thanks to renewal")
    func secondHostRefusedWhileTheLeaseIsHeld() async throws {
        try await withScratch { scratch in
            let hostA = try TestStanza(scratch: scratch, host: "host-a")
            let hostB = try TestStanza(scratch: scratch, host: "host-b")
            let short = ["--lock-lease=3"]
            try await withCluster(name: "source", scratch: scratch, archiveCommand: hostA.archiveCommand) { source in
                try hostA.create(source)
                _ = try source.psql("create table t as select g, md5(g::text) as v from generate_series(1, 20000) g")
                try hostA.backup(source, hostA.leaseOptions)
                #expect(!FileManager.default.fileExists(atPath: hostA.leasePath), "a finished backup leaves no lease")
                _ = try await Self.whileHostAHoldsTheLease(hostA, source, lease: short) {
                    let backup = try hostB.run(TestStanza.clusterOptions(source) + ["backup", "--start-fast"] + short + hostB.leaseOptions)
                    let expire = try hostB.run(["expire", "--repo1-retention-full=1"] + short + hostB.leaseOptions)
                    for refused in [backup, expire] {
                        #expect(refused.status == Exit.lockHeld, "\(refused)")
                        #expect(refused.stderr.contains(hostA.leasePath) && refused.stderr.contains("host 'host-a'")
                                && refused.stderr.contains("command 'backup'") && refused.stderr.contains("HINT"), "\(refused.stderr)")
                    }
                }
            }
        }
    }

    @Test("two hosts sharing a repository: host A's backup that fails while holding the lease removes it; then host B's backup and expire succeed, verify is clean and the restore is exact")
    func leaseReleasedOnFailureLetsTheSecondHostWork() async throws {
        try await withScratch { scratch in
            let hostA = try TestStanza(scratch: scratch, host: "host-a")
            let hostB = try TestStanza(scratch: scratch, host: "host-b")
            var expected: ClusterDump?
            try await withCluster(name: "source", scratch: scratch, archiveCommand: hostA.archiveCommand) { source in
                try hostA.create(source)
                _ = try source.psql("create table t as select g, md5(g::text) as v from generate_series(1, 20000) g")
                try hostA.backup(source, hostA.leaseOptions)
                let interrupted = try await Self.whileHostAHoldsTheLease(hostA, source, lease: ["--lock-lease=3"]) {}
                #expect(interrupted.status == Exit.archiveTimeout, "\(interrupted)")
                #expect(!FileManager.default.fileExists(atPath: hostA.leasePath), "the failed backup removed its lease")

                _ = try source.psql("update t set v = 'after' where g % 5 = 0")
                let second = try hostB.backup(source, hostB.leaseOptions)
                try hostB.check(["expire", "--repo1-retention-full=1"] + hostB.leaseOptions)
                #expect(try hostB.labels() == [second])
                try await source.switchWALAndWaitForArchive()
                expected = try source.dumpAllDatabases()
            }
            #expect(try hostA.run(["verify"]).status == 0)
            #expect(!FileManager.default.fileExists(atPath: hostA.leasePath))
            let restored = try await FaultTests.restoreAndRecover(hostA, scratch: scratch, name: "restored")
            #expect(restored.difference(from: try #require(expected)) == nil)
        }
    }

    @Test("a lease left by a dead holder: another host's stale lease is taken over with a warning naming it; a damaged lease fails with 63 saying so until it is stale, then is taken over; verify is clean")
    func leftoverLeases() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch, host: "host-a")
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                try scratch.directory("repo/lock/main", mode: 0o750)
                let now = Int64(Date().timeIntervalSince1970)
                let dead = LeaseHolder(host: "host-z", pid: 4242, command: "backup", since: now - 7200, renewed: now - 3600,
                                       duration: 60, token: "deadbeef")
                let planted = try scratch.writeFile("repo/lock/main/backup.lease", contents: String(decoding: try SealedFile.seal(dead), as: UTF8.self))
                // As the dead holder left it: last written at its last renewal.
                try Posix.setModificationTime(planted, seconds: dead.renewed)
                let taken = try stanza.check(TestStanza.clusterOptions(source) + ["backup", "--start-fast"] + stanza.leaseOptions)
                #expect(taken.stderr.contains("taking over the stale lease '\(stanza.leasePath)'") && taken.stderr.contains("host 'host-z', pid 4242"),
                        "\(taken.stderr)")
                #expect(!FileManager.default.fileExists(atPath: stanza.leasePath))

                try scratch.writeFile("repo/lock/main/backup.lease", contents: "{\"host\": \"torn")
                let refused = try stanza.run(["expire", "--lock-lease=2"] + stanza.leaseOptions)
                #expect(refused.status == Exit.lockHeld, "\(refused)")
                #expect(refused.stderr.contains(stanza.leasePath) && refused.stderr.contains("damaged")
                        && refused.stderr.contains("treated as held until stale") && refused.stderr.contains("HINT"), "\(refused.stderr)")
                try await Task.sleep(for: .seconds(4))
                let expired = try stanza.check(["expire", "--lock-lease=2"] + stanza.leaseOptions)
                #expect(expired.stderr.contains("taking over the damaged lease"), "\(expired.stderr)")
                #expect(!FileManager.default.fileExists(atPath: stanza.leasePath))
                #expect(try stanza.run(["verify"]).status == 0)
            }
        }
    }
}
