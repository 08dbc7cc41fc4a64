import SystemPackage

/// The resolved configuration of one pgkeep run: the command, its positional arguments and a
/// checked, typed value for every option the command accepts.
///
/// Built once by `Configuration.resolve(arguments:environment:readFile:)` (see
/// `Configuration+Resolve.swift` for the rules) and passed down as a value; never a global.
/// Accessors take an `OptionName`, so a mistyped option name does not compile:
///
///     let repo = config.path(.repo1Path)!          // has a default, never nil
///     let level = config.int(.compressLevel)        // nil: let the codec choose
///     if config.bool(.startFast) { ... }
///
/// An accessor returns nil only for an option that has no default and was not set (`pg1-user`,
/// `compress-level`, `stanza` for `info`), or that the command does not accept. Options required
/// by the command are never nil: resolution fails first. Asking for an option with an accessor of
/// the wrong kind (`int(.repo1Path)`) is a programming error and traps.
public struct Configuration: Sendable {
    /// The command to run. `--help` anywhere turns any command into `.help` with the command as
    /// argument; `--version` into `.version`.
    public let command: CommandName
    /// The positional arguments after the command name (already counted against the command's spec).
    public let arguments: [String]
    /// The config file that was read, or nil when none was (the default path is absent, or the
    /// command reads no file: `version`, `help`).
    public let configFile: String?
    /// Problems worth a warning that must not stop the command: an unknown `PGKEEP_*` variable
    /// (a stray variable in PostgreSQL's environment must never stall archiving).
    public let warnings: [String]
    /// The config file's stanza sections other than the one this command works on, by the stanza
    /// they name (`[db2]`, `[db2:backup]`), with their lines: `strayStanzaSections(known:)` warns
    /// about those that name no stanza of the repository.
    public var otherStanzaSections: [(stanza: String, section: String, line: Int)] = []

    private let values: [OptionName: ResolvedOption]

    /// A value and where it came from.
    public struct ResolvedOption: Sendable, Equatable {
        public var value: OptionValue
        public var source: OptionSource

        public init(value: OptionValue, source: OptionSource) {
            self.value = value
            self.source = source
        }
    }

    /// Builds a configuration directly from resolved values, for tests and internal callers that
    /// need a command's configuration without a command line.
    public init(command: CommandName, arguments: [String] = [], configFile: String? = nil,
                values: [OptionName: ResolvedOption], warnings: [String] = []) {
        self.command = command
        self.arguments = arguments
        self.configFile = configFile
        self.values = values
        self.warnings = warnings
    }

    /// Warnings for the config file's sections that look like a typo of a stanza: they name one
    /// the repository does not have (`known`, the stanzas it holds) and are a small edit away
    /// from one it has, or from the stanza this command works on (`[mian]` beside `main`); their
    /// options would apply to nothing, silently. A section for a stanza not created yet that is
    /// like no other is not warned about.
    public func strayStanzaSections(known: Set<String>) -> [String] {
        otherStanzaSections.filter { !known.contains($0.stanza) }.compactMap { entry in
            guard let meant = Suggestion.closest(to: entry.stanza, among: known.sorted() + (string(.stanza).map { [$0] } ?? [])) else { return nil }
            let corrected = entry.section.count > entry.stanza.count ? meant + entry.section.dropFirst(entry.stanza.count) : Substring(meant)
            return "config file \(configFile ?? ""):\(entry.line): section [\(entry.section)] names stanza '\(entry.stanza)', which the repository does not have: a typo of [\(corrected)]? (a stanza not created yet gets its files from stanza-create)"
        }
    }

    // MARK: Typed accessors

    /// The value of a string, name, path or enumeration option.
    public func string(_ name: OptionName) -> String? {
        guard let value = values[name]?.value else { return nil }
        guard case .string(let text) = value else { wrongKind(name, "string") }
        return text
    }

    /// The value of a path option, as a `FilePath`.
    public func path(_ name: OptionName) -> FilePath? {
        guard let value = values[name]?.value else { return nil }
        guard case .path = name.definition.kind, case .string(let text) = value else { wrongKind(name, "path") }
        return FilePath(text)
    }

    /// The value of an integer option.
    public func int(_ name: OptionName) -> Int? {
        guard let value = values[name]?.value else { return nil }
        guard case .int(let number) = value else { wrongKind(name, "int") }
        return number
    }

    /// The value of a boolean option. Every boolean has a default, so this is never optional;
    /// false for an option the command does not accept.
    public func bool(_ name: OptionName) -> Bool {
        guard let value = values[name]?.value else { return false }
        guard case .bool(let flag) = value else { wrongKind(name, "bool") }
        return flag
    }

    /// The value of a size option, in bytes.
    public func size(_ name: OptionName) -> Int? {
        guard let value = values[name]?.value else { return nil }
        guard case .size(let bytes) = value else { wrongKind(name, "size") }
        return bytes
    }

