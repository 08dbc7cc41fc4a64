import Foundation
import Testing
import TestSupport

/// `--archive-async` on real PostgreSQL 15: the background pusher works through the `.ready` queue
/// and acknowledges a segment only once it is durable in the repository; the background prefetcher
/// keeps recovery supplied.
@Suite("Asynchronous archiving", .serialized)
struct AsyncArchiveTests {
    @Test("async archive-push works through the .ready queue; a pusher killed mid-way loses nothing and the archive stays continuous")
    func asyncPushSurvivesAKilledPusher() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let spool = try scratch.directory("spool", mode: 0o750)
            let asyncOptions = stanza.common + ["--archive-async", "--spool-path=\(spool)", "--process-max=2"]
            // Archiving fails at first, so a queue of .ready files builds up.
            try await withCluster(name: "source", scratch: scratch, archiveCommand: "/bin/false") { source in
                try stanza.create(source)
                _ = try source.psql("create table t (g int)")
                var switched: [String] = []
                for _ in 0..<12 {
                    _ = try source.psql("insert into t select g from generate_series(1, 20000) g")
                    switched.append(try source.psql("select pg_walfile_name(pg_switch_wal())"))
                }
                let statusDirectory = source.dataDirectory + "/pg_wal/archive_status"
                let ready = try FileManager.default.contentsOfDirectory(atPath: statusDirectory)
                    .filter { $0.hasSuffix(".ready") }.map { String($0.dropLast(6)) }.sorted()
                #expect(ready.count >= 12, "\(ready)")

                // One call as PostgreSQL makes it (in the data directory, %p relative): it returns once its
                // own segment is durable, while the pusher it started works on the rest of the queue.
                let first = try stanza.binary.run(asyncOptions + ["archive-push", "pg_wal/\(ready[0])"], cwd: source.dataDirectory)
                #expect(first.status == 0, "\(first)")
                // Kill the pusher mid-way (if it is still busy): nothing it did not finish may look archived.
                let lockFile = stanza.lockPath + "/main-archive-push-async.lock"
                if let text = try? String(contentsOfFile: lockFile, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                    kill(pid, SIGKILL)
                }
                let acknowledged = try FileManager.default.contentsOfDirectory(atPath: spool + "/archive/main/out")
                #expect(!acknowledged.contains { $0.hasSuffix(".error") }, "\(acknowledged)")
                for entry in acknowledged where entry.hasSuffix(".ok") {
                    let name = String(entry.dropLast(3))
                    let fetched = try stanza.run(["archive-get", name, scratch.path("ok-\(name)")])
                    #expect(fetched.status == 0, "a segment acknowledged .ok is in the repository: \(fetched)")
                }

                // Now PostgreSQL archives through the async command: the queue drains, nothing fails.
                let command = stanza.binary.commandLine(asyncOptions + ["archive-push", "%p"])
                _ = try source.psql("alter system set archive_command = \(quoteLiteral(command))")
                _ = try source.psql("select pg_reload_conf()")
                _ = try source.psql("select pg_stat_reset_shared('archiver')")
                try await source.waitUntilArchived(switched.last!, timeout: .seconds(120))
                let last = try await source.switchWALAndWaitForArchive()
                #expect(try source.psql("select failed_count from pg_stat_archiver") == "0")

                // The archive is continuous and every segment comes back checksum-verified.
                let fetchDirectory = try scratch.directory("fetched", mode: 0o700)
                var names = ready
                names.append(contentsOf: switched)
                names.append(last)
                for name in Set(names).sorted() {
                    let result = try stanza.run(["archive-get", name, fetchDirectory + "/" + name])
                    #expect(result.status == 0, "\(name): \(result)")
                    let size = try FileManager.default.attributesOfItem(atPath: fetchDirectory + "/" + name)[.size] as? Int
                    #expect(size == 16 * 1024 * 1024)
                    try? FileManager.default.removeItem(atPath: fetchDirectory + "/" + name)
                }
                // The pusher leaves once the queue has stayed empty for a second; then its log says how it ended.
                var log = ""
                for _ in 0..<100 {
                    log = (try? String(contentsOfFile: stanza.logPath + "/main-archive-push-async.log", encoding: .utf8)) ?? ""
                    if log.contains("archive-push-async end") { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(log.contains("archive-push-async end"), "\(log)")
            }
        }
    }

