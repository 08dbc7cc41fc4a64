import Foundation
import Testing
import TestSupport

/// archive-get's exit contract against a real PostgreSQL 15: a file the archive cannot deliver must
/// stop recovery (exit 255, FATAL), never end it early as "not found" (exit 1..125) and promote the
/// cluster without the later commits.
@Suite("archive-get failures stop recovery", .serialized)
struct ArchiveGetFatalTests {
    /// archive-get's status for every failure but "not in the archive" (ErrorCode.archiveGetFatalExitStatus).
    static let fatal: Int32 = 255

    @Test("a damaged archived segment stops recovery instead of promoting without the later commits; re-pushing the good segment repairs it and recovery reaches every commit")
    func damagedSegmentStopsRecovery() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let segments = try await Self.markedArchive(stanza, scratch: scratch)
            let damagedSegment = segments[1]

            // Keep the good segment (as the primary's pg_wal would), then flip a byte in the stored object.
            let good = try scratch.directory("good", mode: 0o700) + "/" + damagedSegment
            try stanza.check(["archive-get", damagedSegment, good])
            let object = try Self.storedObject(stanza, damagedSegment)
            var bytes = try readBytes(object)
            bytes[bytes.count / 2] ^= 0x01
            try writeBytes(object, bytes)

            let fetched = try stanza.run(["archive-get", damagedSegment, scratch.path("good/fetched")])
            #expect(fetched.status == Self.fatal, "\(fetched)")
            #expect(fetched.stderr.contains("ERROR: [40] checksum-mismatch") && fetched.stderr.contains(object), "\(fetched.stderr)")
            #expect(fetched.stderr.contains("stopped recovery on purpose"), "\(fetched.stderr)")

            let restored = try await Self.recoveryStops(stanza, scratch: scratch, at: damagedSegment, logging: "[40] checksum-mismatch")
            defer { try? restored.stop(mode: .immediate) }

            // PostgreSQL re-archives the good segment (here by hand): the damaged object is replaced.
            let repaired = try stanza.run(["archive-push", good])
            #expect(repaired.status == 0, "\(repaired)")
            #expect(repaired.stderr.contains("WARN") && repaired.stderr.contains(object), "\(repaired.stderr)")
            #expect(try stanza.run(["archive-get", damagedSegment, scratch.path("good/refetched")]).status == 0)
            #expect(try readBytes(scratch.path("good/refetched")) == (try readBytes(good)))