    /// The pairs of a map option; empty when it is not set.
    public func map(_ name: OptionName) -> [String: String] {
        guard let value = values[name]?.value else { return [:] }
        guard case .map(let pairs) = value else { wrongKind(name, "map") }
        return pairs
    }

    /// The values of a list option, in the order given; empty when unset.
    public func list(_ name: OptionName) -> [String] {
        guard let value = values[name]?.value else { return [] }
        guard case .list(let values) = value else { wrongKind(name, "list") }
        return values
    }

    /// The value of a duration option, in seconds.
    public func seconds(_ name: OptionName) -> Double? {
        guard let value = values[name]?.value else { return nil }
        guard case .seconds(let seconds) = value else { wrongKind(name, "seconds") }
        return seconds
    }

    /// The value and its source, whatever the kind.
    public func resolved(_ name: OptionName) -> ResolvedOption? { values[name] }

    /// Whether the user set the option anywhere (command line, environment, config file), as
    /// opposed to it taking its default or being unset.
    public func isExplicit(_ name: OptionName) -> Bool {
        guard let source = values[name]?.source else { return false }
        return source != .defaultValue
    }

    /// Where the option's value came from; nil when it has none.
    public func source(of name: OptionName) -> OptionSource? { values[name]?.source }

    /// The options the user set, as one `--name=value` line for the "command begin" log line.
    /// Booleans read `--name` / `--no-name`; values with spaces are quoted; options whose name
    /// contains `pass`, `key` or `secret` show `<redacted>`, as pgBackRest's log does.
    public var redactedSummary: String {
        values.keys.sorted().compactMap { name -> String? in
            guard let option = values[name], option.source != .defaultValue else { return nil }
            if name.definition.isSecret { return "--\(name.rawValue)=<redacted>" }
            if case .bool(let flag) = option.value { return flag ? "--\(name.rawValue)" : "--no-\(name.rawValue)" }
            let text = option.value.text
            return text.contains(" ") ? "--\(name.rawValue)=\"\(text)\"" : "--\(name.rawValue)=\(text)"
        }.joined(separator: " ")
    }

    private func wrongKind(_ name: OptionName, _ accessor: String) -> Never {
        preconditionFailure("option '\(name.rawValue)' is \(name.definition.kind), not read with \(accessor)(_:)")
    }
}

/// Where an option's value came from. Error messages and `--help` name it.
public enum OptionSource: Sendable, Equatable, CustomStringConvertible {
    case commandLine
    /// The variable's name, e.g. `PGKEEP_REPO1_PATH`.
    case environment(variable: String)
    /// The file, the 1-based line and the section (`main:backup`).
    case configFile(path: String, line: Int, section: String)
    case defaultValue

    /// `command line`, `environment variable PGKEEP_X`, `config file /etc/pgkeep/pgkeep.conf:3 [main]`, `default`.
    public var description: String {
        switch self {
        case .commandLine: return "command line"
        case .environment(let variable): return "environment variable \(variable)"
        case .configFile(let path, let line, let section): return "config file \(path):\(line) [\(section)]"
        case .defaultValue: return "default"
        }
    }

    /// Whether two values come from one setting place: the command line, or one section of the
    /// config file (where a map option's lines add up).
    func sameSetting(as other: OptionSource) -> Bool {
        switch (self, other) {
        case (.commandLine, .commandLine): return true
        case (.configFile(let path, _, let section), .configFile(let otherPath, _, let otherSection)):
            return path == otherPath && section == otherSection
        default: return false
        }
    }

    /// The description with its preposition, to follow an option name in a message.
    var phrase: String {
        switch self {
        case .commandLine: return "on the command line"
        case .environment, .configFile: return "in \(description)"
        case .defaultValue: return "by default"
        }
    }
}

/// Reads a whole config file. Throws the `Errno` of the failed call; `ENOENT` for the default path
/// means "no file" and is not an error.
public typealias ConfigFileReader = (_ path: String) throws(Errno) -> String

extension Configuration {
    /// The largest config file read. A real one is a few KiB; the cap keeps `--config=/dev/zero`
    /// from eating memory.
    public static let maximumConfigFileSize = 1 << 20

    /// Reads a file with `open`/`read` (UTF-8; invalid bytes become U+FFFD and then fail as
    /// unknown keys or bad values). A file over `maximumConfigFileSize` fails with `EFBIG`.
    public static func readFile(_ path: String) throws(Errno) -> String {
        do {
            let fd = try FileDescriptor.open(FilePath(path), .readOnly)
            return try fd.closeAfter {
                var bytes: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 64 * 1024)
                while true {
                    let count = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
                    if count == 0 { break }
                    bytes += chunk[0..<count]
                    if bytes.count > maximumConfigFileSize { throw Errno.fileTooLarge }
                }
                return String(decoding: bytes, as: UTF8.self)
            }
        } catch let error as Errno {
            throw error
        } catch {
            throw Errno.ioError
        }
    }

    /// The process environment as a dictionary, for `resolve(arguments:environment:)` in `main`.
    public static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            entry += 1
        }
        return result
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
