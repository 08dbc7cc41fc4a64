import Foundation
import Testing
import TestSupport

/// Bad input on a real cluster and repository: each case is a clear error with a stable exit code,
/// a message naming the problem and the path, and nothing lost.
@Suite("Bad input", .serialized)
struct BadInputTests {
    /// Stable exit codes (Sources/PGKeep/Errors/PGKeepError.swift).
    enum Exit {
        static let configFileInvalid: Int32 = 22
        static let runAsRoot: Int32 = 24
        static let pathNotEmpty: Int32 = 36
        static let checksumMismatch: Int32 = 40
        static let archiveMismatch: Int32 = 44
        static let archiveDuplicate: Int32 = 45
        static let archiveTimeout: Int32 = 46
        static let dbConnect: Int32 = 50
        static let lockHeld: Int32 = 63
    }

    @Test("WAL pushing: a segment from another cluster is refused, an identical re-push succeeds, a different one is refused and the original kept")
    func archivePushGuards() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                _ = try source.psql("create table t as select g from generate_series(1, 1000) g")
                let segment = try await source.switchWALAndWaitForArchive()

                // The archived copy, fetched back the way recovery would.
                let fetched = try scratch.directory("fetched", mode: 0o700) + "/" + segment
                try stanza.check(["archive-get", segment, fetched])
                let original = try readBytes(fetched)
                #expect(original.count == 16 * 1024 * 1024)

                // Pushing the identical segment again succeeds (PostgreSQL re-pushes after a promotion).
                let again = try stanza.run(["archive-push", fetched])
                #expect(again.status == 0, "\(again)")

                // A different segment under the same name is refused, and never overwrites.
                var changed = original
                changed[9_000_000] ^= 0xFF
                let forged = try scratch.directory("forged", mode: 0o700) + "/" + segment
                _ = FileManager.default.createFile(atPath: forged, contents: Data(changed))
                try PostgresUser.takeOwnership(of: forged)
                let different = try stanza.run(["archive-push", forged])
                #expect(different.status == Exit.archiveDuplicate, "\(different)")
                #expect(different.stderr.contains(segment), "\(different.stderr)")
                let refetched = scratch.path("fetched/again-\(segment)")
                try stanza.check(["archive-get", segment, refetched])
                #expect(try readBytes(refetched) == original, "the archived segment is untouched")