            #expect(try await Self.markersAfterRecovery(restored) == "1,2,3", "recovery resumes and reaches every commit")
        }
    }

    @Test("an archived segment the user cannot read stops recovery (exit 255, file-open naming it, with a hint) instead of ending it as missing; readable again, recovery resumes and reaches every commit")
    func unreadableSegmentStopsRecovery() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let segments = try await Self.markedArchive(stanza, scratch: scratch)
            let unreadable = segments[1]
            let object = try Self.storedObject(stanza, unreadable)
            try PermissionTests.setMode(0o000, object)

            let fetched = try stanza.run(["archive-get", unreadable, scratch.path("fetched")])
            #expect(fetched.status == Self.fatal, "an archive that holds the file but cannot deliver it must not answer 'missing': \(fetched)")
            #expect(fetched.stderr.contains("ERROR: [31] file-open") && fetched.stderr.contains("'\(object)': Permission denied"), "\(fetched.stderr)")
            #expect(fetched.stderr.contains(PermissionTests.permissionHint) && fetched.stderr.contains("stopped recovery on purpose"), "\(fetched.stderr)")
            #expect(!FileManager.default.fileExists(atPath: scratch.path("fetched")))

            let restored = try await Self.recoveryStops(stanza, scratch: scratch, at: unreadable, logging: "[31] file-open")
            defer { try? restored.stop(mode: .immediate) }
            try PermissionTests.setMode(0o640, object)
            #expect(try await Self.markersAfterRecovery(restored) == "1,2,3", "recovery resumes and reaches every commit")
        }
    }

    /// A stopped source with one backup and a table `marker`: three rows committed after the
    /// backup's end, each into its own archived segment. Returns the three segments.
    static func markedArchive(_ stanza: TestStanza, scratch: Scratch) async throws -> [String] {
        try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
            try stanza.create(source)
            _ = try source.psql("create table marker(id int primary key)")
            try stanza.backup(source)
            var segments: [String] = []
            for id in 1...3 {
                _ = try source.psql("insert into marker values (\(id))")
                segments.append(try await source.switchWALAndWaitForArchive())
            }
            return segments
        }
    }

    /// The repository object holding an archived segment.
    static func storedObject(_ stanza: TestStanza, _ segment: String) throws -> String {
        try #require(stanza.repositoryFiles(under: "archive/main").first { $0.contains("/" + segment + "-") })
    }

    /// Restores the latest backup, starts it and expects recovery to abort at `segment` because
    /// archive-get exited 255 with `logging` in its message: no promotion, no connections. Returns
    /// the stopped cluster (the caller stops it, whatever happens, with a `defer`).
    static func recoveryStops(_ stanza: TestStanza, scratch: Scratch, at segment: String, logging: String) async throws -> Cluster {
        let target = scratch.path("restored")
        try stanza.restore(into: target).check()
        let restored = try Cluster(name: "restored", scratch: scratch, existingDataDirectory: target, extraConf: ["archive_mode = off"])
        try restored.start(wait: false)
        let log = try await Self.startupOutcome(restored)
        #expect(!restored.isRunning, "recovery must abort, not promote:\n\(log)")
        #expect(log.contains("shutting down due to startup process failure") || log.contains("aborting startup due to startup process failure"), "\(log)")
        #expect(log.contains("FATAL:  could not restore file \"\(segment)\" from archive: child process exited with exit code 255"), "\(log)")
        #expect(log.contains(logging), "\(log)")
        #expect(!log.contains("ready to accept connections"), "\(log)")
        #expect(!log.contains("selected new timeline ID"), "the cluster must not promote:\n\(log)")
        return restored
    }

    /// Starts `restored` again, waits for recovery to end and returns the marker ids present.
    static func markersAfterRecovery(_ restored: Cluster) async throws -> String {
        try await withCluster(restored) { restored in
            try await restored.waitForRecoveryEnd()
            return try restored.psql("select string_agg(id::text, ',' order by id) from marker")
        }
    }

    /// Waits (bounded) until the server log shows how a start without waiting ended: the server
    /// accepting connections, or the startup process failing and the postmaster then gone. The
    /// log, not `pg_ctl status`, decides: right after `pg_ctl start -W` there is no postmaster.pid yet.
    static func startupOutcome(_ cluster: Cluster, timeout: Duration = .seconds(120)) async throws -> String {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            let log = cluster.serverLogTail(lines: 400)
            if log.contains("database system is ready to accept connections") { return log }
            if log.contains("due to startup process failure") {
                while cluster.isRunning, clock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
                return cluster.serverLogTail(lines: 400)
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        return cluster.serverLogTail(lines: 400)
    }

    @Test("archive-get exits 255 for a wrong stanza, a missing config file and bad options, and 1 at once for a segment the archive lacks")
    func configurationErrorsAreFatal() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            // stanza-create only reads pg_control: the cluster need not run.
            let cluster = try Cluster(name: "source", scratch: scratch, archiveCommand: nil)
            try stanza.create(cluster)
            let destination = try scratch.directory("wal", mode: 0o700) + "/RECOVERYXLOG"
            let segment = "000000010000000000000099"

            let clock = ContinuousClock()
            let started = clock.now
            let missing = try stanza.run(["archive-get", segment, destination])
            #expect(missing.status == 1, "\(missing)")
            #expect(clock.now - started < .seconds(5), "PostgreSQL asks for missing files routinely and must hear so quickly")
            #expect(!missing.stderr.contains("ERROR"), "\(missing.stderr)")

            let wrongStanza = try stanza.binary.run(["--stanza=other", "--repo1-path=\(stanza.repository)", "--lock-path=\(stanza.lockPath)",
                                                     "--log-path=\(stanza.logPath)", "archive-get", segment, destination])
            #expect(wrongStanza.status == Self.fatal, "\(wrongStanza)")
            #expect(wrongStanza.stderr.contains("[60] stanza-missing"), "\(wrongStanza.stderr)")

            let noConfig = scratch.path("nowhere/pgkeep.conf")
            let missingConfig = try stanza.run(["--config=\(noConfig)", "archive-get", segment, destination])
            #expect(missingConfig.status == Self.fatal, "\(missingConfig)")
            #expect(missingConfig.stderr.contains("[22] config-file-invalid") && missingConfig.stderr.contains(noConfig), "\(missingConfig.stderr)")
            // Other commands keep their own code for the same error.
            #expect(try stanza.run(["--config=\(noConfig)", "info"]).status == 22)

            let badOption = try stanza.run(["--no-such-option", "archive-get", segment, destination])
            #expect(badOption.status == Self.fatal, "\(badOption)")
            let oneArgument = try stanza.run(["archive-get", segment])
            #expect(oneArgument.status == Self.fatal, "\(oneArgument)")
            #expect(!FileManager.default.fileExists(atPath: destination))
        }
    }
}
