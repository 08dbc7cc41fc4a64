import Foundation
import Testing
import TestSupport

/// `make soak`: a bounded run of everything going wrong at once on one live cluster. pgbench
/// writes continuously while PostgreSQL archives asynchronously; the background pusher is
/// SIGKILLed at random moments; incremental backups are SIGKILLed mid-copy and resumed; expire
/// runs between them. At the end a restore to the end of the archive must equal the source at its
/// last commit, and verify must be clean. Not part of `make test` (it is skipped there, with its
/// reason): it runs for `PGKEEP_SOAK_SECONDS` (the Makefile's `SOAK_SECONDS`, default 300).
///
/// The random moments come from a generator seeded with `PGKEEP_SOAK_SEED` (printed, default the
/// clock), so a failing run can be repeated with the same sequence of decisions.
@Suite("Soak", .serialized)
struct SoakTests {
    static var seconds: Int? { ProcessInfo.processInfo.environment["PGKEEP_SOAK_SECONDS"].flatMap { Int($0) } }

    struct Counts {
        var pusherKills = 0
        var backupKills = 0
        var backups = 0
        var expires = 0
        /// Backups that ended before the moment chosen to kill them.
        var backupsNotKilled = 0
    }

    @Test("pgbench with async archiving, the pusher and backups SIGKILLed at random, expire between: the restore equals the source and verify is clean",
          .enabled(if: SoakTests.seconds != nil, "a soak runs only with make soak (PGKEEP_SOAK_SECONDS)"))
    func soak() async throws {
        let duration = Self.seconds ?? 0
        let seed = ProcessInfo.processInfo.environment["PGKEEP_SOAK_SEED"].flatMap { UInt64($0) } ?? UInt64(Date().timeIntervalSince1970)
        print("soak: \(duration) s, seed \(seed) (PGKEEP_SOAK_SEED=\(seed) repeats the choices)")
        var random = SeededGenerator(seed: seed)
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let spool = try scratch.directory("spool", mode: 0o750)
            let asyncOptions = stanza.common + ["--archive-async", "--spool-path=\(spool)", "--process-max=2"]
            let archiveCommand = stanza.binary.commandLine(asyncOptions + ["archive-push", "%p"])
            var counts = Counts()
            var expected: ClusterDump?
            let started = ContinuousClock.now
            try await withCluster(name: "primary", scratch: scratch, archiveCommand: archiveCommand,
                                  extraConf: ["archive_timeout = 5", "max_wal_size = 256MB"]) { primary in
                try stanza.create(primary)
                try Cluster.runTool("pgbench", ["-i", "-s", "20", "-q"] + primary.connectionArguments + ["postgres"], timeout: .seconds(600)).check()
                try stanza.backup(primary, ["--type=full", "--process-max=2"])
                let load = Task.detached {
                    try Cluster.runTool("pgbench", ["-c", "2", "-j", "2", "-T", String(duration), "-n"] + primary.connectionArguments + ["postgres"],
                                        timeout: .seconds(duration + 300))
                }
                let lockFile = stanza.lockPath + "/main-archive-push-async.lock"
                let deadline = started + .seconds(duration)
                while ContinuousClock.now < deadline {
                    switch random.next() % 4 {
                    case 0, 1:
                        // The pusher, wherever it is in its work.
                        try await Task.sleep(for: .milliseconds(Int(200 + random.next() % 3000)))
                        if let text = try? String(contentsOfFile: lockFile, encoding: .utf8),
                           let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0, kill(pid, SIGKILL) == 0 {
                            counts.pusherKills += 1
                        }
                    case 2:
                        // A full or incremental backup killed mid-copy, once its partial manifest lists stored
                        // files, then resumed by the next one of its type. zstd level 15 slows the copy down
                        // enough to land inside it (a plain incremental here takes a fraction of a second).
                        let type = random.next() % 3 == 0 ? "full" : "incr"
                        let options = TestStanza.clusterOptions(primary) + ["backup", "--type=\(type)", "--start-fast", "--process-max=2",
                                                                            "--compress-type=zst", "--compress-level=15"]
                        let background = FaultTests.Background.start(stanza, options, scratch: scratch, name: "backup-\(counts.backups)")
                        for _ in 0..<6000 {
                            if try FaultTests.finished(background.pidFile) { break }
                            if let label = try FaultTests.unlistedBackups(stanza).first,
                               (FaultTests.manifestFiles(stanza.repository + "/backup/main/\(label)/backup.manifest.partial")?.count ?? 0) > 0 { break }
                            try await Task.sleep(for: .milliseconds(5))
                        }
                        try await Task.sleep(for: .milliseconds(Int(random.next() % 200)))
                        if try FaultTests.finished(background.pidFile) {
                            let whole = try await background.task.value
                            #expect(whole.status == 0, "\(whole)")
                            counts.backupsNotKilled += 1
                        } else {
                            _ = try await background.kill9()
                            counts.backupKills += 1
                        }
                        try stanza.check(options)
                        counts.backups += 1
                    default:
                        try stanza.check(["expire", "--repo1-retention-full=1", "--repo1-retention-diff=1"])
                        counts.expires += 1
                    }
                }
                let loaded = try await load.value
                #expect(loaded.status == 0, "\(loaded)")
                _ = try primary.psql("create table soak_end as select now() as at, (select sum(abalance) from pgbench_accounts) as balance")
                try await primary.switchWALAndWaitForArchive(timeout: .seconds(300))
                expected = try primary.dumpAllDatabases()
                #expect(try primary.psql("select failed_count = 0 or last_archived_time > last_failed_time from pg_stat_archiver") == "t")
            }

            let verify = try stanza.run(["verify", "--output=json", "--process-max=2"], timeout: .seconds(1800))
            #expect(verify.status == 0, "verify is clean: \(verify)")
            let report = (try? JSONSerialization.jsonObject(with: Data(verify.stdout.utf8))) as? [String: Any]
            let restored = try await FaultTests.restoreAndRecover(stanza, scratch: scratch, name: "restored", amcheck: true)
            #expect(restored.difference(from: try #require(expected)) == nil, "the restore equals the source at its last commit")

            let segments = stanza.repositoryFiles(under: "archive/main").filter { !$0.contains(".history") }.count
            let verified = ((report?["checked"] as? [String: Any])?["bytes"] as? NSNumber)?.uint64Value ?? 0
            print("soak: \(Int((ContinuousClock.now - started).components.seconds)) s; \(segments) WAL segments archived; kills survived: \(counts.pusherKills) pusher, \(counts.backupKills) backup (\(counts.backupsNotKilled) ended before their kill); \(counts.backups) backups, \(counts.expires) expires; verify checked \(verified) bytes; restore equal to the source: \(restored.difference(from: expected!) == nil)")
        }
    }
}
