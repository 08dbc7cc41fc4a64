import SystemPackage
import PGKeepCore

/// Resolution: from argv, the environment and the config file to a checked `Configuration`.
///
/// 1. Parse the command line. Options (`--name=value`, `--name value`, `--name`, `--no-name`) may
///    stand before or after the command name; other words are the command, then its positional
///    arguments; `--` ends options. `--help`/`-h` anywhere means `help <command>` and `--version`
///    means `version`; either skips every other check, so help always works.
/// 2. Check the command line: each option known, given once, accepted by the command, allowed on
///    the command line, with a valid value; the positional count matches the command.
/// 3. Read `PGKEEP_*` variables. An unknown name is an error; an option the command does not accept
///    is ignored, so one environment serves every command.
/// 4. Read the config file: `--config`, else `PGKEEP_CONFIG`, else the default path (which may be
///    absent). Every key in every section must be a known option that may live in the file; values
///    are checked in the sections this command reads.
/// 5. For each option the command accepts, the first source that sets it wins: command line,
///    environment, `[stanza:command]`, `[stanza]`, `[global:command]`, `[global]`, default.
/// 6. Options the command requires (`stanza`, `pg1-path`) must have a value.
///
/// Every error names the option, the value and where it came from (command line, environment
/// variable, file:line), with a did-you-mean hint for a small typo.
extension Configuration {
    /// Resolves a configuration.
    ///
    /// - Parameters:
    ///   - arguments: argv without the program name.
    ///   - environment: the environment; only `PGKEEP_*` names are read.
    ///   - readFile: reads the config file; tests pass a closure returning the text.
    public static func resolve(arguments: [String], environment: [String: String],
                               readFile: ConfigFileReader = Configuration.readFile) throws(PGKeepError) -> Configuration {
        let commandLine = CommandLineParse(arguments)

        if commandLine.helpRequested || commandLine.command == .help {
            return try helpConfiguration(commandLine)
        }
        if commandLine.versionRequested {
            return Configuration(command: .version, values: [:])
        }
        if let error = commandLine.errors.first { throw error }
        guard let command = commandLine.command else {
            // `pgkeep` alone, or options without a command: show what there is to run.
            return Configuration(command: .help, values: [:])
        }

        var values: [OptionName: ResolvedOption] = [:]
        try applyCommandLine(commandLine, command: command, into: &values)
        // `version` reads nothing else, so a broken environment or file never hides the version.
        if command == .version { return Configuration(command: .version, values: values) }
        var warnings = try applyEnvironment(environment, command: command, into: &values)
        let stanza = values[.stanza].flatMap { if case .string(let name) = $0.value { return name } else { return nil } }
        let file = try loadConfigFile(values[.config], command: command, readFile: readFile)
        if let file {
            try applyConfigFile(file, command: command, stanza: stanza, into: &values)
            warnings += sectionWarnings(file, stanza: stanza)
        }
        try applyDefaults(command: command, into: &values)
        try checkRequired(command: command, stanza: stanza, values: values,
                          configPath: file?.path ?? values[.config]?.value.text ?? OptionName.config.definition.defaultValue.text(for: command))
        var configuration = Configuration(command: command, arguments: commandLine.positionals, configFile: file?.path, values: values,
                                          warnings: warnings)
        if let file { configuration.otherStanzaSections = otherStanzaSections(file, stanza: stanza) }
        return configuration
    }

    /// The command word on the command line, if there is a valid one, read without resolving
    /// anything else. The CLI needs it when resolution itself fails: an `archive-get` whose
    /// config file is broken must still exit with `archive-get`'s fatal status.
    public static func commandWord(in arguments: [String]) -> CommandName? {
        CommandLineParse(arguments).command
    }

    // MARK: Steps

