import Foundation
import Testing
import TestSupport

/// Bundles of small files (repo-layout.md §3.6) with a real PostgreSQL 15 cluster of many small
/// tables: few repository objects, exact restores (fresh and delta), verify, and damage found.
@Suite("Bundles", .serialized)
struct BundleTests {
    enum Exit {
        static let checksumMismatch: Int32 = 40
        static let verifyFailed: Int32 = 65
    }

    /// `count` small tables (a primary key, a text column with its TOAST table, one row each) in one
    /// statement: thousands of small relation files.
    static func createTables(_ cluster: Cluster, count: Int) throws {
        _ = try cluster.psql("""
            do $$ begin
              for i in 1..\(count) loop
                execute format('create table t%s(id int primary key, v text)', i);
                execute format('insert into t%s values (%s, md5(%s::text))', i, i, i);
                -- Every table holds locks until commit: commit in batches (max_locks_per_transaction).
                if i % 200 = 0 then commit; end if;
              end loop;
            end $$;
            """)
    }

    /// Regular files below `directory`.
    static func fileCount(_ directory: String) throws -> Int {
        Int(try Shell.run("sh", ["-c", "find \"$1\" -type f | wc -l", "count", directory]).check().stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// The JSON body of a sealed manifest.
    static func manifest(_ stanza: TestStanza, _ label: String) throws -> [String: Any] {
        let text = String(decoding: try readBytes("\(stanza.repository)/backup/main/\(label)/backup.manifest"), as: UTF8.self)
        guard let trailer = text.range(of: "\nsha256 ", options: .backwards),
              let body = try JSONSerialization.jsonObject(with: Data(text[..<trailer.lowerBound].utf8)) as? [String: Any] else {
            throw HarnessError("unreadable manifest of \(label)")
        }
        return body
    }

    static func files(_ manifest: [String: Any]) -> [[String: Any]] { manifest["files"] as? [[String: Any]] ?? [] }

    /// Restores `label` into `<scratch>/<name>/data`, recovers to the end of the backup and returns the dump.
    static func restoreAndDump(_ stanza: TestStanza, _ scratch: Scratch, label: String, name: String) async throws -> ClusterDump {
        try scratch.directory(name)
        let data = scratch.path(name + "/data")
        try stanza.restore(into: data, ["--set=\(label)"]).check()
        return try await recoverAndDump(data, scratch, name: name)
    }

    static func recoverAndDump(_ data: String, _ scratch: Scratch, name: String) async throws -> ClusterDump {
        let restored = try Cluster(name: name + "-pg", scratch: scratch, existingDataDirectory: data, extraConf: [
            "archive_mode = off", "recovery_target = 'immediate'", "recovery_target_action = 'promote'",
        ])
        return try await withCluster(restored) { cluster in
            try await cluster.waitForRecoveryEnd()
            return try cluster.dumpAllDatabases()
        }
    }

    func verify(_ stanza: TestStanza) throws -> (status: Int32, report: [String: Any], stderr: String) {
        let result = try stanza.run(["verify", "--output=json", "--process-max=2"])
        guard let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw HarnessError("verify printed no JSON report: \(result)")
        }
        return (result.status, report, result.stderr)
    }

    @Test("2000 small tables: full and incr store a few bundles instead of thousands of objects; fresh and delta restores are exact; verify passes")
    func manySmallTables() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            var full = "", incr = ""
            var clusterFiles = 0
            var dump: ClusterDump?
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { cluster in
                try stanza.create(cluster)
                try Self.createTables(cluster, count: 2000)
                clusterFiles = try Self.fileCount(cluster.dataDirectory)
                full = try stanza.backup(cluster, ["--process-max=2"])
                _ = try cluster.psql("""
                    insert into t5 values (-1, 'changed'); update t17 set v = 'updated'; drop table t30;
                    create table later(a int primary key); insert into later values (1);
                    """)
                incr = try stanza.backup(cluster, ["--type=incr", "--process-max=2"])
                dump = try cluster.dumpAllDatabases()
                _ = try cluster.psql("insert into t1 values (-2, 'after the last backup')")
            }
            #expect(clusterFiles > 6000, "the cluster should hold thousands of files, has \(clusterFiles)")

            // Few objects: the full holds its bundles, the large files, pg_control, backup_label and the
            // manifest pair; every bundled file is a frame of one of at least two bundles (one per worker).
            let fullObjects = try Self.fileCount("\(stanza.repository)/backup/main/\(full)")
            #expect(fullObjects < clusterFiles / 20, "full: \(fullObjects) objects for \(clusterFiles) cluster files")
            let fullManifest = try Self.manifest(stanza, full)
            let bundles = fullManifest["bundles"] as? [[String: Any]] ?? []
            #expect(bundles.count >= 2, "two workers fill a bundle each: \(bundles.count)")
            let bundled = Self.files(fullManifest).filter { $0["bundle"] != nil }
            #expect(bundled.count > clusterFiles / 2)
            #expect(Self.files(fullManifest).contains { $0["name"] as? String == "pg_data/global/pg_control" && $0["bundle"] == nil })
            #expect((fullManifest["options"] as? [String: Any])?["bundle"] as? Bool == true)
            // The frames of one bundle tile it: offsets + stored sizes add up to the recorded bundle size.
            for bundle in bundles {
                let id = bundle["id"] as? Int
                let frames = bundled.filter { $0["bundle"] as? Int == id }
                    .map { (($0["bundleOffset"] as? NSNumber)?.uint64Value ?? 0, ($0["repoSize"] as? NSNumber)?.uint64Value ?? 0) }
                    .sorted { $0.0 < $1.0 }
                var end: UInt64 = 0
                for frame in frames {
                    #expect(frame.0 == end, "bundle \(id ?? -1): frame at \(frame.0), expected \(end)")
                    end = frame.0 + frame.1
                }
                #expect(end == (bundle["repoSize"] as? NSNumber)?.uint64Value)
                let onDisk = try FileManager.default.attributesOfItem(atPath: "\(stanza.repository)/backup/main/\(full)/bundle/\(id ?? -1)")[.size] as? UInt64
                #expect(onDisk == end)
            }

            // The incr writes the changed files into bundles of its own and references the rest.
            let incrObjects = try Self.fileCount("\(stanza.repository)/backup/main/\(incr)")
            #expect(incrObjects < 60, "incr: \(incrObjects) objects")
            let incrFiles = Self.files(try Self.manifest(stanza, incr))
            let reusedBundled = incrFiles.filter { $0["reference"] as? String == full && $0["bundle"] != nil }
            #expect(reusedBundled.count > clusterFiles / 2, "unchanged bundled files keep pointing into the full's bundles")
            #expect(incrFiles.contains { $0["reference"] as? String == incr && $0["bundle"] != nil })

            // Fresh restore of the incr: frames from both backups' bundles; exact after recovery.
            try scratch.directory("fresh")
            let fresh = scratch.path("fresh/data")
            let restored = try stanza.restore(into: fresh, ["--set=\(incr)"]).check()
            _ = restored
            try scratch.directory("delta")
            let delta = scratch.path("delta/data")
            try Shell.run("cp", ["-a", fresh, delta], asPostgres: true).check()
            let freshDump = try await Self.recoverAndDump(fresh, scratch, name: "fresh")
            #expect(freshDump.difference(from: dump!) == nil)

            // Delta restore over a copy with two small relation files damaged and one removed: only
            // those are rewritten from their bundles, the rest kept; exact after recovery.
            let small = try Shell.run("sh", ["-c", "cd \"$1\" && find base/5 -type f -size -64k -size +1k -name '[0-9]*' | grep -E '/[0-9]+$' | sort | head -3", "ls", delta]).check()
                .stdout.split(separator: "\n").map(String.init)
            #expect(small.count == 3)
            try Shell.run("sh", ["-c", """
                cd "$1" && printf 'XXXXXXXX' | dd of=\(small[0]) bs=1 seek=100 conv=notrunc status=none &&
                truncate -s 0 \(small[1]) && rm \(small[2])
                """, "damage", delta], asPostgres: true).check()
            let deltaResult = try stanza.restore(into: delta, ["--set=\(incr)", "--delta", "--log-level-console=info"]).check()
            // Rewritten: the 3 damaged files and postgresql.auto.conf (the first restore appended to it).
            #expect(deltaResult.stdout.contains(" 4 rewritten"), "\(deltaResult)")
            let deltaDump = try await Self.recoverAndDump(delta, scratch, name: "delta")
            #expect(deltaDump.difference(from: dump!) == nil)

            // verify proves every bundle whole and every frame.
            let verified = try verify(stanza)
            #expect(verified.status == 0, "\(verified.stderr)")
            #expect((verified.report["problems"] as? [Any])?.isEmpty == true, "\(verified.report)")
        }
    }

    @Test("--no-bundle incr on a bundled full restores exactly; a flipped byte in a bundle fails restore with checksum-mismatch and verify names the bundle, file and backups")
    func noBundleAndDamage() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            var full = "", incr = ""
            var dump: ClusterDump?
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { cluster in
                try stanza.create(cluster)
                try Self.createTables(cluster, count: 50)
                full = try stanza.backup(cluster, ["--process-max=2", "--compress-type=zst"])
                _ = try cluster.psql("insert into t3 values (-1, 'changed'); create table later(a int); insert into later values (1);")
                incr = try stanza.backup(cluster, ["--type=incr", "--no-bundle"])
                dump = try cluster.dumpAllDatabases()
            }
            let incrManifest = try Self.manifest(stanza, incr)
            #expect((incrManifest["options"] as? [String: Any])?["bundle"] as? Bool == false)
            #expect(incrManifest["bundles"] == nil)
            #expect(!FileManager.default.fileExists(atPath: "\(stanza.repository)/backup/main/\(incr)/bundle"))
            let incrFiles = Self.files(incrManifest)
            #expect(!incrFiles.contains { $0["reference"] as? String == incr && $0["bundle"] != nil })
            #expect(incrFiles.contains { $0["reference"] as? String == full && $0["bundle"] != nil })

            let restoredDump = try await Self.restoreAndDump(stanza, scratch, label: incr, name: "restored")
            #expect(restoredDump.difference(from: dump!) == nil)
            let clean = try verify(stanza)
            #expect(clean.status == 0, "\(clean.stderr)")

            // Flip a byte in the middle of the frame of a file both backups use.
            guard let victim = incrFiles.first(where: {
                $0["reference"] as? String == full && $0["bundle"] != nil && (($0["repoSize"] as? NSNumber)?.uint64Value ?? 0) > 64
                    && ($0["name"] as? String ?? "").hasPrefix("pg_data/base/5/")
            }) else {
                Issue.record("no bundled relation file referenced by the incr")
                return
            }
            let name = victim["name"] as! String
            let id = victim["bundle"] as! Int
            let offset = (victim["bundleOffset"] as! NSNumber).uint64Value + (victim["repoSize"] as! NSNumber).uint64Value / 2
            let bundlePath = "\(stanza.repository)/backup/main/\(full)/bundle/\(id)"
            var bytes = try readBytes(bundlePath)
            bytes[Int(offset)] ^= 0x20
            try writeBytes(bundlePath, bytes)

            try scratch.directory("damaged")
            let failed = try stanza.restore(into: scratch.path("damaged/data"), ["--set=\(incr)"])
            #expect(failed.status == Exit.checksumMismatch, "\(failed)")
            #expect(failed.stderr.contains("bundle/\(id)"), "\(failed.stderr)")

            let found = try verify(stanza)
            #expect(found.status == Exit.verifyFailed, "\(found.stderr)")
            let problems = found.report["problems"] as? [[String: Any]] ?? []
            let bundleProblems = problems.filter { ($0["path"] as? String ?? "").hasSuffix("\(full)/bundle/\(id)") }
            #expect(bundleProblems.count == 2, "the frame and the whole bundle: \(problems)")
            let frameProblem = bundleProblems.first { ($0["message"] as? String ?? "").contains("'\(name)' at offset") }
            #expect(frameProblem?["kind"] as? String == "checksum-mismatch", "\(bundleProblems)")
            #expect(Set(frameProblem?["backups"] as? [String] ?? []) == [full, incr], "\(bundleProblems)")
            let wholeProblem = bundleProblems.first { ($0["message"] as? String ?? "").contains("damaged files in it") }
            #expect(Set(wholeProblem?["backups"] as? [String] ?? []) == [full, incr], "\(bundleProblems)")
            #expect(problems.count == 2, "nothing else is damaged: \(problems)")
        }
    }
}
