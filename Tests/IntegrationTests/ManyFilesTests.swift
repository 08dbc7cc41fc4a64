import Foundation
import Testing
import TestSupport

/// A cluster of many small files (5 000 tables with a primary key: a heap, a TOAST table, its
/// index and the key's index each, over 20 000 files): backup and restore stay within a memory
/// bound that does not grow with the file count, an incremental backup holds its prior manifest
/// compactly, and the restore is exact.
@Suite("Many files: bounded memory", .serialized)
struct ManyFilesTests {
    /// Peak RSS allowed for `backup` and `restore` at `--process-max=2`. Before the manifest was
    /// streamed and the per-file state packed, this cluster took 129 MiB to back up and 81 MiB to
    /// restore (debug build); now each stays under 40 MiB.
    static let boundKiB = 56 << 10

    /// How much more an incremental backup with nothing to copy may take than the full backup.
    /// It holds the prior manifest's entries, but copies nothing (the full backup's copy buffers
    /// and bundle jobs are its peak). Decoded as `Manifest.FileEntry` values the prior entries cost
    /// about 280 bytes a file, and such an incremental took 2.2 MiB more than the full backup here
    /// (release build); in `PriorFileTable` they cost about 130, and it takes 0.5 MiB less.
    static let incrementalSlackKiB = 1 << 10

    /// Runs `pgkeep <common> <arguments>` (it must succeed) and returns its peak RSS in KiB.
    ///
    /// Measured by GNU time (`ru_maxrss` of the pgkeep process it forked), not by `wait4` on the
    /// child the harness spawns: `posix_spawn` runs the child in the test process's memory until
    /// `exec`, and Linux counts that memory's high-water mark into the child's `ru_maxrss` (kept
    /// across `exec`, and passed up to `runuser`'s waiter), so a test process of 60 MiB would read
    /// as a pgkeep of 60 MiB. A process forked by a small one starts clean.
    static func peakRSS(_ stanza: TestStanza, _ arguments: [String]) throws -> Int {
        let marker = "pgkeep-peak-rss-kib"
        let result = try Shell.run("/usr/bin/time", ["-f", "\(marker) %M", stanza.binary.path] + stanza.common + arguments,
                                   unsetEnvironment: PGKeepBinary.harnessVariables, asPostgres: true, timeout: .seconds(600)).check()
        guard let line = result.stderr.split(separator: "\n").last(where: { $0.hasPrefix(marker + " ") }),
              let kib = Int(line.dropFirst(marker.count + 1)) else {
            throw HarnessError("no peak RSS in the output of /usr/bin/time (is GNU time installed?):\n\(result)")
        }
        return kib
    }

    @Test("backup and restore of over 20 000 files stay under 56 MiB of RSS, an incremental one within 1 MiB of the full, and the restore is exact")
    func manyFilesBoundedMemory() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand,
                                  extraConf: ["max_locks_per_transaction = 256"]) { source in
                try stanza.create(source)
                // One row per table; a commit every 250 tables keeps the lock table small.
                _ = try source.psql("""
                    DO $$ BEGIN FOR i IN 1..5000 LOOP
                      EXECUTE format('CREATE TABLE many_%s (id int PRIMARY KEY, note text)', i);
                      EXECUTE format('INSERT INTO many_%s VALUES (%s, md5(%s::text))', i, i, i);
                      IF i % 250 = 0 THEN COMMIT; END IF;
                    END LOOP; END $$;
                    """)
                let fileCount = Int(try source.psql("""
                    select count(*) from pg_ls_dir('base/' || (select oid from pg_database where datname = 'postgres')) f
                    """).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
                #expect(fileCount > 20_000, "the cluster has \(fileCount) files in the postgres database")

                let backupPeak = try Self.peakRSS(stanza, TestStanza.clusterOptions(source)
                                                  + ["backup", "--start-fast", "--process-max=2", "--type=full"])
                #expect(backupPeak < Self.boundKiB, "backup peak RSS \(backupPeak) KiB")
                let label = try #require(try stanza.labels().last)

                // The first incremental copies what changed since the full backup (its checkpoint
                // wrote hint bits); the second has nothing to copy: what it holds is the prior manifest.
                let options = TestStanza.clusterOptions(source) + ["backup", "--start-fast", "--process-max=2", "--type=incr"]
                _ = try Self.peakRSS(stanza, options)
                let incrementalPeak = try Self.peakRSS(stanza, options)
                #expect(incrementalPeak < backupPeak + Self.incrementalSlackKiB,
                        "incremental backup peak RSS \(incrementalPeak) KiB, full \(backupPeak) KiB")
                #expect(try stanza.labels().count == 3)
                _ = try source.psql("update many_1 set note = 'after the backup'")
                _ = try await source.switchWALAndWaitForArchive()
                let expected = try source.dumpAllDatabases()

                let target = scratch.path("restored")
                let restorePeak = try Self.peakRSS(stanza, ["--pg1-path=\(target)", "restore", "--process-max=2", "--set=\(label)"])
                #expect(restorePeak < Self.boundKiB, "restore peak RSS \(restorePeak) KiB")
                print("many files: \(fileCount) files in base/<postgres>; peak RSS backup \(backupPeak) KiB, incremental \(incrementalPeak) KiB, restore \(restorePeak) KiB")

                let restored = try Cluster(name: "restored", scratch: scratch, existingDataDirectory: target,
                                           extraConf: ["archive_mode = off", "max_locks_per_transaction = 256"])
                try await withCluster(restored) { restored in
                    try await restored.waitForRecoveryEnd()
                    let actual = try restored.dumpAllDatabases()
                    #expect(actual.difference(from: expected) == nil, "\(actual.difference(from: expected) ?? "")")
                    #expect(try restored.psql("select note from many_1").contains("after the backup"))
                }
            }
        }
    }
}
