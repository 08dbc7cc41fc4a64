import Foundation
import Testing
import TestSupport

/// Differential, incremental and block-incremental backups of a real PostgreSQL 15 cluster, restores of
/// every backup of a chain, and delta restores.
@Suite("Incremental backups", .serialized)
struct IncrementalBackupTests {
    /// One repository and stanza in a scratch directory, driven through the built pgkeep binary.
    struct Repo {
        let binary: PGKeepBinary
        let scratch: Scratch
        let path: String
        let lockPath: String
        let stanza = "main"

        init(scratch: Scratch) throws {
            binary = try PGKeepBinary.shared()
            self.scratch = scratch
            path = try scratch.directory("repo")
            lockPath = try scratch.directory("lock")
        }

        var common: [String] { ["--stanza=\(stanza)", "--repo1-path=\(path)", "--lock-path=\(lockPath)"] }
        var archiveCommand: String { binary.commandLine(common + ["archive-push", "%p"]) }

        func run(_ arguments: [String]) throws -> ShellResult { try binary.run(common + arguments, timeout: .seconds(600)) }

        func connection(_ cluster: Cluster) -> [String] {
            ["--pg1-path=\(cluster.dataDirectory)", "--pg1-socket-path=\(cluster.socketDirectory)", "--pg1-port=\(cluster.port)"]
        }

        func stanzaCreate(_ cluster: Cluster) throws {
            try run(connection(cluster) + ["stanza-create"]).check()
        }

        /// Takes a backup and returns its label and pgkeep's output.
        @discardableResult
        func backup(_ cluster: Cluster, type: String, extra: [String] = []) throws -> (label: String, result: ShellResult) {
            let result = try run(connection(cluster) + ["--type=\(type)", "--start-fast", "--log-level-console=info"] + extra + ["backup"]).check()
            let words = result.stdout.split(separator: " ")
            guard words.count > 2, words[1] == "backup" else { throw HarnessError("unexpected backup output: \(result)") }
            return (String(words[2]), result)
        }

        /// `info --output=json`: the stanza's backups, oldest first.
        func backups() throws -> [[String: Any]] {
            let result = try run(["--output=json", "info"]).check()
            let stanzas = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]
            return stanzas?.first?["backup"] as? [[String: Any]] ?? []
        }

