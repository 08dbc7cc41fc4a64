import Foundation
import SystemPackage
import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

/// Resolves with a config file given as text (nil: the file does not exist) at any path.
private func resolve(_ arguments: [String], env: [String: String] = [:], file: String? = nil) throws -> Configuration {
    try Configuration.resolve(arguments: arguments, environment: env) { _ throws(Errno) in
        guard let file else { throw Errno.noSuchFileOrDirectory }
        return file
    }
}

/// The error resolution throws, or nil when it succeeds.
private func failure(_ arguments: [String], env: [String: String] = [:], file: String? = nil) -> PGKeepError? {
    do {
        _ = try resolve(arguments, env: env, file: file)
        return nil
    } catch let error as PGKeepError {
        return error
    } catch {
        Issue.record("unexpected error type: \(error)")
        return nil
    }
}

@Suite("Configuration: precedence")
struct ConfigPrecedenceTests {
    static let file = """
        [global]
        repo1-path=/repo/global
        process-max=2
        compress-type=none
        buffer-size=32KiB
        archive-timeout=5
        log-level-console=error

        [global:backup]
        repo1-path=/repo/global-backup
        process-max=3
        compress-type=zst
        buffer-size=64KiB
        archive-timeout=6

        [main]
        pg1-path=/pg/main
        repo1-path=/repo/main
        process-max=4
        compress-type=lz4
        buffer-size=128KiB

        [main:backup]
        repo1-path=/repo/main-backup
        process-max=5
        compress-type=none

        [other]
        pg1-path=/pg/other
        repo1-path=/repo/other
        """

    @Test("each option comes from the most specific source that sets it: command line, environment, [stanza:command], [stanza], [global:command], [global], default")
    func precedenceAcrossAllSources() throws {
        let config = try resolve(
            ["backup", "--stanza=main", "--repo1-path=/repo/cli"],
            env: ["PGKEEP_PROCESS_MAX": "9", "PGKEEP_REPO1_PATH": "/repo/env"],
            file: Self.file)
        #expect(config.command == .backup)
        #expect(config.string(.repo1Path) == "/repo/cli")
        #expect(config.source(of: .repo1Path) == .commandLine)
        #expect(config.int(.processMax) == 9)
        #expect(config.source(of: .processMax) == .environment(variable: "PGKEEP_PROCESS_MAX"))
        #expect(config.string(.compressType) == "none")
        #expect(config.source(of: .compressType) == .configFile(path: "/etc/pgkeep/pgkeep.conf", line: 26, section: "main:backup"))
        #expect(config.size(.bufferSize) == 128 * 1024)
        #expect(config.source(of: .bufferSize) == .configFile(path: "/etc/pgkeep/pgkeep.conf", line: 21, section: "main"))
        #expect(config.seconds(.archiveTimeout) == 6)
        #expect(config.source(of: .archiveTimeout) == .configFile(path: "/etc/pgkeep/pgkeep.conf", line: 14, section: "global:backup"))
        #expect(config.string(.logLevelConsole) == "error")
        #expect(config.source(of: .logLevelConsole) == .configFile(path: "/etc/pgkeep/pgkeep.conf", line: 7, section: "global"))
        #expect(config.string(.lockPath) == "/tmp/pgkeep")
        #expect(config.source(of: .lockPath) == .defaultValue)
        #expect(config.path(.pg1Path) == FilePath("/pg/main"))
        #expect(config.configFile == "/etc/pgkeep/pgkeep.conf")
    }

    @Test("the environment beats the config file and the command line beats the environment, option by option")
    func environmentBetweenCommandLineAndFile() throws {
        let file = "[global]\nrepo1-path=/repo/file\nlock-path=/lock/file\nlog-level-console=info\n"
        let config = try resolve(["info", "--lock-path=/lock/cli"],
                                 env: ["PGKEEP_REPO1_PATH": "/repo/env", "PGKEEP_LOCK_PATH": "/lock/env"], file: file)
        #expect(config.string(.lockPath) == "/lock/cli")
        #expect(config.string(.repo1Path) == "/repo/env")
        #expect(config.string(.logLevelConsole) == "info")
    }

