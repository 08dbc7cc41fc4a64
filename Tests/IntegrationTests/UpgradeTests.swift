import Foundation
import Testing
import TestSupport

/// A major upgrade with PostgreSQL's own pg_upgrade, from the packaged builds
/// (docs/postgres-versions.md): the stanza follows the cluster with stanza-upgrade, and what was
/// backed up before stays restorable with the old major's programs.
@Suite("pg_upgrade and stanza-upgrade", .serialized)
struct UpgradeTests {
    static let stanzaMismatch: Int32 = 61
    static let archiveMismatch: Int32 = 44

    /// The programs of `major`: Debian's 15, the unpacked PyPI builds of the later ones.
    static func programs(_ major: Int) -> String {
        if major == 15 { return "/usr/lib/postgresql/15/bin" }
        let root = ProcessInfo.processInfo.environment["PGKEEP_PG_ROOT"] ?? "/opt/pgkeep-deps/postgresql"
        return "\(root)/\(major)/bin"
    }

    /// Runs the new major's pg_upgrade over two stopped clusters, as the postgres user, in a
    /// directory it can write (pg_upgrade writes its logs and sockets there).
    static func pgUpgrade(from old: Cluster, to new: Cluster, scratch: Scratch) throws {
        let work = try scratch.directory("pg_upgrade", mode: 0o700)
        let result = try Shell.run(new.programs + "/pg_upgrade",
                                   ["-b", old.programs, "-B", new.programs, "-d", old.dataDirectory, "-D", new.dataDirectory,
                                    "-p", String(old.port), "-P", String(new.port), "-s", work, "-U", "postgres"],
                                   unsetEnvironment: Cluster.scrubbedEnvironment, workingDirectory: work, asPostgres: true,
                                   timeout: .seconds(600))
        guard result.status == 0 else { throw HarnessError("pg_upgrade failed: \(result)") }
    }

    static func rows(_ cluster: Cluster) throws -> String {
        try cluster.psql("select coalesce(string_agg(note, ',' order by id), '') from marker")
    }

    static func commitTime(_ cluster: Cluster, _ id: Int) throws -> String {
        try cluster.psql("""
            select to_char(pg_xact_commit_timestamp(xmin) at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' from marker where id = \(id)
            """)
    }

    @Test("pg_upgrade 15 -> 17 and 17 -> 18: stanza-upgrade records the new cluster, archiving and backups go on, PITR on the new major and the pre-upgrade backup with the old programs both restore exactly",
          arguments: [(15, 17), (17, 18)])
    func upgrade(_ oldMajor: Int, _ newMajor: Int) async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let conf = ["track_commit_timestamp = on"]

            // Before: a backup and archived WAL of the old major.
            let old = try Cluster(name: "old", scratch: scratch, archiveCommand: stanza.archiveCommand, extraConf: conf,
                                  programs: Self.programs(oldMajor))
            var oldLabel = "", oldDump = ""
            var oldSegment = ""
            try await withCluster(old) { old in
                try stanza.create(old)
                _ = try old.psql("create table marker(id int primary key, note text)")
                _ = try old.psql("insert into marker values (1, 'before-backup')")
                oldLabel = try stanza.backup(old)
                _ = try old.psql("insert into marker values (2, 'before-upgrade')")
                oldSegment = try await old.switchWALAndWaitForArchive()
                oldDump = try old.dump()
            }

            // pg_upgrade into a fresh cluster of the new major that archives into the same stanza.
            let new = try Cluster(name: "new", scratch: scratch, archiveCommand: stanza.archiveCommand, extraConf: conf,
                                  programs: Self.programs(newMajor))
            try Self.pgUpgrade(from: old, to: new, scratch: scratch)

