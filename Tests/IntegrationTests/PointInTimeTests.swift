import Foundation
import Testing
import TestSupport

/// Point-in-time recovery against real PostgreSQL 15: every target type, the planner's backup
/// choice, timeline switches archived to the same stanza, and the planner's refusals.
@Suite("Point-in-time recovery", .serialized)
struct PointInTimeTests {
    /// One committed marker row and where it landed.
    struct Marker {
        var id: Int
        var xid: String
        /// The commit timestamp (track_commit_timestamp), in UTC, as `YYYY-MM-DD HH:MM:SS.ffffff+00`.
        var commitTime: String
        /// `pg_current_wal_insert_lsn()` just after the commit.
        var lsnAfter: String
    }

    /// A stanza in a scratch repository and the pgkeep calls the tests make against it.
    struct Repo {
        let scratch: Scratch
        let stanza: String
        let path: String
        let binary: PGKeepBinary

        init(scratch: Scratch, stanza: String) throws {
            self.scratch = scratch
            self.stanza = stanza
            path = try scratch.directory("repo-" + stanza)
            binary = try PGKeepBinary.shared()
        }

        var archiveCommand: String {
            binary.commandLine(["--stanza=\(stanza)", "--repo1-path=\(path)", "archive-push", "%p"])
        }

        func run(_ arguments: [String], cwd: String? = nil) throws -> ShellResult {
            try binary.run(["--stanza=\(stanza)", "--repo1-path=\(path)"] + arguments, cwd: cwd)
        }

        func clusterOptions(_ cluster: Cluster) -> [String] {
            ["--pg1-path=\(cluster.dataDirectory)", "--pg1-socket-path=\(cluster.socketDirectory)", "--pg1-port=\(cluster.port)"]
        }

        func stanzaCreate(_ cluster: Cluster) throws {
            try run(clusterOptions(cluster) + ["stanza-create"]).check()
        }

        /// A full backup; returns its label (the newest in `info`).
        func backup(_ cluster: Cluster) throws -> String {
            try run(clusterOptions(cluster) + ["backup", "--type=full", "--start-fast"]).check()
            let info = try JSONSerialization.jsonObject(with: Data(try run(["info", "--output=json"]).check().stdout.utf8))
            let stanzas = try #require(info as? [[String: Any]])
            let backups = try #require(stanzas.first?["backup"] as? [[String: Any]])
            return try #require(backups.last?["label"] as? String)
        }

        /// `restore --plan --output=json` parsed, plus the exit status.
        func plan(_ options: [String], into directory: String) throws -> (json: [String: Any], status: Int32, result: ShellResult) {
            let result = try run(["--pg1-path=\(directory)", "restore", "--plan", "--output=json"] + options)
            let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
            return (try #require(object as? [String: Any], "\(result)"), result.status, result)
        }

        func restore(_ options: [String], into directory: String) throws -> ShellResult {
            try run(["--pg1-path=\(directory)", "restore"] + options)
        }
    }

    static func label(_ plan: [String: Any]) -> String? {
        (plan["backup"] as? [String: Any])?["label"] as? String
    }

    static func segments(_ plan: [String: Any]) -> [String] {
        ((plan["wal"] as? [String: Any])?["segments"] as? [String]) ?? []
    }

    static func problemCodes(_ plan: [String: Any]) -> [Int] {
        ((plan["problems"] as? [[String: Any]]) ?? []).compactMap { $0["code"] as? Int }
    }

    /// Commits marker `id` in its own transaction and records its xid, commit time and the LSN after it.
    static func addMarker(_ cluster: Cluster, _ id: Int) throws -> Marker {
        let xid = try cluster.psql("begin; insert into marker values (\(id)); select txid_current(); commit;")
        let row = try cluster.psql("""
            select to_char(pg_xact_commit_timestamp(xmin) at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00', pg_current_wal_insert_lsn()
            from marker where id = \(id)
            """).split(separator: "|").map(String.init)
        return Marker(id: id, xid: xid, commitTime: row[0], lsnAfter: row[1])
    }

