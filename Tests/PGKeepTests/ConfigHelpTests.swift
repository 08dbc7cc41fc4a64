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
        #expect(Help.usage(.version) == "pgkeep version")
    }

    @Test("general help lists every command with its summary")
    func generalHelp() {
        let text = Help.general()
        for command in CommandName.allCases { #expect(text.contains(command.rawValue) && text.contains(command.summary)) }
        #expect(Help.text(for: Configuration(command: .help, values: [:])) == text)
    }
}
