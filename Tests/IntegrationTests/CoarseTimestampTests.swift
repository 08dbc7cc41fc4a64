import Foundation
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepMover
import PGKeepEngine
import PGKeepConfig
import Testing
import TestSupport

/// Scenario 16 on real coarse clocks: a PostgreSQL 15 cluster whose data directory lives on a
/// file system stamping mtimes in whole seconds (ext4 with 128-byte inodes) or in 2-second steps
/// (vfat), loop-mounted. A table file is written again right after an incremental backup copied
/// it, within the same mtime step, so its size and mtime stay what that backup recorded: the next
/// incremental must not trust them (Sources/PGKeep/Backup/IncrementalPlan.swift, the copy start in
/// Backup.swift), and its restore must equal the source's dump. Where mounting is refused the
/// tests are skipped with the reason.
@Suite("Coarse file system timestamps", .serialized)
struct CoarseTimestampTests {
    @Test("on ext4 with whole-second mtimes, a table file rewritten in the second an incr backup copied it is copied again by the next incr, whose restore is exact",
          .enabled(if: SmallFileSystem.refusal(.loopExt4WholeSeconds) == nil,
                   Comment(rawValue: SmallFileSystem.refusal(.loopExt4WholeSeconds) ?? "")))
    func wholeSecondMtimes() async throws {
        try await Self.rewriteWithinTheStep(on: .loopExt4WholeSeconds)
    }

    @Test("on vfat with 2-second mtimes, a table file rewritten in the step an incr backup copied it is copied again by the next incr, whose restore is exact",
          .enabled(if: SmallFileSystem.refusal(.loopVFAT) == nil, Comment(rawValue: SmallFileSystem.refusal(.loopVFAT) ?? "")))
    func twoSecondMtimes() async throws {
        try await Self.rewriteWithinTheStep(on: .loopVFAT)
    }

    /// How many incr backups may be tried until one's copy of the table is followed, within the
    /// same mtime step, by a write: each try hits it unless the copy ends too late in its step.
    static let attempts = 8

