import Foundation
import Testing
import TestSupport

/// Crashes and faults on a real PostgreSQL 15 cluster and repository: `kill -9` of backup, archive-push
/// and restore, a repository (during backup, archive-push and expire) or a restore target that runs
/// out of space, and files that vanish, shrink or grow while a backup copies them. The disk-full
/// tests need a small mounted file system (`SmallFileSystem`) and are skipped, with the reason,
/// where mounting is refused; Tests/PGKeepTests/DiskFullTests.swift covers the same paths everywhere.
/// After each, nothing invalid is visible, nothing earlier is lost, and the next run succeeds (a
/// backup resuming the interrupted one).
@Suite("Faults", .serialized)
struct FaultTests {
    /// Stable exit codes (Sources/PGKeep/Errors/PGKeepError.swift).
    static let diskFull: Int32 = 38
    static let backupMissing: Int32 = 62
    /// What a shell reports for a child killed by SIGKILL.
    static let killed: Int32 = 128 + 9

    /// A pgkeep command running in the background, whose pid is known (so it can be killed, and only it).
    struct Background {
        let pidFile: String
        let task: Task<ShellResult, any Error>

        /// Starts `pgkeep <arguments>` as the postgres user through `sh -c 'echo $$ > pidfile; exec ...'`.
        static func start(_ stanza: TestStanza, _ arguments: [String], scratch: Scratch, name: String) -> Background {
            let pidFile = scratch.path(name + ".pid")
            let words = ["-c", "echo $$ > \"$1\"; shift; exec \"$@\"", "sh", pidFile, stanza.binary.path] + stanza.common + arguments
            let task = Task.detached {
                try Shell.run("sh", words, unsetEnvironment: PGKeepBinary.harnessVariables, asPostgres: true, timeout: .seconds(600))
            }
            return Background(pidFile: pidFile, task: task)
        }

        /// The pgkeep process id, once it has started.
        func pid() async throws -> pid_t {
            for _ in 0..<2000 {
                if let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
                   let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 { return pid }
                try await Task.sleep(for: .milliseconds(5))
            }
            throw HarnessError("the background command never wrote \(pidFile)")
        }

        func kill9() async throws -> ShellResult {
            let pid = try await pid()
            _ = kill(pid, SIGKILL)
            return try await task.value
        }
    }

    /// Polls `condition` every 20 ms until it holds; throws after `timeout`, or when `background` ended first.
    static func waitUntil(_ what: String, timeout: Duration = .seconds(120), while background: Background? = nil,
                          _ condition: () throws -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if try condition() { return }
            if let background, try Self.finished(background.pidFile) {
                throw HarnessError("the command ended before \(what): \(try await background.task.value)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError("timed out waiting for \(what)")
    }

    /// Whether the process named in `pidFile` has exited.
    static func finished(_ pidFile: String) throws -> Bool {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return false }
        return kill(pid, 0) != 0 && errno == ESRCH
    }

    /// The files of a sealed manifest (JSON body plus a `sha256` trailer line); nil when unreadable.
    static func manifestFiles(_ path: String) -> [[String: Any]]? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard lines.last?.hasPrefix("sha256 ") == true else { return nil }
        let body = lines.dropLast().joined(separator: "\n")
        let json = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
        return json?["files"] as? [[String: Any]]
    }

    /// Backup directories in the repository that `info` does not list.
    static func unlistedBackups(_ stanza: TestStanza) throws -> [String] {
        let root = stanza.repository + "/backup/" + stanza.name
        let listed = Set(try stanza.labels())
        return try FileManager.default.contentsOfDirectory(atPath: root)
            .filter { $0.count >= 16 && $0.first?.isNumber == true && !listed.contains($0) }.sorted()
    }

    /// Restores `label` (latest when nil) into `<scratch>/<name>/data`, recovers to the end of the archive (or
    /// with `toBackupEnd` only to the backup's end), and returns the dump; amcheck must be clean.
    static func restoreAndRecover(_ stanza: TestStanza, scratch: Scratch, name: String, set label: String? = nil,
                                  amcheck: Bool = false, toBackupEnd: Bool = false) async throws -> ClusterDump {
        try scratch.directory(name)
        let data = scratch.path(name + "/data")
        try stanza.restore(into: data, label.map { ["--set=\($0)"] } ?? []).check()
        return try await recover(data, scratch: scratch, name: name, amcheck: amcheck, toBackupEnd: toBackupEnd)
    }

