import PGKeepPostgres

/// A timeline that went on being archived after a child timeline forked from it: two clusters
/// are writing into one stanza.
///
/// A promotion (of a standby, or of a restored cluster) starts timeline C at switch point S of
/// its parent P and archives `C.history` first. From then on only the promoted cluster should
/// archive. If segments of P that hold WAL past S keep arriving after `C.history` was archived,
/// the old cluster is still running on P: a split brain after a failover, or a test clone
/// restored with production's `archive_command` (or production itself, when the clone is the one
/// on C). Either history may be the one the operator wants, and a restore following `latest` would
/// silently pick C.
///
/// Segments of P past S that were archived *before* `C.history` are not a divergence: they are
/// the abandoned future of a point-in-time recovery into the past, which is what a PITR does.
/// The order of events comes from the stored objects' modification times (`StorageEntry.modified`).
public struct TimelineDivergence: Codable, Sendable, Equatable {
    /// The parent timeline that continued.
    public var timeline: UInt32
    /// The child timeline that forked from it.
    public var child: UInt32
    /// Where the child forked.
    public var switchPoint: LSN
    /// Segments of the parent holding WAL past the switch point, archived after the child's
    /// history file: how many, the first and the last.
    public var segments: Int
    public var first: String
    public var last: String

    public var message: String {
        "timeline \(timeline) continues past the point \(switchPoint) where timeline \(child) forked from it: \(segments) segment(s) of timeline \(timeline) (\(first)\(segments > 1 ? " .. \(last)" : "")) were archived after \(TimelineHistory.fileName(for: TimelineID(rawValue: child))); two clusters are archiving into this stanza"
    }

    public var hint: String {
        "find the cluster that should not archive here (a restored test clone keeps production's archive_command: restore clones with --archive-mode=off) and stop its archiving; restore with --target-timeline=\(timeline) or =\(child) to say which history you want"
    }

    /// Every divergence in one archive id.
    ///
    /// - Parameters:
    ///   - histories: the archived history files, each with when its object was stored.
    ///   - segments: complete segments by file name, with when their object was stored (the
    ///     latest, when a name is stored more than once).
    public static func find(histories: [(history: TimelineHistory, modified: Int64)], segments: [String: Int64],
                            segmentSize: WALSegmentSize) -> [TimelineDivergence] {
        var found: [TimelineDivergence] = []
        var byTimeline: [TimelineID: [(number: UInt64, name: String, modified: Int64)]] = [:]
        for (name, modified) in segments {
            guard let segment = WALSegmentName(name, segmentSize: segmentSize) else { continue }
            byTimeline[segment.timeline, default: []].append((segment.segmentNumber, name, modified))
        }
        for (history, bornAt) in histories.sorted(by: { $0.history.timeline < $1.history.timeline }) {
            guard bornAt > 0, let fork = history.entries.last else { continue }
            // Segment n holds WAL past S when it ends after S: n >= S / size.
            let firstPast = fork.switchPoint.value / segmentSize.bytes
            let late = (byTimeline[fork.parent] ?? [])
                .filter { $0.number >= firstPast && $0.modified > bornAt }
                .sorted { $0.number < $1.number }
            guard let first = late.first, let last = late.last else { continue }
            found.append(TimelineDivergence(timeline: fork.parent.rawValue, child: history.timeline.rawValue,
                                            switchPoint: fork.switchPoint, segments: late.count, first: first.name, last: last.name))
        }
        return found
    }
}
