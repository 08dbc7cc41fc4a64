import Foundation
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepMover
import PGKeepEngine
import PGKeepConfig
import Testing
import TestSupport

/// A restore may remove whatever is in its way (`--delta` removes every file the backup does not
/// have), so the destination must be proved to be this cluster's, or free, before anything is
/// written (Sources/PGKeep/Restore/RestoreDestination.swift). Each case runs on real clusters and
/// proves the refusal left everything as it was.
@Suite("Restore safety", .serialized)
struct RestoreSafetyTests {
    enum Exit {
        static let pathNotEmpty: Int32 = 36
        static let dbMismatch: Int32 = 53
        static let pgRunning: Int32 = 55
    }

    /// Every entry below `root` with its size and modification time, to prove nothing changed.
    static func snapshot(_ root: String) throws -> [String: String] {
        var entries: [String: String] = [:]
        guard let walker = FileManager.default.enumerator(atPath: root) else { return entries }
        for case let name as String in walker {
            let attributes = try FileManager.default.attributesOfItem(atPath: root + "/" + name)
            let size = attributes[.size] as? Int ?? -1
            let mtime = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            entries[name] = "\(attributes[.type] ?? "") \(size) \(mtime)"
        }
        return entries
    }

    /// The system identifier in a data directory's pg_control, as pg_controldata prints it.
    static func systemIdentifier(_ dataDirectory: String) throws -> String {
        let result = try Cluster.runTool("pg_controldata", [dataDirectory]).check()
        guard let line = result.stdout.split(separator: "\n").first(where: { $0.hasPrefix("Database system identifier:") }) else {
            throw HarnessError("pg_controldata printed no system identifier:\n\(result.stdout)")
        }
        return line.split(separator: ":").last!.trimmingCharacters(in: .whitespaces)
    }

    @Test("restore --delta into a new directory refuses the tablespace location of the running source cluster and leaves its files untouched")
    func deltaRefusesRunningClustersTablespace() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let location = try scratch.directory("tablespace", mode: 0o700)
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                _ = try source.psql("create tablespace one location '\(location)'")
                _ = try source.psql("create table in_one tablespace one as select g, md5(g::text) from generate_series(1, 20000) g")
                try stanza.backup(source)
                _ = try source.psql("checkpoint")
                let before = try Self.snapshot(location)

