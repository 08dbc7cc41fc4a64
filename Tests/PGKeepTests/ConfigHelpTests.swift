import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("Help")
struct ConfigHelpTests {
    @Test("help for each command shows its usage and every option it accepts, and no other", arguments: CommandName.allCases)
    func commandHelpListsOptions(command: CommandName) {
        let text = Help.text(for: command)
        #expect(text.contains("pgkeep \(command.rawValue): \(command.summary)"))
        #expect(text.contains("Usage: \(Help.usage(command))"))
        for name in OptionName.allCases {
            let form = name.definition.kind == .bool ? "--[no-]\(name.rawValue)" : "--\(name.rawValue)="
            #expect(text.contains(form) == name.definition.commands.contains(command), "\(command.rawValue) / \(name.rawValue)")
        }
        for argument in command.positionals { #expect(text.contains("<\(argument.name)>")) }
    }

    @Test("option lines show ranges, defaults and what is required")
    func optionDetails() {
        let backup = Help.text(for: .backup)
        #expect(backup.contains("--process-max=<n>"))
        #expect(backup.contains("[1..999, default: 1]"))
        #expect(backup.contains("[16KiB..64MiB, default: 1MiB]"))
        #expect(backup.contains("--compress-type=none|lz4|zst"))
        #expect(backup.contains("--stanza=<name>") && backup.contains("[required]"))
        #expect(backup.contains("[global:backup]"))
        #expect(!Help.text(for: .info).contains("[required]"))
    }

    @Test("usage lines show positional arguments")
    func usageLines() {
        #expect(Help.usage(.archivePush) == "pgkeep [options] archive-push <wal-path>")
        #expect(Help.usage(.archiveGet) == "pgkeep [options] archive-get <wal-file> <destination>")
        #expect(Help.usage(.help) == "pgkeep help [<command>]")
        #expect(Help.usage(.version) == "pgkeep [options] version")
    }

    @Test("general help lists every command with its summary")
    func generalHelp() {
        let text = Help.general()
        for command in CommandName.allCases { #expect(text.contains(command.rawValue) && text.contains(command.summary)) }
        #expect(Help.text(for: Configuration(command: .help, values: [:])) == text)
    }
}

@Suite("Help per command")
struct ConfigHelpPerCommandTests {
    /// The help line of `--name` in `command`'s help.
    func line(_ name: String, in command: CommandName) -> String? {
        let lines = Help.text(for: command).split(separator: "\n").map(String.init)
        guard let index = lines.firstIndex(where: { $0.contains("--\(name)=") || $0.contains("--[no-]\(name)") }) else { return nil }
        // A long option name puts its description on the next line.
        let next = index + 1 < lines.count && !lines[index + 1].drop(while: { $0 == " " }).hasPrefix("--") ? " " + lines[index + 1] : ""
        return lines[index] + next
    }

    @Test("help restore describes --type as the recovery target type, help backup as the backup type")
    func typeMeansWhatTheCommandDoes() throws {
        let restore = try #require(line("type", in: .restore))
        #expect(restore.contains("recovery target type") && !restore.contains("backup type"), "\(restore)")
        let backup = try #require(line("type", in: .backup))
        #expect(backup.contains("backup type") && !backup.contains("recovery"), "\(backup)")
    }

    @Test("an option's help names no other command where it means something else there (--force, --delta, --dry-run, --set)")
    func noOtherCommandsText() throws {
        #expect(try #require(line("force", in: .stop)).contains("SIGTERM"))
        #expect(try !#require(line("force", in: .restore)).contains("stanza-repair"))
        #expect(try !#require(line("delta", in: .backup)).contains("restore over"))
        #expect(try !#require(line("dry-run", in: .expire)).contains("stanza-repair"))
        #expect(try #require(line("set", in: .expire)).contains("expire"))
    }

    @Test("per-command help lines exist only for commands that accept the option")
    func summariesBelongToTheirCommands() {
        for name in OptionName.allCases {
            let definition = name.definition
            #expect(Set(definition.commandSummaries.keys).isSubset(of: definition.commands), "\(name.rawValue)")
        }
    }
}
