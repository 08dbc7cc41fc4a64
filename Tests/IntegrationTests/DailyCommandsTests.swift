import Foundation
import Testing
import TestSupport

/// The everyday commands around backups, on a real PostgreSQL: `check`, `stop` and `start`, and
/// `stanza-delete`, through the binary as an operator runs them.
@Suite("check, stop, start and stanza-delete", .serialized)
struct DailyCommandsTests {
    static let dbConfig: Int32 = 56
    static let stopped: Int32 = 68
    static let stanzaInUse: Int32 = 69
    static let stanzaMissing: Int32 = 60

    @Test("check on a cluster that archives into the stanza passes: it switches WAL and sees the segment arrive")
    func checkPasses() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            try await withCluster(name: "primary", scratch: scratch, archiveCommand: stanza.archiveCommand) { cluster in
                try stanza.create(cluster)
                let before = try cluster.psql("select archived_count from pg_stat_archiver")
                let check = try stanza.run(TestStanza.clusterOptions(cluster) + ["check"])
                #expect(check.status == 0, "\(check)")
                #expect(check.stdout.contains("archived in") && check.stdout.contains("check of stanza 'main' passed"), "\(check.stdout)")
                let segment = try #require(check.stdout.split(separator: "\n").first { $0.hasPrefix("WAL segment ") }?
                    .split(separator: " ").dropFirst(2).first.map(String.init))
                #expect(stanza.repositoryFiles(under: "archive/main").contains { $0.contains("/\(segment)-") }, "the segment check waited for is stored")
                #expect(Int(try cluster.psql("select archived_count from pg_stat_archiver"))! > Int(before)!)
            }
        }
    }

    @Test("backup --annotation and annotate: info --output=json shows the notes as pgBackRest's annotation object, and annotate KEY= removes one")
    func annotationsReachInfo() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            try await withCluster(name: "primary", scratch: scratch, archiveCommand: stanza.archiveCommand) { cluster in
                try stanza.create(cluster)
                let label = try stanza.backup(cluster, ["--annotation=ticket=CHG-42", "--annotation=reason=before upgrade"])
                func notes() throws -> [String: String]? {
                    (try stanza.info()["backup"] as? [[String: Any]])?.first?["annotation"] as? [String: String]
                }
                #expect(try notes() == ["ticket": "CHG-42", "reason": "before upgrade"])
                let changed = try stanza.check(["annotate", "--set=\(label)", "--annotation=reason=", "--annotation=owner=dba"])
                #expect(changed.stdout.contains("owner=dba, ticket=CHG-42"), "\(changed.stdout)")
                #expect(try notes() == ["ticket": "CHG-42", "owner": "dba"])
                let missing = try stanza.run(["annotate", "--annotation=a=b"])
                #expect(missing.status == 21 && missing.stderr.contains("--set"), "\(missing)")
            }
        }
    }

    @Test("check fails with db-config naming archive_command when it is set to false")
    func checkFailsWithArchiveCommandFalse() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            try await withCluster(name: "primary", scratch: scratch, archiveCommand: stanza.archiveCommand) { cluster in
                try stanza.create(cluster)
                _ = try cluster.psql("alter system set archive_command = 'false'")
                _ = try cluster.psql("select pg_reload_conf()")
                try await Task.sleep(for: .milliseconds(300))
                let check = try stanza.run(TestStanza.clusterOptions(cluster) + ["check", "--archive-timeout=5"])
                #expect(check.status == Self.dbConfig, "\(check)")
                #expect(check.stderr.contains("archive_command 'false' does not run pgkeep archive-push"), "\(check.stderr)")
                #expect(check.stderr.contains("HINT: set archive_command = 'pgkeep --stanza=main archive-push %p'"), "\(check.stderr)")
            }
        }
    }

    @Test("stop makes backup and archive-push refuse with 68; PostgreSQL keeps the segment queued and archives it after start")
    func stopQueuesWALUntilStart() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            try await withCluster(name: "primary", scratch: scratch, archiveCommand: stanza.archiveCommand) { cluster in
                try stanza.create(cluster)
                try stanza.check(["stop"])

                let backup = try stanza.run(TestStanza.clusterOptions(cluster) + ["backup", "--start-fast"])
                #expect(backup.status == Self.stopped, "\(backup)")
                #expect(backup.stderr.contains("main.stop"), "\(backup.stderr)")
                #expect(try stanza.labels().isEmpty)

                _ = try cluster.psql("select txid_current()")
                let segment = try cluster.psql("select pg_walfile_name(pg_switch_wal())")
                try await FaultTests.waitUntil("the archiver failing on \(segment)") {
                    try cluster.psql("select coalesce(last_failed_wal = '\(segment)', false) from pg_stat_archiver") == "t"
                }
                #expect(FileManager.default.fileExists(atPath: cluster.dataDirectory + "/pg_wal/archive_status/\(segment).ready"),
                        "the segment stays queued")
                #expect(!stanza.repositoryFiles(under: "archive/main").contains { $0.contains("/\(segment)-") })
                #expect(cluster.serverLogTail(lines: 200).contains("[68] stop: archive-push is stopped for stanza 'main'"))

                try stanza.check(["start"])
                try await cluster.waitUntilArchived(segment)
                #expect(stanza.repositoryFiles(under: "archive/main").contains { $0.contains("/\(segment)-") })
                _ = try stanza.backup(cluster)
            }
        }
    }

    @Test("stop --force ends a running backup, which leaves no listed backup; after start the next backup succeeds")
    func stopForceEndsARunningBackup() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            try await withCluster(name: "primary", scratch: scratch, archiveCommand: stanza.archiveCommand,
                                  extraConf: ["autovacuum = off"]) { cluster in
                try stanza.create(cluster)
                _ = try FaultTests.loadPgbench(cluster)
                let backup = FaultTests.Background.start(stanza, TestStanza.clusterOptions(cluster) + [
                    "backup", "--start-fast", "--process-max=1"] + FaultTests.slowBackup, scratch: scratch, name: "backup")
                try await FaultTests.waitUntil("the backup copying", while: backup) {
                    !stanza.repositoryFiles(under: "backup/main").filter { $0.hasSuffix("backup.manifest.partial") }.isEmpty
                }
                let stop = try stanza.run(["stop", "--force"])
                #expect(stop.status == 0, "\(stop)")
                #expect(stop.stdout.contains("terminated process \(try await backup.pid()) (backup)"), "\(stop.stdout)")
                let ended = try await backup.task.value
                #expect(ended.status == 128 + SIGTERM, "\(ended)")
                #expect(try stanza.labels().isEmpty, "the ended backup is not listed")

                let refused = try stanza.run(TestStanza.clusterOptions(cluster) + ["backup", "--start-fast"])
                #expect(refused.status == Self.stopped, "\(refused)")
                try stanza.check(["start"])
                _ = try stanza.backup(cluster)
                #expect(try stanza.labels().count == 1)
            }
        }
    }

    @Test("stanza-delete is refused while the stanza is not stopped or its cluster runs; stopped and down, it removes the stanza")
    func stanzaDelete() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let cluster = try Cluster(name: "primary", scratch: scratch, archiveCommand: stanza.archiveCommand)
            try await withCluster(cluster) { cluster in
                try stanza.create(cluster)
                _ = try stanza.backup(cluster)
                let notStopped = try stanza.run(["--pg1-path=\(cluster.dataDirectory)", "stanza-delete"])
                #expect(notStopped.status == Self.stanzaInUse, "\(notStopped)")
                #expect(notStopped.stderr.contains("is not stopped"), "\(notStopped.stderr)")
                try stanza.check(["stop"])
                let running = try stanza.run(["--pg1-path=\(cluster.dataDirectory)", "stanza-delete"])
                #expect(running.status == Self.stanzaInUse, "\(running)")
                #expect(running.stderr.contains("PostgreSQL is running on"), "\(running.stderr)")
                #expect(try stanza.labels().count == 1, "nothing was deleted")
            }
            try stanza.check(["--pg1-path=\(cluster.dataDirectory)", "stanza-delete"])
            #expect(stanza.repositoryFiles(under: "backup/main").isEmpty && stanza.repositoryFiles(under: "archive/main").isEmpty)
            #expect(!FileManager.default.fileExists(atPath: stanza.repository + "/backup/main"))
            let info = try stanza.run(["info"])
            #expect(info.stdout.contains("missing stanza path"), "\(info)")
            let restore = try stanza.restore(into: scratch.path("gone"))
            #expect(restore.status == Self.stanzaMissing, "\(restore)")
        }
    }
}