    @Test("a [stanza:command] section applies only to that command, and another stanza's section is ignored")
    func sectionPerCommandOverrides() throws {
        let file = """
            [global]
            compress-type=zst
            [global:archive-push]
            compress-type=lz4
            [main:archive-push]
            compress-type=none
            [other:backup]
            compress-type=lz4
            """
        let push = try resolve(["archive-push", "--stanza=main", "pg_wal/000000010000000000000001"], file: file)
        #expect(push.string(.compressType) == "none")
        let pushOther = try resolve(["archive-push", "--stanza=other", "x"], file: file)
        #expect(pushOther.string(.compressType) == "lz4")
        let backup = try resolve(["backup", "--stanza=main", "--pg1-path=/pg"], file: file)
        #expect(backup.string(.compressType) == "zst")
        let backupOther = try resolve(["backup", "--stanza=other", "--pg1-path=/pg"], file: file)
        #expect(backupOther.string(.compressType) == "lz4")
    }

    @Test("an option in the file that the command does not read is ignored, so one file serves every command")
    func fileOptionForOtherCommandIgnored() throws {
        let file = "[global]\nstart-fast=y\ncompress-type=zst\noutput=json\n"
        let config = try resolve(["archive-get", "--stanza=main", "000000010000000000000001", "pg_wal/RECOVERYXLOG"], file: file)
        #expect(config.string(.compressType) == nil)
        #expect(config.string(.output) == nil)
        #expect(config.bool(.startFast) == false)
        #expect(config.arguments == ["000000010000000000000001", "pg_wal/RECOVERYXLOG"])
    }

    @Test("an environment option the command does not read is ignored")
    func environmentOptionForOtherCommandIgnored() throws {
        let config = try resolve(["info"], env: ["PGKEEP_START_FAST": "y", "PGKEEP_TYPE": "full", "PATH": "/usr/bin"])
        #expect(config.command == .info)
        #expect(config.isExplicit(.startFast) == false)
    }

    @Test("an unknown PGKEEP_ variable is a warning with a suggestion, never an error that would stall archiving")
    func unknownEnvironmentVariableWarns() throws {
        let config = try resolve(["archive-push", "--stanza=main", "pg_wal/000000010000000000000001"],
                                 env: ["PGKEEP_REPO1_PAHT": "/repo", "PGKEEP_BIN": "/x"])
        #expect(config.command == .archivePush)
        #expect(config.warnings.count == 2)
        #expect(config.warnings.contains { $0.contains("PGKEEP_BIN") && $0.contains("ignored") })
        #expect(config.warnings.contains { $0.contains("PGKEEP_REPO1_PAHT") && $0.contains("PGKEEP_REPO1_PATH") })
        #expect(config.isExplicit(.repo1Path) == false)
    }

    @Test("the stanza from the environment selects the stanza section")
    func stanzaFromEnvironment() throws {
        let file = "[main]\npg1-path=/pg/main\n"
        let config = try resolve(["backup"], env: ["PGKEEP_STANZA": "main"], file: file)
        #expect(config.string(.stanza) == "main")
        #expect(config.string(.pg1Path) == "/pg/main")
    }
}

@Suite("Configuration: command line")
struct ConfigCommandLineTests {
    @Test("options may stand before or after the command name")
    func optionsBeforeAndAfterCommand() throws {
        let before = try resolve(["--stanza=main", "archive-push", "%p"])
        let after = try resolve(["archive-push", "--stanza=main", "%p"])
        let mixed = try resolve(["--log-level-console=info", "archive-push", "pg_wal/x", "--stanza=main"])
        for config in [before, after, mixed] {
            #expect(config.command == .archivePush)
            #expect(config.string(.stanza) == "main")
            #expect(config.source(of: .stanza) == .commandLine)
        }
        #expect(before.arguments == ["%p"])
        #expect(after.arguments == ["%p"])
        #expect(mixed.arguments == ["pg_wal/x"])
        #expect(mixed.string(.logLevelConsole) == "info")
    }

    @Test("--name value takes the next word as the value")
    func nameSpaceValue() throws {
        let config = try resolve(["--stanza", "main", "backup", "--pg1-path", "/pg", "--compress-level", "-5"])
        #expect(config.string(.stanza) == "main")
        #expect(config.string(.pg1Path) == "/pg")
        #expect(config.int(.compressLevel) == -5)
        #expect(config.arguments.isEmpty)
    }

    @Test("a value option at the end of the command line without a value is an error")
    func missingValue() throws {
        let error = try #require(failure(["backup", "--stanza"]))
        #expect(error.code == .optionInvalid)
        #expect(error.message.contains("'--stanza'") && error.message.contains("needs a value"))
        let before = try #require(failure(["backup", "--pg1-path", "--stanza=main"]))
        #expect(before.message.contains("'--pg1-path'"))
    }