                let target = scratch.path("new-data")
                for extra in [["--delta"], ["--delta", "--plan"], ["--delta", "--force"]] {
                    let refused = try stanza.restore(into: target, extra)
                    #expect(refused.status == Exit.pgRunning, "\(extra): \(refused)")
                    #expect(refused.stderr.contains(location) && refused.stderr.contains(source.dataDirectory), "\(refused.stderr)")
                }
                #expect(try Self.snapshot(location) == before, "the running cluster's tablespace files are untouched")
                #expect(!FileManager.default.fileExists(atPath: target + "/global"), "nothing was restored")
                _ = try source.psql("checkpoint")
                #expect(try source.psql("select count(*) from in_one") == "20000")
            }
        }
    }

    @Test("restore --delta into a new directory refuses a tablespace location that holds files it does not link to; --force restores over it")
    func deltaRefusesUnlinkedTablespace() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let (_, location) = try await Self.tablespaceBackup(stanza, scratch: scratch, moveAway: false)
            // The source is stopped: no running server protects the location, only the link check does.
            let before = try Self.snapshot(location)
            let target = scratch.path("new-data")
            let refused = try stanza.restore(into: target, ["--delta"])
            #expect(refused.status == Exit.pathNotEmpty, "\(refused)")
            #expect(refused.stderr.contains("tablespace location '\(location)'") && refused.stderr.contains("--force"), "\(refused.stderr)")
            #expect(try Self.snapshot(location) == before)

            try stanza.restore(into: target, ["--delta", "--force"]).check()
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: target + "/pg_tblspc/" +
                (try FileManager.default.contentsOfDirectory(atPath: target + "/pg_tblspc")[0])) == location)
        }
    }

    @Test("restore --delta refuses a directory that is not a PostgreSQL data directory and leaves everything in it")
    func deltaRefusesNonDataDirectory() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            _ = try await Self.sourceBackup(stanza, scratch: scratch)
            // A parent directory: some files and a whole other cluster below it.
            let parent = try scratch.directory("srv", mode: 0o700)
            try scratch.writeFile("srv/notes.txt", contents: "precious")
            let other = try Cluster(name: "srv/other", scratch: scratch, archiveCommand: nil)
            let before = try Self.snapshot(parent)
            #expect(before.keys.contains("other/data/PG_VERSION"))

            let refused = try stanza.restore(into: parent, ["--delta"])
            #expect(refused.status == Exit.pathNotEmpty, "\(refused)")
            #expect(refused.stderr.contains(parent) && refused.stderr.contains("PG_VERSION"), "\(refused.stderr)")
            #expect(try Self.snapshot(parent) == before)
            _ = other
        }
    }

    @Test("restore --delta refuses another cluster's data directory (another system identifier) and leaves it intact; --force replaces it")
    func deltaRefusesAnotherCluster() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let (_, sourceIdentifier) = try await Self.sourceBackup(stanza, scratch: scratch)
            let other = try Cluster(name: "other", scratch: scratch, archiveCommand: nil)
            let otherIdentifier = try Self.systemIdentifier(other.dataDirectory)
            #expect(otherIdentifier != sourceIdentifier)
            let before = try Self.snapshot(other.dataDirectory)

            let refused = try stanza.restore(into: other.dataDirectory, ["--delta"])
            #expect(refused.status == Exit.dbMismatch, "\(refused)")
            #expect(refused.stderr.contains(otherIdentifier) && refused.stderr.contains(sourceIdentifier), "\(refused.stderr)")
            #expect(try Self.snapshot(other.dataDirectory) == before)
            let planned = try stanza.restore(into: other.dataDirectory, ["--delta", "--plan"])
            #expect(planned.status == Exit.dbMismatch, "\(planned)")

            try stanza.restore(into: other.dataDirectory, ["--delta", "--force"]).check()
            #expect(try Self.systemIdentifier(other.dataDirectory) == sourceIdentifier)
        }
    }

    @Test("restore --delta over the cluster's own stopped data directory with pg_wal linked elsewhere (initdb --waldir) keeps the link and recovers exactly")
    func deltaOverLinkedWALDirectory() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let walDirectory = scratch.path("wal-elsewhere")
            var expected: ClusterDump?
            let source = try Cluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand,
                                     initdbArguments: ["--waldir=\(walDirectory)"])
            try await withCluster(source) { source in
                try stanza.create(source)
                _ = try source.psql("create table t as select g from generate_series(1, 10000) g")
                try stanza.backup(source)
                _ = try source.psql("insert into t select g from generate_series(1, 500) g")
                try await source.switchWALAndWaitForArchive()
                expected = try source.dumpAllDatabases()
            }
            let data = source.dataDirectory
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: data + "/pg_wal") == walDirectory)

            let result = try stanza.restore(into: data, ["--delta"])
            #expect(result.status == 0, "\(result)")
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: data + "/pg_wal") == walDirectory,
                    "pg_wal is still the link initdb made")
            let restored = try Cluster(name: "restored", scratch: scratch, existingDataDirectory: data, extraConf: ["archive_mode = off"])
            try await withCluster(restored) { restored in
                try await restored.waitForRecoveryEnd()
                #expect(try restored.dumpAllDatabases().difference(from: try #require(expected)) == nil)
            }
        }
    }

    @Test("restore --link-map=pg_wal=<path> into a new directory makes pg_wal a link to that path, not to the source's, and recovers exactly")
    func linkMapMovesTheLinkedWALDirectory() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let walDirectory = scratch.path("wal-elsewhere")
            let mapped = scratch.path("wal-mapped")
            let target = scratch.path("new-data")
            var expected: ClusterDump?
            let source = try Cluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand,
                                     initdbArguments: ["--waldir=\(walDirectory)"])
            try await withCluster(source) { source in
                try stanza.create(source)
                _ = try source.psql("create table t as select g from generate_series(1, 10000) g")
                try stanza.backup(source)
                _ = try source.psql("insert into t select g from generate_series(1, 500) g")
                try await source.switchWALAndWaitForArchive()
                expected = try source.dumpAllDatabases()
                // Beside the running source: the mapped location is the only one written outside the target.
                try stanza.restore(into: target, ["--link-map=pg_wal=\(mapped)"]).check()
                #expect(try FileManager.default.destinationOfSymbolicLink(atPath: target + "/pg_wal") == mapped)
                #expect(FileManager.default.fileExists(atPath: mapped + "/archive_status"))
            }
            let restored = try Cluster(name: "restored", scratch: scratch, existingDataDirectory: target, extraConf: ["archive_mode = off"])
            try await withCluster(restored) { restored in
                try await restored.waitForRecoveryEnd()
                #expect(try restored.dumpAllDatabases().difference(from: try #require(expected)) == nil)
            }
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: source.dataDirectory + "/pg_wal") == walDirectory)
        }
    }

    @Test("restore --plan refuses what the restore refuses: a non-empty directory (36) and, with --delta, a running server (55)")
    func planChecksTheDestination() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                try stanza.backup(source)

                let occupied = try scratch.directory("occupied", mode: 0o700)
                try scratch.writeFile("occupied/keep-me", contents: "x")
                let plan = try stanza.restore(into: occupied, ["--plan"])
                #expect(plan.status == Exit.pathNotEmpty, "\(plan)")
                #expect(plan.stdout.contains("PROBLEM") && plan.stdout.contains(occupied), "\(plan.stdout)")

                let running = try stanza.restore(into: source.dataDirectory, ["--plan", "--delta", "--output=json"])
                #expect(running.status == Exit.pgRunning, "\(running)")
                #expect(running.stdout.contains("\"pg-running\""), "\(running.stdout)")

                let free = try stanza.restore(into: scratch.path("free"), ["--plan"])
                #expect(free.status == 0 && free.stdout.contains("restorable"), "\(free)")
            }
        }
    }

    /// A stopped source cluster with one backup: its label and system identifier.
    @Test("restore --tablespace-map beside the running source puts the tablespace at the new location, rewrites tablespace_map, recovers exactly and leaves the source's tablespace alone")
    func tablespaceMapRestoresBesideTheRunningSource() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let location = try scratch.directory("tablespace", mode: 0o700)
            let moved = scratch.path("moved-tablespace")
            let target = scratch.path("new-data")
            var expected: ClusterDump?
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                _ = try source.psql("create tablespace one location '\(location)'")
                _ = try source.psql("create table in_one tablespace one as select g, md5(g::text) from generate_series(1, 20000) g")
                try stanza.backup(source)
                _ = try source.psql("insert into in_one select g, 'after' from generate_series(1, 500) g")
                try await source.switchWALAndWaitForArchive()
                expected = try source.dumpAllDatabases()
                let oid = try source.psql("select oid from pg_tablespace where spcname = 'one'")

                // A name the backup does not have is refused by the plan and the restore alike.
                for extra in [["--plan"], []] {
                    let refused = try stanza.restore(into: target, extra + ["--tablespace-map=two=\(moved)"])
                    #expect(refused.status == 20, "\(extra): \(refused)")
                    #expect(refused.stderr.contains("'two'") && refused.stderr.contains("one (oid \(oid))"), "\(refused.stderr)")
                }
                #expect(!FileManager.default.fileExists(atPath: target + "/global"), "nothing was restored")

                let relation = try source.psql("select pg_relation_filepath('in_one')")  // pg_tblspc/<oid>/PG_15_.../5/<relfilenode>
                let inLocation = relation.split(separator: "/").dropFirst(2).joined(separator: "/")
                try stanza.restore(into: target, ["--tablespace-map=one=\(moved)"]).check()
                #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "\(target)/pg_tblspc/\(oid)") == moved)
                #expect(try String(contentsOfFile: target + "/tablespace_map", encoding: .utf8) == "\(oid) \(moved)\n")
                #expect(FileManager.default.fileExists(atPath: moved + "/" + inLocation), "the table's file is at the new location")
                #expect(FileManager.default.fileExists(atPath: location + "/" + inLocation), "the source's copy is still in place")

                let cluster = try Cluster(name: "moved", scratch: scratch, existingDataDirectory: target, extraConf: ["archive_mode = off"])
                try await withCluster(cluster) { cluster in
                    try await cluster.waitForRecoveryEnd()
                    // Only the tablespace's location differs from the source.
                    var source = try #require(expected)
                    source.globals = source.globals.replacingOccurrences(of: "LOCATION '\(location)'", with: "LOCATION '\(moved)'")
                    let difference = try cluster.dumpAllDatabases().difference(from: source)
                    #expect(difference == nil, "\(difference ?? "")")
                    #expect(try cluster.psql("select pg_tablespace_location(oid) from pg_tablespace where spcname = 'one'") == moved)
                }
                #expect(try source.psql("select count(*) from in_one") == "20500")
            }
        }
    }

    static func sourceBackup(_ stanza: TestStanza, scratch: Scratch) async throws -> (label: String, systemIdentifier: String) {
        try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
            try stanza.create(source)
            return (try stanza.backup(source), try Self.systemIdentifier(source.dataDirectory))
        }
    }

    /// Loads the backup's sealed manifest, lets `change` alter it, and seals it back (both copies),
    /// as someone with write access to the repository could.
    static func tamper(_ stanza: TestStanza, label: String, _ change: (inout Manifest) -> Void) throws {
        let storage = PosixStorage(root: stanza.repository)
        let layout = try RepositoryLayout(stanza: stanza.name)
        let path = try layout.manifest(label: try #require(BackupLabel(label)))
        var manifest = try #require(try SealedFile.load(Manifest.self, from: path, in: storage))
        change(&manifest)
        try SealedFile.save(manifest, to: path, in: storage)
    }

    /// A stopped source with a tablespace and one backup; with `moveAway` the tablespace location
    /// is moved away so that a plain restore may recreate it. Returns the backup's label and the location.
    static func tablespaceBackup(_ stanza: TestStanza, scratch: Scratch, moveAway: Bool = true) async throws -> (label: String, location: String) {
        let location = try scratch.directory("tablespace", mode: 0o700)
        var label = ""
        try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
            try stanza.create(source)
            _ = try source.psql("create tablespace one location '\(location)'")
            _ = try source.psql("create table in_one tablespace one as select g from generate_series(1, 1000) g")
            label = try stanza.backup(source)
        }
        if moveAway { try FileManager.default.moveItem(atPath: location, toPath: location + ".moved") }
        return (label, location)
    }

    @Test("as root, a tampered manifest whose tablespace points at a directory holding files is refused before anything is written",
          .enabled(if: PostgresUser.isRoot, "restore as root needs root"))
    func tamperedTablespaceTargetRefusedAsRoot() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let (label, _) = try await Self.tablespaceBackup(stanza, scratch: scratch)
            let victim = try scratch.directory("victim", mode: 0o755)
            try scratch.writeFile("victim/passwd", contents: "root:x:0:0")
            let before = try Self.snapshot(victim)
            try Self.tamper(stanza, label: label) { manifest in
                let index = manifest.targets.firstIndex { $0.kind == .tablespace }!
                manifest.targets[index].path = victim
                manifest.links[0].destination = victim
            }
            let target = scratch.path("restored")
            let refused = try Shell.run(stanza.binary.path, stanza.common + ["--pg1-path=\(target)", "restore"])
            #expect(refused.status == Exit.pathNotEmpty, "\(refused)")
            #expect(refused.stderr.contains(victim), "\(refused.stderr)")
            #expect(try Self.snapshot(victim) == before)
            #expect(!FileManager.default.fileExists(atPath: target + "/PG_VERSION"))

            // A link that points elsewhere than its own target is refused outright.
            try Self.tamper(stanza, label: label) { manifest in manifest.links[0].destination = "/etc" }
            let inconsistent = try Shell.run(stanza.binary.path, stanza.common + ["--pg1-path=\(target)", "restore"])
            #expect(inconsistent.status == 64, "\(inconsistent)")
            #expect(inconsistent.stderr.contains("points to '/etc'"), "\(inconsistent.stderr)")
        }
    }

    @Test("as root, modes a manifest records with setuid, setgid or sticky bits are restored without them",
          .enabled(if: PostgresUser.isRoot, "restore as root needs root"))
    func setuidBitsStrippedAsRoot() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let (label, _) = try await Self.sourceBackup(stanza, scratch: scratch)
            try Self.tamper(stanza, label: label) { manifest in
                let file = manifest.files.firstIndex { $0.name == "pg_data/PG_VERSION" }!
                manifest.files[file].mode = 0o6755
                let path = manifest.paths.firstIndex { $0.name == "pg_data/base" }!
                manifest.paths[path].mode = 0o1777
            }
            let target = scratch.path("restored")
            try Shell.run(stanza.binary.path, stanza.common + ["--pg1-path=\(target)", "restore"]).check()
            let fileMode = try FileManager.default.attributesOfItem(atPath: target + "/PG_VERSION")[.posixPermissions] as? Int
            let directoryMode = try FileManager.default.attributesOfItem(atPath: target + "/base")[.posixPermissions] as? Int
            #expect(fileMode == 0o755 && directoryMode == 0o777, "\(String(fileMode ?? 0, radix: 8)) \(String(directoryMode ?? 0, radix: 8))")
        }
    }

    @Test("a config file path with a single quote gives a restore_command PostgreSQL parses and runs: recovery completes")
    func quotedConfigPathRecovers() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            var expected: ClusterDump?
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                _ = try source.psql("create table t as select g from generate_series(1, 1000) g")
                try stanza.backup(source)
                _ = try source.psql("insert into t select g from generate_series(1, 77) g")
                try await source.switchWALAndWaitForArchive()
                expected = try source.dumpAllDatabases()
            }
            try scratch.directory("it's here", mode: 0o755)
            let config = try scratch.writeFile("it's here/pgkeep.conf", contents: "[global]\nlog-level-console=warn\n")
            let data = scratch.path("restored")
            try stanza.restore(into: data, ["--config=\(config)"]).check()
            let restored = try Cluster(name: "restored", scratch: scratch, existingDataDirectory: data, extraConf: ["archive_mode = off"])
            try await withCluster(restored) { restored in
                try await restored.waitForRecoveryEnd()
                #expect(try restored.dumpAllDatabases().difference(from: try #require(expected)) == nil)
            }
        }
    }

    @Test("a linked pg_wal and a linked postgresql.conf are recorded (format 2); a restore makes plain ones and says so; --link-all makes the links again, refused while their locations hold the source's files")
    func linksAreRecordedAndRestored() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            let walDirectory = scratch.path("wal-elsewhere")
            let etc = try scratch.directory("etc", mode: 0o700)
            var expected: ClusterDump?
            var label = ""
            let source = try Cluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand,
                                     initdbArguments: ["--waldir=\(walDirectory)"])
            let linkedConf = etc + "/postgresql.conf"
            try Shell.run("sh", ["-c", "mv \"$1/postgresql.conf\" \"$2\" && ln -s \"$2\" \"$1/postgresql.conf\"", "link",
                                 source.dataDirectory, linkedConf], asPostgres: true).check()
            try await withCluster(source) { source in
                try stanza.create(source)
                _ = try source.psql("create table t as select g from generate_series(1, 5000) g")
                label = try stanza.backup(source)
                _ = try source.psql("insert into t select g from generate_series(1, 50) g")
                try await source.switchWALAndWaitForArchive()
                expected = try source.dumpAllDatabases()
            }
            let backupLabel = try #require(BackupLabel(label))
            let manifestPath = try RepositoryLayout(stanza: stanza.name).manifest(label: backupLabel)
            let loaded = try SealedFile.load(Manifest.self, from: manifestPath, in: PosixStorage(root: stanza.repository))
            let manifest = try #require(loaded)
            #expect(manifest.format == 2)
            #expect(Set(manifest.targets.filter { $0.kind == .link }.map(\.name)) == ["pg_data/pg_wal", "pg_data/postgresql.conf"])
            #expect(manifest.targets.first { $0.name == "pg_data/pg_wal" }?.path == walDirectory)

            // Default: plain directory and file, said in the log.
            let plain = scratch.path("plain")
            let restored = try stanza.restore(into: plain, ["--log-level-console=info"]).check()
            #expect(restored.stderr.contains("'pg_data/pg_wal' was a link to '\(walDirectory)'") && restored.stderr.contains("--link-all"),
                    "\(restored.stderr)")
            #expect(try FileManager.default.attributesOfItem(atPath: plain + "/pg_wal")[.type] as? FileAttributeType == .typeDirectory)
            #expect(try FileManager.default.attributesOfItem(atPath: plain + "/postgresql.conf")[.type] as? FileAttributeType == .typeRegular)
            #expect(try String(contentsOfFile: plain + "/postgresql.conf", encoding: .utf8) == String(contentsOfFile: linkedConf, encoding: .utf8))

            // --link-all while the locations hold the stopped source's WAL and configuration: refused.
            let before = try Self.snapshot(walDirectory)
            let refused = try stanza.restore(into: scratch.path("linked"), ["--link-all"])
            #expect(refused.status == Exit.pathNotEmpty, "\(refused)")
            #expect(refused.stderr.contains("linked directory '\(walDirectory)'"), "\(refused.stderr)")
            #expect(try Self.snapshot(walDirectory) == before)

            // On a host where the locations are free (moved away here), --link-all makes both links.
            try FileManager.default.moveItem(atPath: walDirectory, toPath: walDirectory + ".moved")
            try FileManager.default.moveItem(atPath: linkedConf, toPath: linkedConf + ".moved")
            let linked = scratch.path("linked")
            try stanza.restore(into: linked, ["--link-all"]).check()
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: linked + "/pg_wal") == walDirectory)
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: linked + "/postgresql.conf") == linkedConf)
            #expect(FileManager.default.fileExists(atPath: walDirectory + "/archive_status"))
            let cluster = try Cluster(name: "linked", scratch: scratch, existingDataDirectory: linked, extraConf: ["archive_mode = off"])
            try await withCluster(cluster) { cluster in
                try await cluster.waitForRecoveryEnd()
                #expect(try cluster.dumpAllDatabases().difference(from: try #require(expected)) == nil)
            }
        }
    }
}