    /// Step 2: the command line's options, each allowed there and accepted by `command`, and the
    /// number of positional arguments.
    private static func applyCommandLine(_ commandLine: CommandLineParse, command: CommandName,
                                         into values: inout [OptionName: ResolvedOption]) throws(PGKeepError) {
        for option in commandLine.options {
            let definition = option.definition
            guard definition.sources.contains(.commandLine) else {
                throw PGKeepError(.optionInvalid, "option '--\(definition.name.rawValue)' cannot be given on the command line",
                                  hint: "set it in the config file or as \(definition.name.environmentVariable)")
            }
            guard definition.commands.contains(command) else {
                let users = CommandName.allCases.filter(definition.commands.contains).map(\.rawValue)
                throw PGKeepError(.optionInvalid, "option '--\(definition.name.rawValue)' is not valid for command '\(command.rawValue)'",
                                  hint: "--\(definition.name.rawValue) applies to \(users.joined(separator: ", ")); "
                                      + "run 'pgkeep help \(command.rawValue)' for the options \(command.rawValue) accepts")
            }
            try set(definition, command: command, text: option.text, from: .commandLine, into: &values)
        }
        let count = commandLine.positionals.count
        guard command.positionalCount.contains(count) else {
            let expected = command.positionalCount.lowerBound == command.positionalCount.upperBound
                ? "\(command.positionalCount.lowerBound)" : "\(command.positionalCount.lowerBound) to \(command.positionalCount.upperBound)"
            let given = count == 0 ? "none" : commandLine.positionals.map { "'\($0)'" }.joined(separator: " ")
            throw PGKeepError(.commandInvalid, "command '\(command.rawValue)' takes \(expected) argument\(expected == "1" ? "" : "s"), given \(given)",
                              hint: "usage: \(Help.usage(command))")
        }
    }

    /// Step 3: the environment, for the options the command line left unset; returns the warnings.
    /// Sorted so the first error is the same on every run. An unknown variable is a warning, as in
    /// pgBackRest: PostgreSQL runs archive-push with its own environment, and a stray variable
    /// there must not stop archiving.
    private static func applyEnvironment(_ environment: [String: String], command: CommandName,
                                         into values: inout [OptionName: ResolvedOption]) throws(PGKeepError) -> [String] {
        var warnings: [String] = []
        for variable in environment.keys.sorted() where variable.hasPrefix(OptionName.environmentPrefix) {
            guard let definition = try environmentOption(variable, warnings: &warnings) else { continue }
            guard definition.commands.contains(command), values[definition.name] == nil else { continue }
            let source = OptionSource.environment(variable: variable)
            values[definition.name] = ResolvedOption(value: try parse(environment[variable]!, for: definition, command: command, from: source), source: source)
        }
        return warnings
    }

    /// Steps 4 and 5: the config file, checked whole, then its sections for this command, most
    /// specific first.
    private static func applyConfigFile(_ file: IniFile, command: CommandName, stanza: String?,
                                        into values: inout [OptionName: ResolvedOption]) throws(PGKeepError) {
        try checkFile(file)
        var sections = ["global", "global:\(command.rawValue)"]
        if let stanza { sections += [stanza, "\(stanza):\(command.rawValue)"] }
        for sectionName in sections.reversed() {
            guard let section = file.section(sectionName) else { continue }
            for entry in section.entries {
                let definition = OptionTable.lookup(entry.key)!   // checkFile proved every key known
                guard definition.commands.contains(command) else { continue }
                let source = OptionSource.configFile(path: file.path, line: entry.line, section: sectionName)
                try set(definition, command: command, text: entry.value, from: source, into: &values)
            }
        }
    }

    /// The defaults of the options no source set.
    private static func applyDefaults(command: CommandName, into values: inout [OptionName: ResolvedOption]) throws(PGKeepError) {
        for definition in OptionTable.options(for: command) where values[definition.name] == nil {
            guard let text = definition.defaultValue.text(for: command) else { continue }
            values[definition.name] = ResolvedOption(value: try parse(text, for: definition, command: command, from: .defaultValue), source: .defaultValue)
        }
    }

    /// Step 6: the options the command requires have a value.
    private static func checkRequired(command: CommandName, stanza: String?, values: [OptionName: ResolvedOption],
                                      configPath: String?) throws(PGKeepError) {
        for definition in OptionTable.options(for: command) where definition.requiredFor.contains(command) && values[definition.name] == nil {
            throw missing(definition, command: command, stanza: stanza, configPath: configPath)
        }
    }

