import PGKeepCore

/// A checked option value. Paths, names and enumeration words are `.string`.
public enum OptionValue: Sendable, Equatable {
    case string(String)
    case int(Int)
    case bool(Bool)
    /// Bytes.
    case size(Int)
    case seconds(Double)
    /// `key=value` pairs of a map option, keyed by key.
    case map([String: String])
    /// The values of a list option, in the order given.
    case list([String])

    /// The value as it would be typed after `--name=` (sizes in the largest exact binary unit).
    public var text: String {
        switch self {
        case .string(let text): return text
        case .int(let value): return String(value)
        case .bool(let value): return value ? "y" : "n"
        case .size(let bytes): return ProgressFormat.exactBytes(bytes)
        case .seconds(let value):
            // 60 rather than 60.0: whole seconds read as they were written.
            if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
            return String(value)
        case .map(let pairs):
            return pairs.keys.sorted().map { "\($0)=\(pairs[$0]!)" }.joined(separator: ",")
        case .list(let values):
            return values.joined(separator: ",")
        }
    }

    /// `self` with the pairs of `other` added (two map values), or the key both give.
    func adding(_ other: OptionValue) -> (value: OptionValue, repeatedKey: String?) {
        if case .list(let values) = self, case .list(let more) = other { return (.list(values + more), nil) }
        guard case .map(var pairs) = self, case .map(let more) = other else { return (other, nil) }
        for (key, value) in more.sorted(by: { $0.key < $1.key }) {
            guard pairs.updateValue(value, forKey: key) == nil else { return (self, key) }
        }
        return (.map(pairs), nil)
    }
}

/// Why a text is not a valid value for a kind: says what was wrong and what is allowed, without
/// naming the option or source (the caller adds those).
public struct OptionValueProblem: Error, Sendable, Equatable {
    /// What is wrong with the text (`not a size`).
    public var reason: String
    /// What is allowed (`a size from 16KiB to 64MiB, e.g. 1MiB`).
    public var allowed: String
}

extension OptionKind {
    /// Parses `text` as a value of this kind.
    public func parse(_ text: String) -> Result<OptionValue, OptionValueProblem> {
        func problem(_ reason: String) -> Result<OptionValue, OptionValueProblem> {
            .failure(OptionValueProblem(reason: reason, allowed: allowedDescription))
        }
        if text.isEmpty, self != .text { return problem("the value is empty") }
        switch self {
        case .string, .text:
            return .success(.string(text))

        case .name:
            guard let first = text.unicodeScalars.first, first != ".", first != "-",
                  text.unicodeScalars.allSatisfy({ OptionKind.nameCharacters.contains($0) })
            else { return problem("not a valid name") }
            // `global` heads the shared INI sections, so no stanza may use it (pgBackRest reserves it too).
            if text == "global" { return problem("'global' is reserved for the [global] section") }
            return .success(.string(text))

        case .path:
            guard text.hasPrefix("/") else { return problem("not an absolute path") }
            guard !text.contains("//") else { return problem("the path contains '//'") }
            var path = text
            while path.count > 1, path.hasSuffix("/") { path.removeLast() }
            return .success(.string(path))

        case .int(let range):
            guard let value = Int(text) else { return problem("not a whole number") }
            guard range.contains(value) else { return problem("out of range") }
            return .success(.int(value))

        case .bool:
            switch text {
            case "y": return .success(.bool(true))
            case "n": return .success(.bool(false))
            default: return problem("not y or n")
            }

        case .size(let range):
            guard let bytes = OptionKind.parseSize(text) else { return problem("not a size") }
            guard range.contains(bytes) else { return problem("out of range") }
            return .success(.size(bytes))

        case .enumeration(let values):
            guard values.contains(text) else { return problem("not an allowed value") }
            return .success(.string(text))

        case .seconds(let range):
            guard let value = Double(text), value.isFinite else { return problem("not a number of seconds") }
            guard range.contains(value) else { return problem("out of range") }
            return .success(.seconds(value))

        case .map(let inner):
            guard let equals = text.firstIndex(of: "="), equals != text.startIndex else { return problem("not key=value") }
            let key = String(text[..<equals])
            switch inner.parse(String(text[text.index(after: equals)...])) {
            case .success(let value): return .success(.map([key: value.text]))
            case .failure(let problem): return .failure(OptionValueProblem(reason: "in '\(key)=...': \(problem.reason)", allowed: allowedDescription))
            }

        case .list(let inner):
            switch inner.parse(text) {
            case .success(let value): return .success(.list([value.text]))
            case .failure(let problem): return .failure(OptionValueProblem(reason: problem.reason, allowed: allowedDescription))
            }
        }
    }

    /// What the kind allows, for error hints and the help text.
    public var allowedDescription: String {
        switch self {
        case .string: return "any non-empty text"
        case .text: return "any text, empty too"
        case .name: return "letters, digits, '-', '_' and '.', not starting with '.' or '-'"
        case .path: return "an absolute path"
        case .int(let range): return "a whole number from \(range.lowerBound) to \(range.upperBound)"
        case .bool: return "y or n"
        case .size(let range):
            return "a size from \(ProgressFormat.exactBytes(range.lowerBound)) to \(ProgressFormat.exactBytes(range.upperBound)): "
                + "bytes, or a number with a k/kb/kib, m/mb/mib or g/gb/gib suffix (powers of 1024)"
        case .enumeration(let values): return values.joined(separator: ", ")
        case .seconds(let range):
            return "seconds from \(OptionValue.seconds(range.lowerBound).text) to \(OptionValue.seconds(range.upperBound).text)"
        case .map(let inner): return "key=value, the value \(inner.allowedDescription); give the option once per key"
        case .list(let inner): return "\(inner.allowedDescription); give the option once per value"
        }
    }

    /// The placeholder after `--name=` in the help text.
    public var placeholder: String {
        switch self {
        case .string, .text: return "<text>"
        case .name: return "<name>"
        case .path: return "<path>"
        case .int: return "<n>"
        case .bool: return ""
        case .size: return "<size>"
        case .enumeration(let values): return values.joined(separator: "|")
        case .seconds: return "<seconds>"
        case .map(let inner): return "<key>=\(inner.placeholder)"
        case .list(let inner): return inner.placeholder
        }
    }

    private static let nameCharacters: Set<Unicode.Scalar> =
        Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.".unicodeScalars)

    /// Parses a size: digits, then optionally one of b, k, kb, kib, m, mb, mib, g, gb, gib in any
    /// case; every multiplier is a power of 1024 (pgBackRest's rule). No fractions, no spaces.
    /// Returns nil for anything else or on overflow.
    public static func parseSize(_ text: String) -> Int? {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let number = Int(digits) else { return nil }
        let multiplier: Int
        switch text.dropFirst(digits.count).lowercased() {
        case "", "b": multiplier = 1
        case "k", "kb", "kib": multiplier = 1 << 10
        case "m", "mb", "mib": multiplier = 1 << 20
        case "g", "gb", "gib": multiplier = 1 << 30
        default: return nil
        }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : bytes
    }
}