    static func rewriteWithinTheStep(on kind: SmallFileSystem.Kind) async throws {
        let step = try #require(kind.timestampStep)
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let data = try scratch.directory("source/data", mode: 0o700)
            let fileSystem = try SmallFileSystem.mount(kind, at: data, bytes: 512 << 20, imageDirectory: scratch.path)
            defer { fileSystem.unmount() }
            let source = try Cluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand,
                                     extraConf: ["autovacuum = off", "max_wal_size = 256MB"])
            #expect(source.dataDirectory == data)
            var expected: ClusterDump?
            try await withCluster(source) { cluster in
                try stanza.create(cluster)
                // Half-full pages: the updates below stay in the page they read (HOT), so the file never changes size.
                _ = try cluster.psql("""
                    create table t (id int primary key, v int not null, pad text) with (fillfactor = 50);
                    insert into t select g, 0, repeat('p', 200) from generate_series(1, 40000) g;
                    checkpoint;
                    """)
                let relation = try cluster.psql("select pg_relation_filepath('t')")
                let file = data + "/" + relation
                let size = try #require(try Posix.lstat(file)).size
                #expect(size > BlockIncremental.minimumFileSize, "the table is one block-incremental file of \(size) bytes")
                try Self.expectCoarse(file, step: step)

                try stanza.backup(cluster)
                var hit: String?
                var tried = 0
                while hit == nil, tried < Self.attempts {
                    tried += 1
                    hit = try await Self.incrFollowedByRewrite(stanza, cluster, relation: relation, step: step, attempt: tried)
                }
                let rewritten = try #require(hit, "none of \(tried) incr backups was followed by a write within its copy's mtime step")
                #expect(try Posix.lstat(file)?.size == size, "the rewrite kept the size")

                // Same size, same mtime as recorded: only the copy start rule makes the next incr look again.
                let next = try stanza.backup(cluster, ["--type=incr"])
                let entry = try #require(try Self.manifestEntry(stanza, label: next, name: "pg_data/" + relation))
                #expect(entry["reference"] as? String == next, "the file was compared and stored again, not taken from \(rewritten): \(entry)")
                expected = try cluster.dumpAllDatabases()
            }
            // Recovered only to the end of the backup: the dump above set hint bits, and their full-page
            // images in later WAL would repair a stale copy of the page and hide the loss.
            let dump = try await FaultTests.restoreAndRecover(stanza, scratch: scratch, name: "restored", toBackupEnd: true)
            #expect(dump.difference(from: try #require(expected)) == nil)
        }
    }

    /// Proves the file system stamps `file` (after a fresh write) in whole steps of `step` seconds.
    static func expectCoarse(_ file: String, step: Int64) throws {
        let status = try #require(try Posix.lstat(file))
        #expect(status.mtimeNanoseconds % 1_000_000_000 == 0, "no sub-second part: \(status.mtimeNanoseconds)")
        #expect(status.mtime % step == 0, "mtime \(status.mtime) is a multiple of \(step) s")
    }

    /// One incr backup while a writer updates the table and checkpoints without pause (so its
    /// file's mtime is the listing's step); once the backup stored the table's blocks, the writer
    /// stops and one more update and checkpoint follow. Returns the backup's label when the file's
    /// mtime then still equals the one the backup recorded (a write after the copy the mtime does
    /// not show), nil when the write fell into a later step.
    static func incrFollowedByRewrite(_ stanza: TestStanza, _ cluster: Cluster, relation: String, step: Int64,
                                      attempt: Int) async throws -> String? {
        let update = "update t set v = v + 1 where id = 1; checkpoint;"
        let backupDirectory = stanza.repository + "/backup/main"
        let existing = Set(try FileManager.default.contentsOfDirectory(atPath: backupDirectory))
        let writer = Writer(cluster, sql: update)
        // The backup starts just after a step begins: its listing, its copy of the table and the
        // write after it then take well under a second, and fall into that step.
        let clock = Date().timeIntervalSince1970
        let stepStart = ((clock / Double(step)).rounded(.down) + 1) * Double(step)
        try await Task.sleep(for: .milliseconds(Int((stepStart - clock) * 1000) + 20))
        let backup = FaultTests.Background.start(stanza, TestStanza.clusterOptions(cluster) + ["backup", "--type=incr", "--start-fast"],
                                                 scratch: cluster.scratch, name: "incr\(attempt)")
        var label = ""
        do {
            try await FaultTests.waitUntil("the incr backup to store the table's block map", while: backup) {
                // The new backup's directory, then its block map of the table (written once the blocks are stored).
                if label.isEmpty {
                    label = try FileManager.default.contentsOfDirectory(atPath: backupDirectory)
                        .first { !existing.contains($0) && $0.first?.isNumber == true } ?? ""
                }
                return !label.isEmpty && FileManager.default.fileExists(atPath: "\(backupDirectory)/\(label)/pg_data/\(relation).pgkm")
            }
        } catch {
            _ = try? writer.stop()
            throw error
        }
        try writer.stop()
        _ = try cluster.psql(update)
        try await backup.task.value.check()

        let recorded = try #require(try Self.manifestEntry(stanza, label: label, name: "pg_data/" + relation))
        let now = try #require(try Posix.lstat(cluster.dataDirectory + "/" + relation))
        let recordedMtime = (recorded["mtime"] as? NSNumber)?.int64Value
        print("incr \(attempt) \(label): recorded mtime \(recordedMtime ?? -1), after the rewrite \(now.mtime)")
        return recordedMtime == now.mtime ? label : nil
    }

    /// The entry for `name` in a finished backup's manifest (JSON body of the sealed file).
    static func manifestEntry(_ stanza: TestStanza, label: String, name: String) throws -> [String: Any]? {
        let files = try #require(FaultTests.manifestFiles(stanza.repository + "/backup/main/\(label)/backup.manifest"))
        return files.first { $0["name"] as? String == name }
    }

    /// Runs `sql` on a cluster again and again on a thread of its own until stopped (a blocking
    /// loop in a task would hold one of the few threads of Swift's cooperative pool, and the test's
    /// polling would wait for it).
    final class Writer: @unchecked Sendable {
        private let condition = NSCondition()
        private var stopping = false
        private var finished = false
        private var failure: (any Error)?

        init(_ cluster: Cluster, sql: String) {
            let thread = Thread { [self] in
                var failure: (any Error)?
                while !condition.withLock({ stopping }) && failure == nil {
                    do { _ = try cluster.psql(sql) } catch { failure = error }
                }
                condition.withLock {
                    self.failure = failure
                    finished = true
                    condition.broadcast()
                }
            }
            thread.start()
        }

        /// Stops the loop after the statement in progress; throws the error a statement failed with.
        func stop() throws {
            try condition.withLock {
                stopping = true
                while !finished { condition.wait() }
                if let failure { throw failure }
            }
        }
    }
}
