import Foundation
import Testing
import TestSupport
import SystemPackage
@testable import PGKeepCore
@testable import PGKeepConfig

/// The man page and completions make install writes, generated from the command and option tables.
@Suite("Generated man page and completions")
struct HelpDocumentTests {
    @Test("the man page is roff with a title line and names every command and every option")
    func manPageIsComplete() {
        let page = Help.manPage()
        #expect(page.hasPrefix(".TH PGKEEP 1 "))
        for command in CommandName.allCases { #expect(page.contains(Help.roff(command.rawValue)), "\(command.rawValue)") }
        for option in OptionName.allCases {
            let form = option.definition.kind == .bool ? "--[no-]\(option.rawValue)" : "--\(option.rawValue)="
            #expect(page.contains(Help.roff(form)), "\(option.rawValue)")
        }
        #expect(!page.split(separator: "\n").contains { $0.hasPrefix(".") && !$0.hasPrefix(".TH") && !$0.hasPrefix(".SH") && !$0.hasPrefix(".TP") && !$0.hasPrefix(".B") },
                "every line starting with a dot is a macro")
    }

    @Test("pgkeep help man, bash-completion and zsh-completion resolve to the documents; another word is an unknown command")
    func helpTopics() throws {
        for document in Help.Document.allCases {
            let config = try Configuration.resolve(arguments: ["help", document.rawValue], environment: [:]) { _ throws(Errno) in
                throw Errno.noSuchFileOrDirectory
            }
            #expect(Help.text(for: config) == document.text)
        }
        #expect(throws: PGKeepError.self) {
            try Configuration.resolve(arguments: ["help", "manual"], environment: [:]) { _ throws(Errno) in throw Errno.noSuchFileOrDirectory }
        }
    }

    /// What bash completes for the words typed so far (the last one is completed).
    func bashCompletes(_ words: [String]) throws -> [String] {
        let directory = try TemporaryDirectory("completion")
        let script = try directory.write("pgkeep.bash", Array(Help.bashCompletion().utf8))
        let quoted = words.map { "'\($0)'" }.joined(separator: " ")
        let result = try Shell.run("/bin/bash", ["-c", "source '\(script)'; COMP_WORDS=(pgkeep \(quoted)); COMP_CWORD=\(words.count); _pgkeep; printf '%s\\n' \"${COMPREPLY[@]}\""]).check()
        return result.stdout.split(separator: "\n").map(String.init)
    }

    @Test("bash completes command names, then the options of the command on the line")
    func bashCompletion() throws {
        #expect(try bashCompletes(["stanza-"]).sorted() == ["stanza-create", "stanza-delete", "stanza-repair", "stanza-upgrade"])
        let options = try bashCompletes(["--stanza=main", "restore", "--target-"])
        #expect(options.contains("--target-action=") && options.contains("--target-timeline="), "\(options)")
        #expect(try bashCompletes(["backup", "--no-st"]) == ["--no-start-fast"])
        #expect(try bashCompletes(["archive-push", "--target"]).isEmpty, "archive-push takes no --target")
    }

    /// What the zsh completion offers for the words typed so far, run in zsh with `_describe` and
    /// `compadd` (zsh's completion builtins, which filter by the typed prefix) replaced by
    /// functions printing what they are given.
    func zshOffers(_ words: [String]) throws -> [String] {
        let directory = try TemporaryDirectory("completion")
        let script = try directory.write("_pgkeep", Array(Help.zshCompletion().utf8))
        let quoted = words.map { "'\($0)'" }.joined(separator: " ")
        let stubs = "_describe() { print -l -- ${(P)2%%:*} }; compadd() { shift 3; print -l -- \"$@\" }"
        let result = try Shell.run("/usr/bin/zsh", ["-f", "-c", "\(stubs); words=(pgkeep \(quoted)); CURRENT=\(words.count + 1); source '\(script)'"]).check()
        return result.stdout.split(separator: "\n").map(String.init)
    }

    @Test("zsh, running the completion, offers the commands first, then the options of the command on the line (make deps installs zsh)")
    func zshCompletionRuns() throws {
        #expect(try zshOffers(["sta"]).sorted() == CommandName.allCases.map(\.rawValue).sorted())
        let backup = try zshOffers(["--stanza=main", "backup", "--no-st"])
        #expect(backup.contains("--no-start-fast") && backup.contains("--annotation="), "\(backup)")
        let push = try zshOffers(["archive-push", "--ta"])
        #expect(!push.isEmpty && !push.contains("--target="), "archive-push takes no --target: \(push)")
    }

    @Test("the zsh completion names every command with its summary")
    func zshCompletion() {
        let text = Help.zshCompletion()
        #expect(text.hasPrefix("#compdef pgkeep"))
        for command in CommandName.allCases { #expect(text.contains("'\(command.rawValue):"), "\(command.rawValue)") }
    }
}
