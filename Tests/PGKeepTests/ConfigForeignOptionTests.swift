import SystemPackage
import Testing
@testable import PGKeepCore
@testable import PGKeepConfig

/// pgBackRest's options pgkeep does not implement are refused wherever they appear, never
/// ignored (`ForeignOptions`): running without them would not do what they ask.
@Suite("pgBackRest options pgkeep lacks")
struct ConfigForeignOptionTests {
    static let push = ["archive-push", "--stanza=main", "pg_wal/000000010000000000000001"]

    func failure(_ arguments: [String], env: [String: String] = [:], file: String? = nil) -> PGKeepError? {
        do {
            _ = try Configuration.resolve(arguments: arguments, environment: env) { _ throws(Errno) in
                guard let file else { throw Errno.noSuchFileOrDirectory }
                return file
            }
            return nil
        } catch {
            return error
        }
    }

    func expectRefused(_ error: PGKeepError?, naming name: String, hint: String) {
        #expect(error?.code == .optionInvalid, "\(String(describing: error))")
        #expect(error?.message.contains("'\(name)'") == true && error?.message.contains("pgBackRest option pgkeep does not implement") == true,
                "\(String(describing: error))")
        #expect(error?.hint?.contains(hint) == true, "\(String(describing: error))")
    }

    @Test("PGKEEP_REPO1_CIPHER_TYPE in the environment is an error, not a warning: the command would write unencrypted")
    func cipherInEnvironment() {
        expectRefused(failure(Self.push, env: ["PGKEEP_REPO1_CIPHER_TYPE": "aes-256-cbc"]), naming: "repo1-cipher-type",
                      hint: "does not encrypt")
    }

    @Test("--repo1-type=s3 on the command line names the option as pgBackRest's and says the repository is a file system")
    func objectStorageOnTheCommandLine() {
        expectRefused(failure(Self.push + ["--repo1-type=s3"]), naming: "repo1-type", hint: "repo1-path")
        expectRefused(failure(Self.push + ["--repo1-s3-bucket=b"]), naming: "repo1-s3-bucket", hint: "object storage")
    }

    @Test("a pgBackRest option in the config file is refused with its file and line")
    func inTheConfigFile() {
        let error = failure(Self.push, file: "[global]\nrepo1-path=/r\nrepo1-host=backup1\n")
        expectRefused(error, naming: "repo1-host", hint: "over the network")
        #expect(error?.message.contains(":3") == true, "\(String(describing: error))")
    }

    @Test("a second repository or cluster (repo2-path, pg2-path) is refused: pgkeep has one of each per stanza")
    func indexedGroups() {
        expectRefused(failure(Self.push + ["--repo2-path=/r2"]), naming: "repo2-path", hint: "one repository")
        expectRefused(failure(Self.push, env: ["PGKEEP_PG2_PATH": "/d"]), naming: "pg2-path", hint: "one cluster")
    }

    @Test("the negated form of a lacking boolean (--no-archive-mode-check) is refused too")
    func negatedForm() {
        expectRefused(failure(Self.push + ["--no-archive-mode-check"]), naming: "archive-mode-check", hint: "not implemented yet")
    }

    @Test("an unknown PGKEEP_ name that is not pgBackRest's stays a warning")
    func strayVariableWarns() throws {
        let config = try Configuration.resolve(arguments: Self.push, environment: ["PGKEEP_BIN": "/x"]) { _ throws(Errno) in
            throw Errno.noSuchFileOrDirectory
        }
        #expect(config.warnings.contains { $0.contains("PGKEEP_BIN") })
    }

    @Test("pgBackRest's names of the bundle options are aliases of pgkeep's")
    func bundleAliases() throws {
        let config = try Configuration.resolve(arguments: ["backup", "--stanza=main", "--pg1-path=/d", "--repo1-bundle=n",
                                                           "--repo1-bundle-limit=1MiB"], environment: [:]) { _ throws(Errno) in
            throw Errno.noSuchFileOrDirectory
        }
        #expect(config.bool(.bundle) == false)
        #expect(config.size(.bundleLimit) == 1 << 20)
    }

    @Test("no listed name is an option or alias pgkeep implements")
    func listDoesNotShadowOptions() {
        for name in ForeignOptions.listedNames {
            #expect(OptionTable.lookup(name) == nil, "'\(name)' is implemented: take it off ForeignOptions")
        }
        for option in OptionName.allCases {
            #expect(ForeignOptions.hint(for: option.rawValue) == nil, "'\(option.rawValue)' is matched by ForeignOptions")
        }
    }
}

