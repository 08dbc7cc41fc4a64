import Foundation
import Testing
import TestSupport

/// The test harness itself: real PostgreSQL 15 clusters, the copied pgkeep binary, child processes.
@Suite("Test harness", .serialized)
struct HarnessTests {
    @Test("the copied pgkeep binary is executable by the postgres user")
    func binaryIsExecutableByPostgres() throws {
        let binary = try PGKeepBinary.shared()
        #expect(binary.path.hasPrefix("/tmp/pgkeep-bin-"))
        #expect(try PGKeepBinary.shared().path == binary.path, "copied once per process")
        try Shell.run("test", ["-x", binary.path], asPostgres: true).check()
        let result = try binary.run([])
        // Only the launch is checked: 126/127 would mean not executable or not found, and a loader error would
        // mean the Swift runtime libraries are out of the postgres user's reach.
        #expect(result.status != 126 && result.status != 127, "\(result)")
        #expect(!result.stderr.contains("error while loading shared libraries"), "\(result)")
    }

    @Test("a cluster starts, runs SQL, dumps deterministically, passes amcheck and is stopped afterwards")
    func clusterLifecycle() async throws {
        try await withScratch { scratch in
            let cluster = try await withCluster(name: "primary", scratch: scratch, archiveCommand: nil) { cluster in
                #expect(cluster.isRunning)
                let count = try cluster.psql("""
                    create table t(a int primary key, b text);
                    insert into t select g, md5(g::text) from generate_series(1, 1000) g;
                    select count(*) from t;
                    """)
                #expect(count == "1000")
                #expect(try cluster.psql("show data_checksums") == "on")
                #expect(try cluster.psql("show wal_level") == "replica")

                let first = try cluster.dumpAllDatabases()
                let second = try cluster.dumpAllDatabases()
                #expect(second.difference(from: first) == nil)
                #expect(first.databases.keys.sorted() == ["postgres"])
                #expect(first.databases["postgres"]!.contains("CREATE TABLE public.t"))

                let check = try cluster.amcheck(["--heapallindexed"])
                #expect(check.status == 0, "\(check)")
                let afterCheck = try cluster.dumpAllDatabases()
                #expect(afterCheck.difference(from: first) == nil, "amcheck leaves no extension behind")

                _ = try cluster.psql("insert into t values (1001, 'x')")
                #expect(try cluster.dumpAllDatabases().difference(from: first) != nil, "a change shows in the dump")
                return cluster
            }
            #expect(!cluster.isRunning)
            #expect(!FileManager.default.fileExists(atPath: cluster.dataDirectory + "/postmaster.pid"))
            let status = try Cluster.runTool("pg_ctl", ["status", "-D", cluster.dataDirectory])
            #expect(status.status == 3, "\(status)")
        }
    }

    @Test("a failing body still leaves the cluster stopped and reports the server log")
    func failingBodyStopsCluster() async throws {
        struct Boom: Error {}
        try await withScratch { scratch in
            var captured: Cluster?
            do {
                _ = try await withCluster(name: "failing", scratch: scratch, archiveCommand: nil) { cluster in
                    captured = cluster
                    _ = try cluster.psql("select 1")
                    throw Boom()
                }
                Issue.record("withCluster should have rethrown")
            } catch let failure as ClusterFailure {
                #expect(failure.underlying is Boom)
                #expect(failure.serverLogTail.contains("database system is ready to accept connections"))
            }
            let cluster = try #require(captured)
            #expect(!cluster.isRunning)
            #expect(!FileManager.default.fileExists(atPath: cluster.dataDirectory + "/postmaster.pid"))
        }
    }

    @Test("a failing SQL statement throws with psql's error message")
    func sqlErrorsAreReported() async throws {
        try await withScratch { scratch in
            try await withCluster(name: "sqlerror", scratch: scratch, archiveCommand: nil) { cluster in
                let error = #expect(throws: ShellError.self) { try cluster.psql("select * from missing_table") }
                #expect(error?.description.contains("missing_table") == true)
                #expect(error?.description.contains("psql") == true)
            }
        }
    }