    private static func helpConfiguration(_ commandLine: CommandLineParse) throws(PGKeepError) -> Configuration {
        if let error = commandLine.commandError { throw error }
        var topic: [String] = []
        if let command = commandLine.command, command != .help {
            topic = [command.rawValue]
        } else if commandLine.command == .help {
            guard commandLine.positionals.count <= 1 else {
                throw PGKeepError(.commandInvalid, "command 'help' takes at most 1 argument, given \(commandLine.positionals.count)",
                                  hint: "usage: \(Help.usage(.help))")
            }
            if let word = commandLine.positionals.first {
                // Besides the commands: the documents make install writes (Help.Document).
                guard CommandName(rawValue: word) != nil || Help.Document(rawValue: word) != nil else { throw unknownCommand(word) }
                topic = [word]
            }
        }
        return Configuration(command: .help, arguments: topic, values: [:])
    }

    /// Maps a `PGKEEP_*` variable to its option; the name must match exactly. An unknown name adds a
    /// warning and yields nil.
    private static func environmentOption(_ variable: String, warnings: inout [String]) throws(PGKeepError) -> OptionDefinition? {
        let all = OptionName.allCases
        let alias = OptionTable.aliases.first { OptionName.environmentPrefix + String($0.key.uppercased().map { $0 == "-" ? "_" : $0 }) == variable }?.value
        guard let name = all.first(where: { $0.environmentVariable == variable }) ?? alias else {
            // pgBackRest's name for something pgkeep lacks: running without it would not do what
            // it asks (an unencrypted repository for PGKEEP_REPO1_CIPHER_TYPE), so it is an error.
            let optionName = String(variable.dropFirst(OptionName.environmentPrefix.count).lowercased().map { $0 == "_" ? "-" : $0 })
            if let error = ForeignOptions.error(for: optionName, "in environment variable \(variable)") { throw error }
            let suggestion = Suggestion.closest(to: variable, among: all.map(\.environmentVariable))
            warnings.append("environment variable \(variable) is not a pgkeep option and is ignored"
                            + (suggestion.map { " (did you mean \($0)?)" } ?? ""))
            return nil
        }
        let definition = name.definition
        guard definition.sources.contains(.environment) else {
            throw PGKeepError(.optionInvalid, "option '\(name.rawValue)' cannot be set in environment variable \(variable)",
                              hint: "set it on the command line or in the config file")
        }
        return definition
    }

    /// Reads and parses the config file. An explicit path (`--config`, `PGKEEP_CONFIG`) must be
    /// readable; the default path may be absent, but not unreadable (a file we cannot read may hold
    /// settings the operator relies on).
    private static func loadConfigFile(_ option: ResolvedOption?, command: CommandName,
                                       readFile: ConfigFileReader) throws(PGKeepError) -> IniFile? {
        let explicit = option.map { $0.source != .defaultValue } ?? false
        guard let path = option?.value.text ?? OptionName.config.definition.defaultValue.text(for: command) else { return nil }
        let text: String
        do {
            text = try readFile(path)
        } catch {
            if !explicit, error == .noSuchFileOrDirectory || error == .notDirectory { return nil }
            let origin = option.map { $0.source == .commandLine ? "--config" : $0.source.description } ?? "the default"
            throw PGKeepError.system(.configFileInvalid, "unable to read config file", path: path, errno: error.rawValue,
                                     hint: explicit
                                         ? "the path comes from \(origin); check it names a file the user running pgkeep can read"
                                         : "make the file readable by the user running pgkeep, or point --config at another file")
        }
        return try IniFile(parsing: text, path: path, repeatable: { OptionTable.lookup($0)?.kind.isRepeatable ?? false })
    }