                // A segment written by another cluster (another system identifier) is refused.
                let other = try Cluster(name: "other", scratch: scratch, archiveCommand: nil)
                try await withCluster(other) { other in
                    _ = try other.psql("create table u as select g from generate_series(1, 100) g")
                    _ = try other.psql("checkpoint")
                }
                let foreignName = try FileManager.default.contentsOfDirectory(atPath: other.dataDirectory + "/pg_wal")
                    .filter { $0.count == 24 }.sorted().last!
                let foreign = scratch.path("forged/foreign")
                try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: true)
                try PostgresUser.takeOwnership(of: foreign)
                // Under a name the archive does not hold yet, so only the identity check can refuse it.
                let foreignPath = foreign + "/000000010000000000000099"
                try FileManager.default.copyItem(atPath: other.dataDirectory + "/pg_wal/" + foreignName, toPath: foreignPath)
                try PostgresUser.takeOwnership(of: foreignPath)
                let pushed = try stanza.run(["archive-push", foreignPath])
                #expect(pushed.status == Exit.archiveMismatch, "\(pushed)")
                #expect(pushed.stderr.contains("system identifier") || pushed.stderr.contains("system id"), "\(pushed.stderr)")
                let got = try stanza.run(["archive-get", "000000010000000000000099", scratch.path("fetched/99")])
                #expect(got.status == 1, "nothing was stored for the foreign segment: \(got)")

                // The archiver kept going through all this.
                _ = try source.psql("insert into t select g from generate_series(1, 10) g")
                try await source.switchWALAndWaitForArchive()
                #expect(try source.psql("select failed_count from pg_stat_archiver") == "0")
            }
        }
    }

    @Test("restore refuses a non-empty directory and a stored file with a flipped byte, leaving the directory as it was")
    func restoreRefusesBadTargetsAndDamagedFiles() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                _ = try source.psql("create table t as select g, md5(g::text) from generate_series(1, 200000) g")
                try stanza.backup(source, ["--compress-type=none"])
            }

            // A directory with something in it is never overwritten.
            let occupied = try scratch.directory("occupied", mode: 0o700)
            try scratch.writeFile("occupied/keep-me", contents: "precious")
            let refused = try stanza.restore(into: occupied)
            #expect(refused.status == Exit.pathNotEmpty, "\(refused)")
            #expect(refused.stderr.contains(occupied), "\(refused.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: occupied) == ["keep-me"])
            #expect(try String(contentsOfFile: occupied + "/keep-me", encoding: .utf8) == "precious")

            // Flip one byte in the middle of the largest stored file: restore must refuse it by checksum.
            let label = try stanza.labels()[0]
            let stored = stanza.repositoryFiles(under: "backup/main/\(label)")
                .filter { !$0.hasSuffix("backup.manifest") && !$0.hasSuffix(".copy") }
                .max { (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int ?? 0) ?? 0
                    < (try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int ?? 0) ?? 0 }!
            var bytes = try readBytes(stored)
            bytes[bytes.count / 2] ^= 0x01
            try writeBytes(stored, bytes)
            let relative = String(stored.dropFirst((stanza.repository + "/backup/main/\(label)/").count))

            let target = scratch.path("restore-damaged")
            let damaged = try stanza.restore(into: target)
            #expect(damaged.status == Exit.checksumMismatch, "\(damaged)")
            #expect(damaged.stderr.contains(relative.replacingOccurrences(of: "pg_data/", with: "")), "\(damaged.stderr)")
            // Nothing that looks like a startable cluster is left behind.
            #expect(!FileManager.default.fileExists(atPath: target + "/global/pg_control"),
                    "a failed restore must not leave pg_control in place")
        }
    }

    @Test("a data page with a bad checksum on disk is reported by the backup (file and block), which still succeeds")
    func pageChecksumFailureIsReported() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let source = try Cluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand)
            var relation = ""
            try await withCluster(source) { source in
                try stanza.create(source)
                _ = try source.psql("create table t as select g, md5(g::text) as note from generate_series(1, 5000) g")
                _ = try source.psql("checkpoint")
                relation = try source.psql("select pg_relation_filepath('t')")
            }
            // Damage one tuple byte of block 2 while the server is down, so no buffer hides it.
            let file = source.dataDirectory + "/" + relation
            var bytes = try readBytes(file)
            bytes[2 * 8192 + 6000] ^= 0x5A
            try writeBytes(file, bytes)

            try await withCluster(source) { source in
                let result = try stanza.run(TestStanza.clusterOptions(source) + ["backup", "--start-fast"])
                #expect(result.status == 0, "\(result)")
                #expect(result.stderr.contains("invalid page checksums found in file 'pg_data/\(relation)' at block 2"), "\(result.stderr)")
                // Only that block: every other page of every relation file verified.
                #expect(result.stderr.components(separatedBy: "invalid page checksums").count == 2, "\(result.stderr)")
                let backups = try stanza.info()["backup"] as? [[String: Any]] ?? []
                #expect(backups.first?["error"] as? Bool == true)
                #expect(backups.first?["page-checksum-errors"] as? Int == 1)
            }
        }
    }

    @Test("a second concurrent backup is refused by the stanza lock; a backup whose WAL never arrives times out")
    func concurrentBackupAndArchiveTimeout() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                try stanza.backup(source)
                // Break archiving: the first backup now waits for its stop segment until --archive-timeout.
                _ = try source.psql("alter system set archive_command = 'false'")
                _ = try source.psql("select pg_reload_conf()")
                try await Task.sleep(for: .milliseconds(500))

                let options = TestStanza.clusterOptions(source)
                // The lock file outlives its holder (only the flock goes away): remove it so that its
                // reappearance shows the first backup holds the lock.
                let lockFile = stanza.lockPath + "/main-backup.lock"
                try FileManager.default.removeItem(atPath: lockFile)
                let first = Task.detached {
                    try stanza.run(options + ["backup", "--start-fast", "--archive-timeout=8"])
                }
                // Wait until the first backup holds the lock (it writes its pid into the lock file).
                let clock = ContinuousClock()
                let deadline = clock.now + .seconds(20)
                while clock.now < deadline {
                    if let text = try? String(contentsOfFile: lockFile, encoding: .utf8), !text.isEmpty { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                let second = try stanza.run(options + ["backup", "--start-fast"])
                #expect(second.status == Exit.lockHeld, "\(second)")
                #expect(second.stderr.contains("main-backup.lock"), "\(second.stderr)")

                let firstResult = try await first.value
                #expect(firstResult.status == Exit.archiveTimeout, "\(firstResult)")
                #expect(try stanza.labels().count == 1, "neither failed backup became visible")

                // Mend archiving: the next backup succeeds.
                _ = try source.psql("alter system set archive_command = \(quoteLiteral(stanza.archiveCommand))")
                _ = try source.psql("select pg_reload_conf()")
                try stanza.backup(source)
                #expect(try stanza.labels().count == 2)
            }
        }
    }

    @Test("a PostgreSQL that is not running is a clear connection error, and nothing is added to the repository")
    func unreachableDatabase() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let source = try Cluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand)
            try await withCluster(source) { source in try stanza.create(source) }
            let result = try stanza.run(TestStanza.clusterOptions(source) + ["backup"])
            #expect(result.status == Exit.dbConnect, "\(result)")
            #expect(result.stderr.contains(source.socketDirectory), "names where it tried: \(result.stderr)")
            #expect(try stanza.labels().isEmpty)
            #expect(stanza.repositoryFiles(under: "backup/main").allSatisfy { $0.contains("backup.info") })
        }
    }

    @Test("a missing --config file is an error naming it")
    func missingConfigFile() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let missing = scratch.path("nowhere/pgkeep.conf")
            let result = try stanza.run(["--config=\(missing)", "info"])
            #expect(result.status == Exit.configFileInvalid, "\(result)")
            #expect(result.stderr.contains(missing), "\(result.stderr)")
        }
    }

    @Test("an unreadable --config file is an error naming it")
    func unreadableConfigFile() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            // Mode 0000 denies everyone but root: pgkeep runs as postgres when the tests run as root,
            // and as the file's owner otherwise, and neither may read it.
            let unreadable = scratch.path("unreadable.conf")
            _ = FileManager.default.createFile(atPath: unreadable, contents: Data("[global]\nrepo1-path=/tmp\n".utf8),
                                               attributes: [.posixPermissions: 0o000])
            let denied = try stanza.run(["--config=\(unreadable)", "info"])
            #expect(denied.status == Exit.configFileInvalid, "\(denied)")
            #expect(denied.stderr.contains(unreadable), "\(denied.stderr)")
        }
    }

    @Test("pgkeep refuses to run as root unless --allow-root, so repository files never become root's",
          .enabled(if: PostgresUser.isRoot, "only a test process running as root can start pgkeep as root"))
    func refusesRoot() throws {
        let binary = try PGKeepBinary.shared()
        let result = try Shell.run(binary.path, ["--stanza=main", "--repo1-path=/tmp/pgkeep-never", "archive-push", "/tmp/x"])
        #expect(result.status == Exit.runAsRoot, "\(result)")
        #expect(result.stderr.contains("root"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/pgkeep-never"))
    }
}

/// A SQL string literal.
func quoteLiteral(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
}