    @Test("an existing data directory gets its own port and socket directory")
    func existingDataDirectory() async throws {
        try await withScratch { scratch in
            let source = try await withCluster(name: "source", scratch: scratch, archiveCommand: nil) { cluster in
                _ = try cluster.psql("create table kept(a int); insert into kept values (42);")
                return cluster
            }
            // Stand in for a pgkeep restore: a copy of the stopped cluster, still configured for the source's socket.
            let copy = scratch.path("copy/data")
            try scratch.directory("copy", mode: 0o700)
            try Shell.run("cp", ["-a", source.dataDirectory, copy], asPostgres: true).check()

            let restored = try Cluster(name: "copy", scratch: scratch, existingDataDirectory: copy)
            #expect(restored.port != source.port)
            try await withCluster(restored) { cluster in
                try await cluster.waitForRecoveryEnd(timeout: .seconds(60))
                #expect(try cluster.psql("select a from kept") == "42")
                #expect(try cluster.psql("show unix_socket_directories") == cluster.socketDirectory)
                #expect(try cluster.psql("show port") == String(cluster.port))
            }
            #expect(!restored.isRunning)
        }
    }

    @Test("a timeout kills the whole process group")
    func timeoutKillsProcessGroup() throws {
        let marker = "pgkeep-harness-sleep-\(getpid())"
        let clock = ContinuousClock()
        let started = clock.now
        let error = #expect(throws: ShellError.self) {
            // The background shell keeps the marker in its command line while it waits for its sleep.
            try Shell.run("sh", ["-c", "sh -c 'sleep 30; : \(marker)' & sleep 30"], asPostgres: true, timeout: .seconds(1))
        }
        #expect(error?.reason == .timedOut(seconds: 1))
        #expect(clock.now - started < .seconds(15))
        let survivors = try Shell.run("pgrep", ["-f", marker])
        #expect(survivors.status == 1, "background child survived: \(survivors.stdout)")
    }

    @Test("check() reports the command line and both outputs")
    func checkReportsOutputs() throws {
        let result = try Shell.run("sh", ["-c", "echo to-out; echo to-err >&2; exit 3"], stdin: nil)
        #expect(result.status == 3)
        #expect(result.stdout == "to-out\n")
        #expect(result.stderr == "to-err\n")
        let error = #expect(throws: ShellError.self) { try result.check() }
        let text = error?.description ?? ""
        #expect(text.contains("exit 3") && text.contains("to-out") && text.contains("to-err"))

        let echoed = try Shell.run("cat", stdin: "fed through stdin", asPostgres: true).check()
        #expect(echoed.stdout == "fed through stdin")
        let env = try Shell.run("sh", ["-c", "echo $HARNESS_VAR"], environment: ["HARNESS_VAR": "set"], asPostgres: true)
        #expect(env.stdout == "set\n")
    }

    @Test("a scratch directory is writable by the postgres user and removed afterwards")
    func scratchLifecycle() async throws {
        let path = try await withScratch { scratch -> String in
            let data = try scratch.directory("a/b", mode: 0o700)
            try Shell.run("touch", [data + "/written-by-postgres"], asPostgres: true).check()
            #expect(scratch.path.hasPrefix("/tmp/pgkeep-test-"))
            var info = stat()
            #expect(stat(data, &info) == 0)
            #expect(info.st_mode & 0o777 == 0o700)
            return scratch.path
        }
        #expect(FileManager.default.fileExists(atPath: path) == Scratch.keepDirectories)
    }

    @Test("run as root, the harness gives scratch directories to the postgres user",
          .enabled(if: PostgresUser.isRoot, "ownership is handed to postgres only when the tests run as root"))
    func scratchOwnedByPostgres() async throws {
        try await withScratch { scratch in
            let data = try scratch.directory("a/b", mode: 0o700)
            var info = stat()
            #expect(stat(data, &info) == 0)
            #expect(info.st_uid == PostgresUser.ids?.uid)
        }
    }
}
