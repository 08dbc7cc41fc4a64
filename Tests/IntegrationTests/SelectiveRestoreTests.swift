import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
import TestSupport

/// Selective restore (`--db-include`, `--db-exclude`) on a real cluster: the databases left out
/// come back as sparse zero-filled files, recovery replays into them, and they can be dropped.
@Suite("Selective restore", .serialized)
struct SelectiveRestoreTests {
    @Test("restore --db-include brings back the named database equal to its dump; the other, partly in a tablespace, comes back as sparse zeros that recovery replays into, refuses connections and can be dropped")
    func includedDatabaseRestoresAndTheOtherCanBeDropped() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let location = try scratch.directory("tablespace", mode: 0o700)
            let moved = scratch.path("moved-tablespace")
            let target = scratch.path("restored-data")
            var expectedKeep = ""
            var skipped = ""
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                _ = try source.psql("create tablespace ts location '\(location)'")
                _ = try source.psql("create database keep")
                _ = try source.psql("create database skip")
                for database in ["keep", "skip"] {
                    _ = try source.psql("""
                        create table t (id int primary key, note text);
                        insert into t select g, md5(g::text) from generate_series(1, 40000) g;
                        create table in_ts (id int, note text) tablespace ts;
                        insert into in_ts select g, repeat('y', 50) from generate_series(1, 20000) g;
                        """, database: database)
                }
                try stanza.backup(source, ["--process-max=2"])
                // WAL after the backup touches both databases: replay must write into the zeros.
                for database in ["keep", "skip"] {
                    _ = try source.psql("""
                        update t set note = 'changed' where id % 5 = 0;
                        insert into in_ts select g, 'after' from generate_series(1, 3000) g;
                        create table late as select * from t where id < 1000;
                        """, database: database)
                }
                try await source.switchWALAndWaitForArchive()
                expectedKeep = try source.dump(database: "keep")
                skipped = try source.psql("select d.oid || ' ' || pg_relation_filepath('t') from pg_database d where d.datname = 'skip'", database: "skip")
            }

            try stanza.restore(into: target, ["--db-include=keep", "--tablespace-map=ts=\(moved)"]).check()
            // Before recovery: the excluded database's table file has its size and no blocks.
            let words = skipped.split(separator: " ")
            let relation = target + "/" + String(try #require(words.last))
            var status = stat()
            #expect(stat(relation, &status) == 0)
            #expect(status.st_size >= 40000 * 40, "the recorded size, \(status.st_size) bytes")
            #expect(status.st_blocks == 0, "sparse: \(status.st_blocks) blocks allocated")
            #expect(try String(contentsOfFile: "\(target)/base/\(words[0])/PG_VERSION", encoding: .utf8) == "\(Cluster.major)\n")

            let restored = try Cluster(name: "restored", scratch: scratch, existingDataDirectory: target, extraConf: ["archive_mode = off"])
            try await withCluster(restored) { restored in
                try await restored.waitForRecoveryEnd()
                #expect(try restored.dump(database: "keep") == expectedKeep)
                let refused = try restored.tool("psql", ["-X", "-c", "select count(*) from t"] + restored.connectionArguments + ["-d", "skip"])
                #expect(refused.status != 0 && refused.stderr.contains("invalid"), "the zero-filled database refuses connections: \(refused)")
                _ = try restored.psql("drop database skip")
                #expect(try restored.psql("select count(*) from pg_database where datname = 'skip'") == "0")
                if try restored.hasAmcheck() {
                    let check = try restored.amcheck(["--heapallindexed"])
                    #expect(check.status == 0, "\(check)")
                }
            }
        }
    }
}
