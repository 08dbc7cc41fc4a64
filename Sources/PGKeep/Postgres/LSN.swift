import PGKeepCore

/// A PostgreSQL log sequence number: a byte position in the WAL stream (`XLogRecPtr`).
///
/// Text form is `%X/%X`, the high and low 32 bits in upper-case hex without padding, exactly as
/// the server prints it (`LSN_FORMAT_ARGS` in `src/include/access/xlogdefs.h`), e.g. `0/5000028`.
/// The value 0 is `InvalidXLogRecPtr`. Encoded with `Codable` as that text, so repository metadata
/// reads like PostgreSQL's own output.
public struct LSN: Comparable, Hashable, Sendable, CustomStringConvertible, Codable {
    /// The byte position.
    public var value: UInt64

    /// `InvalidXLogRecPtr`: no position.
    public static let invalid = LSN(0)

    /// An LSN at byte position `value`.
    public init(_ value: UInt64) {
        self.value = value
    }

    /// An LSN from its two printed halves (`high/low`).
    public init(high: UInt32, low: UInt32) {
        self.value = UInt64(high) << 32 | UInt64(low)
    }

    /// Parses `%X/%X`, with the rules of the `pg_lsn` input function (`pg_lsn_in_internal` in
    /// `src/backend/utils/adt/pg_lsn.c`): each half has 1 to 8 hex digits (either case), separated
    /// by one `/`, with nothing before or after. Returns nil for anything else.
    public init?(_ text: String) {
        let parts = text.utf8.split(separator: UInt8(ascii: "/"), maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2,
              (1...8).contains(parts[0].count), (1...8).contains(parts[1].count),
              let high = Hex.parse(Substring(parts[0]), allowLowercase: true),
              let low = Hex.parse(Substring(parts[1]), allowLowercase: true)
        else { return nil }
        self.init(high: UInt32(high), low: UInt32(low))
    }

    /// The high 32 bits (the part before the `/`).
    public var high: UInt32 { UInt32(truncatingIfNeeded: value >> 32) }

    /// The low 32 bits (the part after the `/`).
    public var low: UInt32 { UInt32(truncatingIfNeeded: value) }

    /// False for `InvalidXLogRecPtr` (0) (`XLogRecPtrIsInvalid`).
    public var isValid: Bool { value != 0 }

    /// `%X/%X`, upper case, as PostgreSQL prints it.
    public var description: String {
        Hex.upper(high) + "/" + Hex.upper(low)
    }

    /// The LSN `bytes` further on. Traps on overflow past `FFFFFFFF/FFFFFFFF`, which no real WAL
    /// position reaches.
    public func advanced(by bytes: UInt64) -> LSN {
        LSN(value + bytes)
    }

    /// The number of bytes from `earlier` to this LSN, or nil when `earlier` is after it.
    public func distance(from earlier: LSN) -> UInt64? {
        earlier.value <= value ? value - earlier.value : nil
    }

    /// The byte offset of this LSN inside its WAL segment (`XLogSegmentOffset`: `lsn & (S-1)`).
    public func offset(in segmentSize: WALSegmentSize) -> UInt64 {
        value & (segmentSize.bytes - 1)
    }

    /// Orders by byte position.
    public static func < (lhs: LSN, rhs: LSN) -> Bool {
        lhs.value < rhs.value
    }

    /// Decodes the `%X/%X` text form.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let lsn = LSN(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text)' is not an LSN of the form %X/%X")
        }
        self = lsn
    }

    /// Encodes as the `%X/%X` text form.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
