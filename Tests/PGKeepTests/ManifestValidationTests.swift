import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("Manifest validation before restore")
struct ManifestValidationTests {
    @Test("a manifest as backup writes it passes")
    func sampleIsValid() throws {
        try ManifestSample.make().validateForRestore()
    }

    /// Each case changes one thing in a valid manifest; each must be refused, naming the entry.
    static let unsafe: [(String, String, @Sendable (inout Manifest) -> Void)] = [
        ("climbing out with ..", "pg_data/../../etc/cron.d/x", { $0.files[0].name = "pg_data/../../etc/cron.d/x" }),
        ("an absolute name", "/etc/passwd", { $0.files[0].name = "/etc/passwd" }),
        ("an empty component", "pg_data//base", { $0.paths[1].name = "pg_data//base" }),
        ("a name under no target", "pg_tblspc/99999/x", { $0.files[0].name = "pg_tblspc/99999/x" }),
        ("a duplicate name", "pg_data/PG_VERSION", { $0.files.append($0.files[1]) }),
        ("a file through the tablespace link", "pg_data/pg_tblspc/16384/evil", {
            $0.files[0].name = "pg_data/pg_tblspc/16384/evil"
        }),
        ("a link that is not a tablespace link", "pg_data/escape", {
            $0.links.append(.init(name: "pg_data/escape", destination: "/etc", user: nil, group: nil))
        }),
        ("a link target without its link", "pg_data/pg_wal", {
            $0.targets.append(.init(name: "pg_data/pg_wal", kind: .link, path: "/srv/wal", tablespaceOID: nil, tablespaceName: nil))
        }),
        ("a link target inside pg_tblspc", "pg_data/pg_tblspc/1", {
            $0.targets.append(.init(name: "pg_data/pg_tblspc/1", kind: .link, path: "/srv/x", tablespaceOID: nil, tablespaceName: nil))
        }),
        ("a link target at a relative location", "pg_data/pg_wal", {
            $0.targets.append(.init(name: "pg_data/pg_wal", kind: .link, path: "wal", tablespaceOID: nil, tablespaceName: nil))
            $0.links.append(.init(name: "pg_data/pg_wal", destination: "wal", user: nil, group: nil))
        }),
        ("a relative tablespace location", "../../srv", { $0.targets[1].path = "../../srv" }),
        ("a second data directory", "pg_data", {
            $0.targets.append(.init(name: "pg_data", kind: .dataDirectory, path: "/tmp/x", tablespaceOID: nil, tablespaceName: nil))
        }),
    ]

    @Test("unsafe names, links and targets are refused before anything is written", arguments: 0..<unsafe.count)
    func unsafeIsRefused(_ index: Int) throws {
        let (_, offending, change) = Self.unsafe[index]
        var manifest = ManifestSample.make()
        change(&manifest)
        do {
            try manifest.validateForRestore()
            Issue.record("accepted: \(Self.unsafe[index].0)")
        } catch {
            let failure = try #require(error as? PGKeepError)
            #expect(failure.code == .repositoryInvalid)
            #expect(failure.message.contains(offending) || failure.message.contains("data directory target"), "\(failure.message)")
            #expect(failure.hint?.contains("nothing was written") == true)
        }
    }
}

@Suite("Repository format versions")
struct FormatVersionTests {
    @Test("a manifest or info file written in a later format is refused, naming the format", arguments: [3, 0])
    func laterFormatRefused(_ format: Int) throws {
        var manifest = ManifestSample.make()
        manifest.format = format
        let bytes = try SealedFile.seal(manifest)
        let error = #expect(throws: PGKeepError.self) { try SealedFile.open(Manifest.self, from: bytes, name: "backup.manifest") }
        #expect(error?.code == .repositoryInvalid)
        #expect(error?.message.contains("format \(format)") == true, "\(error?.message ?? "")")

        var info = BackupInfo(current: DatabaseIdentity(id: 1, systemIdentifier: 7, version: 15, controlVersion: 1300, catalogVersion: 1))
        info.format = format == 3 ? 2 : format  // info files have no format 2
        #expect(throws: PGKeepError.self) { try SealedFile.open(BackupInfo.self, from: try SealedFile.seal(info), name: "backup.info") }
        // The current format opens.
        #expect(try SealedFile.open(Manifest.self, from: try SealedFile.seal(ManifestSample.make()), name: "m").format == RepositoryFormat.current)
    }
}