    @Test("booleans: --name, --no-name, --name=y, --name=n; anything else is refused")
    func booleanForms() throws {
        let base = ["backup", "--stanza=main", "--pg1-path=/pg"]
        #expect(try resolve(base).bool(.startFast) == false)
        #expect(try resolve(base + ["--start-fast"]).bool(.startFast) == true)
        #expect(try resolve(base + ["--start-fast=y"]).bool(.startFast) == true)
        #expect(try resolve(base + ["--start-fast=n"]).bool(.startFast) == false)
        #expect(try resolve(base + ["--no-start-fast"], env: ["PGKEEP_START_FAST": "y"]).bool(.startFast) == false)
        #expect(try resolve(base, env: ["PGKEEP_START_FAST": "y"]).bool(.startFast) == true)
        #expect(try resolve(base, file: "[global]\nstart-fast=y\n").bool(.startFast) == true)

        let word = try #require(failure(base + ["--start-fast=true"]))
        #expect(word.code == .optionInvalid)
        #expect(word.message.contains("'true'") && word.message.contains("start-fast") && word.message.contains("command line"))
        #expect(word.hint?.contains("y or n") == true)
        let negatedValue = try #require(failure(base + ["--no-start-fast=y"]))
        #expect(negatedValue.message.contains("--no-start-fast"))
        let fileWord = try #require(failure(base, file: "[global]\nstart-fast=on\n"))
        #expect(fileWord.message.contains("'on'") && fileWord.message.contains(":2"))
    }

    @Test("-- ends options: later words are positional even if they start with --")
    func doubleDashEndsOptions() throws {
        let config = try resolve(["--stanza=main", "archive-push", "--", "--odd-name"])
        #expect(config.arguments == ["--odd-name"])
    }

    @Test("an option given twice on the command line is an error")
    func repeatedOption() throws {
        let error = try #require(failure(["backup", "--stanza=a", "--stanza=b", "--pg1-path=/pg"]))
        #expect(error.code == .optionInvalid)
        #expect(error.message.contains("more than once"))
    }

    @Test("--help anywhere gives help for the command, even with mistakes elsewhere on the line")
    func helpFlag() throws {
        for arguments in [["backup", "--help"], ["--help", "backup"], ["-h", "backup", "--no-such-option"], ["backup", "--stanza", "--help"]] {
            let config = try resolve(arguments)
            #expect(config.command == .help)
            #expect(config.arguments == ["backup"])
            #expect(Help.text(for: config).contains("pgkeep backup:"))
        }
        #expect(try resolve(["--help"]).arguments.isEmpty)
        #expect(try resolve([]).command == .help)
        #expect(try resolve(["help", "restore"]).arguments == ["restore"])
        let unknown = try #require(failure(["help", "restor"]))
        #expect(unknown.code == .commandInvalid)
        #expect(unknown.hint?.contains("'restore'") == true)
    }

    @Test("--version is the version command and ignores the rest")
    func versionFlag() throws {
        #expect(try resolve(["--version"]).command == .version)
        #expect(try resolve(["backup", "--version"]).command == .version)
        #expect(try resolve(["version"], env: ["PGKEEP_BOGUS": "1"], file: "not an ini file").command == .version)
    }

    @Test("an unknown command is an error with a did-you-mean hint")
    func unknownCommand() throws {
        let error = try #require(failure(["bakup", "--stanza=main"]))
        #expect(error.code == .commandInvalid)
        #expect(error.message.contains("'bakup'"))
        #expect(error.hint?.contains("'backup'") == true)
    }

    @Test("positional arguments are counted: archive-push takes 1, archive-get 2, backup none")
    func positionalCounts() throws {
        #expect(try resolve(["archive-get", "--stanza=main", "000000010000000000000001", "pg_wal/RECOVERYXLOG"]).arguments.count == 2)
        let tooFew = try #require(failure(["archive-get", "--stanza=main", "000000010000000000000001"]))
        #expect(tooFew.code == .commandInvalid)
        #expect(tooFew.hint?.contains("<wal-file> <destination>") == true)
        let none = try #require(failure(["archive-push", "--stanza=main"]))
        #expect(none.message.contains("takes 1 argument"))
        let extra = try #require(failure(["backup", "--stanza=main", "--pg1-path=/pg", "full"]))
        #expect(extra.message.contains("'full'"))
    }
}

