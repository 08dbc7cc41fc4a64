import PGKeepCore

/// One WAL segment file: a timeline and a segment number (`XLogSegNo`), with the cluster's segment
/// size that links the number to LSNs and to the 24-character file name.
///
/// Arithmetic from `src/include/access/xlog_internal.h` (docs/postgres-internals.md §4.1), with segment size S:
/// - `XLByteToSeg(lsn)` = `lsn / S`: the segment that *contains* `lsn`; use it for start pointers.
/// - `XLByteToPrevSeg(lsn)` = `(lsn - 1) / S`: the segment holding the byte *before* `lsn`; use it
///   for end pointers (the last segment a backup needs is `XLByteToPrevSeg(stop_lsn)`).
/// - `XLogFileName` = `%08X%08X%08X` of (tli, segno / (2^32 / S), segno % (2^32 / S)).
public struct WALSegmentName: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The timeline the segment belongs to (first 8 name characters).
    public let timeline: TimelineID
    /// `XLogSegNo`: the segment's position in the WAL stream, `startLSN / segmentSize`.
    public let segmentNumber: UInt64
    /// The cluster's segment size.
    public let segmentSize: WALSegmentSize

    /// `XLOG_FNAME_LEN`: a segment file name is 24 characters.
    public static let nameLength = 24

    /// A segment from its parts.
    public init(timeline: TimelineID, segmentNumber: UInt64, segmentSize: WALSegmentSize) {
        self.timeline = timeline
        self.segmentNumber = segmentNumber
        self.segmentSize = segmentSize
    }

    /// Parses a 24-character segment file name (`XLogFromFileName`).
    ///
    /// Returns nil unless the name is exactly 24 upper-case hex digits (`IsXLogFileName`), the
    /// timeline is not 0, and the last 8 digits are below `segmentSize.segmentsPerXLogID` (with
    /// 16 MiB segments only `00000000`-`000000FF` exist; a larger value means the name was made for
    /// another segment size).
    public init?<S: StringProtocol>(_ name: S, segmentSize: WALSegmentSize) {
        let utf8 = Array(name.utf8)
        guard utf8.count == Self.nameLength,
              let tli = Self.hex8(utf8, 0), let log = Self.hex8(utf8, 8), let seg = Self.hex8(utf8, 16),
              tli != 0, UInt64(seg) < segmentSize.segmentsPerXLogID
        else { return nil }
        self.init(timeline: TimelineID(rawValue: tli),
                  segmentNumber: UInt64(log) * segmentSize.segmentsPerXLogID + UInt64(seg),
                  segmentSize: segmentSize)
    }

    /// `XLByteToSeg`: the segment on `timeline` that contains the byte at `lsn`. Use it for start
    /// pointers, e.g. the backup start LSN or a checkpoint's REDO location.
    public static func segment(containing lsn: LSN, timeline: TimelineID, segmentSize: WALSegmentSize) -> WALSegmentName {
        WALSegmentName(timeline: timeline, segmentNumber: lsn.value / segmentSize.bytes, segmentSize: segmentSize)
    }

    /// `XLByteToPrevSeg`: the segment on `timeline` that holds the byte just before `lsn`. Use it for
    /// end pointers: a record ending exactly on a segment boundary lies wholly in the previous
    /// segment. Returns nil for LSN 0, which has no previous byte.
    public static func segment(endingAt lsn: LSN, timeline: TimelineID, segmentSize: WALSegmentSize) -> WALSegmentName? {
        guard lsn.value > 0 else { return nil }
        return WALSegmentName(timeline: timeline, segmentNumber: (lsn.value - 1) / segmentSize.bytes, segmentSize: segmentSize)
    }

    /// The 24-character file name, e.g. `000000010000000000000005`.
    public var name: String {
        let perID = segmentSize.segmentsPerXLogID
        return timeline.fileNameComponent
            + Hex.upper(UInt32(truncatingIfNeeded: segmentNumber / perID), width: 8)
            + Hex.upper(UInt32(truncatingIfNeeded: segmentNumber % perID), width: 8)
    }

    /// The file name.
    public var description: String { name }

    /// The first 16 characters of the name (timeline and the high part of the segment number):
    /// archives group segments into one directory per value, as pgBackRest does.
    public var directoryPrefix: String { String(name.prefix(16)) }

    /// The next segment on the same timeline.
    public var next: WALSegmentName {
        WALSegmentName(timeline: timeline, segmentNumber: segmentNumber + 1, segmentSize: segmentSize)
    }

    /// The previous segment on the same timeline, or nil for segment 0.
    public var previous: WALSegmentName? {
        guard segmentNumber > 0 else { return nil }
        return WALSegmentName(timeline: timeline, segmentNumber: segmentNumber - 1, segmentSize: segmentSize)
    }

    /// `XLogSegNoOffsetToRecPtr(segno, 0)`: the LSN of the segment's first byte, which is also the
    /// `xlp_pageaddr` of its first page.
    public var startLSN: LSN { LSN(segmentNumber * segmentSize.bytes) }

    /// The LSN just past the segment's last byte (the next segment's `startLSN`). The last
    /// possible segment (`FFFFFFFFFFFFFFFF000000FF` with 16 MiB segments, a name anyone can put in
    /// an archive listing) ends at 2^64, which an LSN cannot hold: its end is the largest LSN.
    public var endLSN: LSN {
        let (end, overflow) = (segmentNumber + 1).multipliedReportingOverflow(by: segmentSize.bytes)
        return LSN(overflow ? UInt64.max : end)
    }

    /// Whether the byte at `lsn` lies in this segment (timeline aside).
    public func contains(_ lsn: LSN) -> Bool {
        lsn.value / segmentSize.bytes == segmentNumber
    }

    /// The segments from this one through `last` on this timeline. Returns nil when `last` is on
    /// another timeline or uses another segment size; the range is empty when `last` comes first.
    public func through(_ last: WALSegmentName) -> WALSegmentRange? {
        guard last.timeline == timeline, last.segmentSize == segmentSize else { return nil }
        return WALSegmentRange(timeline: timeline, segmentSize: segmentSize, first: segmentNumber, last: last.segmentNumber)
    }

    /// Orders by timeline, then segment number: the order of the file names.
    public static func < (lhs: WALSegmentName, rhs: WALSegmentName) -> Bool {
        (lhs.timeline, lhs.segmentNumber) < (rhs.timeline, rhs.segmentNumber)
    }

    /// The 8 upper-case hex digits at `start` (`%08X`), or nil.
    private static func hex8(_ utf8: [UInt8], _ start: Int) -> UInt32? {
        Hex.parse(utf8: utf8[start..<start + 8]).map { UInt32(truncatingIfNeeded: $0) }
    }
}