extension FormatVersionTests {
    @Test("verify's saved state in a later format is refused where every sealed file is judged, and verify then re-reads everything")
    func verifyStateOfLaterFormatIgnored() throws {
        var state = VerifyState(updated: 1)
        state.format = RepositoryFormat.current + 1
        let bytes = try SealedFile.seal(state)
        let error = #expect(throws: PGKeepError.self) { try SealedFile.open(VerifyState.self, from: bytes, name: "verify.state") }
        #expect(error?.message.contains("format \(RepositoryFormat.current + 1)") == true)
        let storage = MemoryStorage()
        let layout = try RepositoryLayout(stanza: "main")
        try storage.writeSmallFile(layout.verifyState, bytes)
        var warnings: [String] = []
        #expect(VerifyState.load(storage, layout, warn: { warnings.append($0) }) == nil)
        #expect(warnings.contains { $0.contains("format") && $0.contains("everything is verified") }, "\(warnings)")
    }
}

@Suite("Manifest confinement of tablespaces and modes")
struct ManifestConfinementTests {
    @Test("a tablespace link that points elsewhere than its target's recorded location is refused")
    func linkMustPointAtItsTarget() throws {
        var manifest = ManifestSample.make()
        manifest.links[0].destination = "/etc"
        let error = #expect(throws: PGKeepError.self) { try manifest.validateForRestore() }
        #expect(error?.message.contains("points to '/etc'") == true, "\(error?.message ?? "")")
    }

    @Test("two tablespace targets whose locations nest are refused")
    func nestedLocationsRefused() throws {
        var manifest = ManifestSample.make()
        var second = manifest.targets[1]
        second.name = "pg_tblspc/16999"
        second.path = manifest.targets[1].path + "/inner"
        manifest.targets.append(second)
        let error = #expect(throws: PGKeepError.self) { try manifest.validateForRestore() }
        #expect(error?.message.contains("overlap") == true, "\(error?.message ?? "")")
    }

    @Test("restored modes keep the permission bits and drop setuid, setgid and sticky")
    func modesLoseSpecialBits() {
        #expect(RestoreRun.permissions(0o4755) == 0o755)
        #expect(RestoreRun.permissions(0o2700) == 0o700)
        #expect(RestoreRun.permissions(0o1777) == 0o777)
        #expect(RestoreRun.permissions(0o600) == 0o600)
    }
}

@Suite("Recovery settings quoting")
struct RecoveryQuotingTests {
    @Test("a value with quotes and backslashes is written so PostgreSQL's configuration lexer reads it back unchanged")
    func quoteRoundTrips() {
        let command = "'/usr/bin/pgkeep' '--config=/etc/it'\\''s.conf' archive-get %f \"%p\""
        let line = "restore_command = '\(RecoveryConfig.quote(command))'"
        #expect(ArchiveSettings.parse(Substring(line))?.1 == command)
    }
}

@Suite("Manifest link targets (format 2)")
struct ManifestLinkTargetTests {
    /// The sample with its pg_wal directory recorded as a link to /srv/wal.
    static func linked() -> Manifest {
        var manifest = ManifestSample.make()
        manifest.format = RepositoryFormat.linkTargets
        manifest.targets.append(.init(name: "pg_data/pg_wal", kind: .link, path: "/srv/wal", tablespaceOID: nil, tablespaceName: nil))
        manifest.links.append(.init(name: "pg_data/pg_wal", destination: "/srv/wal", user: nil, group: nil))
        return manifest
    }