@Suite("Configuration: errors")
struct ConfigErrorTests {
    @Test("an unknown option on the command line is named, with a did-you-mean hint")
    func unknownOnCommandLine() throws {
        let error = try #require(failure(["backup", "--stanz=main"]))
        #expect(error.code == .optionInvalid)
        #expect(error.message.contains("'--stanz'") && error.message.contains("command line"))
        #expect(error.hint?.contains("did you mean '--stanza'") == true)
        let negated = try #require(failure(["backup", "--no-start-fats"]))
        #expect(negated.hint?.contains("'--no-start-fast'") == true)
        let far = try #require(failure(["backup", "--completely-different"]))
        #expect(far.hint?.contains("did you mean") == false)
        let short = try #require(failure(["backup", "-s", "main"]))
        #expect(short.message.contains("'-s'"))
    }

    @Test("names must match exactly: a lower-case PGKEEP_ variable is only warned about, its value unused")
    func environmentNamesMatchExactly() throws {
        // The exact-name rule: lower case is not the variable, so it is only a warning.
        let config = try resolve(["info"], env: ["PGKEEP_repo1_path": "/r"])
        #expect(config.isExplicit(.repo1Path) == false)
        #expect(config.warnings.count == 1)
    }

    @Test("an unknown key in the config file is named with file and line, in any section")
    func unknownInFile() throws {
        let file = "[global]\nrepo1-path=/r\n\n[elsewhere]\nrepo1-pth=/r\n"
        let error = try #require(failure(["info"], file: file))
        #expect(error.code == .optionInvalid)
        #expect(error.message.contains("'repo1-pth'") && error.message.contains("/etc/pgkeep/pgkeep.conf:5"))
        #expect(error.hint?.contains("'repo1-path'") == true)
    }

    @Test("stanza and config may not be set in the config file")
    func fileOnlyOptionsRefused() throws {
        let stanza = try #require(failure(["info"], file: "[global]\nstanza=main\n"))
        #expect(stanza.code == .optionInvalid)
        #expect(stanza.message.contains("'stanza'") && stanza.message.contains(":2"))
        #expect(stanza.hint?.contains("PGKEEP_STANZA") == true)
        #expect(failure(["info"], file: "[global]\nconfig=/x.conf\n") != nil)
    }

    @Test("bad section names are errors: unknown command, too many colons, bad stanza name")
    func badSections() throws {
        let command = try #require(failure(["info"], file: "[main:bakup]\nprocess-max=2\n"))
        #expect(command.code == .configFileInvalid)
        #expect(command.hint?.contains("[main:backup]") == true)
        #expect(failure(["info"], file: "[a:b:c]\n")?.code == .configFileInvalid)
        #expect(failure(["info"], file: "[.hidden]\n")?.code == .configFileInvalid)
    }

    @Test("an option in a [x:command] section that the command does not read is an error")
    func optionInWrongCommandSection() throws {
        let error = try #require(failure(["info"], file: "[global:archive-push]\nstart-fast=y\n"))
        #expect(error.code == .optionInvalid)
        #expect(error.message.contains("'start-fast'") && error.message.contains("archive-push"))
    }

    @Test("an option on the command line that the command does not accept is an error")
    func commandLineOptionNotForCommand() throws {
        let error = try #require(failure(["archive-push", "--stanza=main", "--type=full", "%p"]))
        #expect(error.code == .optionInvalid)
        #expect(error.message.contains("'--type'") && error.message.contains("'archive-push'"))
        #expect(error.hint?.contains("backup") == true)
        #expect(failure(["version", "--stanza=main"])?.code == .optionInvalid)
        #expect(failure(["info", "--delta"])?.code == .optionInvalid)
    }