    /// Checks the whole file, whichever command runs, so a mistake anywhere is reported at once:
    /// section names, unknown keys, keys that may not live in the file, and options in a
    /// `[x:command]` section that the command does not read.
    private static func checkFile(_ file: IniFile) throws(PGKeepError) {
        for section in file.sections {
            let parts = section.name.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            let sectionCommand: CommandName?
            switch parts.count {
            case 1: sectionCommand = nil
            case 2:
                guard let command = CommandName(rawValue: parts[1]) else {
                    let suggestion = Suggestion.closest(to: parts[1], among: CommandName.allCases.map(\.rawValue))
                    throw PGKeepError(.configFileInvalid, "config file \(file.path):\(section.line): unknown command '\(parts[1])' in section [\(section.name)]",
                                      hint: suggestion.map { "did you mean [\(parts[0]):\($0)]?" } ?? "sections are [global], [global:<command>], [<stanza>] or [<stanza>:<command>]")
                }
                sectionCommand = command
            default:
                throw PGKeepError(.configFileInvalid, "config file \(file.path):\(section.line): section [\(section.name)] has more than one ':'",
                                  hint: "sections are [global], [global:<command>], [<stanza>] or [<stanza>:<command>]")
            }
            if parts[0] != "global", case .failure(let problem) = OptionKind.name.parse(parts[0]) {
                throw PGKeepError(.configFileInvalid, "config file \(file.path):\(section.line): '\(parts[0])' in section [\(section.name)] is not a valid stanza name: \(problem.reason)",
                                  hint: "stanza names use \(problem.allowed)")
            }

            for entry in section.entries {
                let location = "config file \(file.path):\(entry.line)"
                guard let definition = OptionTable.lookup(entry.key) else {
                    if let error = ForeignOptions.error(for: entry.key, "in \(location) (section [\(section.name)])") { throw error }
                    let suggestion = Suggestion.closest(to: entry.key, among: OptionName.allCases.map(\.rawValue))
                    throw PGKeepError(.optionInvalid, "unknown option '\(entry.key)' in \(location) (section [\(section.name)])",
                                      hint: suggestion.map { "did you mean '\($0)'?" } ?? "run 'pgkeep help <command>' to list the options")
                }
                guard definition.sources.contains(.configFile) else {
                    throw PGKeepError(.optionInvalid, "option '\(entry.key)' cannot be set in a config file (\(location))",
                                      hint: "remove the line; pass --\(entry.key) on the command line or set \(definition.name.environmentVariable)")
                }
                if let sectionCommand, !definition.commands.contains(sectionCommand) {
                    throw PGKeepError(.optionInvalid, "option '\(entry.key)' in \(location) is not valid for command '\(sectionCommand.rawValue)' (section [\(section.name)])",
                                      hint: "move it to a section the commands that read it use, e.g. [\(parts[0])]")
                }
                try checkValue(entry, of: definition, in: section.name, of: file, for: sectionCommand)
            }
        }
    }

    /// Every value in the file is checked, whichever command runs: `compress-type=gz` must not
    /// wait to be found by the archive-push PostgreSQL runs at night. A value counts as valid when
    /// one command that reads the option accepts it (`type` means one thing to backup and another
    /// to restore); in a `[x:command]` section, that command must.
    private static func checkValue(_ entry: IniFile.Entry, of definition: OptionDefinition, in sectionName: String,
                                   of file: IniFile, for sectionCommand: CommandName?) throws(PGKeepError) {
        let source = OptionSource.configFile(path: file.path, line: entry.line, section: sectionName)
        let commands = sectionCommand.map { [$0] } ?? definition.commands.sorted { $0.rawValue < $1.rawValue }
        var firstError: PGKeepError?
        for command in commands {
            do {
                _ = try parse(entry.value, for: definition, command: command, from: source)
                return
            } catch {
                firstError = firstError ?? error
            }
        }
        if let firstError { throw firstError }
    }

    /// Sections that look like a typo of `[global]` (`[glabal]`): their options would apply to
    /// nothing, silently. Stanza sections are judged against the repository's stanzas once it is
    /// open (`Configuration.strayStanzaSections`).
    static func sectionWarnings(_ file: IniFile, stanza: String?) -> [String] {
        var warnings: [String] = []
        for section in file.sections {
            let base = section.name.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? section.name
            guard base != "global", base != stanza, Suggestion.closest(to: base, among: ["global"]) != nil else { continue }
            let corrected = "global" + section.name.dropFirst(base.count)
            warnings.append("config file \(file.path):\(section.line): section [\(section.name)] is not [global], so no command reads it as such: did you mean [\(corrected)]?")
        }
        return warnings
    }