            var target = "", newDump = ""
            try await withCluster(new) { new in
                #expect(try Self.rows(new) == "before-backup,before-upgrade", "pg_upgrade kept the data")
                let refused = try stanza.run(TestStanza.clusterOptions(new) + ["backup", "--start-fast"])
                #expect(refused.status == Self.stanzaMismatch && refused.stderr.contains("stanza-upgrade"), "\(refused)")

                let upgraded = try stanza.run(["--pg1-path=\(new.dataDirectory)", "stanza-upgrade"])
                #expect(upgraded.status == 0, "\(upgraded)")
                #expect(upgraded.stdout.contains("to PostgreSQL \(newMajor) (database 2, archive id \(newMajor)-2"), "\(upgraded.stdout)")
                let again = try stanza.run(["--pg1-path=\(new.dataDirectory)", "stanza-upgrade"])
                #expect(again.status == 0 && again.stdout.contains("already current"), "\(again)")

                // Archiving goes on into the new archive id; the old cluster's WAL is now foreign.
                _ = try new.psql("insert into marker values (3, 'after-upgrade')")
                let segment = try await new.switchWALAndWaitForArchive()
                #expect(stanza.repositoryFiles(under: "archive/main/\(newMajor)-2").contains { $0.contains("/\(segment)-") })
                // Any segment file of the old cluster (the archived one may have been recycled at its shutdown).
                let oldWAL = try FileManager.default.contentsOfDirectory(atPath: old.dataDirectory + "/pg_wal")
                    .filter { $0.count == 24 && $0.allSatisfy(\.isHexDigit) }.sorted()
                let oldFile = try #require(oldWAL.contains(oldSegment) ? oldSegment : oldWAL.last)
                let foreign = try stanza.run(["--pg1-path=\(old.dataDirectory)", "archive-push", old.dataDirectory + "/pg_wal/" + oldFile])
                #expect(foreign.status == Self.archiveMismatch, "\(foreign)")

                // A backup of the new cluster (full: nothing of database 2 to build on), then a target after it.
                let newLabel = try stanza.backup(new, ["--type=incr"])
                _ = try new.psql("select pg_sleep(1.2)")
                _ = try new.psql("insert into marker values (4, 'target')")
                target = try Self.commitTime(new, 4)
                newDump = try new.dump()
                _ = try new.psql("select pg_sleep(1.2)")
                _ = try new.psql("insert into marker values (5, 'after-target')")
                _ = try await new.switchWALAndWaitForArchive()

                let info = try stanza.info()
                let db = (info["db"] as? [[String: Any]])?.compactMap { $0["version"] as? String } ?? []
                #expect(db == ["\(oldMajor)", "\(newMajor)"], "info shows both databases: \(info["db"] ?? "-")")
                let backups = (info["backup"] as? [[String: Any]]) ?? []
                #expect(backups.map { $0["label"] as? String } == [oldLabel, newLabel], "\(backups)")
                #expect(backups.last?["type"] as? String == "full", "the first backup of database 2 is a full one")
            }

            // PITR on the new major to a time after the upgrade.
            let pitr = scratch.path("pitr")
            try stanza.restore(into: pitr, ["--type=time", "--target=\(target)", "--target-action=promote"]).check()
            let restoredNew = try Cluster(name: "pitr", scratch: scratch, existingDataDirectory: pitr, extraConf: ["archive_mode = off"],
                                          programs: Self.programs(newMajor))
            try await withCluster(restoredNew) { restored in
                try await restored.waitForRecoveryEnd()
                #expect(try Self.rows(restored) == "before-backup,before-upgrade,after-upgrade,target")
                #expect(try restored.dump() == newDump, "the restored cluster equals the source at the target")
            }

            // The pre-upgrade backup, with the old major's programs and its own WAL only.
            let before = scratch.path("before")
            try stanza.restore(into: before, ["--set=\(oldLabel)"]).check()
            let restoredOld = try Cluster(name: "before", scratch: scratch, existingDataDirectory: before, extraConf: ["archive_mode = off"],
                                          programs: Self.programs(oldMajor))
            try await withCluster(restoredOld) { restored in
                try await restored.waitForRecoveryEnd()
                #expect(try restored.dump() == oldDump, "the pre-upgrade backup restores to the old cluster's last archived state")
            }

            // verify proves both databases' backups and WAL; expire keeping both fulls removes nothing.
            let verify = try stanza.run(["verify"])
            #expect(verify.status == 0, "\(verify)")
            let expire = try stanza.run(["expire", "--repo1-retention-full=2"])
            #expect(expire.status == 0, "\(expire)")
            #expect(try stanza.labels().count == 2)
        }
    }
}