    @Test("two archive-push of the same segment at once both succeed and leave exactly one object")
    func concurrentPushOfOneSegment() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            // PostgreSQL's own archiving goes nowhere: the test pushes copies of its segments itself.
            try await withCluster(name: "source", scratch: scratch, archiveCommand: "/bin/true") { source in
                try stanza.create(source)
                _ = try source.psql("create table t (g int)")
                let copies = try scratch.directory("copies", mode: 0o700)
                var names: [String] = []
                for _ in 0..<4 {
                    _ = try source.psql("insert into t select g from generate_series(1, 20000) g")
                    let name = try source.psql("select pg_walfile_name(pg_switch_wal())")
                    try FileManager.default.copyItem(atPath: source.dataDirectory + "/pg_wal/" + name, toPath: copies + "/" + name)
                    try PostgresUser.takeOwnership(of: copies + "/" + name)
                    names.append(name)
                }
                for name in names {
                    let path = copies + "/" + name
                    async let first = Task.detached { try stanza.run(["archive-push", path]) }.value
                    async let second = Task.detached { try stanza.run(["archive-push", path]) }.value
                    let results = try await [first, second]
                    #expect(results.allSatisfy { $0.status == 0 }, "\(results)")
                    let objects = stanza.repositoryFiles(under: "archive/main/\(Cluster.archiveID)/\(name.prefix(16))").filter { $0.contains(name) }
                    #expect(objects.count == 1, "\(objects)")
                    let fetched = scratch.path("copies/fetched-\(name)")
                    try stanza.check(["archive-get", name, fetched])
                    #expect(try readBytes(fetched) == readBytes(path))
                }
            }
        }
    }

    @Test("async archive-get prefetches ahead of recovery, and the restored cluster equals the source")
    func asyncGetPrefetchesForRecovery() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let spool = try scratch.directory("spool", mode: 0o750)
            let command = stanza.binary.commandLine(stanza.common + ["--archive-async", "--spool-path=\(spool)", "archive-push", "%p"])
            var expected: ClusterDump?
            try await withCluster(name: "source", scratch: scratch, archiveCommand: command) { source in
                try stanza.create(source)
                _ = try source.psql("create table t (g int, note text)")
                try stanza.backup(source)
                for round in 0..<8 {
                    _ = try source.psql("insert into t select g, md5(g::text || '\(round)') from generate_series(1, 30000) g")
                    _ = try source.psql("select pg_switch_wal()")
                }
                try await source.switchWALAndWaitForArchive(timeout: .seconds(120))
                expected = try source.dumpAllDatabases()
            }

            let target = scratch.path("restored")
            try stanza.restore(into: target, ["--archive-async", "--spool-path=\(spool)", "--archive-get-queue-max=64MiB"]).check()
            let autoConf = try String(contentsOfFile: target + "/postgresql.auto.conf", encoding: .utf8)
            #expect(autoConf.contains("--archive-async") && autoConf.contains("--spool-path=\(spool)"), "\(autoConf)")
            let restored = try Cluster(name: "restored", scratch: scratch, existingDataDirectory: target, extraConf: ["archive_mode = off"])
            try await withCluster(restored) { restored in
                try await restored.waitForRecoveryEnd()
                let actual = try restored.dumpAllDatabases()
                #expect(actual.difference(from: expected!) == nil, "\(actual.difference(from: expected!) ?? "")")
            }
            let log = try String(contentsOfFile: stanza.logPath + "/main-archive-get.log", encoding: .utf8)
            #expect(log.contains("handed over"), "recovery used prefetched segments:\n\(log)")
            let asyncLog = try String(contentsOfFile: stanza.logPath + "/main-archive-get-async.log", encoding: .utf8)
            #expect(asyncLog.contains("segments prefetched"), "\(asyncLog)")
        }
    }

    // MARK: --archive-push-queue-max

    /// Makes the stanza's archive id directory and its segment directory unwritable for pgkeep
    /// (it runs as postgres; the test, as root, is not affected), so every push fails as on a
    /// full or read-only repository; returns a closure that makes them writable again.
    func blockArchive(_ stanza: TestStanza) throws -> () throws -> Void {
        let directories = [stanza.repository + "/archive/main/\(Cluster.archiveID)", stanza.repository + "/archive/main/\(Cluster.archiveID)/0000000100000000"]
        for directory in directories { #expect(chmod(directory, 0o555) == 0, "\(directory)") }
        return { for directory in directories { _ = chmod(directory, 0o750) } }
    }

    /// Writes a little and closes the segment, `count` times; returns the closed segments' names.
    func closeSegments(_ cluster: Cluster, count: Int) throws -> [String] {
        var names: [String] = []
        for _ in 0..<count {
            _ = try cluster.psql("insert into t select g from generate_series(1, 5000) g")
            names.append(try cluster.psql("select pg_walfile_name(pg_switch_wal())"))
        }
        return names
    }

    func waitFor(_ what: String, timeout: Duration = .seconds(120), _ condition: () throws -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while try !condition() {
            guard clock.now < deadline else { throw HarnessError("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Info, verify and the planner after `dropped` were dropped and `queued` were archived later:
    /// archive-get answers "not in the archive", info lists the dropped runs (the window may have
    /// slid one segment at a time: several runs) and nothing queued, verify warns with reason
    /// dropped, a restore from `before` across the gap is refused.
    func reportsDrops(_ stanza: TestStanza, scratch: Scratch, dropped: [String], queued: [String], before: String) throws {
        for name in dropped {
            let get = try stanza.run(["archive-get", name, scratch.path("got-\(name)")])
            #expect(get.status == 1, "a dropped segment is not in the archive: \(get)")
        }
        let archive = try #require((try stanza.info()["archive"] as? [[String: Any]])?.first)
        let runs = (archive["dropped"] as? [[String: Any]] ?? []).compactMap { run -> (String, String)? in
            guard let start = run["start"] as? String, let stop = run["stop"] as? String, run["at"] is Int else { return nil }
            return (start, stop)
        }
        for name in dropped { #expect(runs.contains { $0.0 <= name && name <= $0.1 }, "info lists \(name) as dropped: \(runs)") }
        #expect(!runs.contains { $0.1 >= queued[0] }, "\(runs)")
        let text = try stanza.check(["info"]).stdout
        #expect(text.contains("was dropped by archive-push-queue-max"), "\(text)")

        // verify: a warning (every backup still restores to consistency), reason dropped.
        let verify = try stanza.run(["verify", "--output=json"])
        #expect(verify.status == 0, "\(verify)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(verify.stdout.utf8)) as? [String: Any])
        let gaps = (report["warnings"] as? [[String: Any]] ?? []).filter { $0["kind"] as? String == "wal-gap" }
        #expect(!gaps.isEmpty && gaps.allSatisfy { $0["reason"] as? String == "dropped" }, "\(gaps)")
        #expect(gaps.contains { ($0["message"] as? String ?? "").contains("backup \(before) recover only to before") }, "\(gaps)")

        // A restore from the earlier backup to the end of the archive would cross the gap: refused.
        let refused = try stanza.run(["--pg1-path=\(scratch.path("plan-before"))", "restore", "--plan", "--set=\(before)"])
        #expect(refused.status == 72, "\(refused)")
        #expect(refused.stdout.contains("wal-missing") && refused.stdout.contains("dropped by archive-push-queue-max"), "\(refused)")
    }

    @Test("with archive-push-queue-max, WAL the repository cannot take is reported archived once the queue exceeds it, asynchronous or not: the server log names each dropped segment, the repository has no object for them, info and verify report the gap, a restore across it is refused, and a new backup restores",
          arguments: [true, false])
    func queueMaxDropsTheOldestSegments(async: Bool) async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let spool = try scratch.directory("spool", mode: 0o750)
            // Synchronously, the record the unwritable repository refuses waits in the spool.
            let command = stanza.binary.commandLine(stanza.common + (async ? ["--archive-async"] : [])
                                                    + ["--spool-path=\(spool)", "--archive-push-queue-max=32MiB", "archive-push", "%p"])
            var expected: ClusterDump?
            try await withCluster(name: "source", scratch: scratch, archiveCommand: command) { source in
                try stanza.create(source)
                _ = try source.psql("create table t (g int)")
                let before = try stanza.backup(source)
                try await source.switchWALAndWaitForArchive()

                let unblock = try blockArchive(stanza)
                let closed = try closeSegments(source, count: 5)
                // 32MiB holds two 16MiB segments: the three oldest are dropped, the two newest wait.
                let dropped = Array(closed.prefix(3))
                try await source.waitUntilArchived(dropped.last!, timeout: .seconds(120))
                #expect(try Int(source.psql("select failed_count from pg_stat_archiver"))! > 0, "the pushes did fail")
                #expect(try source.psql("select last_archived_wal from pg_stat_archiver") < closed[3], "the newest segments still wait")
                try await waitFor("the server log to name every dropped segment") {
                    let log = (try? String(contentsOfFile: source.logFile, encoding: .utf8)) ?? ""
                    return dropped.allSatisfy { log.contains("archive-dropped: WAL segment \($0) was dropped without being archived") }
                }
                let serverLog = try String(contentsOfFile: source.logFile, encoding: .utf8)
                #expect(serverLog.contains("HINT: point-in-time recovery across"), "\(source.serverLogTail())")
                if !async {
                    #expect(serverLog.contains("THE REPOSITORY REFUSED THE RECORD OF THIS DROP"), "\(source.serverLogTail())")
                    #expect(!serverLog.contains("applies only with --archive-async"))
                    let pending = try FileManager.default.contentsOfDirectory(atPath: spool + "/archive/main/out").filter { $0.hasSuffix(".dropped") }
                    #expect(pending.count == dropped.count, "one pending record per dropped segment: \(pending)")
                }

                try unblock()
                let last = try await source.switchWALAndWaitForArchive(timeout: .seconds(120))
                let objects = stanza.repositoryFiles(under: "archive/main/\(Cluster.archiveID)").filter { !$0.contains("/dropped/") }
                for name in dropped { #expect(!objects.contains { $0.contains("/\(name)-") }, "no object for dropped \(name)") }
                for name in closed.suffix(2) + [last] { #expect(objects.contains { $0.contains("/\(name)-") }, "\(name) is archived") }
                if !async {
                    let pending = try FileManager.default.contentsOfDirectory(atPath: spool + "/archive/main/out").filter { $0.hasSuffix(".dropped") }
                    #expect(pending.isEmpty, "the first successful push moves the records into the repository: \(pending)")
                }
                try reportsDrops(stanza, scratch: scratch, dropped: dropped, queued: Array(closed.suffix(2)), before: before)

                // A new backup restores past it.
                _ = try stanza.backup(source)
                _ = try source.psql("insert into t select g from generate_series(1, 1000) g")
                try await source.switchWALAndWaitForArchive()
                expected = try source.dumpAllDatabases()
            }
            let target = scratch.path("restored")
            try stanza.restore(into: target).check()
            let restored = try Cluster(name: "restored", scratch: scratch, existingDataDirectory: target, extraConf: ["archive_mode = off"])
            try await withCluster(restored) { restored in
                try await restored.waitForRecoveryEnd()
                let actual = try restored.dumpAllDatabases()
                #expect(actual.difference(from: expected!) == nil, "\(actual.difference(from: expected!) ?? "")")
            }
        }
    }

    @Test("without archive-push-queue-max nothing is ever dropped: async pushes keep failing, WAL accumulates in pg_wal, and all of it is archived once the repository takes writes")
    func withoutQueueMaxNothingIsDropped() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let spool = try scratch.directory("spool", mode: 0o750)
            let command = stanza.binary.commandLine(stanza.common + ["--archive-async", "--spool-path=\(spool)", "archive-push", "%p"])
            try await withCluster(name: "source", scratch: scratch, archiveCommand: command) { source in
                try stanza.create(source)
                _ = try source.psql("create table t (g int)")
                try await source.switchWALAndWaitForArchive()
                let archivedBefore = try source.psql("select last_archived_wal from pg_stat_archiver")

                let unblock = try blockArchive(stanza)
                let closed = try closeSegments(source, count: 5)
                try await waitFor("several failed archive attempts") { try Int(source.psql("select failed_count from pg_stat_archiver"))! >= 3 }
                #expect(try source.psql("select last_archived_wal from pg_stat_archiver") == archivedBefore)
                let status = source.dataDirectory + "/pg_wal/archive_status/"
                for name in closed { #expect(FileManager.default.fileExists(atPath: status + name + ".ready"), "\(name) still waits") }
                let log = try String(contentsOfFile: source.logFile, encoding: .utf8)
                #expect(!log.contains("archive-dropped"), "\(source.serverLogTail())")

                try unblock()
                let last = try await source.switchWALAndWaitForArchive(timeout: .seconds(120))
                for name in closed + [last] {
                    let get = try stanza.run(["archive-get", name, scratch.path("got-\(name)")])
                    #expect(get.status == 0, "\(name): \(get)")
                }
                #expect(!FileManager.default.fileExists(atPath: stanza.repository + "/archive/main/\(Cluster.archiveID)/dropped"))
                let archive = try #require((try stanza.info()["archive"] as? [[String: Any]])?.first)
                #expect(archive["dropped"] == nil)
            }
        }
    }
}