    /// The stanza sections of `file` other than `stanza`'s (and other than typos of [global]).
    static func otherStanzaSections(_ file: IniFile, stanza: String?) -> [(stanza: String, section: String, line: Int)] {
        file.sections.compactMap { section in
            let base = section.name.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? section.name
            guard base != "global", base != stanza, Suggestion.closest(to: base, among: ["global"]) == nil else { return nil }
            return (base, section.name, section.line)
        }
    }

    /// Gives `definition` the value `text` from `source` unless a more specific source set it
    /// already. A map option given again in the same source (the command line, one config-file
    /// section) adds its pairs; a key given twice there is an error.
    private static func set(_ definition: OptionDefinition, command: CommandName, text: String, from source: OptionSource,
                            into values: inout [OptionName: ResolvedOption]) throws(PGKeepError) {
        let value = try parse(text, for: definition, command: command, from: source)
        guard let earlier = values[definition.name] else {
            values[definition.name] = ResolvedOption(value: value, source: source)
            return
        }
        guard definition.kind(for: command).isRepeatable, earlier.source.sameSetting(as: source) else { return }
        let (merged, repeatedKey) = earlier.value.adding(value)
        if let key = repeatedKey {
            throw PGKeepError(.optionInvalid, "option '\(definition.name.rawValue)' maps '\(key)' twice \(source.phrase)",
                              hint: "give each \(definition.name.rawValue) key once")
        }
        values[definition.name] = ResolvedOption(value: merged, source: earlier.source)
    }

    /// Checks `text` against the option's kind.
    static func parse(_ text: String, for definition: OptionDefinition, command: CommandName,
                      from source: OptionSource) throws(PGKeepError) -> OptionValue {
        let kind = definition.kind(for: command)
        switch kind.parse(text) {
        case .success(let value):
            return value
        case .failure(let problem):
            let shown = definition.isSecret ? "<redacted>" : "'\(text)'"
            throw PGKeepError(.optionInvalid, "invalid value \(shown) for option '\(definition.name.rawValue)' \(source.phrase): \(problem.reason)",
                              hint: "\(definition.name.rawValue) takes \(kind.allowedDescription)")
        }
    }

    private static func missing(_ definition: OptionDefinition, command: CommandName, stanza: String?, configPath: String?) -> PGKeepError {
        let name = definition.name.rawValue
        var ways = ["--\(name)=\(definition.kind(for: command).placeholder)"]
        if definition.sources.contains(.environment) { ways.append(definition.name.environmentVariable) }
        if definition.sources.contains(.configFile) {
            ways.append("\(name)= in the [\(stanza ?? "<stanza>")] or [global] section of the config file (\(configPath ?? "--config"))")
        }
        let list = ways.count > 1 ? ways.dropLast().joined(separator: ", ") + " or " + ways.last! : ways[0]
        return PGKeepError(.optionRequired, "command '\(command.rawValue)' requires option '\(name)', which is not set",
                           hint: "set it with \(list)")
    }

    static func unknownCommand(_ word: String) -> PGKeepError {
        let suggestion = Suggestion.closest(to: word, among: CommandName.allCases.map(\.rawValue))
        return PGKeepError(.commandInvalid, "unknown command '\(word)'",
                           hint: (suggestion.map { "did you mean '\($0)'? " } ?? "") + "run 'pgkeep help' to list the commands")
    }
}

/// The command line split into command, positionals and options, with the errors found on the way.
/// Errors are collected rather than thrown so that `--help` and `--version` still work on a command
/// line with mistakes in it.
struct CommandLineParse {
    struct Option {
        var definition: OptionDefinition
        /// The value text; `y`/`n` for a flag.
        var text: String
    }

