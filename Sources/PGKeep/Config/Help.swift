import PGKeepCore

/// Help text, generated from the command and option tables so it cannot drift from what the
/// parser accepts.
public enum Help {
    /// The text for `pgkeep help [<command>]`: the general help without a topic, else the command's.
    public static func text(for configuration: Configuration) -> String {
        if let topic = configuration.arguments.first, let command = CommandName(rawValue: topic) {
            return text(for: command)
        }
        if let topic = configuration.arguments.first, let document = Document(rawValue: topic) {
            return document.text
        }
        return general()
    }

    /// The command list.
    public static func general() -> String {
        let width = CommandName.allCases.map(\.rawValue.count).max()!
        var lines = [
            "pgkeep: backup and restore for PostgreSQL",
            "",
            "Usage: pgkeep [options] <command> [arguments]",
            "",
            "Commands:",
        ]
        for command in CommandName.allCases {
            lines.append("  " + pad(command.rawValue, width) + "  " + command.summary)
        }
        lines += [
            "",
            "Run 'pgkeep help <command>' (or 'pgkeep <command> --help') for its arguments and options.",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    /// The help for one command: usage, summary, arguments, options with defaults, and where
    /// options may be set.
    public static func text(for command: CommandName) -> String {
        var lines = ["pgkeep \(command.rawValue): \(command.summary)", "", "Usage: \(usage(command))"]

        if !command.positionals.isEmpty {
            let width = command.positionals.map { $0.name.count + 2 }.max()!
            lines += ["", "Arguments:"]
            for argument in command.positionals {
                lines.append("  " + pad("<\(argument.name)>", width) + "  " + argument.summary + (argument.isOptional ? " (optional)" : ""))
            }
        }

        let options = OptionTable.options(for: command)
        if !options.isEmpty {
            let forms = options.map { form($0, command: command) }
            // A form longer than the column (long value lists) gets a line of its own.
            let width = min(forms.map(\.count).max()!, maximumFormWidth)
            lines += ["", "Options:"]
            for (definition, form) in zip(options, forms) {
                let description = definition.summary(for: command) + details(definition, command: command)
                if form.count > width {
                    lines += ["  " + form, "  " + pad("", width) + "  " + description]
                } else {
                    lines.append("  " + pad(form, width) + "  " + description)
                }
            }
            let name = command.rawValue
            lines += [
                "",
                "Options may come before or after the command. Each can also be set in the environment as",
                "PGKEEP_<NAME> (e.g. PGKEEP_REPO1_PATH) or in the config file as name=value under [global],",
                "[global:\(name)], [<stanza>] or [<stanza>:\(name)]. The command line wins over the environment,",
                "which wins over the file, where the most specific section wins; config and stanza cannot be",
                "set in the file. Booleans are y or n (--name, --no-name on the command line).",
            ]
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The usage line: `pgkeep [options] archive-get <wal-file> <destination>`.
    public static func usage(_ command: CommandName) -> String {
        var words = ["pgkeep"]
        if !OptionTable.options(for: command).isEmpty { words.append("[options]") }
        words.append(command.rawValue)
        for argument in command.positionals {
            words.append(argument.isOptional ? "[<\(argument.name)>]" : "<\(argument.name)>")
        }
        return words.joined(separator: " ")
    }

    /// `--name=<placeholder>`, or `--[no-]name` for a boolean.
    private static func form(_ definition: OptionDefinition, command: CommandName) -> String {
        let kind = definition.kind(for: command)
        return kind == .bool ? "--[no-]\(definition.name.rawValue)" : "--\(definition.name.rawValue)=\(kind.placeholder)"
    }

    /// ` [required]`, ` [1..999, default: 1]` and the like.
    private static func details(_ definition: OptionDefinition, command: CommandName) -> String {
        var parts: [String] = []
        switch definition.kind(for: command) {
        case .int(let range): parts.append("\(range.lowerBound)..\(range.upperBound)")
        case .size(let range): parts.append("\(ProgressFormat.exactBytes(range.lowerBound))..\(ProgressFormat.exactBytes(range.upperBound))")
        case .seconds(let range): parts.append("\(OptionValue.seconds(range.lowerBound).text)..\(OptionValue.seconds(range.upperBound).text)")
        case .map, .list: parts.append("repeatable")
        case .string, .text, .name, .path, .bool, .enumeration: break
        }
        if definition.requiredFor.contains(command) { parts.append("required") }
        if let text = definition.defaultValue.text(for: command) { parts.append("default: \(text)") }
        return parts.isEmpty ? "" : " [\(parts.joined(separator: ", "))]"
    }

    /// The widest option form that shares a line with its description.
    private static let maximumFormWidth = 30

    private static func pad(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }
}