    /// Switches to a new WAL segment and waits until the completed one is archived.
    static func switchAndWaitArchived(_ cluster: Cluster) async throws {
        let segment = try cluster.psql("select pg_walfile_name(pg_switch_wal())")
        for _ in 0..<300 {
            let archived = try cluster.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver")
            if archived >= segment { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw HarnessError("\(segment) was not archived within 30 s\n\(try cluster.psql("select * from pg_stat_archiver"))")
    }

    /// Starts a restored data directory (archiving off unless `archiveCommand`), waits for recovery to end
    /// (targets use promote), and returns the marker ids present.
    static func markers(restoredAt directory: String, name: String, scratch: Scratch, archiveCommand: String? = nil,
                        _ more: ((Cluster) async throws -> Void)? = nil) async throws -> String {
        let cluster = try Cluster(name: name, scratch: scratch, existingDataDirectory: directory, archiveCommand: archiveCommand,
                                  extraConf: archiveCommand == nil ? ["archive_mode = off"] : [])
        return try await withCluster(cluster) { cluster in
            try await cluster.waitForRecoveryEnd(timeout: .seconds(120))
            let present = try cluster.psql("select coalesce(string_agg(id::text, ',' order by id), '') from marker")
            try await more?(cluster)
            return present
        }
    }

    @Test("time, xid, lsn, name and immediate targets stop exactly where PostgreSQL defines, from the backup the planner picks; unreachable targets and WAL gaps are refused before writing")
    func targets() async throws {
        try await withScratch { scratch in
            let repo = try Repo(scratch: scratch, stanza: "pitr")
            var markers: [Int: Marker] = [:]
            var b1 = "", b2 = ""
            try await withCluster(name: "primary", scratch: scratch, archiveCommand: repo.archiveCommand,
                                  extraConf: ["track_commit_timestamp = on"]) { primary in
                try repo.stanzaCreate(primary)
                _ = try primary.psql("create table marker(id int primary key)")
                b1 = try repo.backup(primary)
                // Backup stop times are recorded to the second: keep targets in later seconds.
                _ = try primary.psql("select pg_sleep(1.2)")
                markers[1] = try Self.addMarker(primary, 1)
                try await Self.switchAndWaitArchived(primary)
                _ = try primary.psql("select pg_sleep(1.2)")
                b2 = try repo.backup(primary)
                _ = try primary.psql("select pg_sleep(1.2)")
                markers[2] = try Self.addMarker(primary, 2)
                _ = try primary.psql("select pg_create_restore_point('rp2')")
                try await Self.switchAndWaitArchived(primary)
                markers[3] = try Self.addMarker(primary, 3)
                _ = try primary.psql("select pg_create_restore_point('rp3')")
                try await Self.switchAndWaitArchived(primary)
                // Later activity, so time, xid and lsn targets have a record after them.
                markers[4] = try Self.addMarker(primary, 4)
                try await Self.switchAndWaitArchived(primary)
            }
            #expect(b1 != b2)
            let m = markers

            // Each case: restore options, the backup the planner must choose, the markers that must be back.
            let cases: [(name: String, options: [String], backup: String, present: String)] = [
                ("time-before-b2", ["--type=time", "--target=\(m[1]!.commitTime)"], b1, "1"),
                ("time-exclusive", ["--type=time", "--target=\(m[2]!.commitTime)", "--target-exclusive"], b2, "1"),
                ("time-inclusive", ["--type=time", "--target=\(m[2]!.commitTime)"], b2, "1,2"),
                ("xid-inclusive", ["--type=xid", "--target=\(m[3]!.xid)"], b2, "1,2,3"),
                ("xid-exclusive", ["--type=xid", "--target=\(m[3]!.xid)", "--target-exclusive"], b2, "1,2"),
                ("lsn", ["--type=lsn", "--target=\(m[2]!.lsnAfter)"], b2, "1,2"),
                ("lsn-before-b2", ["--type=lsn", "--target=\(m[1]!.lsnAfter)"], b1, "1"),
                ("name", ["--type=name", "--target=rp3"], b2, "1,2,3"),
                ("immediate", ["--type=immediate"], b2, "1"),
                ("immediate-set", ["--type=immediate", "--set=\(b1)"], b1, ""),
            ]
            for item in cases {
                let directory = scratch.path("r-\(item.name)")
                let options = item.options + ["--target-action=promote"]
                let plan = try repo.plan(options, into: directory)
                #expect(plan.status == 0, "\(item.name): \(plan.result)")
                #expect(Self.label(plan.json) == item.backup, "\(item.name): planner chose \(Self.label(plan.json) ?? "-")")
                #expect(!FileManager.default.fileExists(atPath: directory), "--plan writes nothing")
                try repo.restore(options, into: directory).check()
                let auto = try String(contentsOfFile: directory + "/postgresql.auto.conf", encoding: .utf8)
                #expect(auto.contains("recovery_target_action = 'promote'"), "\(item.name)")
                #expect(FileManager.default.fileExists(atPath: directory + "/recovery.signal"))
                let present = try await Self.markers(restoredAt: directory, name: "c-\(item.name)", scratch: scratch)
                #expect(present == item.present, "\(item.name): markers \(present), expected \(item.present)")
            }

            // Targets before the backup's consistency point are refused, the data directory untouched.
            let refused = scratch.path("refused")
            for options in [["--type=lsn", "--target=\(m[1]!.lsnAfter)", "--set=\(b2)"],
                            ["--type=time", "--target=\(m[1]!.commitTime)", "--set=\(b2)"]] {
                let plan = try repo.plan(options, into: refused)
                #expect(plan.status == 71, "\(plan.result)")
                #expect(Self.problemCodes(plan.json) == [71])
                let result = try repo.restore(options, into: refused)
                #expect(result.status == 71, "\(result)")
                #expect(result.stderr.contains("before backup \(b2) was consistent"), "\(result)")
                #expect(!FileManager.default.fileExists(atPath: refused), "nothing written")
            }
            // A target before every backup has no backup to restore.
            let early = try repo.restore(["--type=lsn", "--target=0/100"], into: refused)
            #expect(early.status == 71, "\(early)")

            // A segment missing from the archive between the backup and the target: refused.
            let xidPlan = try repo.plan(["--type=xid", "--target=\(m[3]!.xid)"], into: refused).json
            let needed = Self.segments(xidPlan)
            let walStop = try #require((xidPlan["backup"] as? [String: Any])?["walStop"] as? String)
            let stopIndex = try #require(needed.firstIndex(of: walStop))
            #expect(needed.count > stopIndex + 2, "several segments after the backup: \(needed)")
            let victim = needed[stopIndex + 1]
            let directory = repo.path + "/archive/pitr/\(Cluster.archiveID)/" + String(victim.prefix(16))
            let objects = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix(victim + "-") }
            #expect(objects.count == 1)
            for object in objects { try FileManager.default.removeItem(atPath: directory + "/" + object) }

            let gapPlan = try repo.plan(["--type=xid", "--target=\(m[3]!.xid)"], into: refused)
            #expect(gapPlan.status == 72, "\(gapPlan.result)")
            #expect(((gapPlan.json["wal"] as? [String: Any])?["missing"] as? [String]) == [victim])
            let gap = try repo.restore(["--type=xid", "--target=\(m[3]!.xid)"], into: refused)
            #expect(gap.status == 72, "\(gap)")
            #expect(gap.stderr.contains(victim), "\(gap)")
            #expect(!FileManager.default.fileExists(atPath: refused), "nothing written")
            let text = try repo.run(["--pg1-path=\(refused)", "restore", "--plan", "--type=default"])
            #expect(text.status == 72)
            #expect(text.stdout.contains("PROBLEM") && text.stdout.contains(victim), "\(text)")
            // A target before the gap is still reachable.
            let beforeGap = try repo.plan(["--type=immediate", "--set=\(b2)"], into: refused)
            #expect(beforeGap.status == 0, "\(beforeGap.result)")
        }
    }

    @Test("a promoted restore archives timeline 2 to the same stanza; a later restore follows it from a timeline 1 backup, and a timeline that forked before the backup is refused")
    func timelines() async throws {
        try await withScratch { scratch in
            let repo = try Repo(scratch: scratch, stanza: "tl")
            var b1 = "", b2 = ""
            var m2 = Marker(id: 0, xid: "", commitTime: "", lsnAfter: "")
            try await withCluster(name: "primary", scratch: scratch, archiveCommand: repo.archiveCommand,
                                  extraConf: ["track_commit_timestamp = on"]) { primary in
                try repo.stanzaCreate(primary)
                _ = try primary.psql("create table marker(id int primary key)")
                b1 = try repo.backup(primary)
                _ = try Self.addMarker(primary, 1)
                _ = try primary.psql("select pg_create_restore_point('fork')")
                m2 = try Self.addMarker(primary, 2)
                try await Self.switchAndWaitArchived(primary)
                _ = try primary.psql("select pg_sleep(1.1)")
                b2 = try repo.backup(primary)
            }

            // Restore b1 to the restore point, promote, and keep archiving to the same stanza on timeline 2.
            let first = scratch.path("tl2")
            try repo.restore(["--set=\(b1)", "--type=name", "--target=fork", "--target-action=promote"], into: first).check()
            var m3 = Marker(id: 0, xid: "", commitTime: "", lsnAfter: "")
            let onTimeline2 = try await Self.markers(restoredAt: first, name: "tl2", scratch: scratch,
                                                     archiveCommand: repo.archiveCommand) { cluster in
                #expect(try cluster.psql("select timeline_id from pg_control_checkpoint()") == "2")
                m3 = try Self.addMarker(cluster, 3)
                try await Self.switchAndWaitArchived(cluster)
                // PostgreSQL re-archives files it already archived after a promotion: an identical push succeeds.
                let again = try repo.run(["archive-push", "pg_wal/00000002.history"], cwd: cluster.dataDirectory)
                #expect(again.status == 0, "\(again)")
                _ = try cluster.psql("select 1")
            }
            #expect(onTimeline2 == "1")
            let historyObjects = try FileManager.default.contentsOfDirectory(atPath: repo.path + "/archive/tl/\(Cluster.archiveID)")
            #expect(historyObjects.contains { $0.hasPrefix("00000002.history-") }, "\(historyObjects)")

            // archive-get: the history file comes back; a future timeline's is missing, answered with 1 at once.
            let fetched = scratch.path("fetched.history")
            try repo.run(["archive-get", "00000002.history", fetched]).check()
            let history = try String(contentsOfFile: fetched, encoding: .utf8)
            #expect(history.hasPrefix("1\t") && history.contains("at restore point \"fork\""), "\(history)")
            let clock = ContinuousClock()
            let started = clock.now
            let absent = try repo.run(["archive-get", "00000003.history", scratch.path("absent.history")])
            #expect(absent.status == 1, "\(absent)")
            #expect(clock.now - started < .seconds(5))

            // latest from b1 is timeline 2 (it forked after b1's end); from b2 it stays on timeline 1.
            let latestB1 = try repo.plan(["--set=\(b1)"], into: scratch.path("p1")).json
            #expect(latestB1["targetTimeline"] as? Int == 2)
            #expect(((latestB1["timelinePath"] as? [[String: Any]]) ?? []).compactMap { $0["timeline"] as? Int } == [1, 2])
            #expect(Self.segments(latestB1).contains { $0.hasPrefix("00000002") })
            #expect(((latestB1["wal"] as? [String: Any])?["historyFiles"] as? [String]) == ["00000002.history"])
            let latestB2 = try repo.plan(["--set=\(b2)"], into: scratch.path("p2")).json
            #expect(latestB2["targetTimeline"] as? Int == 1)
            #expect(!Self.segments(latestB2).contains { $0.hasPrefix("00000002") })

            // A point on timeline 2, restored from the timeline 1 backup the planner picks: b2 forked away.
            let options = ["--type=lsn", "--target=\(m3.lsnAfter)", "--target-timeline=2", "--target-action=promote"]
            let second = scratch.path("tl2-again")
            let plan = try repo.plan(options, into: second)
            #expect(plan.status == 0, "\(plan.result)")
            #expect(Self.label(plan.json) == b1)
            let skipped = (plan.json["skipped"] as? [[String: Any]]) ?? []
            #expect(skipped.contains { $0["label"] as? String == b2 }, "\(skipped)")
            try repo.restore(options, into: second).check()
            let present = try await Self.markers(restoredAt: second, name: "tl2-again", scratch: scratch)
            #expect(present == "1,3", "markers on timeline 2: \(present)")
            #expect(!present.contains("2"), "marker 2 (\(m2.id)) only exists on timeline 1")

            // The chosen backup is newer than the fork: refused before writing, whatever the target.
            let refused = scratch.path("refused")
            let bad = try repo.plan(["--set=\(b2)", "--target-timeline=2"], into: refused)
            #expect(bad.status == 73, "\(bad.result)")
            let result = try repo.restore(["--set=\(b2)", "--target-timeline=2", "--type=default"], into: refused)
            #expect(result.status == 73, "\(result)")
            #expect(result.stderr.contains("forked from timeline 1"), "\(result)")
            #expect(!FileManager.default.fileExists(atPath: refused))
        }
    }
}
