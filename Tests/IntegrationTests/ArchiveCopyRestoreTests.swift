import Foundation
import Testing
import TestSupport

/// `backup --archive-copy` on a real cluster: the backup carries the WAL it needs.
@Suite("Backup with --archive-copy", .serialized)
struct ArchiveCopyRestoreTests {
    @Test("a backup taken with --archive-copy restores to consistency (--type=immediate) with every WAL segment gone from the archive, equal to the cluster at the backup")
    func restoresWithoutTheArchive() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            var expected: ClusterDump?
            var label = ""
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                try Cluster.runTool("pgbench", ["-i", "-s", "2", "-q"] + source.connectionArguments + ["postgres"]).check()
                label = try stanza.backup(source, ["--archive-copy"])
                expected = try source.dumpAllDatabases()
                _ = try source.psql("update pgbench_accounts set abalance = 1; create table after_backup as select 1 as x")
                try await source.switchWALAndWaitForArchive()
            }
            // The archive loses every segment: only the backup's own copy is left.
            let segments = stanza.repositoryFiles(under: "archive/\(stanza.name)").filter { URL(fileURLWithPath: $0).lastPathComponent.count > 24 && !$0.hasSuffix(".info") && !$0.hasSuffix(".copy") }
            #expect(!segments.isEmpty)
            for file in segments { try FileManager.default.removeItem(atPath: file) }

            let target = scratch.path("restored")
            try stanza.restore(into: target, ["--set=\(label)", "--type=immediate", "--target-action=promote"]).check()
            let restored = try Cluster(name: "restored", scratch: scratch, existingDataDirectory: target, extraConf: ["archive_mode = off"])
            try await withCluster(restored) { restored in
                try await restored.waitForRecoveryEnd()
                let actual = try restored.dumpAllDatabases()
                #expect(actual.difference(from: expected!) == nil, "\(actual.difference(from: expected!) ?? "")")
            }
        }
    }
}