    /// Tries to start PostgreSQL on the half-restored `data` (socket and log in `<scratch>/<name>`)
    /// and expects it to refuse; stops it again should it start after all.
    static func expectNoStart(_ data: String, scratch: Scratch, name: String) throws {
        try scratch.directory(name + "/sock")
        let start = try Cluster.runTool("pg_ctl", ["start", "-D", data, "-l", scratch.path(name + "/start.log"), "-w", "-t", "20",
                                                   "-o", "-c unix_socket_directories=\(scratch.path(name + "/sock")) -c listen_addresses=''"],
                                        timeout: .seconds(60))
        #expect(start.status != 0, "a half-restored directory must not start: \(start)")
        if start.status == 0 { _ = try? Cluster.runTool("pg_ctl", ["stop", "-D", data, "-m", "immediate"]) }
    }

    static func recover(_ data: String, scratch: Scratch, name: String, amcheck: Bool, toBackupEnd: Bool = false) async throws -> ClusterDump {
        let target = toBackupEnd ? ["recovery_target = 'immediate'", "recovery_target_action = 'promote'"] : []
        let restored = try Cluster(name: name, scratch: scratch, existingDataDirectory: data, extraConf: ["archive_mode = off"] + target)
        return try await withCluster(restored) { cluster in
            try await cluster.waitForRecoveryEnd()
            if amcheck {
                let check = try cluster.amcheck(["--heapallindexed"])
                #expect(check.status == 0, "\(check)")
            }
            return try cluster.dumpAllDatabases()
        }
    }

    /// zstd at level 15 makes each backup of `loadPgbench`'s cluster take seconds even on a fast,
    /// idle machine, so changes made and kills sent while it runs land while files are being
    /// copied, not after.
    static let slowBackup = ["--compress-type=zst", "--compress-level=15"]

    /// Loads pgbench at scale 10 (pgbench_accounts ~130 MB, the largest file, copied and restored
    /// first), vacuums and checkpoints; returns pgbench_accounts' path in the data directory.
    static func loadPgbench(_ cluster: Cluster) throws -> String {
        try Cluster.runTool("pgbench", ["-i", "-s", "10", "-q"] + cluster.connectionArguments + ["postgres"], timeout: .seconds(300)).check()
        _ = try cluster.psql("vacuum analyze")
        let accounts = try cluster.psql("select pg_relation_filepath('pgbench_accounts')")
        _ = try cluster.psql("checkpoint")
        return accounts
    }

    /// Writes a row after the last backup and waits until its WAL is archived; returns the dump
    /// every restore must recover to.
    static func finalState(_ cluster: Cluster) async throws -> ClusterDump {
        _ = try cluster.psql("insert into pgbench_history (tid, bid, aid, delta) values (1, 1, 1, -1)")
        try await cluster.switchWALAndWaitForArchive()
        return try cluster.dumpAllDatabases()
    }