    @Test("invalid values name the option, the value, the source and what is allowed")
    func invalidValues() throws {
        let base = ["backup", "--stanza=main", "--pg1-path=/pg"]

        let notNumber = try #require(failure(base + ["--process-max=many"]))
        #expect(notNumber.code == .optionInvalid)
        #expect(notNumber.message.contains("'many'") && notNumber.message.contains("'process-max'") && notNumber.message.contains("command line"))
        #expect(notNumber.hint?.contains("1 to 999") == true)

        let range = try #require(failure(base, env: ["PGKEEP_PROCESS_MAX": "1000"]))
        #expect(range.message.contains("'1000'") && range.message.contains("PGKEEP_PROCESS_MAX") && range.message.contains("out of range"))

        let word = try #require(failure(base, file: "[main]\ncompress-type=gzip\n"))
        #expect(word.message.contains("'gzip'") && word.message.contains("/etc/pgkeep/pgkeep.conf:2"))
        #expect(word.hint?.contains("none, lz4, zst") == true)

        let size = try #require(failure(base + ["--buffer-size=1XB"]))
        #expect(size.message.contains("'1XB'") && size.message.contains("not a size"))
        #expect(size.hint?.contains("16KiB") == true && size.hint?.contains("64MiB") == true)

        let small = try #require(failure(base + ["--buffer-size=1k"]))
        #expect(small.message.contains("out of range"))

        let seconds = try #require(failure(base + ["--archive-timeout=0.01"]))
        #expect(seconds.message.contains("'archive-timeout'"))

        let relative = try #require(failure(base + ["--repo1-path=repo"]))
        #expect(relative.message.contains("absolute"))

        let unknownType = try #require(failure(base + ["--type=differential"]))
        #expect(unknownType.hint?.contains("full") == true && unknownType.hint?.contains("incr") == true)
        #expect(failure(base + ["--type=incr"]) == nil)
        #expect(failure(base + ["--type=diff", "--delta"]) == nil)

        let stanza = try #require(failure(["info", "--stanza=../etc"]))
        #expect(stanza.message.contains("'stanza'"))
        #expect(failure(["info", "--stanza=global"]) != nil)

        let empty = try #require(failure(["info", "--repo1-path="]))
        #expect(empty.message.contains("empty"))
    }

    @Test("a missing required option says how to set it")
    func requiredMissing() throws {
        let stanza = try #require(failure(["backup", "--pg1-path=/pg"]))
        #expect(stanza.code == .optionRequired)
        #expect(stanza.message.contains("'stanza'") && stanza.message.contains("'backup'"))
        #expect(stanza.hint?.contains("--stanza") == true && stanza.hint?.contains("PGKEEP_STANZA") == true)
        #expect(stanza.hint?.contains("config file") == false)

        let pgPath = try #require(failure(["backup", "--stanza=main"]))
        #expect(pgPath.code == .optionRequired)
        #expect(pgPath.hint?.contains("--pg1-path") == true && pgPath.hint?.contains("PGKEEP_PG1_PATH") == true
                && pgPath.hint?.contains("[main] or [global] section of the config file (/etc/pgkeep/pgkeep.conf)") == true)

        // info works on every stanza when none is given.
        let info = try resolve(["info"])
        #expect(info.string(.stanza) == nil)
        #expect(info.string(.output) == "text")
    }

    @Test("an explicit config file that does not exist is an error naming the path; the default may be absent")
    func missingConfigFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pgkeep-missing-\(UUID().uuidString).conf").path
        do {
            _ = try Configuration.resolve(arguments: ["info", "--config=\(path)"], environment: [:])
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .configFileInvalid)
            #expect(error.message.contains(path) && error.message.contains("No such file or directory"))
            #expect(error.hint?.contains("--config") == true)
        }
        let fromEnvironment = try #require(failure(["info"], env: ["PGKEEP_CONFIG": path]))
        #expect(fromEnvironment.code == .configFileInvalid)
        #expect(fromEnvironment.hint?.contains("PGKEEP_CONFIG") == true)

        // The default path is read by the same reader; its absence is silent.
        let config = try resolve(["info"], file: nil)
        #expect(config.configFile == nil)
    }

    @Test("an explicit config file that exists is read from disk; an unreadable default path is an error")
    func realConfigFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pgkeep-\(UUID().uuidString).conf").path
        try "[global]\nrepo1-path=/from/disk\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let config = try Configuration.resolve(arguments: ["info", "--config", path], environment: [:])
        #expect(config.string(.repo1Path) == "/from/disk")
        #expect(config.configFile == path)

        let denied = try #require(throws: PGKeepError.self) {
            try Configuration.resolve(arguments: ["info"], environment: [:]) { _ throws(Errno) in throw Errno.permissionDenied }
        }
        #expect(denied.code == .configFileInvalid)
        #expect(denied.message.contains("/etc/pgkeep/pgkeep.conf") && denied.message.contains("Permission denied"))
    }
}

