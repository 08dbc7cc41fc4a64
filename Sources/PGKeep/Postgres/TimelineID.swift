import PGKeepCore

/// A PostgreSQL timeline ID (`TimeLineID`, a `uint32`).
///
/// Printed as 8 upper-case hex digits in file names (`0000000A.history`, `%08X` in
/// `XLogFileName`/`TLHistoryFileName`, `src/include/access/xlog_internal.h`) but in decimal inside
/// history files and server messages (`src/backend/access/transam/timeline.c`). `description` is
/// the decimal form; `fileNameComponent` the hex one. A cluster starts on timeline 1, and 0 is never
/// a real timeline.
public struct TimelineID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible,
    ExpressibleByIntegerLiteral, Codable {
    /// The numeric timeline.
    public let rawValue: UInt32

    /// The timeline `initdb` creates.
    public static let initial = TimelineID(rawValue: 1)

    /// A timeline with the given number.
    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// A timeline from an integer literal, for tests and constants.
    public init(integerLiteral value: UInt32) {
        self.rawValue = value
    }

    /// The 8-digit upper-case hex form used in WAL and history file names.
    public var fileNameComponent: String { Hex.upper(rawValue, width: 8) }

    /// The decimal form, as in history files and server log messages.
    public var description: String { String(rawValue) }

    /// Orders numerically: later timelines are greater.
    public static func < (lhs: TimelineID, rhs: TimelineID) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Decodes the decimal number.
    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(UInt32.self)
    }

    /// Encodes the decimal number.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