    // Scenario 17.
    @Test("tables dropped, rewritten, shrunk and grown while a backup copies them: the backup succeeds, says the dropped files vanished, and restores exactly")
    func filesChangingMidBackup() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            var expected: ClusterDump?
            var label = ""
            try await withCluster(name: "primary", scratch: scratch, archiveCommand: stanza.archiveCommand,
                                  extraConf: ["autovacuum = off"]) { cluster in
                try stanza.create(cluster)
                _ = try cluster.psql("""
                    create table vanish(a int, pad text);
                    insert into vanish select g, repeat('v', 200) from generate_series(1, 20000) g;
                    create table rewrite(a int, pad text);
                    insert into rewrite select g, repeat('r', 200) from generate_series(1, 20000) g;
                    create table shrink(a int, pad text);
                    insert into shrink select g, repeat('s', 200) from generate_series(1, 20000) g;
                    create table grow(a int, pad text);
                    insert into grow select g, repeat('g', 200) from generate_series(1, 100) g;
                    """)
                _ = try Self.loadPgbench(cluster)
                let progressFile = stanza.lockPath + "/main-backup.progress"

                // While the backup copies the largest files, a table is dropped, one is rewritten by
                // VACUUM FULL, one shrinks and one grows.
                let backup = Background.start(stanza, TestStanza.clusterOptions(cluster) + [
                    "backup", "--start-fast", "--process-max=1", "--log-level-console=info"] + Self.slowBackup, scratch: scratch, name: "backup")
                try await Self.waitUntil("the backup to start copying", while: backup) {
                    FileManager.default.fileExists(atPath: progressFile)
                }
                _ = try cluster.psql("drop table vanish")
                _ = try cluster.psql("vacuum full rewrite")
                _ = try cluster.psql("delete from shrink where a > 100")
                _ = try cluster.psql("vacuum shrink")
                _ = try cluster.psql("insert into grow select g, repeat('g', 200) from generate_series(1, 30000) g")
                let result = try await backup.task.value.check()
                #expect(result.stderr.contains("removed by the database meanwhile"),
                        "the dropped table's files vanished during the copy: \(result.stderr)")
                #expect(!FileManager.default.fileExists(atPath: progressFile), "the progress record is removed at the end")
                label = try #require(try stanza.labels().last)
                expected = try await Self.finalState(cluster)
            }
            let restored = try await Self.restoreAndRecover(stanza, scratch: scratch, name: "restored", set: label)
            #expect(restored.difference(from: try #require(expected)) == nil)
        }
    }

    // Scenario 1.
    @Test("kill -9 mid-backup: nothing is listed, and the next backup resumes it reusing stored files, verifies clean and restores exactly")
    func killedBackupResumes() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            var expected: ClusterDump?
            var interrupted = ""
            try await withCluster(name: "primary", scratch: scratch, archiveCommand: stanza.archiveCommand,
                                  extraConf: ["autovacuum = off"]) { cluster in
                try stanza.create(cluster)
                _ = try Self.loadPgbench(cluster)
                // A resumed backup reuses only files last written over two seconds before the
                // interrupted one began listing (repo-layout.md §4.2); the checkpoint just wrote all.
                try await Task.sleep(for: .seconds(3))

                // The backup is killed once its partial manifest lists stored files; meanwhile info shows it.
                let backup = Background.start(stanza, TestStanza.clusterOptions(cluster) + [
                    "backup", "--start-fast", "--process-max=1"] + Self.slowBackup, scratch: scratch, name: "backup")
                var partialPath = ""
                try await Self.waitUntil("a partial manifest with stored files", while: backup) {
                    guard let label = try Self.unlistedBackups(stanza).first else { return false }
                    interrupted = label
                    partialPath = stanza.repository + "/backup/main/\(label)/backup.manifest.partial"
                    return (Self.manifestFiles(partialPath)?.count ?? 0) > 0
                }
                let running = try stanza.info()
                let lock = ((running["status"] as? [String: Any])?["lock"] as? [String: Any])?["backup"] as? [String: Any]
                #expect(lock?["held"] as? Bool == true, "info shows the running backup: \(running)")
                let size = (lock?["size"] as? NSNumber)?.uint64Value ?? 0
                let done = (lock?["size-cplt"] as? NSNumber)?.uint64Value ?? 0
                #expect(size > 100 << 20 && done > 0 && done <= size, "\(lock ?? [:])")
                let text = try stanza.check(["info"]).stdout
                #expect(text.contains("backup running: "), "\(text)")
                let killed = try await backup.kill9()
                #expect(killed.status == Self.killed, "\(killed)")
                let storedBefore = try #require(Self.manifestFiles(partialPath)).count

                // Nothing of it is visible as a backup.
                #expect(try stanza.labels() == [])
                let refused = try stanza.restore(into: scratch.path("never"), ["--set=\(interrupted)"])
                #expect(refused.status == Self.backupMissing, "\(refused)")
                let idle = try stanza.info()
                let idleLock = ((idle["status"] as? [String: Any])?["lock"] as? [String: Any])?["backup"] as? [String: Any]
                #expect(idleLock?["held"] as? Bool == false && idleLock?["size"] == nil, "no backup runs any more: \(idle)")

                // Some files change before the next backup: those are copied again.
                _ = try cluster.psql("update pgbench_tellers set tbalance = tbalance + 1")
                _ = try cluster.psql("update pgbench_branches set bbalance = bbalance + 7")
                _ = try cluster.psql("checkpoint")
                let resumed = try stanza.check(TestStanza.clusterOptions(cluster) + [
                    "backup", "--start-fast", "--process-max=1", "--log-level-console=info"] + Self.slowBackup)
                #expect(resumed.stderr.contains("resuming interrupted backup \(interrupted)"), "\(resumed.stderr)")
                let reusedLine = resumed.stderr.split(separator: "\n").first { $0.contains("resumed backup \(interrupted): ") }
                let reused = reusedLine.flatMap { line in
                    line.components(separatedBy: "resumed backup \(interrupted): ").last?.split(separator: " ").first.flatMap { Int($0) }
                } ?? 0
                #expect(reused > 0 && reused <= storedBefore, "\(resumed.stderr)")
                #expect(try stanza.labels() == [interrupted], "the resumed backup keeps its label")
                #expect(!FileManager.default.fileExists(atPath: partialPath), "a complete backup keeps no partial manifest")
                // Every object of the resumed backup, reused or copied again, has its recorded SHA-256.
                let verified = try stanza.run(["verify", "--set=\(interrupted)"])
                #expect(verified.status == 0, "the resumed backup verifies clean: \(verified)")
                expected = try await Self.finalState(cluster)
            }
            let restored = try await Self.restoreAndRecover(stanza, scratch: scratch, name: "restored", amcheck: true)
            #expect(restored.difference(from: try #require(expected)) == nil)
        }
    }

    // Scenario 24.
    @Test("kill -9 mid-restore: the half-restored directory cannot start, and --delta completes it to what a fresh restore writes")
    func killedRestoreCompletesWithDelta() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            var expected: ClusterDump?
            var accounts = ""
            try await withCluster(name: "primary", scratch: scratch, archiveCommand: stanza.archiveCommand,
                                  extraConf: ["autovacuum = off"]) { cluster in
                try stanza.create(cluster)
                accounts = try Self.loadPgbench(cluster)
                try stanza.check(TestStanza.clusterOptions(cluster) + ["backup", "--start-fast", "--process-max=1"])
                expected = try await Self.finalState(cluster)
            }

            // Killed once it writes the largest file (the first).
            try scratch.directory("delta")
            let delta = scratch.path("delta/data")
            let restore = Background.start(stanza, ["--pg1-path=\(delta)", "restore", "--process-max=1"], scratch: scratch, name: "restore")
            try await Self.waitUntil("the restore to write \(accounts)", while: restore) {
                FileManager.default.fileExists(atPath: delta + "/" + accounts)
            }
            let killedRestore = try await restore.kill9()
            #expect(killedRestore.status == Self.killed, "\(killedRestore)")
            #expect(!FileManager.default.fileExists(atPath: delta + "/global/pg_control"))
            try Self.expectNoStart(delta, scratch: scratch, name: "delta")
            try stanza.restore(into: delta, ["--delta"]).check()

            try scratch.directory("fresh")
            let fresh = scratch.path("fresh/data")
            try stanza.restore(into: fresh).check()
            #expect(try IncrementalBackupTests.fingerprint(delta) == IncrementalBackupTests.fingerprint(fresh))
            let recovered = try await Self.recover(delta, scratch: scratch, name: "recovered", amcheck: true)
            #expect(recovered.difference(from: try #require(expected)) == nil)
        }
    }

    @Test("kill -9 during archive-push at several moments: no partial WAL object is ever visible, and the next push succeeds")
    func killedArchivePush() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let copy = try scratch.directory("wal") + "/"
            var segment = ""
            // Archiving fails on purpose, so the segment stays in pg_wal and out of the archive.
            try await withCluster(name: "source", scratch: scratch, archiveCommand: "false") { cluster in
                try stanza.create(cluster)
                // A segment full of row data (not zeros), which takes a while to compress hard.
                _ = try cluster.psql("create table t as select g, md5(random()::text) as v from generate_series(1, 400000) g")
                _ = try cluster.psql("select pg_switch_wal()")
                // The completed segment with the fewest zero bytes: one written through by the insert
                // (a recycled or half-used segment compresses in no time and could not be killed mid-way).
                let walDirectory = cluster.dataDirectory + "/pg_wal/"
                let current = try cluster.psql("select pg_walfile_name(pg_current_wal_lsn())")
                let candidates = try FileManager.default.contentsOfDirectory(atPath: walDirectory)
                    .filter { $0.count == 24 && $0 < current }
                segment = try #require(try candidates.min { a, b in
                    try readBytes(walDirectory + a).lazy.filter { $0 == 0 }.count < readBytes(walDirectory + b).lazy.filter { $0 == 0 }.count
                })
                let zeros = try readBytes(walDirectory + segment).lazy.filter { $0 == 0 }.count
                #expect(zeros < 8 << 20, "segment \(segment) holds row data (\(zeros) zero bytes)")
                try FileManager.default.copyItem(atPath: cluster.dataDirectory + "/pg_wal/" + segment, toPath: copy + segment)
                try PostgresUser.takeOwnership(of: copy + segment)
            }
            let original = try readBytes(copy + segment)
            let archiveDirectory = stanza.repository + "/archive/main/\(Cluster.archiveID)/" + String(segment.prefix(16))
            func visibleObjects() -> [String] {
                ((try? FileManager.default.contentsOfDirectory(atPath: archiveDirectory)) ?? []).filter { !$0.contains(".pgkeep-tmp.") }
            }
            var kills = 0
            // zst at level 15 makes the push of a segment of row data take seconds, so every kill lands in the middle.
            for (index, delay) in [0, 20, 80, 250].enumerated() {
                let push = Background.start(stanza, ["archive-push", "--compress-type=zst", "--compress-level=15", copy + segment],
                                            scratch: scratch, name: "push\(index)")
                _ = try await push.pid()
                try await Task.sleep(for: .milliseconds(delay))
                let result = try await push.kill9()
                let fetched = scratch.path("wal/fetched\(index)")
                let got = try stanza.run(["archive-get", segment, fetched])
                if result.status == Self.killed {
                    kills += 1
                    #expect(visibleObjects().isEmpty, "a killed push left \(visibleObjects())")
                    #expect(got.status == 1, "a killed push stored nothing: \(got)")
                } else {
                    // It finished before the kill: then the whole, verified segment is there.
                    #expect(result.status == 0, "\(result)")
                    #expect(got.status == 0 && (try? readBytes(fetched)) == original, "\(got)")
                }
            }
            #expect(kills >= 3, "the pushes were killed mid-way")
            let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: archiveDirectory)) ?? []).filter { $0.contains(".pgkeep-tmp.") }
            #expect(!leftovers.isEmpty, "at least one push was killed while writing (its temporary file is hidden)")
            try stanza.check(["archive-push", "--compress-type=zst", "--compress-level=15", copy + segment])
            #expect(visibleObjects().count == 1)
            let fetched = scratch.path("wal/final")
            try stanza.check(["archive-get", segment, fetched])
            #expect(try readBytes(fetched) == original)
        }
    }

    @Test("kill -9 during expire at several moments: backup.info never lists a backup that lost a file, and the next expire finishes the job")
    func killedExpire() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            var expected: ClusterDump?
            var midway = 0
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { cluster in
                try stanza.create(cluster)
                try Cluster.runTool("pgbench", ["-i", "-s", "2", "-q"] + cluster.connectionArguments + ["postgres"]).check()
                for (round, delay) in [5, 15, 40].enumerated() {
                    // Three full backups stored file by file (no bundles): many objects for expire to delete.
                    for _ in 0..<3 {
                        _ = try cluster.psql("update pgbench_branches set bbalance = bbalance + 1")
                        try stanza.backup(cluster, ["--no-bundle"])
                    }
                    let before = try stanza.labels()
                    let expire = Background.start(stanza, ["expire", "--repo1-retention-full=1"], scratch: scratch, name: "expire\(round)")
                    _ = try await expire.pid()
                    try await Task.sleep(for: .milliseconds(delay))
                    let result = try await expire.kill9()
                    let listed = try stanza.labels()
                    #expect(listed.last == before.last, "the newest backup is never expired")
                    if result.status == Self.killed, try !Self.unlistedBackups(stanza).isEmpty { midway += 1 }
                    // Whenever it died: every backup backup.info lists is whole.
                    let check = try stanza.run(["verify"])
                    #expect(check.status == 0, "after a kill at \(delay) ms: \(check)")
                    // The next run finishes: only the newest backup remains, and no directory is left behind.
                    try stanza.check(["expire", "--repo1-retention-full=1"])
                    #expect(try stanza.labels() == [before.last!])
                    #expect(try Self.unlistedBackups(stanza).isEmpty)
                }
                _ = try cluster.psql("update pgbench_branches set bbalance = bbalance + 100")
                try await cluster.switchWALAndWaitForArchive()
                expected = try cluster.dumpAllDatabases()
            }
            print("expire killed mid-way in \(midway) of 3 rounds")
            let restored = try await Self.restoreAndRecover(stanza, scratch: scratch, name: "after-expire")
            #expect(restored.difference(from: expected!) == nil)
        }
    }

    @Test("a full repository: backup and archive-push fail with disk-full naming the path, nothing stored earlier changes, and after freeing space both succeed",
          .enabled(if: SmallFileSystem.isAvailable, Comment(rawValue: SmallFileSystem.unavailableReason)))
    func repositoryFull() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let repository = try SmallFileSystem.mount(at: stanza.repository, bytes: 160 << 20, imageDirectory: scratch.path)
            defer { repository.unmount() }
            func snapshot() throws -> [String: [UInt8]] {
                var files: [String: [UInt8]] = [:]
                // Temporary files are invisible by contract (repo-layout §2), and come and go while
                // PostgreSQL's archiver retries its push into the full repository.
                let archived = stanza.repositoryFiles(under: "archive").filter { !$0.contains(".pgkeep-tmp.") }
                for path in archived + [
                    stanza.repository + "/backup/main/backup.info", stanza.repository + "/backup/main/backup.info.copy",
                ] {
                    files[path] = try readBytes(path)
                }
                return files
            }

            var firstLabel = ""
            var afterFirst: ClusterDump?
            try await withCluster(name: "primary", scratch: scratch, archiveCommand: stanza.archiveCommand) { cluster in
                try stanza.create(cluster)
                _ = try cluster.psql("create table t as select g, md5(g::text) as v from generate_series(1, 50000) g")
                firstLabel = try stanza.backup(cluster)
                afterFirst = try cluster.dumpAllDatabases()
                _ = try cluster.psql("insert into t select g, 'second' from generate_series(1, 1000) g")
                try await cluster.switchWALAndWaitForArchive()

                // Backup into a repository with 4 MB left: the uncompressed cluster does not fit.
                let before = try snapshot()
                try repository.fill(leaving: 4 << 20)
                let full = try stanza.run(TestStanza.clusterOptions(cluster) + ["backup", "--start-fast", "--compress-type=none"])
                #expect(full.status == Self.diskFull, "\(full)")
                #expect(full.stderr.contains("No space left on device") && full.stderr.contains(stanza.repository + "/backup/main/"),
                        "the error names the cause and the path: \(full.stderr)")
                // PostgreSQL's archiver may add small files meanwhile (the backup history file); what was there stays.
                let now = try snapshot()
                #expect(before.allSatisfy { now[$0.key] == $0.value }, "info files and archived WAL are byte-identical")
                #expect(try stanza.labels() == [firstLabel])

                // archive-push of a segment PostgreSQL could not archive meanwhile, into a completely full repository.
                try repository.fill(leaving: 0)
                let full0 = try snapshot()
                let failures = Int(try cluster.psql("select failed_count from pg_stat_archiver")) ?? 0
                _ = try cluster.psql("insert into t select g, 'third' from generate_series(1, 1000) g")
                _ = try cluster.psql("select pg_switch_wal()")
                try await Self.waitUntil("the archiver to fail") {
                    (Int(try cluster.psql("select failed_count from pg_stat_archiver")) ?? 0) > failures
                }
                // The oldest segment not archived yet: PostgreSQL keeps it in pg_wal until it is.
                let segment = try cluster.psql("select last_failed_wal from pg_stat_archiver")
                let copy = try scratch.directory("wal") + "/" + segment
                try FileManager.default.copyItem(atPath: cluster.dataDirectory + "/pg_wal/" + segment, toPath: copy)
                try PostgresUser.takeOwnership(of: copy)
                let push = try stanza.run(["archive-push", copy])
                #expect(push.status == Self.diskFull, "\(push)")
                #expect(push.stderr.contains("No space left on device") && push.stderr.contains(stanza.repository + "/archive/main/"), "\(push.stderr)")
                let missing = try stanza.run(["archive-get", segment, scratch.path("wal/fetched")])
                #expect(missing.status == 1, "nothing was stored: \(missing)")
                #expect(try snapshot() == full0)
                // info shows what PostgreSQL holds back meanwhile (scenario 6: the queue size is visible).
                let queued = try stanza.check(["info", "--output=json", "--pg1-path=\(cluster.dataDirectory)"])
                #expect(queued.stdout.contains("\"oldest\":\"\(segment)\""), "the failing segment heads the archive queue: \(queued.stdout)")

                // Space comes back: the push, the archiver and the backup succeed.
                try repository.removeBallast()
                try stanza.check(["archive-push", copy])
                let fetched = scratch.path("wal/fetched")
                try stanza.check(["archive-get", segment, fetched])
                #expect(try readBytes(fetched) == readBytes(copy))
                try await cluster.switchWALAndWaitForArchive()
                let retried = try stanza.check(TestStanza.clusterOptions(cluster) + [
                    "backup", "--start-fast", "--compress-type=none", "--log-level-console=info"])
                #expect(retried.stderr.contains("resuming interrupted backup"), "the interrupted backup is resumed: \(retried.stderr)")
                #expect(try stanza.labels().count == 2)
            }

            // The earlier backup still restores to exactly its own end.
            let dump = try await Self.restoreAndRecover(stanza, scratch: scratch, name: "restored", set: firstLabel, toBackupEnd: true)
            #expect(dump.difference(from: try #require(afterFirst)) == nil)
        }
    }

    @Test("expire in a full repository: with no space left it fails with disk-full naming its lease and changes nothing; with 64 KB left it expires, and the remaining backup restores exactly",
          .enabled(if: SmallFileSystem.isAvailable, Comment(rawValue: SmallFileSystem.unavailableReason)))
    func expireInFullRepository() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let repository = try SmallFileSystem.mount(at: stanza.repository, bytes: 160 << 20, imageDirectory: scratch.path)
            defer { repository.unmount() }
            var expected: ClusterDump?
            var labels: [String] = []
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { cluster in
                try stanza.create(cluster)
                _ = try cluster.psql("create table t as select g, md5(g::text) as v from generate_series(1, 20000) g")
                for round in 1...3 {
                    _ = try cluster.psql("update t set v = 'round \(round)' where g % 10 = \(round)")
                    labels.append(try stanza.backup(cluster))
                }
                try await cluster.switchWALAndWaitForArchive()
                expected = try cluster.dumpAllDatabases()
            }
            // The cluster is stopped: nothing but expire writes to the repository from here on.
            let info = stanza.repository + "/backup/main/backup.info"
            let infoFiles = [info, info + ".copy"]
            let before = try (stanza.repositoryFiles(under: "backup") + stanza.repositoryFiles(under: "archive"))
                .reduce(into: [String: [UInt8]]()) { $0[$1] = try readBytes($1) }

            try repository.fill(leaving: 0)
            let full = try stanza.run(["expire", "--repo1-retention-full=1"])
            #expect(full.status == Self.diskFull, "\(full)")
            // The first file expire writes is its repository lease (repo-layout.md §3.8); without
            // room for it, expire stops before it changes anything.
            let lease = stanza.repository + "/lock/main/backup.lease"
            #expect(full.stderr.contains("No space left on device") && full.stderr.contains(lease), "the error names the cause and the lease: \(full.stderr)")
            #expect(!FileManager.default.fileExists(atPath: lease), "no lease is left behind")
            for file in infoFiles {
                #expect(try readBytes(file) == before[file], "\(file) is byte-identical")
            }
            let after = stanza.repositoryFiles(under: "backup") + stanza.repositoryFiles(under: "archive")
            #expect(Set(after) == Set(before.keys), "no backup file was removed or added")
            #expect(try stanza.labels() == labels)

            // Expire needs only room for one backup.info at a time; it frees the rest itself.
            try repository.removeBallast()
            try repository.fill(leaving: 64 << 10)
            let expired = try stanza.check(["expire", "--repo1-retention-full=1"])
            #expect(try stanza.labels() == [labels[2]], "\(expired.stderr)")
            #expect(try repository.availableBytes > 1 << 20, "the expired backups' space came back")

            try repository.removeBallast()
            let verify = try stanza.run(["verify"])
            #expect(verify.status == 0, "\(verify)")
            let restored = try await Self.restoreAndRecover(stanza, scratch: scratch, name: "restored")
            #expect(restored.difference(from: try #require(expected)) == nil)
        }
    }

    @Test("a restore onto a full file system fails with disk-full naming the file system and the bytes the backup needs, cannot be started, and completes with --delta once space is freed",
          .enabled(if: SmallFileSystem.isAvailable, Comment(rawValue: SmallFileSystem.unavailableReason)))
    func restoreOntoFullFileSystem() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            var expected: ClusterDump?
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { cluster in
                try stanza.create(cluster)
                _ = try cluster.psql("create table t as select g, md5(g::text) as v from generate_series(1, 50000) g")
                try stanza.backup(cluster)
                try await cluster.switchWALAndWaitForArchive()
                expected = try cluster.dumpAllDatabases()
            }
            let backup = try #require((try stanza.info()["backup"] as? [[String: Any]])?.last)
            let size = try #require(((backup["info"] as? [String: Any])?["size"] as? NSNumber)?.uint64Value)

            // ext4 first: the file system restores usually write to, with pgkeep's O_DIRECT path.
            let mountPoint = try scratch.directory("target", mode: 0o750)
            // Room for the cluster and the WAL recovery replays (16 MB segments in pg_wal).
            let target = try SmallFileSystem.mount(at: mountPoint, bytes: 160 << 20, imageDirectory: scratch.path, preferring: .loopExt4)
            defer { target.unmount() }
            let data = mountPoint + "/data"
            try target.fill(leaving: size / 2)
            let full = try stanza.restore(into: data)
            #expect(full.status == Self.diskFull, "\(full)")
            #expect(full.stderr.contains("No space left on device") && full.stderr.contains(data + "/"), "names the cause and the file: \(full.stderr)")
            #expect(full.stderr.contains("mounted at '\(mountPoint)'"), "names the file system: \(full.stderr)")
            #expect(full.stderr.contains("(\(size) bytes)") && full.stderr.contains("--delta"),
                    "says how much space the backup needs (\(size) bytes) and how to finish: \(full.stderr)")

            // Half restored: no pg_control, so PostgreSQL refuses to start it.
            #expect(!FileManager.default.fileExists(atPath: data + "/global/pg_control"))
            #expect(!FileManager.default.fileExists(atPath: data + "/global/pg_control.pgkeep-tmp"))
            try Self.expectNoStart(data, scratch: scratch, name: "half")

            try target.removeBallast()
            let completed = try stanza.check(["--pg1-path=\(data)", "restore", "--delta", "--process-max=2", "--log-level-console=info"])
            #expect(completed.stderr.contains("files kept"), "the delta restore kept what was restored before: \(completed.stderr)")
            let restored = try await Self.recover(data, scratch: scratch, name: "restored", amcheck: false)
            #expect(restored.difference(from: try #require(expected)) == nil)
        }
    }
}