@Suite("Configuration: accessors and summary")
struct ConfigAccessorTests {
    @Test("isExplicit is true only for values the user set")
    func explicitness() throws {
        let config = try resolve(["backup", "--stanza=main"], env: ["PGKEEP_PG1_PATH": "/pg/"], file: "[global]\nprocess-max=2\n")
        #expect(config.isExplicit(.stanza))
        #expect(config.isExplicit(.pg1Path))
        #expect(config.isExplicit(.processMax))
        #expect(!config.isExplicit(.bufferSize))
        #expect(!config.isExplicit(.pg1User))
        #expect(config.source(of: .pg1User) == nil)
        #expect(config.string(.pg1Path) == "/pg")  // trailing slash dropped
    }

    @Test("the summary lists explicit options as --name=value, booleans as flags, secrets redacted")
    func summary() throws {
        let config = try resolve(["backup", "--stanza=main", "--pg1-path=/pg", "--start-fast", "--no-allow-root", "--buffer-size=2048k"])
        #expect(config.redactedSummary == "--stanza=main --pg1-path=/pg --buffer-size=2MiB --start-fast --no-allow-root")

        let quoted = Configuration(command: .restore, values: [.set: .init(value: .string("a b"), source: .commandLine)])
        #expect(quoted.redactedSummary == "--set=\"a b\"")
    }

    @Test("options named like secrets are recognised for redaction")
    func secretNames() {
        #expect(OptionDefinition.isSecret(name: "repo1-cipher-pass"))
        #expect(OptionDefinition.isSecret(name: "repo1-s3-key-secret"))
        #expect(!OptionDefinition.isSecret(name: "repo1-path"))
        #expect(!OptionDefinition.isSecret(name: "tls-server-key-file"), "a path to a key is not the key")
        #expect(OptionTable.definitions.values.allSatisfy { !$0.isSecret })
    }
}

@Suite("Configuration: retention options")
struct ConfigRetentionTests {
    @Test("retention options take pgBackRest's names and its older aliases, from every source")
    func retentionNames() throws {
        #expect(try resolve(["--stanza=main", "expire", "--repo1-retention-full=2"]).int(.repo1RetentionFull) == 2)
        #expect(try resolve(["--stanza=main", "expire", "--retention-full=3"]).int(.repo1RetentionFull) == 3)
        #expect(try resolve(["--stanza=main", "expire"], env: ["PGKEEP_RETENTION_DIFF": "4"]).int(.repo1RetentionDiff) == 4)
        let file = "[main]\nretention-archive=5\nrepo1-retention-archive-type=diff\n"
        let config = try resolve(["--stanza=main", "expire", "--config=/etc/x.conf"], file: file)
        #expect(config.int(.repo1RetentionArchive) == 5)
        #expect(config.string(.repo1RetentionArchiveType) == "diff")
        #expect(config.string(.repo1RetentionFullType) == "count")
        #expect(config.int(.repo1RetentionFull) == nil)
        // expire-auto is a backup option, on by default; --no-expire-auto turns it off.
        #expect(try resolve(["--stanza=main", "--pg1-path=/d", "backup"]).bool(.expireAuto))
        #expect(try !resolve(["--stanza=main", "--pg1-path=/d", "backup", "--no-expire-auto"]).bool(.expireAuto))
        #expect(failure(["--stanza=main", "expire", "--repo1-retention-full=0"])?.code == .optionInvalid)
        #expect(failure(["--stanza=main", "verify", "--dry-run"])?.code == .optionInvalid)
        #expect(failure(["--stanza=main", "expire", "--repo1-retention-full-type=weeks"])?.code == .optionInvalid)
        // --set has no default outside restore.
        #expect(try resolve(["--stanza=main", "verify"]).string(.set) == nil)
        #expect(try resolve(["--stanza=main", "--pg1-path=/d", "restore"]).string(.set) == "latest")
    }
}

@Suite("Configuration: the command word")
struct ConfigCommandWordTests {
    @Test("the command word is found without resolving anything, also where resolution would fail",
          arguments: [["archive-get", "000000010000000000000002", "pg_wal/RECOVERYXLOG"],
                      ["--stanza=main", "--config=/nowhere/pgkeep.conf", "archive-get", "a", "b"],
                      ["--stanza", "main", "archive-get", "a", "b"],
                      ["--no-such-option", "archive-get", "a"],
                      ["archive-get"]])
    func archiveGet(_ arguments: [String]) {
        #expect(Configuration.commandWord(in: arguments) == .archiveGet)
    }

