/// The size of one WAL segment file, fixed per cluster at initdb (`--wal-segsize`).
///
/// Only powers of two from 1 MiB to 1 GiB are valid (`IsValidWalSegSize` in
/// `src/include/access/xlog_internal.h`). The value is stored in pg_control (`xlog_seg_size`, offset
/// 228) and in every segment's long page header; the default is 16 MiB. Every name <-> LSN
/// computation depends on it, so it travels with `WALSegmentName` rather than being assumed.
public struct WALSegmentSize: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    /// The size in bytes, a power of two in `minimum...maximum`.
    public let bytes: UInt64

    /// `WalSegMinSize`: 1 MiB.
    public static let minimumBytes: UInt64 = 1 << 20
    /// `WalSegMaxSize`: 1 GiB.
    public static let maximumBytes: UInt64 = 1 << 30
    /// `DEFAULT_XLOG_SEG_SIZE`: 16 MiB.
    public static let `default` = WALSegmentSize(validBytes: 16 << 20)

    /// A segment size, or nil unless `bytes` is a power of two in [1 MiB, 1 GiB] (`IsValidWalSegSize`).
    public init?(bytes: UInt64) {
        guard Self.isValid(bytes) else { return nil }
        self.bytes = bytes
    }

    private init(validBytes: UInt64) {
        self.bytes = validBytes
    }

    /// `IsValidWalSegSize`: a power of two in [1 MiB, 1 GiB].
    public static func isValid(_ bytes: UInt64) -> Bool {
        bytes.nonzeroBitCount == 1 && bytes >= minimumBytes && bytes <= maximumBytes
    }

    /// `XLogSegmentsPerXLogId`: how many segments share one value of the middle 8 name digits
    /// (`0x100000000 / S`: 256 for 16 MiB, 4096 for 1 MiB, 4 for 1 GiB).
    public var segmentsPerXLogID: UInt64 { (1 << 32) / bytes }

    /// The size in MiB followed by "MB", as `pg_controldata`-adjacent tools and `wal_segment_size` print it.
    public var description: String { "\(bytes >> 20)MB" }

    /// Orders by size.
    public static func < (lhs: WALSegmentSize, rhs: WALSegmentSize) -> Bool { lhs.bytes < rhs.bytes }

    /// Decodes the size in bytes and checks it is a valid segment size.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let bytes = try container.decode(UInt64.self)
        guard Self.isValid(bytes) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "\(bytes) is not a valid WAL segment size (a power of two from 1 MiB to 1 GiB)")
        }
        self.bytes = bytes
    }

    /// Encodes the size in bytes.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(bytes)
    }
}
