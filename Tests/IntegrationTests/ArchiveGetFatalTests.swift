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
            var segments: [String] = []
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                _ = try source.psql("create table marker(id int primary key)")
                try stanza.backup(source)
                // Each marker commits into its own segment, all after the backup's end.
                for id in 1...3 {
                    _ = try source.psql("insert into marker values (\(id))")
                    segments.append(try await source.switchWALAndWaitForArchive())
                }
            }
            let damagedSegment = segments[1]

            // Keep the good segment (as the primary's pg_wal would), then flip a byte in the stored object.
            let good = try scratch.directory("good", mode: 0o700) + "/" + damagedSegment
            try stanza.check(["archive-get", damagedSegment, good])
            let object = try #require(stanza.repositoryFiles(under: "archive/main").first { $0.contains("/" + damagedSegment + "-") })
            var bytes = try readBytes(object)
            bytes[bytes.count / 2] ^= 0x01
            try writeBytes(object, bytes)

            let fetched = try stanza.run(["archive-get", damagedSegment, scratch.path("good/fetched")])
            #expect(fetched.status == Self.fatal, "\(fetched)")
            #expect(fetched.stderr.contains("ERROR: [40] checksum-mismatch") && fetched.stderr.contains(object), "\(fetched.stderr)")
            #expect(fetched.stderr.contains("stopped recovery on purpose"), "\(fetched.stderr)")

            let target = scratch.path("restored")
            try stanza.restore(into: target).check()
            let restored = try Cluster(name: "restored", scratch: scratch, existingDataDirectory: target, extraConf: ["archive_mode = off"])
            // Whatever happens below, no server outlives the test.
            defer { try? restored.stop(mode: .immediate) }
            try restored.start(wait: false)
            let log = try await Self.startupOutcome(restored)
            #expect(!restored.isRunning, "recovery must abort, not promote:\n\(log)")
            #expect(log.contains("shutting down due to startup process failure") || log.contains("aborting startup due to startup process failure"), "\(log)")
            #expect(log.contains("FATAL:  could not restore file \"\(damagedSegment)\" from archive: child process exited with exit code 255"), "\(log)")
            #expect(log.contains("[40] checksum-mismatch"), "\(log)")
            #expect(!log.contains("ready to accept connections"), "\(log)")
            #expect(!log.contains("selected new timeline ID"), "the cluster must not promote:\n\(log)")

            // PostgreSQL re-archives the good segment (here by hand): the damaged object is replaced.
            let repaired = try stanza.run(["archive-push", good])
            #expect(repaired.status == 0, "\(repaired)")
            #expect(repaired.stderr.contains("WARN") && repaired.stderr.contains(object), "\(repaired.stderr)")
            #expect(try stanza.run(["archive-get", damagedSegment, scratch.path("good/refetched")]).status == 0)
            #expect(try readBytes(scratch.path("good/refetched")) == (try readBytes(good)))

            // Recovery resumes and reaches every commit.
            let present = try await withCluster(restored) { restored in
                try await restored.waitForRecoveryEnd()
                return try restored.psql("select string_agg(id::text, ',' order by id) from marker")
            }
            #expect(present == "1,2,3")
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
