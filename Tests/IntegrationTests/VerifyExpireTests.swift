import Foundation
import Testing
import TestSupport

/// `verify` and `expire` against repositories written by real PostgreSQL 15 clusters.
@Suite("Verify and expire", .serialized)
struct VerifyExpireTests {
    enum Exit {
        static let lockHeld: Int32 = 63
        static let verifyFailed: Int32 = 65
        static let archiveTimeout: Int32 = 46
    }

    /// `verify --output=json` parsed, with the exit status.
    func verify(_ stanza: TestStanza, _ extra: [String] = []) throws -> (status: Int32, report: [String: Any], stderr: String) {
        let result = try stanza.run(["verify", "--output=json", "--process-max=2"] + extra)
        guard let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw HarnessError("verify printed no JSON report: \(result)")
        }
        return (result.status, report, result.stderr)
    }

    func findings(_ report: [String: Any], _ key: String) -> [[String: Any]] { report[key] as? [[String: Any]] ?? [] }

    /// WAL segment names archived for the stanza, sorted.
    func archivedSegments(_ stanza: TestStanza) -> [String] {
        stanza.repositoryFiles(under: "archive/main").map { URL(fileURLWithPath: $0).lastPathComponent }
            .compactMap { name in name.count > 24 && name[name.index(name.startIndex, offsetBy: 24)] == "-" ? String(name.prefix(24)) : nil }
            .sorted()
    }

    /// walStart/walStop of each backup, by label, from `info`.
    func walRanges(_ stanza: TestStanza) throws -> [String: (start: String, stop: String)] {
        var result: [String: (String, String)] = [:]
        for backup in try stanza.info()["backup"] as? [[String: Any]] ?? [] {
            let archive = backup["archive"] as? [String: Any]
            result[backup["label"] as! String] = (archive?["start"] as! String, archive?["stop"] as! String)
        }
        return result
    }

    @Test("verify names exactly the damage and the backups it affects; a damaged backup.info falls back to its copy with a warning")
    func corruption() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            var first = "", second = ""
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                _ = try source.psql("create table t as select g, md5(g::text) as note from generate_series(1, 100000) g")
                first = try stanza.backup(source, ["--process-max=2"])
                _ = try source.psql("update t set note = 'x' where g % 10 = 0")
                try await source.switchWALAndWaitForArchive()
                second = try stanza.backup(source, ["--compress-type=zst"])
                try await source.switchWALAndWaitForArchive()
            }

            // A sound repository: exit 0, nothing reported.
            let clean = try verify(stanza)
            #expect(clean.status == 0, "\(clean.stderr)")
            #expect(findings(clean.report, "problems").isEmpty, "\(clean.report)")
            // Every file counts once, also a block-incremental one (map and block object).
            let cleanBackups = findings(clean.report, "backups")
            #expect(cleanBackups.count == 2)
            for backup in cleanBackups {
                #expect((backup["filesChecked"] as? Int).map { $0 > 0 } == true, "\(backup)")
                #expect(backup["filesChecked"] as? Int == backup["fileCount"] as? Int, "\(backup)")
            }
            #expect(findings(clean.report, "warnings").isEmpty, "\(clean.report)")
            let backups = findings(clean.report, "backups")
            #expect(backups.map { $0["label"] as? String } == [first, second])
            #expect(backups.allSatisfy { $0["status"] as? String == "ok" && $0["walStatus"] as? String == "ok" })
            let timelines = (findings(clean.report, "archive").first?["timelines"] as? [[String: Any]]) ?? []
            #expect(timelines.count == 1 && (timelines.first?["gaps"] as? [Any])?.isEmpty == true, "\(timelines)")

            // backup.info damaged, its copy good: the copy takes over, with a warning, exit 0.
            let info = stanza.repository + "/backup/main/backup.info"
            let original = try readBytes(info)
            var damagedInfo = original
            damagedInfo[damagedInfo.count / 3] ^= 0x20
            try writeBytes(info, damagedInfo)
            let warned = try verify(stanza)
            #expect(warned.status == 0, "\(warned.stderr)")
            #expect(findings(warned.report, "problems").isEmpty, "\(warned.report)")
            #expect(findings(warned.report, "warnings").map { "\($0["kind"]!) \($0["path"]!)" } == ["copy-used backup/main/backup.info"])
            #expect(warned.stderr.contains("backup.info"), "\(warned.stderr)")

            // Both damaged: a clear error naming the file.
            try writeBytes(info + ".copy", damagedInfo)
            let failed = try verify(stanza)
            #expect(failed.status == Exit.verifyFailed, "\(failed.stderr)")
            #expect(findings(failed.report, "problems").map { "\($0["kind"]!) \($0["path"]!)" } == ["info-invalid backup/main/backup.info"])
            #expect(failed.stderr.contains("backup/main/backup.info"), "\(failed.stderr)")
            try writeBytes(info, original)
            try writeBytes(info + ".copy", original)

            // A flipped byte in a stored data file of the first backup, and a truncated WAL segment
            // the second backup needs.
            let stored = stanza.repositoryFiles(under: "backup/main/\(first)/pg_data/base")
                .max { (try? readBytes($0).count) ?? 0 < (try? readBytes($1).count) ?? 0 }!
            var bytes = try readBytes(stored)
            bytes[bytes.count / 2] ^= 0x01
            try writeBytes(stored, bytes)
            let storedRelative = String(stored.dropFirst(stanza.repository.count + 1))

            let secondStart = try #require(try walRanges(stanza)[second]).start
            let walObject = try #require(stanza.repositoryFiles(under: "archive/main").first {
                URL(fileURLWithPath: $0).lastPathComponent.hasPrefix(secondStart + "-")
            })
            let walBytes = try readBytes(walObject)
            try writeBytes(walObject, Array(walBytes.prefix(walBytes.count / 2)))
            let walRelative = String(walObject.dropFirst(stanza.repository.count + 1))

            let damaged = try verify(stanza)
            #expect(damaged.status == Exit.verifyFailed, "\(damaged.stderr)")
            let problems = findings(damaged.report, "problems")
            #expect(problems.map { "\($0["path"]!) \(($0["backups"] as? [String]) ?? [])" }.sorted() == [
                "\(walRelative) [\"\(second)\"]",
                "\(storedRelative) [\"\(first)\"]",
            ].sorted(), "\(problems)")
            for problem in problems {
                #expect(["checksum-mismatch", "size-mismatch"].contains(problem["kind"] as? String), "\(problem)")
            }
            #expect(problems.first { $0["path"] as? String == walRelative }?["walFile"] as? String == secondStart)
            #expect(findings(damaged.report, "warnings").isEmpty, "\(damaged.report)")
            #expect(findings(damaged.report, "backups").map { $0["status"] as? String } == ["error", "error"])
            #expect(damaged.stderr.contains(first) && damaged.stderr.contains(second), "\(damaged.stderr)")

            // --set narrows to one backup: only its own damage.
            let one = try verify(stanza, ["--set=\(first)"])
            #expect(one.status == Exit.verifyFailed)
            #expect(findings(one.report, "problems").map { $0["path"] as? String } == [storedRelative])

            // Text output names the same files.
            let text = try stanza.run(["verify"])
            #expect(text.status == Exit.verifyFailed)
            #expect(text.stdout.contains(storedRelative) && text.stdout.contains(walRelative), "\(text.stdout)")
        }
    }

    @Test("verify proves a diff/incr chain with block-incremental files, and names a damaged block object and its backup")
    func verifyIncrementalChain() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                _ = try source.psql("create table big as select g, md5(g::text) as note from generate_series(1, 60000) g")
                let full = try stanza.backup(source)
                _ = try source.psql("update big set note = 'changed' where g % 5000 = 0")
                let incr = try stanza.backup(source, ["--type=incr"])
                let clean = try verify(stanza)
                #expect(clean.status == 0, "\(clean.stderr)")
                #expect(findings(clean.report, "problems").isEmpty, "\(findings(clean.report, "problems"))")

                // The incr stored the changed blocks of the table in a block object of its own.
                let blockObjects = stanza.repositoryFiles(under: "backup/main/\(incr)").filter { $0.hasSuffix(".pgkb") }
                let damaged = try #require(blockObjects.max { (try? readBytes($0).count) ?? 0 < (try? readBytes($1).count) ?? 0 })
                var bytes = try readBytes(damaged)
                bytes[bytes.count / 2] ^= 0x20
                try writeBytes(damaged, bytes)
                let found = try verify(stanza)
                #expect(found.status == 65, "\(found.stderr)")
                let problems = findings(found.report, "problems")
                #expect(problems.count == 1, "\(problems)")
                let relative = String(damaged.dropFirst(stanza.repository.count + 1))
                #expect(problems.first?["path"] as? String == relative, "\(problems)")
                #expect((problems.first?["backups"] as? [String])?.contains(incr) == true)
                #expect((problems.first?["backups"] as? [String])?.contains(full) == false)
            }
        }
    }

    @Test("retention settings remove exactly what they should, dry run removes nothing, and every remaining backup restores")
    func expireRetention() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            var labels: [String] = []
            var expected: ClusterDump?
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                _ = try source.psql("create table t (id int primary key, round int)")
                for round in 1...4 {
                    _ = try source.psql("insert into t select g, \(round) from generate_series(\(round * 1000), \(round * 1000 + 999)) g")
                    try await source.switchWALAndWaitForArchive()
                    labels.append(try stanza.backup(source))
                }
                _ = try source.psql("update t set round = 0 where id % 7 = 0")
                try await source.switchWALAndWaitForArchive()

                let walBefore = archivedSegments(stanza)
                var ranges = try walRanges(stanza)

                // Dry run: reports, removes nothing.
                let dry = try stanza.check(["expire", "--repo1-retention-full=2", "--dry-run"])
                #expect(dry.stdout.contains("would expire backup \(labels[0])") && dry.stdout.contains("would expire backup \(labels[1])"), "\(dry.stdout)")
                #expect(try stanza.labels() == labels)
                #expect(archivedSegments(stanza) == walBefore)

                // Time retention: every backup stopped less than a day ago, nothing goes.
                try stanza.check(["expire", "--repo1-retention-full-type=time", "--repo1-retention-full=1"])
                #expect(try stanza.labels() == labels)

                // Three fulls kept, WAL continuity for one: the first backup goes; of the WAL before
                // the newest backup only the retained backups' own ranges stay.
                let expired = try stanza.check(["expire", "--retention-full=3", "--retention-archive=1"])
                #expect(expired.stdout.contains("expired backup \(labels[0])"), "\(expired.stdout)")
                #expect(try stanza.labels() == Array(labels[1...]))
                #expect(!FileManager.default.fileExists(atPath: stanza.repository + "/backup/main/\(labels[0])"))
                let newest = ranges[labels[3]]!
                let kept = walBefore.filter { name in
                    name >= newest.start || labels[1...2].contains { ranges[$0]!.start <= name && name <= ranges[$0]!.stop }
                }
                #expect(archivedSegments(stanza) == kept, "expected \(kept)")
                #expect(kept.count < walBefore.count)

                // --set: one backup, nothing else.
                try stanza.check(["expire", "--set=\(labels[2])"])
                #expect(try stanza.labels() == [labels[1], labels[3]])
                #expect(archivedSegments(stanza) == kept)

                // expire-auto after a backup with retention set: the oldest full goes, and its WAL.
                try await source.switchWALAndWaitForArchive()
                labels.append(try stanza.backup(source, ["--repo1-retention-full=2"]))
                #expect(try stanza.labels() == [labels[3], labels[4]])
                ranges = try walRanges(stanza)
                #expect(archivedSegments(stanza).first == ranges[labels[3]]!.start)
                // --no-expire-auto keeps everything.
                labels.append(try stanza.backup(source, ["--repo1-retention-full=1", "--no-expire-auto"]))
                #expect(try stanza.labels() == [labels[3], labels[4], labels[5]])

                _ = try source.psql("insert into t values (1, 99)")
                try await source.switchWALAndWaitForArchive()
                expected = try source.dumpAllDatabases()
            }

            // The repository is consistent after all this.
            let checked = try verify(stanza)
            #expect(checked.status == 0, "\(checked.stderr)")
            #expect(findings(checked.report, "problems").isEmpty, "\(checked.report)")

            // --since-last after a clean verify re-reads nothing.
            let again = try verify(stanza, ["--since-last"])
            #expect(again.status == 0)
            #expect((again.report["checked"] as? [String: Any])?["backupFiles"] as? Int == 0)
            #expect((again.report["checked"] as? [String: Any])?["walFiles"] as? Int == 0)

            // The oldest and the newest remaining backups restore and recover to the source's final state.
            for label in [labels[3], labels[5]] {
                let target = scratch.path("restore-\(label)")
                try stanza.restore(into: target, ["--set=\(label)"]).check()
                let restored = try Cluster(name: "restored-\(label)", scratch: scratch, existingDataDirectory: target,
                                           extraConf: ["archive_mode = off"])
                try await withCluster(restored) { restored in
                    try await restored.waitForRecoveryEnd()
                    let actual = try restored.dumpAllDatabases()
                    #expect(actual.difference(from: expected!) == nil, "restore of \(label): \(actual.difference(from: expected!) ?? "")")
                }
            }
        }
    }

    @Test("a chain of fulls, diffs and incrs: a deleted object a diff references is named with exactly the backups it affects; retention removes exactly the dependent backups, and the rest restore")
    func chainVerifyAndRetention() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            var label: [String: String] = [:]
            var expected: ClusterDump?
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                _ = try source.psql("create table t (id int primary key, note text)")
                var next = 0
                for (name, type) in [("F1", "full"), ("D1", "diff"), ("I1", "incr"), ("D2", "diff"), ("I2", "incr"),
                                     ("F2", "full"), ("I3", "incr")] {
                    _ = try source.psql("insert into t select g, md5(g::text) from generate_series(\(next), \(next + 4999)) g")
                    next += 5000
                    try await source.switchWALAndWaitForArchive()
                    // One worker: the first full's small files land in a single bundle.
                    label[name] = try stanza.backup(source, ["--type=\(type)", "--process-max=1"])
                }
                _ = try source.psql("update t set note = 'last' where id % 11 = 0")
                try await source.switchWALAndWaitForArchive()
                expected = try source.dumpAllDatabases()
            }
            let order = ["F1", "D1", "I1", "D2", "I2", "F2", "I3"].map { label[$0]! }
            #expect(try stanza.labels() == order)
            #expect(try verify(stanza).status == 0)

            // The first full's bundle holds small files (PG_VERSION, catalogs) every later backup of its
            // chain references unchanged; the second full starts a chain of its own.
            let bundle = try #require(stanza.repositoryFiles(under: "backup/main/\(label["F1"]!)/bundle").first)
            let saved = try readBytes(bundle)
            try FileManager.default.removeItem(atPath: bundle)
            let damaged = try verify(stanza)
            #expect(damaged.status == Exit.verifyFailed, "\(damaged.stderr)")
            let problems = findings(damaged.report, "problems")
            let relative = String(bundle.dropFirst(stanza.repository.count + 1))
            #expect(!problems.isEmpty && problems.allSatisfy { ($0["path"] as? String)?.hasPrefix(relative) == true }, "\(problems)")
            let affected = Set(problems.flatMap { ($0["backups"] as? [String]) ?? [] })
            #expect(affected == Set(["F1", "D1", "I1", "D2", "I2"].map { label[$0]! }), "\(affected)")
            _ = FileManager.default.createFile(atPath: bundle, contents: Data(saved))
            try PostgresUser.takeOwnership(of: bundle)
            #expect(try verify(stanza).status == 0)

            // Differential retention: of the fulls and diffs only the newest counts (F2); the diffs go,
            // each with the incr built on it. The first full stays by the full retention.
            try stanza.check(["expire", "--repo1-retention-full=2", "--repo1-retention-diff=1"])
            #expect(try stanza.labels() == ["F1", "F2", "I3"].map { label[$0]! })
            // Full retention 1: the first full goes, and the WAL before the second full's start with it.
            try stanza.check(["expire", "--repo1-retention-full=1"])
            #expect(try stanza.labels() == ["F2", "I3"].map { label[$0]! })
            let start = try #require(try walRanges(stanza)[label["F2"]!]).start
            #expect(archivedSegments(stanza).first == start)
            #expect(try verify(stanza).status == 0)

            for name in ["F2", "I3"] {
                let target = scratch.path("restore-\(name)")
                try stanza.restore(into: target, ["--set=\(label[name]!)"]).check()
                let restored = try Cluster(name: "restored-\(name)", scratch: scratch, existingDataDirectory: target,
                                           extraConf: ["archive_mode = off"])
                try await withCluster(restored) { restored in
                    try await restored.waitForRecoveryEnd()
                    let actual = try restored.dumpAllDatabases()
                    #expect(actual.difference(from: expected!) == nil, "restore of \(name): \(actual.difference(from: expected!) ?? "")")
                }
            }
        }
    }

    @Test("backup and expire started together: the second gets lock-held (63); the interrupted backup is cleaned up later")
    func concurrentBackupAndExpire() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                let first = try stanza.backup(source)
                // Archiving broken: the backup holds the stanza lock while it waits for its WAL.
                _ = try source.psql("alter system set archive_command = 'false'")
                _ = try source.psql("select pg_reload_conf()")
                try await Task.sleep(for: .milliseconds(500))

                let lockFile = stanza.lockPath + "/main-backup.lock"
                try FileManager.default.removeItem(atPath: lockFile)
                let options = TestStanza.clusterOptions(source)
                let backup = Task.detached {
                    try stanza.run(options + ["backup", "--start-fast", "--archive-timeout=6", "--repo1-retention-full=1"])
                }
                let clock = ContinuousClock()
                let deadline = clock.now + .seconds(20)
                while clock.now < deadline {
                    if let text = try? String(contentsOfFile: lockFile, encoding: .utf8), !text.isEmpty { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                let expire = try stanza.run(["expire", "--repo1-retention-full=1"])
                #expect(expire.status == Exit.lockHeld, "\(expire)")
                #expect(expire.stderr.contains("main-backup.lock"), "\(expire.stderr)")

                let backupResult = try await backup.value
                #expect(backupResult.status == Exit.archiveTimeout, "\(backupResult)")
                #expect(try stanza.labels() == [first])
                let directories = try FileManager.default.contentsOfDirectory(atPath: stanza.repository + "/backup/main")
                    .filter { $0.hasSuffix("F") }.sorted()
                #expect(directories.count == 2, "the interrupted backup left its directory: \(directories)")
                let interrupted = directories.first { $0 != first }!

                // With the lock free, expire keeps the newest unlisted directory (it could be a backup
                // running on another host) ...
                try stanza.check(["expire"])
                #expect(FileManager.default.fileExists(atPath: stanza.repository + "/backup/main/\(interrupted)"))

                // ... and removes it once a newer backup completed (expire-auto after the backup).
                _ = try source.psql("alter system set archive_command = \(quoteLiteral(stanza.archiveCommand))")
                _ = try source.psql("select pg_reload_conf()")
                let next = try stanza.backup(source, ["--repo1-retention-full=1"])
                #expect(try stanza.labels() == [next])
                let left = try FileManager.default.contentsOfDirectory(atPath: stanza.repository + "/backup/main")
                    .filter { $0.hasSuffix("F") }
                #expect(left == [next], "\(left)")
            }
        }
    }
}
