import Testing
@testable import PGKeep

@Suite("Manifest validation before restore")
struct ManifestValidationTests {
    @Test("a manifest as backup writes it passes")
    func sampleIsValid() throws {
        try ManifestSample.make().validateForRestore()
    }

    /// Each case changes one thing in a valid manifest; each must be refused, naming the entry.
    static let unsafe: [(String, String, (inout Manifest) -> Void)] = [
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
    @Test("a manifest or info file written in a later format is refused, naming the format", arguments: [2, 0])
    func laterFormatRefused(_ format: Int) throws {
        var manifest = ManifestSample.make()
        manifest.format = format
        let bytes = try SealedFile.seal(manifest)
        let error = #expect(throws: PGKeepError.self) { try SealedFile.open(Manifest.self, from: bytes, name: "backup.manifest") }
        #expect(error?.code == .repositoryInvalid)
        #expect(error?.message.contains("format \(format)") == true, "\(error?.message ?? "")")

        var info = BackupInfo(current: DatabaseIdentity(id: 1, systemIdentifier: 7, version: 15, controlVersion: 1300, catalogVersion: 1))
        info.format = format
        #expect(throws: PGKeepError.self) { try SealedFile.open(BackupInfo.self, from: try SealedFile.seal(info), name: "backup.info") }
        // The current format opens.
        #expect(try SealedFile.open(Manifest.self, from: try SealedFile.seal(ManifestSample.make()), name: "m").format == RepositoryFormat.current)
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