    @Test("a data-directory link with its target and its directory entry passes, and survives sealing in format 2")
    func linkedDirectoryIsValid() throws {
        let manifest = Self.linked()
        try manifest.validateForRestore()
        let opened = try SealedFile.open(Manifest.self, from: try SealedFile.seal(manifest), name: "backup.manifest")
        #expect(opened.format == 2 && opened.targets.contains { $0.kind == .link && $0.name == "pg_data/pg_wal" })
    }

    @Test("a link target nested in a tablespace location is refused")
    func linkInsideTablespaceRefused() throws {
        var manifest = Self.linked()
        manifest.targets[manifest.targets.count - 1].path = manifest.targets[1].path + "/wal"
        let error = #expect(throws: PGKeepError.self) { try manifest.validateForRestore() }
        #expect(error?.message.contains("overlap") == true, "\(error?.message ?? "")")
    }

    @Test("a link below another link is refused")
    func linkBelowLinkRefused() throws {
        var manifest = Self.linked()
        manifest.paths.append(.init(name: "pg_data/pg_wal/deeper", mode: 0o700, user: nil, group: nil))
        manifest.targets.append(.init(name: "pg_data/pg_wal/deeper", kind: .link, path: "/srv/deeper", tablespaceOID: nil, tablespaceName: nil))
        manifest.links.append(.init(name: "pg_data/pg_wal/deeper", destination: "/srv/deeper", user: nil, group: nil))
        let error = #expect(throws: PGKeepError.self) { try manifest.validateForRestore() }
        #expect(error?.message.contains("lies below the link") == true, "\(error?.message ?? "")")
    }

    @Test("entries below a kept link land at its location, plain links' entries in the data directory")
    func targetMapRoutesLinkedEntries() throws {
        let manifest = Self.linked()
        let kept = try TargetMap(manifest: manifest, dataDirectory: "/restore", linkAll: true)
        #expect(try kept.absolute("pg_data/pg_wal/archive_status") == "/srv/wal/archive_status")
        #expect(try kept.absolute("pg_data/pg_wal") == "/srv/wal")
        #expect(try kept.linkPath("pg_data/pg_wal") == "/restore/pg_wal")
        let plain = try TargetMap(manifest: manifest, dataDirectory: "/restore")
        #expect(try plain.absolute("pg_data/pg_wal/archive_status") == "/restore/pg_wal/archive_status")
        #expect(plain.plainLinks.map(\.name) == ["pg_data/pg_wal"])
        #expect(!plain.makes(manifest.links.last!) && plain.makes(manifest.links[0]))
    }
}

@Suite("Restore relocation: --tablespace-map, --tablespace-map-all, --link-map")
struct RestoreRelocationTests {
    static func manifest() -> Manifest {
        var manifest = ManifestLinkTargetTests.linked()
        manifest.targets.append(.init(name: "pg_tblspc/16390", kind: .tablespace, path: "/srv/ts2", tablespaceOID: 16390, tablespaceName: "ts2"))
        manifest.links.append(.init(name: "pg_data/pg_tblspc/16390", destination: "/srv/ts2", user: nil, group: nil))
        return manifest
    }

    @Test("a tablespace is mapped by name or by oid; its files and link follow, the others stay where recorded")
    func mapsByNameOrOID() throws {
        let byName = try TargetMap(manifest: Self.manifest(), dataDirectory: "/restore", relocation: .init(tablespaces: ["ts1": "/new/one"]))
        #expect(try byName.absolute("pg_tblspc/16384/PG_15_202209061/16385/16386") == "/new/one/PG_15_202209061/16385/16386")
        #expect(try byName.linkDestination(Self.manifest().links[0]) == "/new/one")
        #expect(byName.tablespaceLocations == ["/new/one", "/srv/ts2"])
        #expect(byName.relocated)
        let byOID = try TargetMap(manifest: Self.manifest(), dataDirectory: "/restore", relocation: .init(tablespaces: ["16390": "/new/two"]))
        #expect(byOID.tablespaceLocations == ["/new/two", "/srv/ts1"])
        let none = try TargetMap(manifest: Self.manifest(), dataDirectory: "/restore")
        #expect(!none.relocated)
    }