    @Test("no command word, an unknown one, or another command is not archive-get")
    func notArchiveGet() {
        #expect(Configuration.commandWord(in: []) == nil)
        #expect(Configuration.commandWord(in: ["--stanza=main"]) == nil)
        #expect(Configuration.commandWord(in: ["archive-gte", "a", "b"]) == nil)
        #expect(Configuration.commandWord(in: ["archive-push", "archive-get"]) == .archivePush)
    }
}

@Suite("Configuration: key=value map options")
struct ConfigMapOptionTests {
    @Test("a map option given several times on the command line adds up its pairs")
    func commandLinePairsAddUp() throws {
        let config = try resolve(["restore", "--stanza=main", "--pg1-path=/pg", "--tablespace-map=ts1=/srv/a", "--tablespace-map=16390=/srv/b"])
        #expect(config.map(.tablespaceMap) == ["ts1": "/srv/a", "16390": "/srv/b"])
    }

    @Test("a map key given twice on the command line is refused, naming the key")
    func repeatedKeyRefused() throws {
        let error = try #require(failure(["restore", "--stanza=main", "--pg1-path=/pg", "--tablespace-map=ts1=/srv/a", "--tablespace-map=ts1=/srv/b"]))
        #expect(error.code == .optionInvalid)
        #expect(error.message.contains("'ts1' twice"), "\(error.message)")
    }

    @Test("a map value is checked by its kind: a relative location is refused")
    func valueKindChecked() throws {
        let error = try #require(failure(["restore", "--stanza=main", "--pg1-path=/pg", "--tablespace-map=ts1=srv/a"]))
        #expect(error.code == .optionInvalid)
        #expect(error.message.contains("not an absolute path"), "\(error.message)")
        let noKey = try #require(failure(["restore", "--stanza=main", "--pg1-path=/pg", "--tablespace-map=/srv/a"]))
        #expect(noKey.message.contains("not key=value"), "\(noKey.message)")
    }

    @Test("lines of one config-file section add up; a more specific section replaces the map as a whole")
    func fileSectionsAddUpWithin() throws {
        let file = """
            [global]
            tablespace-map=ts1=/global/a
            tablespace-map=ts2=/global/b
            [main:restore]
            link-map=pg_wal=/wal/main
            """
        let config = try resolve(["restore", "--stanza=main", "--pg1-path=/pg"], file: file)
        #expect(config.map(.tablespaceMap) == ["ts1": "/global/a", "ts2": "/global/b"])
        #expect(config.map(.linkMap) == ["pg_wal": "/wal/main"])
        let overridden = try resolve(["restore", "--stanza=main", "--pg1-path=/pg", "--tablespace-map=ts3=/cli"], file: file)
        #expect(overridden.map(.tablespaceMap) == ["ts3": "/cli"])
    }

    @Test("any other option set twice in one config-file section is still refused")
    func otherOptionsStayOnce() throws {
        let error = try #require(failure(["restore", "--stanza=main", "--pg1-path=/pg"], file: "[global]\nlink-all=y\nlink-all=n\n"))
        #expect(error.code == .configFileInvalid)
        #expect(error.message.contains("set twice"), "\(error.message)")
    }
}

@Suite("Configuration: annotations")
struct ConfigAnnotationTests {
    @Test("annotate reads --annotation=key= as the removal of key; the pairs add up")
    func annotateTakesEmptyValues() throws {
        let config = try resolve(["--stanza=main", "annotate", "--set=20261204-120000F", "--annotation=ticket=", "--annotation=owner=dba"])
        #expect(config.map(.annotation) == ["ticket": "", "owner": "dba"])
    }

    @Test("backup refuses --annotation=key= with nothing after '=': a backup has nothing to remove")
    func backupRefusesEmptyValues() {
        let error = failure(["--stanza=main", "backup", "--annotation=ticket="])
        #expect(error?.code == .optionInvalid)
        #expect(error?.message.contains("annotation") == true, "\(String(describing: error))")
    }

    @Test("annotate without --annotation is refused as a missing option")
    func annotateNeedsAnnotation() {
        #expect(failure(["--stanza=main", "annotate", "--set=20261204-120000F"])?.code == .optionRequired)
    }
}
