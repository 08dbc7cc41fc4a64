import Foundation
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepMover
import PGKeepEngine
import PGKeepConfig
import Testing
import TestSupport

/// Scenario 25, wrong permissions or identity, on a real PostgreSQL 15 cluster and repository:
/// pgkeep runs as the postgres user (as everywhere in these tests), so the modes set here bite it
/// even where the test process is root. Each refusal is a stable code, a message naming the path
/// and a hint; nothing partial is left visible, and once the permissions are back the next run
/// succeeds and a restore is exact.
@Suite("Permissions and identity", .serialized)
struct PermissionTests {
    /// Stable exit codes (Sources/PGKeep/Errors/PGKeepError.swift).
    enum Exit {
        static let fileOpen: Int32 = 31
        static let pathCreate: Int32 = 37
    }

    /// What every permission error's hint says (PGKeepError.permissionHint).
    static let permissionHint = "check the owner and mode of"

    /// Sets the mode of `path` (the test process owns it or is root).
    static func setMode(_ mode: mode_t, _ path: String) throws {
        guard chmod(path, mode) == 0 else {
            throw HarnessError("chmod \(String(mode, radix: 8)) \(path) failed: \(String(cString: strerror(errno)))")
        }
    }

    /// Every entry of a directory, temporary files included.
    static func entries(_ directory: String) throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: directory))
    }

    @Test("a repository directory the user cannot write: backup fails with path-create and archive-push with file-open, each naming the directory with a hint; nothing new is listed or stored; with write access back verify is clean, both succeed and a restore is exact")
    func unwritableRepositoryDirectory() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            var expected: ClusterDump?
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { cluster in
                try stanza.create(cluster)
                _ = try cluster.psql("create table t as select g, md5(g::text) as v from generate_series(1, 20000) g")
                let first = try stanza.backup(cluster)
                let archived = try await cluster.switchWALAndWaitForArchive()

                // backup/<stanza> read-only: the new backup's directory cannot be made.
                let backupDirectory = stanza.repository + "/backup/main"
                let backupEntries = try Self.entries(backupDirectory)
                try Self.setMode(0o550, backupDirectory)
                let backup = try stanza.run(TestStanza.clusterOptions(cluster) + ["backup", "--start-fast"])
                try Self.setMode(0o750, backupDirectory)
                #expect(backup.status == Exit.pathCreate, "\(backup)")
                #expect(backup.stderr.contains("[37] path-create") && backup.stderr.contains("'\(backupDirectory)/")
                        && backup.stderr.contains("Permission denied"), "names the directory and the cause: \(backup.stderr)")
                #expect(backup.stderr.contains("HINT: ") && backup.stderr.contains(Self.permissionHint), "\(backup.stderr)")
                #expect(try Self.entries(backupDirectory) == backupEntries, "nothing was added to \(backupDirectory)")
                #expect(try stanza.labels() == [first])
                #expect(!FileManager.default.fileExists(atPath: stanza.leasePath), "the repository lease was given back")

                // The archive directory the next segment belongs in, read-only: PostgreSQL's archiver fails and keeps the segment.
                let archiveDirectory = stanza.repository + "/archive/main/\(Cluster.archiveID)/" + String(archived.prefix(16))
                let archiveEntries = try Self.entries(archiveDirectory)
                try Self.setMode(0o550, archiveDirectory)
                let failures = Int(try cluster.psql("select failed_count from pg_stat_archiver")) ?? 0
                _ = try cluster.psql("insert into t select g, 'after' from generate_series(1, 1000) g")
                _ = try cluster.psql("select pg_switch_wal()")
                try await FaultTests.waitUntil("the archiver to fail") {
                    (Int(try cluster.psql("select failed_count from pg_stat_archiver")) ?? 0) > failures
                }
                let segment = try cluster.psql("select last_failed_wal from pg_stat_archiver")
                #expect(segment.hasPrefix(String(archived.prefix(16))), "\(segment) belongs in \(archiveDirectory)")
                let copy = try scratch.directory("wal") + "/" + segment
                try FileManager.default.copyItem(atPath: cluster.dataDirectory + "/pg_wal/" + segment, toPath: copy)
                try PostgresUser.takeOwnership(of: copy)
                let push = try stanza.run(["archive-push", copy])
                let stillMissing = try stanza.run(["archive-get", segment, scratch.path("wal/fetched")])
                let leftInArchive = try Self.entries(archiveDirectory)
                try Self.setMode(0o750, archiveDirectory)
                #expect(push.status == Exit.fileOpen, "\(push)")
                #expect(push.stderr.contains("[31] file-open") && push.stderr.contains("for '\(segment)-")
                        && push.stderr.contains("in directory '\(archiveDirectory)': Permission denied"), "names the directory and the cause: \(push.stderr)")
                #expect(push.stderr.contains("HINT: ") && push.stderr.contains(Self.permissionHint), "\(push.stderr)")
                #expect(stillMissing.status == 1, "nothing was stored: \(stillMissing)")
                #expect(leftInArchive == archiveEntries, "not even a temporary file is left")

                // Write access back: the push, the archiver, verify and the next backup succeed.
                try stanza.check(["archive-push", copy])
                try stanza.check(["archive-get", segment, scratch.path("wal/fetched")])
                #expect(try readBytes(scratch.path("wal/fetched")) == readBytes(copy))
                try await cluster.waitUntilArchived(segment)
                let verified = try stanza.run(["verify"])
                #expect(verified.status == 0, "\(verified)")
                let second = try stanza.backup(cluster)
                #expect(try stanza.labels() == [first, second])
                try await cluster.switchWALAndWaitForArchive()
                expected = try cluster.dumpAllDatabases()
            }
            let restored = try await FaultTests.restoreAndRecover(stanza, scratch: scratch, name: "restored")
            #expect(restored.difference(from: try #require(expected)) == nil)
        }
    }

    @Test("a stored backup file the user cannot read: restore fails with file-open naming it with a hint, leaves no pg_control so the half-restored directory cannot start, and completes with --delta once it is readable; the restore is exact")
    func unreadableBackupFile() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            var expected: ClusterDump?
            var label = ""
            var relation = ""
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { cluster in
                try stanza.create(cluster)
                // Large enough to be stored on its own (block-incremental), not in a bundle.
                _ = try cluster.psql("create table t as select g, md5(g::text) as v from generate_series(1, 100000) g")
                relation = try cluster.psql("select pg_relation_filepath('t')")
                label = try stanza.backup(cluster)
                try await cluster.switchWALAndWaitForArchive()
                expected = try cluster.dumpAllDatabases()
            }
            let objectPrefix = stanza.repository + "/backup/main/\(label)/pg_data/\(relation)"
            let unreadable = stanza.repositoryFiles(under: "backup/main/\(label)/pg_data/" + Posix.dirname(relation))
                .filter { $0.hasPrefix(objectPrefix + ".") }
            #expect(!unreadable.isEmpty, "the table is stored in objects named after it")
            for object in unreadable { try Self.setMode(0o000, object) }

            try scratch.directory("restored")
            let data = scratch.path("restored/data")
            let refused = try stanza.restore(into: data)
            #expect(refused.status == Exit.fileOpen, "\(refused)")
            #expect(refused.stderr.contains("[31] file-open") && refused.stderr.contains("'\(objectPrefix)")
                    && refused.stderr.contains("Permission denied"), "names the stored file and the cause: \(refused.stderr)")
            #expect(refused.stderr.contains("HINT: ") && refused.stderr.contains(Self.permissionHint)
                    && refused.stderr.contains("'\(data)' is left half-restored") && refused.stderr.contains("--delta"), "\(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: data + "/global/pg_control"), "no pg_control: the directory cannot start")
            try FaultTests.expectNoStart(data, scratch: scratch, name: "half")

            for object in unreadable { try Self.setMode(0o640, object) }
            let verified = try stanza.run(["verify"])
            #expect(verified.status == 0, "the repository was never changed: \(verified)")
            try stanza.check(["--pg1-path=\(data)", "restore", "--delta", "--process-max=2"])
            let restored = try await FaultTests.recover(data, scratch: scratch, name: "restored", amcheck: false)
            #expect(restored.difference(from: try #require(expected)) == nil)
        }
    }

    @Test("as root, a restore of a backup whose owner user and group names this host does not know gives the files to postgres, says so naming them, and the cluster starts and is exact",
          .enabled(if: PostgresUser.isRoot, "restore as root needs root"))
    func unknownOwnerFallsBackToPostgresAsRoot() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            var expected: ClusterDump?
            var label = ""
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { cluster in
                try stanza.create(cluster)
                _ = try cluster.psql("create table t as select g from generate_series(1, 5000) g")
                label = try stanza.backup(cluster)
                try await cluster.switchWALAndWaitForArchive()
                expected = try cluster.dumpAllDatabases()
            }
            // Names no host has: every entry's user, and the group of every file.
            let user = "pgkeep-no-such-user"
            let group = "pgkeep-no-such-group"
            #expect(getpwnam(user) == nil && getgrnam(group) == nil)
            try RestoreSafetyTests.tamper(stanza, label: label) { manifest in
                for index in manifest.paths.indices { manifest.paths[index].user = user }
                for index in manifest.files.indices { (manifest.files[index].user, manifest.files[index].group) = (user, group) }
            }
            let data = scratch.path("restored")
            let restore = try Shell.run(stanza.binary.path, stanza.common + ["--pg1-path=\(data)", "restore", "--allow-root"])
            #expect(restore.status == 0, "\(restore)")
            let ids = try #require(PostgresUser.ids)
            let warnings = restore.stderr.split(separator: "\n").filter { $0.contains("WARN") && $0.contains("records owner") }
            #expect(warnings.contains { $0.contains("user '\(user)'") && $0.contains("user 'postgres' (uid \(ids.uid))") }, "\(restore.stderr)")
            #expect(warnings.contains { $0.contains("group '\(group)'") && $0.contains("postgres") }, "\(restore.stderr)")
            #expect(warnings.count == 2, "one warning per unknown name: \(restore.stderr)")

            for path in [data, data + "/PG_VERSION", data + "/base", data + "/global/pg_control"] {
                var st = stat()
                #expect(lstat(path, &st) == 0 && st.st_uid == ids.uid && st.st_gid == ids.gid, "\(path) belongs to postgres: \(st.st_uid):\(st.st_gid)")
            }
            let restored = try Cluster(name: "restored-cluster", scratch: scratch, existingDataDirectory: data, extraConf: ["archive_mode = off"])
            try await withCluster(restored) { restored in
                try await restored.waitForRecoveryEnd()
                #expect(try restored.dumpAllDatabases().difference(from: try #require(expected)) == nil)
            }
        }
    }
}
