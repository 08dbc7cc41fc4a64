import Foundation
import Testing
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepMover
import PGKeepEngine
import PGKeepConfig
import TestSupport

/// The spine, end to end on real PostgreSQL 15: archive every segment with `archive-push`, take full
/// backups, write more, restore into a fresh directory, let recovery replay the archive through
/// `archive-get`, and compare every table with the source.
@Suite("Full backup, archiving and restore", .serialized)
struct FullBackupRestoreTests {
    @Test("lz4 and zstd full backups at --process-max=2 both restore to the source's final state, amcheck clean")
    func fullBackupsRestoreExactly() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                try Cluster.runTool("pgbench", ["-i", "-s", "3", "-q"] + source.connectionArguments + ["postgres"]).check()

                let lz4 = try stanza.backup(source, ["--compress-type=lz4", "--process-max=2"])
                _ = try source.psql("""
                    create table after_first as select g as id, md5(g::text) as note from generate_series(1, 20000) g;
                    update pgbench_accounts set abalance = abalance + 7 where aid % 13 = 0;
                    """)
                let zst = try stanza.backup(source, ["--compress-type=zst", "--compress-level=3", "--process-max=2"])
                #expect(zst > lz4, "labels sort by time")
                _ = try source.psql("""
                    create table after_second (id int primary key, payload text);
                    insert into after_second select g, repeat('x', g % 100) from generate_series(1, 5000) g;
                    delete from pgbench_history;
                    update pgbench_branches set bbalance = 42;
                    """)
                try await source.switchWALAndWaitForArchive()
                let expected = try source.dumpAllDatabases()

                // The two backups record what they used, and the repository holds compressed files of each kind.
                let backups = try stanza.info()["backup"] as? [[String: Any]] ?? []
                #expect(backups.map { $0["compress-type"] as? String } == ["lz4", "zst"])
                #expect(!stanza.repositoryFiles(under: "backup/main/\(lz4)").filter { $0.hasSuffix(".lz4") }.isEmpty)
                #expect(!stanza.repositoryFiles(under: "backup/main/\(zst)").filter { $0.hasSuffix(".zst") }.isEmpty)