/// Consecutive WAL segments on one timeline, first through last inclusive; empty when
/// `last < first`.
///
/// The WAL a base backup needs is `WALSegmentRange.forBackup(start:stop:...)`: segments
/// `XLByteToSeg(start)` through `XLByteToPrevSeg(stop)` (docs/postgres-internals.md §4.1). On a primary they
/// are all on the start timeline; a standby backup that crossed a timeline switch needs the history
/// file to name them (`TimelineHistory.timeline(forSegmentNumber:segmentSize:)`).
public struct WALSegmentRange: Sequence, Hashable, Sendable {
    /// The timeline every segment in the range is named with.
    public let timeline: TimelineID
    /// The segment size of the cluster.
    public let segmentSize: WALSegmentSize
    /// The first segment number.
    public let first: UInt64
    /// The last segment number, inclusive.
    public let last: UInt64

    /// A range of segment numbers on one timeline.
    public init(timeline: TimelineID, segmentSize: WALSegmentSize, first: UInt64, last: UInt64) {
        self.timeline = timeline
        self.segmentSize = segmentSize
        self.first = first
        self.last = last
    }

    /// The segments a backup from `start` to `stop` needs: `XLByteToSeg(start)` through
    /// `XLByteToPrevSeg(stop)`. Nil when `stop` is not after `start`.
    public static func forBackup(start: LSN, stop: LSN, timeline: TimelineID, segmentSize: WALSegmentSize) -> WALSegmentRange? {
        guard stop > start else { return nil }
        let firstSegment = WALSegmentName.segment(containing: start, timeline: timeline, segmentSize: segmentSize)
        // stop > start >= 0, so stop has a previous byte.
        let lastSegment = WALSegmentName.segment(endingAt: stop, timeline: timeline, segmentSize: segmentSize)!
        return firstSegment.through(lastSegment)
    }

    /// How many segments the range holds.
    public var count: UInt64 { last >= first ? last - first + 1 : 0 }

    /// Whether the range holds no segment.
    public var isEmpty: Bool { last < first }

    /// Walks the segments in order.
    public struct Iterator: IteratorProtocol {
        private let range: WALSegmentRange
        private var nextNumber: UInt64
        private var finished: Bool

        /// An iterator positioned at `range.first`.
        init(_ range: WALSegmentRange) {
            self.range = range
            self.nextNumber = range.first
            self.finished = range.isEmpty
        }

        /// The next segment, or nil past the last one.
        public mutating func next() -> WALSegmentName? {
            guard !finished else { return nil }
            let segment = WALSegmentName(timeline: range.timeline, segmentNumber: nextNumber, segmentSize: range.segmentSize)
            if nextNumber == range.last { finished = true } else { nextNumber += 1 }
            return segment
        }
    }

    /// An iterator from `first` through `last`.
    public func makeIterator() -> Iterator { Iterator(self) }

    /// The number of elements, for `Array(range)` preallocation.
    public var underestimatedCount: Int { Int(clamping: count) }
}