@Suite("version --output=num")
struct VersionNumberTests {
    @Test("version --output=num asks for pgBackRest's numeric form, major x 1 000 000 + minor x 1 000 + patch")
    func numericVersion() throws {
        let config = try Configuration.resolve(arguments: ["version", "--output=num"], environment: [:]) { _ throws(Errno) in
            throw Errno.noSuchFileOrDirectory
        }
        #expect(config.command == .version && config.string(.output) == "num")
        let parts = PGKeepVersion.current.split(separator: ".").compactMap { Int($0) }
        #expect(parts.count == 3 && PGKeepVersion.number == parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2])
        #expect(PGKeepVersion.number % 1_000 == parts.last, "the patch level is the last three digits")
    }

    @Test("version --output=json is refused: text and num are the forms version knows")
    func jsonIsNotAVersionForm() {
        #expect(throws: PGKeepError.self) {
            try Configuration.resolve(arguments: ["version", "--output=json"], environment: [:]) { _ throws(Errno) in
                throw Errno.noSuchFileOrDirectory
            }
        }
    }
}

@Suite("The config file checked whole")
struct ConfigFileWholeTests {
    func resolve(_ arguments: [String], file: String) throws(PGKeepError) -> Configuration {
        try Configuration.resolve(arguments: arguments, environment: [:]) { _ throws(Errno) in file }
    }

    @Test("an invalid value in a section the command does not read fails every command, naming file, line and option")
    func invalidValueAnywhere() {
        let file = "[global]\nrepo1-path=/r\n\n[global:backup]\ncompress-type=gz\n"
        let error = #expect(throws: PGKeepError.self) {
            try resolve(["archive-get", "--stanza=main", "000000010000000000000001", "pg_wal/RECOVERYXLOG"], file: file)
        }
        #expect(error?.code == .optionInvalid)
        #expect(error?.message.contains("'gz'") == true && error?.message.contains(":5") == true && error?.message.contains("compress-type") == true,
                "\(String(describing: error))")
    }

    @Test("a value one reading command accepts is valid in a shared section (type=time for restore, full for backup)")
    func valueValidForSomeCommand() throws {
        _ = try resolve(["info"], file: "[main]\ntype=time\n")
        _ = try resolve(["info"], file: "[main]\ntype=full\n")
        #expect(throws: PGKeepError.self) { try resolve(["info"], file: "[main]\ntype=weekly\n") }
    }

    @Test("a section that looks like a typo of [global] ([glabal]) is warned about with the meant name")
    func globalTypo() throws {
        let config = try resolve(["info", "--stanza=main"], file: "[glabal]\nrepo1-path=/r\n\n[main]\npg1-path=/d\n")
        #expect(config.warnings.count == 1 && config.warnings[0].contains("[glabal]") && config.warnings[0].contains("did you mean [global]?"),
                "\(config.warnings)")
    }

    @Test("a section naming a stanza the repository does not have ([mian:backup]) is warned about, naming the stanza meant; another stanza's is not")
    func strayStanzaSections() throws {
        let config = try resolve(["info", "--stanza=main"], file: "[mian:backup]\nstart-fast=y\n\n[other]\nrepo1-path=/o\n\n[main]\npg1-path=/d\n")
        #expect(config.otherStanzaSections.map(\.section) == ["mian:backup", "other"])
        let warnings = config.strayStanzaSections(known: ["main", "other"])
        #expect(warnings.count == 1, "\(warnings)")
        #expect(warnings.first?.contains("[mian:backup]") == true && warnings.first?.contains("a typo of [main:backup]?") == true, "\(warnings)")
    }

    @Test("a section for a stanza not created yet, like no stanza the repository has, is not warned about")
    func newStanzaSectionIsQuiet() throws {
        let config = try resolve(["info"], file: "[global]\nrepo1-path=/r\n\n[main]\npg1-path=/d\n")
        #expect(config.strayStanzaSections(known: []).isEmpty)
        #expect(config.strayStanzaSections(known: ["reporting"]).isEmpty)
    }
}
