import PGKeepCore

/// A parsed pgBackRest-style INI file: named sections of `key=value` lines.
///
/// Syntax (the file format pgBackRest's users write, strict where that format is loose):
/// - `[name]` opens a section; the name is trimmed and must not be empty. A section may appear once.
/// - `key=value` splits on the first `=`; whitespace around key and value is dropped. A key may
///   appear once per section, unless `repeatable` says it may appear again (an option of
///   `key=value` pairs, one line per pair). An empty value is kept; the option's kind rejects it later.
/// - A line whose first non-blank character is `#` is a comment; blank lines are ignored.
///   End-of-line comments are not supported: `#` inside a value is part of the value, as in pgBackRest.
/// - Anything else, and any key before the first section, is an error naming the file and line.
///
/// This type knows nothing of options; `Configuration` gives section names and keys their meaning.
public struct IniFile: Sendable, Equatable {
    /// One `key=value` line.
    public struct Entry: Sendable, Equatable {
        public var key: String
        public var value: String
        /// 1-based line number in the file.
        public var line: Int
    }

    /// One `[name]` section and its entries in file order.
    public struct Section: Sendable, Equatable {
        public var name: String
        /// 1-based line number of the `[name]` header.
        public var line: Int
        public var entries: [Entry]

        /// The entry for `key`, if present.
        public func entry(_ key: String) -> Entry? { entries.first { $0.key == key } }
    }

    /// The path the text came from, used in error messages.
    public var path: String
    /// The sections in file order.
    public var sections: [Section]

    /// The section called `name`, if present.
    public func section(_ name: String) -> Section? { sections.first { $0.name == name } }

    /// Parses `text`. Errors are `.configFileInvalid` and name `path:line`.
    public init(parsing text: String, path: String, repeatable: (String) -> Bool = { _ in false }) throws(PGKeepError) {
        self.path = path
        self.sections = []
        var lineNumber = 0
        // "\r\n" is one Character in Swift, so CRLF needs its own separator test.
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            let line = IniFile.trim(rawLine)
            if line.isEmpty || line.hasPrefix("#") { continue }

            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count >= 2 else {
                    throw error(lineNumber, "section header '\(line)' has no closing ']'",
                                hint: "write section headers as [global], [global:<command>], [<stanza>] or [<stanza>:<command>]")
                }
                let name = IniFile.trim(line.dropFirst().dropLast())
                guard !name.isEmpty else {
                    throw error(lineNumber, "empty section name", hint: "name the section, e.g. [global] or [main]")
                }
                if let earlier = section(name) {
                    throw error(lineNumber, "section [\(name)] appears again (first at line \(earlier.line))",
                                hint: "merge the two [\(name)] sections into one")
                }
                sections.append(Section(name: name, line: lineNumber, entries: []))
                continue
            }

            guard let equals = line.firstIndex(of: "=") else {
                throw error(lineNumber, "expected key=value, a [section] header or a # comment, found '\(line)'",
                            hint: "comments must start the line with #; values continue to the end of the line")
            }
            let key = IniFile.trim(line[..<equals])
            let value = IniFile.trim(line[line.index(after: equals)...])
            guard !key.isEmpty else {
                throw error(lineNumber, "missing key before '='", hint: "write options as name=value, e.g. repo1-path=/var/lib/pgkeep")
            }
            guard !sections.isEmpty else {
                throw error(lineNumber, "'\(key)' is outside any section",
                            hint: "put options under a section header such as [global] or [<stanza>]")
            }
            if !repeatable(key), let earlier = sections[sections.count - 1].entry(key) {
                throw error(lineNumber, "'\(key)' is set twice in section [\(sections[sections.count - 1].name)] (first at line \(earlier.line))",
                            hint: "keep one of the two lines")
            }
            sections[sections.count - 1].entries.append(Entry(key: key, value: value, line: lineNumber))
        }
    }

    private func error(_ line: Int, _ message: String, hint: String) -> PGKeepError {
        PGKeepError(.configFileInvalid, "config file \(path):\(line): \(message)", hint: hint)
    }

    /// Drops spaces, tabs and the `\r` of CRLF files from both ends.
    private static func trim<S: StringProtocol>(_ text: S) -> String {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = text.firstIndex(where: { !isBlank($0) }),
              let last = text.lastIndex(where: { !isBlank($0) }) else { return "" }
        return String(text[first...last])
    }
}