    var command: CommandName?
    var positionals: [String] = []
    var options: [Option] = []
    var helpRequested = false
    var versionRequested = false
    /// Option and command errors in the order met.
    var errors: [PGKeepError] = []
    /// An unknown command word; reported even for `--help`.
    var commandError: PGKeepError?

    init(_ arguments: [String]) {
        var index = 0
        var optionsEnded = false
        var seen: Set<OptionName> = []

        while index < arguments.count {
            let argument = arguments[index]
            index += 1

            if optionsEnded || !argument.hasPrefix("-") || argument == "-" {
                addWord(argument)
                continue
            }
            switch argument {
            case "--": optionsEnded = true; continue
            case "--help", "-h": helpRequested = true; continue
            case "--version": versionRequested = true; continue
            default: break
            }
            guard argument.hasPrefix("--") else {
                errors.append(PGKeepError(.optionInvalid, "unknown option '\(argument)' on the command line",
                                          hint: "pgkeep options are long, e.g. --stanza=main; the only short one is -h"))
                continue
            }
            guard let option = longOption(argument.dropFirst(2), in: arguments, index: &index) else { continue }
            guard option.definition.kind.isRepeatable || seen.insert(option.definition.name).inserted else {
                errors.append(PGKeepError(.optionInvalid, "option '--\(option.definition.name.rawValue)' is given more than once on the command line",
                                          hint: "keep one; the command line does not override itself"))
                continue
            }
            options.append(option)
        }
    }

    /// A word that is not an option: the command (the first one), then its positional arguments.
    private mutating func addWord(_ word: String) {
        guard command == nil, commandError == nil else {
            positionals.append(word)
            return
        }
        if let name = CommandName(rawValue: word) {
            command = name
        } else {
            let error = Configuration.unknownCommand(word)
            commandError = error
            errors.append(error)
        }
    }

    /// One `--name[=value]`, `--name value` or `--no-name` (`body` is the argument without its
    /// `--`); `index` moves past a value taken from the next argument. nil after recording an error.
    private mutating func longOption(_ body: Substring, in arguments: [String], index: inout Int) -> Option? {
        let equals = body.firstIndex(of: "=")
        let name = String(equals.map { body[..<$0] } ?? body)
        let inline = equals.map { String(body[body.index(after: $0)...]) }

        if let known = OptionTable.lookup(name) {
            if known.kind == .bool { return Option(definition: known, text: inline ?? "y") }
            if let inline { return Option(definition: known, text: inline) }
            if index < arguments.count, !arguments[index].hasPrefix("--") {
                index += 1
                return Option(definition: known, text: arguments[index - 1])
            }
            errors.append(PGKeepError(.optionInvalid, "option '--\(name)' on the command line needs a value",
                                      hint: "write --\(name)=\(known.kind.placeholder) (\(known.kind.allowedDescription))"))
            return nil
        }
        if name.hasPrefix("no-"), let known = OptionTable.lookup(String(name.dropFirst(3))), known.kind == .bool {
            guard inline == nil else {
                errors.append(PGKeepError(.optionInvalid, "option '--\(name)' on the command line takes no value, given '\(inline!)'",
                                          hint: "write --\(name), or --\(known.name.rawValue)=y|n"))
                return nil
            }
            return Option(definition: known, text: "n")
        }
        if let error = ForeignOptions.error(for: name, "on the command line")
            ?? (name.hasPrefix("no-") ? ForeignOptions.error(for: String(name.dropFirst(3)), "on the command line") : nil) {
            errors.append(error)
            return nil
        }
        let candidates = OptionName.allCases.flatMap { option -> [String] in
            option.definition.kind == .bool ? [option.rawValue, "no-" + option.rawValue] : [option.rawValue]
        }
        let suggestion = Suggestion.closest(to: name, among: candidates)
        errors.append(PGKeepError(.optionInvalid, "unknown option '--\(name)' on the command line",
                                  hint: suggestion.map { "did you mean '--\($0)'?" } ?? "run 'pgkeep help <command>' to list the options a command accepts"))
        return nil
    }
}