        func restore(into directory: String, set: String? = nil, extra: [String] = []) throws -> ShellResult {
            try run(["--pg1-path=\(directory)", "--log-level-console=info"] + (set.map { ["--set=\($0)"] } ?? []) + extra + ["restore"])
        }
    }

    /// Restores `label` into a new directory, recovers it to the end of that backup (`immediate`) and returns the
    /// dump of the recovered cluster.
    static func restoreImmediate(_ repo: Repo, label: String, name: String) async throws -> ClusterDump {
        try repo.scratch.directory(name)
        let data = repo.scratch.path(name + "/data")
        try repo.restore(into: data, set: label).check()
        let restored = try Cluster(name: name, scratch: repo.scratch, existingDataDirectory: data, extraConf: [
            "archive_mode = off", "recovery_target = 'immediate'", "recovery_target_action = 'promote'",
        ])
        return try await withCluster(restored) { cluster in
            try await cluster.waitForRecoveryEnd()
            return try cluster.dumpAllDatabases()
        }
    }

    /// Forces a WAL switch and waits until the finished segment is archived.
    static func archiveCurrentWAL(_ cluster: Cluster) async throws {
        let segment = try cluster.psql("select pg_walfile_name(pg_current_wal_lsn())")
        _ = try cluster.psql("select pg_switch_wal()")
        for _ in 0..<300 {
            let archived = try cluster.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver")
            if archived >= segment { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw HarnessError("segment \(segment) was not archived in time")
    }

    /// `sha256sum` of every file and link under `directory` (relative names, sorted), and the directory list;
    /// `postgresql.auto.conf` without pgkeep's timestamp comment.
    static func fingerprint(_ directory: String) throws -> String {
        let script = """
            cd "$1" && find . -type d | sort && find . \\( -type f -o -type l \\) ! -name postgresql.auto.conf | sort | xargs -r sha256sum \
            && grep -v '^# Recovery settings written by pgkeep' postgresql.auto.conf | sha256sum
            """
        return try Shell.run("sh", ["-c", script, "fingerprint", directory]).check().stdout
    }

    @Test("full, diff, incr, incr: each --set restores exactly the data as of the end of that backup; delta restore")
    func chainRestoresEachBackup() async throws {
        try await withScratch { scratch in
            let repo = try Repo(scratch: scratch)
            var labels: [String] = []
            var dumps: [ClusterDump] = []
            try await withCluster(name: "primary", scratch: scratch, archiveCommand: repo.archiveCommand) { cluster in
                try repo.stanzaCreate(cluster)
                _ = try cluster.psql("""
                    create table t(id int primary key, v text);
                    insert into t select g, md5(g::text) from generate_series(1, 20000) g;
                    create table gone(a int); insert into gone values (1);
                    """)
                let steps: [(type: String, sql: String)] = [
                    ("full", ""),
                    ("diff", "update t set v = 'diff' where id % 7 = 0; insert into t values (30001, 'new'); drop table gone;"),
                    ("incr", "delete from t where id between 100 and 5000; create table later(b text); insert into later values ('x');"),
                    ("incr", "insert into t select g, 'third' from generate_series(40000, 60000) g; update later set b = 'y';"),
                ]
                for step in steps {
                    if !step.sql.isEmpty { _ = try cluster.psql(step.sql) }
                    let (label, result) = try repo.backup(cluster, type: step.type)
                    #expect(result.stdout.hasPrefix("\(step.type) backup \(label) complete"), "\(result)")
                    labels.append(label)
                    dumps.append(try cluster.dumpAllDatabases())
                }
                // Writes after the last backup must not show in any restore.
                _ = try cluster.psql("insert into t values (99999, 'after the last backup')")
            }

            // The chain as info shows it.
            let backups = try repo.backups()
            #expect(backups.map { $0["label"] as? String } == labels)
            #expect(backups.map { $0["type"] as? String } == ["full", "diff", "incr", "incr"])
            #expect(backups.map { $0["prior"] as? String } == [nil, labels[0], labels[1], labels[2]])
            #expect(labels[1].hasPrefix(labels[0] + "_") && labels[1].hasSuffix("D"))
            #expect(labels[3].hasPrefix(labels[0] + "_") && labels[3].hasSuffix("I"))
            #expect(backups[0]["reference"] is NSNull)
            for index in 1...3 {
                let references = backups[index]["reference"] as? [String] ?? []
                #expect(references.contains(labels[0]), "backup \(labels[index]) references \(references)")
                #expect(!references.contains(labels[index]))
                let info = backups[index]["info"] as? [String: Any]
                let size = (info?["size"] as? NSNumber)?.uint64Value ?? 0
                let delta = (info?["delta"] as? NSNumber)?.uint64Value ?? 0
                #expect(delta > 0 && delta < size / 2, "a diff/incr copies only what changed: \(info ?? [:])")
                let repository = info?["repository"] as? [String: Any]
                let repoSize = (repository?["size"] as? NSNumber)?.uint64Value ?? 0
                let repoDelta = (repository?["delta"] as? NSNumber)?.uint64Value ?? 0
                #expect(repoDelta < repoSize)
                #expect((backups[index]["timestamp"] as? [String: Any])?["start"] != nil)
                #expect((backups[index]["lsn"] as? [String: Any])?["stop"] as? String != nil)
                #expect((backups[index]["archive"] as? [String: Any])?["start"] as? String != nil)
            }
            let text = try repo.run(["info"]).check().stdout
            #expect(text.contains("incr backup: \(labels[3])") && text.contains("prior: \(labels[2])"))
            #expect(text.contains("backup reference list: "))

            // Every backup of the chain restores to exactly its own end.
            for (index, label) in labels.enumerated() {
                let dump = try await Self.restoreImmediate(repo, label: label, name: "set\(index)")
                #expect(dump.difference(from: dumps[index]) == nil, "restore of \(label)")
            }

            // Delta restore: a copy of a fresh restore with changed, missing and extra files ends identical to a
            // fresh restore, and only the changed files are rewritten.
            try scratch.directory("fresh")
            let fresh = scratch.path("fresh/data")
            try repo.restore(into: fresh).check()
            try scratch.directory("delta")
            let delta = scratch.path("delta/data")
            try Shell.run("cp", ["-a", fresh, delta], asPostgres: true).check()
            let relation = try Shell.run("sh", ["-c", "cd \"$1\" && find base/5 -type f -size +16k -name '[0-9]*' | grep -E '/[0-9]+$' | sort | head -3", "ls", delta]).check()
                .stdout.split(separator: "\n").map(String.init)
            #expect(relation.count == 3)
            try Shell.run("sh", ["-c", """
                cd "$1" &&
                printf 'XXXXXXXX' | dd of=\(relation[0]) bs=1 seek=100 conv=notrunc status=none &&
                truncate -s 0 \(relation[1]) &&
                printf 'tail' >> \(relation[2]) &&
                rm base/1/PG_VERSION &&
                echo junk > base/5/999999 &&
                mkdir -p extra/sub && echo junk > extra/sub/file
                """, "damage", delta], asPostgres: true).check()

            let refused = try repo.restore(into: delta)
            #expect(refused.status == 36, "without --delta a non-empty directory is refused: \(refused)")
            // This test process is alive (and, seen from the postgres user, not signalable: EPERM counts as alive).
            try Shell.run("sh", ["-c", "echo \(getpid()) > \"$1\"/postmaster.pid", "pid", delta], asPostgres: true).check()
            let running = try repo.restore(into: delta, extra: ["--delta"])
            #expect(running.status == 55, "a live postmaster.pid is refused: \(running)")
            try Shell.run("sh", ["-c", "printf '999999\\n' > \"$1\"/postmaster.pid", "pid", delta], asPostgres: true).check()

            let result = try repo.restore(into: delta, extra: ["--delta"]).check()
            let fileCount = (backups[3]["file-count"] as? Int) ?? 0
            // Rewritten: the 3 damaged files, the removed base/1/PG_VERSION (the top-level one must stay: without it
            // --delta refuses the directory, RestoreSafetyTests), and postgresql.auto.conf (the first restore
            // appended recovery settings). Removed: base/5/999999, extra, extra/sub, extra/sub/file,
            // recovery.signal, postmaster.pid. pg_control is always written last and counted in neither.
            let kept = fileCount - 1 - 5
            #expect(result.stdout.contains("delta: \(kept) files kept, 5 rewritten, 6 removed"), "\(result)")
            #expect(try Self.fingerprint(delta) == Self.fingerprint(fresh))
        }
    }

    @Test("block incremental: an incr after a few updates to a 100+ MB table stores under 5% of it and restores exactly")
    func blockIncremental() async throws {
        try await withScratch { scratch in
            let repo = try Repo(scratch: scratch)
            var incrLabel = ""
            var expected: ClusterDump?
            var tableSize: UInt64 = 0
            try await withCluster(name: "primary", scratch: scratch, archiveCommand: repo.archiveCommand,
                                  extraConf: ["autovacuum = off"]) { cluster in
                try repo.stanzaCreate(cluster)
                _ = try cluster.psql("""
                    create table big(id int, pad text);
                    insert into big select g, repeat(md5(g::text), 4) from generate_series(1, 650000) g;
                    """)
                // Set hint bits and freeze now, so later reads do not rewrite every page.
                _ = try cluster.psql("vacuum (freeze) big")
                _ = try cluster.psql("checkpoint")
                tableSize = UInt64(try cluster.psql("select pg_relation_size('big')")) ?? 0
                #expect(tableSize > 100 << 20)

                // An incr without any prior backup becomes a full one, and says so.
                let (fullLabel, first) = try repo.backup(cluster, type: "incr")
                #expect(first.stdout.hasPrefix("full backup \(fullLabel)"), "\(first)")
                #expect(first.stderr.contains("no prior backup exists, incr backup has been changed to full"), "\(first)")

                _ = try cluster.psql("update big set pad = 'changed' || pad where id in (1, 150000, 300000, 450000, 600000)")
                _ = try cluster.psql("checkpoint")
                incrLabel = try repo.backup(cluster, type: "incr").label
                expected = try cluster.dumpAllDatabases()
            }
            let backups = try repo.backups()
            #expect(backups.count == 2)
            let incr = try #require(backups.last)
            #expect(incr["label"] as? String == incrLabel && incr["type"] as? String == "incr")
            let repository = (incr["info"] as? [String: Any])?["repository"] as? [String: Any]
            let stored = (repository?["delta"] as? NSNumber)?.uint64Value ?? .max
            #expect(stored < tableSize / 20, "the incr stored \(stored) bytes for a \(tableSize)-byte table")

            let dump = try await Self.restoreImmediate(repo, label: incrLabel, name: "restored")
            #expect(dump.difference(from: try #require(expected)) == nil)
        }
    }

    @Test("an incr taken while pgbench writes restores consistently: same dump after recovery, every page checksum valid, amcheck clean where the build has it")
    func backupUnderLoad() async throws {
        try await withScratch { scratch in
            let repo = try Repo(scratch: scratch)
            var expected: ClusterDump?
            try await withCluster(name: "primary", scratch: scratch, archiveCommand: repo.archiveCommand) { cluster in
                try repo.stanzaCreate(cluster)
                try Cluster.runTool("pgbench", ["-i", "-s", "3", "-q"] + cluster.connectionArguments + ["postgres"]).check()
                try repo.backup(cluster, type: "full")
                let arguments = ["-c", "2", "-T", "12", "-n"] + cluster.connectionArguments + ["postgres"]
                let load = Task.detached { try Cluster.runTool("pgbench", arguments, timeout: .seconds(120)) }
                try await Task.sleep(for: .seconds(2))
                try repo.backup(cluster, type: "diff")
                try await Task.sleep(for: .seconds(1))
                try repo.backup(cluster, type: "incr", extra: ["--delta"])
                try await load.value.check()
                try await Self.archiveCurrentWAL(cluster)
                expected = try cluster.dumpAllDatabases()
            }
            // Latest backup (the incr taken under load), recovered to the end of the archive.
            try scratch.directory("restored")
            let data = scratch.path("restored/data")
            try repo.restore(into: data).check()
            let restored = try Cluster(name: "restored", scratch: scratch, existingDataDirectory: data, extraConf: ["archive_mode = off"])
            try await withCluster(restored) { cluster in
                try await cluster.waitForRecoveryEnd()
                #expect(try cluster.dumpAllDatabases().difference(from: try #require(expected)) == nil)
                if try cluster.hasAmcheck() {
                    let check = try cluster.amcheck(["--heapallindexed"])
                    #expect(check.status == 0, "\(check)")
                } else {
                    print("note: PostgreSQL \(Cluster.major) from \(Cluster.binDirectory) has no amcheck; pages are checked by pg_checksums only")
                }
            }
            // After the clean shutdown, on every major.
            let checksums = try Cluster.checkPageChecksums(data)
            #expect(checksums.status == 0, "\(checksums)")
        }
    }
}