                for (name, label) in [("latest", "latest"), ("lz4", lz4)] {
                    let target = scratch.path("restore-\(name)")
                    try stanza.restore(into: target, ["--set=\(label)"]).check()
                    #expect(FileManager.default.fileExists(atPath: target + "/recovery.signal"))
                    let autoConf = try String(contentsOfFile: target + "/postgresql.auto.conf", encoding: .utf8)
                    #expect(autoConf.contains("restore_command = "), "\(autoConf)")
                    #expect(autoConf.contains("archive-get %f \"%p\""), "\(autoConf)")

                    let restored = try Cluster(name: "restored-\(name)", scratch: scratch,
                                               existingDataDirectory: target, extraConf: ["archive_mode = off"])
                    try await withCluster(restored) { restored in
                        try await restored.waitForRecoveryEnd()
                        let actual = try restored.dumpAllDatabases()
                        #expect(actual.difference(from: expected) == nil, "restore of \(name): \(actual.difference(from: expected) ?? "")")
                        let check = try restored.amcheck(["--heapallindexed"])
                        #expect(check.status == 0, "\(check)")
                        // Recovery fetched segments through archive-get.
                        #expect(restored.serverLogTail(lines: 400).contains("restored log file"))
                    }
                }
            }
        }
    }

    @Test("a cluster with a tablespace records it (name, oid, location, link) and restores it at its recorded location")
    func tablespaceRestores() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let location = try scratch.directory("tablespace-one", mode: 0o700)
            var expected: ClusterDump?
            let source = try Cluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand)
            try await withCluster(source) { source in
                try stanza.create(source)
                _ = try source.psql("create tablespace one location '\(location)'")
                _ = try source.psql("""
                    create table in_one (id int primary key, note text) tablespace one;
                    insert into in_one select g, md5(g::text) from generate_series(1, 50000) g;
                    create index in_one_note on in_one (note) tablespace one;
                    """)
                let label = try stanza.backup(source, ["--process-max=2"])
                // The manifest records the tablespace (name, oid, location) and its link.
                let oid = try source.psql("select oid from pg_tablespace where spcname = 'one'")
                let manifestPath = try RepositoryLayout(stanza: stanza.name).manifest(label: try #require(BackupLabel(label)))
                let manifest = try #require(try SealedFile.load(Manifest.self, from: manifestPath, in: PosixStorage(root: stanza.repository)))
                let recorded = try #require(manifest.targets.first { $0.kind == .tablespace })
                #expect(recorded.name == "pg_tblspc/\(oid)" && recorded.tablespaceName == "one" && recorded.path == location
                        && recorded.tablespaceOID.map(String.init) == oid, "\(recorded)")
                #expect(manifest.links.contains { $0.name == "pg_data/pg_tblspc/\(oid)" && $0.destination == location })
                // info --set shows it as pgBackRest's tablespace[] (name, oid, destination).
                let detail = try stanza.check(["info", "--set=\(label)", "--output=json"])
                let backup = ((try JSONSerialization.jsonObject(with: Data(detail.stdout.utf8)) as? [[String: Any]])?.first?["backup"] as? [[String: Any]])?.first
                let tablespace = (backup?["tablespace"] as? [[String: Any]])?.first
                #expect(tablespace?["name"] as? String == "one" && tablespace?["destination"] as? String == location
                        && (tablespace?["oid"] as? Int).map(String.init) == oid, "\(detail.stdout)")
                _ = try source.psql("""
                    insert into in_one select g, 'after' from generate_series(50001, 60000) g;
                    create table also_in_one tablespace one as select * from in_one where id % 7 = 0;
                    """)
                try await source.switchWALAndWaitForArchive()
                expected = try source.dumpAllDatabases()
            }
            // The source is stopped and its tablespace moved away: the restore must recreate it.
            try FileManager.default.moveItem(atPath: location, toPath: location + ".moved")

            let target = scratch.path("restored-data")
            try stanza.restore(into: target).check()
            let links = try FileManager.default.contentsOfDirectory(atPath: target + "/pg_tblspc")
            #expect(links.count == 1)
            let destination = try FileManager.default.destinationOfSymbolicLink(atPath: target + "/pg_tblspc/" + links[0])
            #expect(destination == location)
            #expect(FileManager.default.fileExists(atPath: location + "/PG_\(Cluster.major)_" + (try catalogVersion(target))))

            let restored = try Cluster(name: "restored", scratch: scratch, existingDataDirectory: target,
                                       extraConf: ["archive_mode = off"])
            var amchecked = false
            try await withCluster(restored) { restored in
                try await restored.waitForRecoveryEnd()
                let actual = try restored.dumpAllDatabases()
                #expect(actual.difference(from: expected!) == nil, "\(actual.difference(from: expected!) ?? "")")
                #expect(try restored.psql("select count(*) from in_one") == "60000")
                // The version matrix's 16 build has no amcheck: its pages are checked by pg_checksums instead.
                if try restored.hasAmcheck() {
                    #expect(try restored.amcheck(["--heapallindexed"]).status == 0)
                    amchecked = true
                }
            }
            if !amchecked {
                let check = try Cluster.checkPageChecksums(target)
                #expect(check.status == 0, "\(check)")
            }
        }
    }

    /// The catalog version directory name suffix, from `pg_controldata`.
    private func catalogVersion(_ dataDirectory: String) throws -> String {
        let result = try Cluster.runTool("pg_controldata", [dataDirectory]).check()
        guard let line = result.stdout.split(separator: "\n").first(where: { $0.hasPrefix("Catalog version number:") }),
              let value = line.split(separator: ":").last else {
            throw HarnessError("no catalog version in pg_controldata output")
        }
        return value.trimmingCharacters(in: .whitespaces)
    }
}
