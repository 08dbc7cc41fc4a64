/// Fixed-width hexadecimal text as PostgreSQL writes it (`%08X`, `%X`), without Foundation's
/// `String(format:)`.
///
/// PostgreSQL prints LSNs, WAL file names and history file names with upper-case hex
/// (`src/include/access/xlog_internal.h` `XLogFileName`, `TLHistoryFileName`), and its own
/// file-name predicates accept only `0-9A-F` (`IsXLogFileName` uses `strspn(fname,
/// "0123456789ABCDEF")`), so the parsers here are upper-case only unless a caller says otherwise.
package enum Hex {
    /// `value` as upper-case hex, left-padded with zeros to at least `width` digits (`%0<width>X`).
    package static func upper<T: BinaryInteger>(_ value: T, width: Int = 0) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        guard digits.count < width else { return digits }
        return String(repeating: "0", count: width - digits.count) + digits
    }

    /// Parses `text` as hex into a `UInt64`. Returns nil for an empty string, any character outside
    /// the accepted alphabet, or more than 16 digits.
    ///
    /// - Parameter allowLowercase: also accept `a-f` (PostgreSQL's `pg_lsn` input does; its file
    ///   names never contain them).
    package static func parse<S: StringProtocol>(_ text: S, allowLowercase: Bool = false) -> UInt64? {
        parse(utf8: text.utf8, allowLowercase: allowLowercase)
    }

    /// `parse(_:allowLowercase:)` over UTF-8 bytes, for parsers that work on byte arrays.
    package static func parse<C: Collection>(utf8 bytes: C, allowLowercase: Bool = false) -> UInt64? where C.Element == UInt8 {
        var value: UInt64 = 0
        var count = 0
        for byte in bytes {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            case UInt8(ascii: "a")...UInt8(ascii: "f") where allowLowercase: digit = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            count += 1
            guard count <= 16 else { return nil }
            value = value << 4 | UInt64(digit)
        }
        return count == 0 ? nil : value
    }
}
