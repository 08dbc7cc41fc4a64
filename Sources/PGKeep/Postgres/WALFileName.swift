import PGKeepCore

/// The kinds of file PostgreSQL hands to `archive_command` and asks for in `restore_command`.
///
/// Predicates in `src/include/access/xlog_internal.h` (docs/postgres-internals.md §4.1, §4.3, §4.4, §1.2).
public enum WALFileKind: Hashable, Sendable {
    /// A complete WAL segment: `000000010000000000000005` (`IsXLogFileName`).
    case segment
    /// A segment cut short at a timeline switch: `000000010000000000000005.partial`
    /// (`IsPartialXLogFileName`). Recovery never asks for these.
    case partial
    /// A timeline history file: `00000002.history` (`IsTLHistoryFileName`).
    case history
    /// A backup history file: `000000010000000000000005.00000028.backup` (`IsBackupHistoryFileName`).
    case backupHistory
}

/// A validated name of a file in the WAL archive, classified by kind.
///
/// Names arrive from PostgreSQL (`%f`) and from users, and become repository paths, so parsing is
/// strict: only the exact shapes PostgreSQL produces are accepted. That excludes `/`, `..`, lower
/// case hex, whitespace, empty and over-long names, and timeline 0:
/// - `segment`: 24 upper-case hex digits (`XLOG_FNAME_LEN`).
/// - `partial`: a segment name followed by `.partial`.
/// - `history`: 8 upper-case hex digits followed by `.history` (`TLHistoryFileName`, `%08X.history`).
/// - `backupHistory`: a segment name, `.`, the 8-digit hex start offset in the segment, `.backup`
///   (`BackupHistoryFileName`, `%08X%08X%08X.%08X.backup`). PostgreSQL's own predicate accepts any
///   text between the segment name and `.backup`; pgkeep requires the form the server writes.
public struct WALFileName: Hashable, Sendable, CustomStringConvertible {
    /// What the file is.
    public let kind: WALFileKind
    /// The full file name as given.
    public let text: String
    /// The timeline in the name's first 8 characters.
    public let timeline: TimelineID

    /// Classifies `name`, or returns nil if it is not exactly one of the four shapes.
    public init?(_ name: String) {
        let utf8 = Array(name.utf8)
        // `.partial` (8 bytes) and `.backup` forms are the longest: 24 + 1 + 8 + 7 = 40.
        guard utf8.count >= 16, utf8.count <= 40 else { return nil }
        guard let tli = Self.hex(utf8, 0, 8), tli != 0 else { return nil }

        let kind: WALFileKind
        if utf8.count == 16, Self.hasSuffix(utf8, ".history", at: 8) {
            kind = .history
        } else if Self.hex(utf8, 8, 16) != nil {
            switch utf8.count {
            case 24:
                kind = .segment
            case 32 where Self.hasSuffix(utf8, ".partial", at: 24):
                kind = .partial
            case 40 where utf8[24] == UInt8(ascii: ".") && Self.hex(utf8, 25, 8) != nil && Self.hasSuffix(utf8, ".backup", at: 33):
                kind = .backupHistory
            default:
                return nil
            }
        } else {
            return nil
        }
        self.kind = kind
        self.text = name
        self.timeline = TimelineID(rawValue: UInt32(tli))
    }

    /// The name of the history file for `timeline` (`TLHistoryFileName`: `%08X.history`).
    public static func history(_ timeline: TimelineID) -> WALFileName {
        WALFileName(validated: .history, text: timeline.fileNameComponent + ".history", timeline: timeline)
    }

    /// The name of a complete segment.
    public static func segment(_ segment: WALSegmentName) -> WALFileName {
        WALFileName(validated: .segment, text: segment.name, timeline: segment.timeline)
    }

    private init(validated kind: WALFileKind, text: String, timeline: TimelineID) {
        self.kind = kind
        self.text = text
        self.timeline = timeline
    }

    /// The 24-character segment name at the start of a `segment`, `partial` or `backupHistory`
    /// name; nil for `history`.
    public var segmentPart: Substring? {
        kind == .history ? nil : text.prefix(WALSegmentName.nameLength)
    }

    /// The first 16 characters (timeline and high segment digits) for segment-like names, the
    /// directory an archive files them under; nil for `history`, which live beside those directories.
    public var directoryPrefix: String? {
        kind == .history ? nil : String(text.prefix(16))
    }

    /// The segment this name refers to, interpreted with the cluster's `segmentSize`; nil for
    /// `history`, or when the name cannot exist with that segment size.
    public func segment(segmentSize: WALSegmentSize) -> WALSegmentName? {
        guard let part = segmentPart else { return nil }
        return WALSegmentName(part, segmentSize: segmentSize)
    }

    /// For a `backupHistory` name, the backup start offset inside the segment (the `%08X` after the
    /// segment name); nil otherwise.
    public var backupStartOffset: UInt32? {
        guard kind == .backupHistory else { return nil }
        // Validated ASCII: characters 25..<33 are the 8 hex digits.
        return Hex.parse(text.dropFirst(25).prefix(8)).map { UInt32(truncatingIfNeeded: $0) }
    }

    /// The file name.
    public var description: String { text }

    /// `count` upper-case hex digits at `start`, or nil.
    private static func hex(_ utf8: [UInt8], _ start: Int, _ count: Int) -> UInt64? {
        guard start + count <= utf8.count else { return nil }
        return Hex.parse(utf8: utf8[start..<start + count])
    }

    private static func hasSuffix(_ utf8: [UInt8], _ suffix: String, at start: Int) -> Bool {
        let tail = utf8[start...]
        return tail.elementsEqual(suffix.utf8)
    }
}
