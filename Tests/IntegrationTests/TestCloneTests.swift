import Foundation
import Testing
import TestSupport

/// A restored test clone keeps production's `archive_mode` and `archive_command`: once promoted it
/// archives its own timeline into production's stanza, and a later restore following `latest`
/// would return the clone's data. pgkeep warns at restore, offers `--archive-mode=off`, and once
/// two clusters have archived into one stanza the planner refuses to guess, while verify and info
/// flag it (Sources/PGKeep/Repository/TimelineDivergence.swift).
@Suite("Test clones archiving into production's stanza", .serialized)
struct TestCloneTests {
    static let timelineDiverged: Int32 = 74

    static func rows(_ cluster: Cluster) throws -> String {
        try cluster.psql("select coalesce(string_agg(note, ',' order by id), '') from marker")
    }

    @Test("a promoted clone archiving timeline 2 while production continues on timeline 1: restore warned, latest is refused (74), verify and info flag it, --target-timeline=1 restores production")
    func cloneArchivingIntoProductionIsFlagged() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let primary = try Cluster(name: "primary", scratch: scratch, archiveCommand: stanza.archiveCommand)
            try await withCluster(primary) { primary in
                try stanza.create(primary)
                _ = try primary.psql("create table marker(id int primary key, note text)")
                _ = try primary.psql("insert into marker values (1, 'before-backup')")
                try stanza.backup(primary)
                _ = try primary.psql("insert into marker values (2, 'before-clone')")
                try await primary.switchWALAndWaitForArchive()

                // The clone: a default restore, so it keeps archive_mode=on and production's archive_command.
                let cloneData = scratch.path("clone-data")
                let restored = try stanza.restore(into: cloneData, ["--type=default", "--log-level-console=warn"])
                #expect(restored.status == 0, "\(restored)")
                #expect(restored.stderr.contains("archives into stanza 'main'") && restored.stderr.contains("--archive-mode=off"),
                        "the restore warns about the clone's archiving: \(restored.stderr)")
                let clone = try Cluster(name: "clone", scratch: scratch, existingDataDirectory: cloneData)
                try await withCluster(clone) { clone in
                    try await clone.waitForRecoveryEnd()
                    _ = try clone.psql("insert into marker values (3, 'clone')")
                    try await clone.switchWALAndWaitForArchive()
                }
                #expect(stanza.repositoryFiles(under: "archive/main").contains { $0.contains("/00000002.history-") })

                // Production goes on after the clone's timeline began.
                _ = try primary.psql("insert into marker values (4, 'production-after')")
                try await primary.switchWALAndWaitForArchive()
            }

            let plan = try stanza.restore(into: scratch.path("plan"), ["--plan"])
            #expect(plan.status == Self.timelineDiverged, "\(plan)")
            #expect(plan.stdout.contains("timeline 1 continues past the point") && plan.stdout.contains("--target-timeline=1"), "\(plan.stdout)")
            let refused = try stanza.restore(into: scratch.path("refused"))
            #expect(refused.status == Self.timelineDiverged, "\(refused)")
            #expect(!FileManager.default.fileExists(atPath: scratch.path("refused")))

            let verify = try stanza.run(["verify", "--output=json"])
            #expect(verify.stdout.contains("timeline-diverged"), "\(verify)")
            let info = try stanza.check(["info"])
            #expect(info.stdout.contains("WARNING: timeline 1 continues past the point"), "\(info.stdout)")
            let archive = (try stanza.info()["archive"] as? [[String: Any]])?.first
            let diverged = archive?["diverged"] as? [[String: Any]]
            #expect(diverged?.first?["timeline"] as? Int == 1 && diverged?.first?["child"] as? Int == 2, "\(archive ?? [:])")

            // Saying which history: timeline 1 is production's, with every row it committed.
            let production = scratch.path("production")
            try stanza.restore(into: production, ["--target-timeline=1"]).check()
            let back = try Cluster(name: "production", scratch: scratch, existingDataDirectory: production, extraConf: ["archive_mode = off"])
            try await withCluster(back) { back in
                try await back.waitForRecoveryEnd()
                #expect(try Self.rows(back) == "before-backup,before-clone,production-after")
            }
        }
    }

    @Test("restore --archive-mode=off writes archive_mode = 'off': the promoted clone archives nothing and the restore does not warn")
    func archiveModeOffClonesNeverArchive() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            try await withCluster(name: "primary", scratch: scratch, archiveCommand: stanza.archiveCommand) { primary in
                try stanza.create(primary)
                _ = try primary.psql("create table marker(id int primary key, note text)")
                try stanza.backup(primary)
                try await primary.switchWALAndWaitForArchive()
            }
            let before = stanza.repositoryFiles(under: "archive/main")
            let cloneData = scratch.path("clone-data")
            let plan = try stanza.restore(into: cloneData, ["--archive-mode=off", "--plan"])
            #expect(plan.status == 0 && plan.stdout.contains("archive_mode = 'off'"), "\(plan)")
            let restored = try stanza.restore(into: cloneData, ["--archive-mode=off", "--log-level-console=warn"])
            #expect(restored.status == 0, "\(restored)")
            #expect(!restored.stderr.contains("archives into stanza"), "\(restored.stderr)")
            let autoConf = try String(contentsOfFile: cloneData + "/postgresql.auto.conf", encoding: .utf8)
            #expect(autoConf.contains("archive_mode = 'off'"), "\(autoConf)")
            let clone = try Cluster(name: "clone", scratch: scratch, existingDataDirectory: cloneData)
            try await withCluster(clone) { clone in
                try await clone.waitForRecoveryEnd()
                #expect(try clone.psql("show archive_mode") == "off")
                _ = try clone.psql("insert into marker values (1, 'clone')")
                _ = try clone.psql("select pg_switch_wal()")
                _ = try clone.psql("checkpoint")
            }
            #expect(stanza.repositoryFiles(under: "archive/main") == before, "the clone archived nothing")
        }
    }
}
