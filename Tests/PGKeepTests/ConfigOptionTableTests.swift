import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("Option table and values")
struct ConfigOptionTableTests {
    @Test("every default parses as its option's kind, for every command that reads it")
    func defaultsAreValid() {
        for definition in OptionTable.definitions.values {
            for command in definition.commands {
                guard let text = definition.defaultValue.text(for: command) else { continue }
                if case .failure(let problem) = definition.kind(for: command).parse(text) {
                    Issue.record("default '\(text)' of \(definition.name.rawValue) is invalid: \(problem.reason)")
                }
            }
        }
    }

    @Test("every boolean has a default and no required option has one")
    func tableConsistency() {
        for definition in OptionTable.definitions.values {
            if definition.kind == .bool { #expect(definition.defaultValue != .none, "\(definition.name.rawValue)") }
            if !definition.requiredFor.isEmpty { #expect(definition.defaultValue == .none, "\(definition.name.rawValue)") }
            #expect(definition.requiredFor.isSubset(of: definition.commands), "\(definition.name.rawValue)")
            // version takes one option, --output=num (pgBackRest's numeric version).
            #expect(!definition.commands.contains(.help) && (definition.name == .output || !definition.commands.contains(.version)), "\(definition.name.rawValue)")
        }
    }

    @Test("the pgBackRest defaults are kept")
    func pgBackRestDefaults() {
        #expect(OptionName.processMax.definition.kind == .int(1...999))
        #expect(OptionName.bufferSize.definition.defaultValue == .value("1MiB"))
        #expect(OptionName.logLevelConsole.definition.defaultValue == .value("warn"))
        #expect(OptionName.config.definition.sources == [.commandLine, .environment])
        #expect(OptionName.stanza.definition.sources == [.commandLine, .environment])
        #expect(OptionName.stanza.definition.requiredFor == [.stanzaCreate, .stanzaRepair, .stanzaUpgrade, .stanzaDelete, .check, .backup, .archivePush, .archiveGet, .restore, .verify, .expire, .annotate])
        #expect(OptionName.stanza.definition.commands.isSuperset(of: [.stop, .start]) && !OptionName.stanza.definition.requiredFor.contains(.stop))
        #expect(OptionName.stanza.definition.commands.contains(.info))
    }

    @Test("environment variable names are PGKEEP_ plus the upper-cased name with '-' as '_'")
    func environmentNames() {
        #expect(OptionName.repo1Path.environmentVariable == "PGKEEP_REPO1_PATH")
        #expect(OptionName.logLevelConsole.environmentVariable == "PGKEEP_LOG_LEVEL_CONSOLE")
    }

    @Test("sizes: bytes or k/kb/kib, m/mb/mib, g/gb/gib in any case, all powers of 1024")
    func sizeParsing() {
        #expect(OptionKind.parseSize("0") == 0)
        #expect(OptionKind.parseSize("16384") == 16384)
        #expect(OptionKind.parseSize("512b") == 512)
        for suffix in ["k", "kb", "kib", "K", "KB", "KiB", "kIB"] { #expect(OptionKind.parseSize("16" + suffix) == 16 * 1024, "\(suffix)") }
        for suffix in ["m", "mb", "mib", "M", "MB", "MiB"] { #expect(OptionKind.parseSize("3" + suffix) == 3 << 20, "\(suffix)") }
        for suffix in ["g", "gb", "gib", "G", "GiB"] { #expect(OptionKind.parseSize("2" + suffix) == 2 << 30, "\(suffix)") }
        for bad in ["", "1XB", "1.5MiB", "MiB", "1 MiB", "-1", "1t", "1mibs", "0x10", "99999999999999999999", "9223372036854775807k"] {
            #expect(OptionKind.parseSize(bad) == nil, "\(bad)")
        }
    }

    @Test("sizes are written in the largest exact binary unit")
    func sizeFormatting() {
        #expect(ProgressFormat.exactBytes(1 << 20) == "1MiB")
        #expect(ProgressFormat.exactBytes(1536 * 1024) == "1536KiB")
        #expect(ProgressFormat.exactBytes(64 << 20) == "64MiB")
        #expect(ProgressFormat.exactBytes(1000) == "1000")
        #expect(ProgressFormat.exactBytes(0) == "0")
    }

    @Test("each kind checks its text")
    func kinds() {
        #expect(OptionKind.int(1...9).parse("5") == .success(.int(5)))
        #expect(OptionKind.int(1...9).parse("5.0") == .failure(OptionValueProblem(reason: "not a whole number", allowed: "a whole number from 1 to 9")))
        #expect(OptionKind.seconds(0.1...10).parse("0.5") == .success(.seconds(0.5)))
        #expect(OptionKind.seconds(0.1...10).parse("nan").isFailure)
        #expect(OptionKind.seconds(0.1...10).parse("inf").isFailure)
        #expect(OptionKind.path.parse("/a/b//").isFailure)
        #expect(OptionKind.path.parse("/a/b/") == .success(.string("/a/b")))
        #expect(OptionKind.path.parse("/") == .success(.string("/")))
        #expect(OptionKind.name.parse("pg-16_main.a") == .success(.string("pg-16_main.a")))
        for bad in ["a/b", "a:b", ".a", "-a", "a b", "[a]", "global", ""] { #expect(OptionKind.name.parse(bad).isFailure, "\(bad)") }
        #expect(OptionKind.enumeration(["a", "b"]).parse("A").isFailure)
        #expect(OptionKind.bool.parse("Y").isFailure)
        #expect(OptionKind.string.parse("").isFailure)
    }

    @Test("a did-you-mean suggestion is offered only for a small edit")
    func suggestions() {
        #expect(Suggestion.closest(to: "bakup", among: CommandName.allCases.map(\.rawValue)) == "backup")
        #expect(Suggestion.closest(to: "archvie-push", among: CommandName.allCases.map(\.rawValue)) == "archive-push")
        #expect(Suggestion.closest(to: "restroe", among: CommandName.allCases.map(\.rawValue)) == "restore")
        #expect(Suggestion.closest(to: "list", among: CommandName.allCases.map(\.rawValue)) == nil)
        #expect(Suggestion.editDistance("ab", "ba") == 1)
    }
}

private extension Result {
    var isFailure: Bool { if case .failure = self { return true } else { return false } }
}