    @Test("--tablespace-map-all puts each tablespace under the directory by name; --tablespace-map wins where it maps")
    func mapAllByName() throws {
        let targets = try TargetMap(manifest: Self.manifest(), dataDirectory: "/restore",
                                    relocation: .init(tablespaces: ["ts2": "/elsewhere/two"], tablespacesUnder: "/all"))
        #expect(targets.tablespaceTargets.map(\.location) == ["/all/ts1", "/elsewhere/two"])
    }

    @Test("a tablespace the backup does not have is refused, listing the ones it has")
    func unknownTablespaceRefused() throws {
        let error = #expect(throws: PGKeepError.self) {
            try TargetMap(manifest: Self.manifest(), dataDirectory: "/restore", relocation: .init(tablespaces: ["ts9": "/x"]))
        }
        #expect(error?.code == .optionInvalid)
        #expect(error?.message.contains("'ts9'") == true && error?.hint?.contains("ts1 (oid 16384)") == true, "\(error?.hint ?? "")")
    }

    @Test("one tablespace mapped twice, by name and by oid, to two places is refused")
    func mappedTwiceRefused() throws {
        let error = #expect(throws: PGKeepError.self) {
            try TargetMap(manifest: Self.manifest(), dataDirectory: "/restore", relocation: .init(tablespaces: ["ts1": "/a", "16384": "/b"]))
        }
        #expect(error?.message.contains("twice") == true)
    }

    @Test("locations that overlap each other or the data directory are refused")
    func overlapsRefused() throws {
        for relocation in [RestoreOptions.Relocation(tablespaces: ["ts1": "/srv/ts2"]),
                           .init(tablespaces: ["ts1": "/restore/ts"]),
                           .init(tablespaces: ["ts1": "/srv/ts2/inner"]),
                           .init(links: ["pg_wal": "/srv/ts1"])] {
            let error = #expect(throws: PGKeepError.self) {
                try TargetMap(manifest: Self.manifest(), dataDirectory: "/restore", relocation: relocation)
            }
            #expect(error?.message.contains("overlaps") == true, "\(relocation): \(error?.message ?? "")")
        }
    }

    @Test("a location with '..' is refused")
    func dotDotRefused() throws {
        let error = #expect(throws: PGKeepError.self) {
            try TargetMap(manifest: Self.manifest(), dataDirectory: "/restore", relocation: .init(tablespaces: ["ts1": "/srv/../etc"]))
        }
        #expect(error?.message.contains("not a clean absolute path") == true)
    }

    @Test("a mapped link is made again, pointing to its new location, without --link-all")
    func linkMapMakesTheLink() throws {
        let manifest = Self.manifest()
        let targets = try TargetMap(manifest: manifest, dataDirectory: "/restore", relocation: .init(links: ["pg_wal": "/wal/new"]))
        #expect(targets.plainLinks.isEmpty)
        let link = try #require(manifest.links.first { $0.name == "pg_data/pg_wal" })
        #expect(targets.makes(link))
        #expect(try targets.linkDestination(link) == "/wal/new")
        #expect(try targets.absolute("pg_data/pg_wal/archive_status") == "/wal/new/archive_status")
    }

    @Test("a link the backup does not have is refused, listing the ones it has")
    func unknownLinkRefused() throws {
        let error = #expect(throws: PGKeepError.self) {
            try TargetMap(manifest: Self.manifest(), dataDirectory: "/restore", relocation: .init(links: ["pg_log": "/x"]))
        }
        #expect(error?.code == .optionInvalid)
        #expect(error?.hint?.contains("pg_wal") == true)
    }

    @Test("the tablespace_map for new locations has one '<oid> <location>' line each, backslash, newline and CR escaped")
    func tablespaceMapText() throws {
        let targets = try TargetMap(manifest: Self.manifest(), dataDirectory: "/restore",
                                    relocation: .init(tablespaces: ["ts1": "/new/a\\b", "ts2": "/new/line\nbreak\r"]))
        #expect(targets.tablespaceMapText == "16384 /new/a\\\\b\n16390 /new/line\\\nbreak\\\r\n")
    }
}
