import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import SystemPackage

/// `--archive-push-queue-max`: how much unarchived WAL asynchronous `archive-push` lets PostgreSQL
/// keep before it gives segments up (pgBackRest's option of the same name).
///
/// **The queue** is every complete WAL segment PostgreSQL has marked `.ready` in
/// `pg_wal/archive_status` and pgkeep has not acknowledged (no `.ok` in the spool), counted as
/// whole segments: `count x segment size`, as pgBackRest counts it. A segment whose last push
/// failed (`.error`) is still queued. Timeline history, backup history and partial files are
/// neither counted nor ever dropped: they are tiny, and a missing history file would break
/// timeline following for every later restore, not just leave a gap.
///
/// **The decision**, when the queue exceeds the maximum: the oldest segments are dropped (reported
/// to PostgreSQL as archived without being stored) until what is left fits, i.e. the newest
/// `max / segment size` segments stay queued and are pushed as usual. Why the oldest, and why only
/// the excess (pgBackRest drops the whole queue):
/// - PostgreSQL archives in order and waits on its oldest `.ready` segment; only acknowledging that
///   one lets the archiver move on and lets checkpoints recycle segments. Dropping the newest would
///   free nothing.
/// - The newest WAL is the most valuable left: a backup started meanwhile needs it (its WAL from
///   start to stop must reach the archive), and once the repository takes writes again the archive
///   continues from the first kept segment, so a backup taken then has all it needs.
/// - pg_wal's archiving backlog stays bounded by the maximum, which is the option's promise; the
///   gap is as short as that bound allows, and each later segment that would exceed it drops one
///   more of the oldest (a sliding window) instead of the whole queue again.
public struct ArchivePushQueue: Sendable, Equatable {
    /// The queued segments, oldest first.
    public var segments: [String]
    public var segmentSize: UInt64

    public init(segments: [String], segmentSize: UInt64) {
        self.segments = segments.sorted()
        self.segmentSize = segmentSize
    }

    /// Bytes waiting to be archived.
    public var bytes: UInt64 { UInt64(segments.count) * segmentSize }

    /// What to do about a maximum.
    public struct Decision: Sendable, Equatable {
        /// Segments to acknowledge without storing, oldest first.
        public var drop: [String]
        /// Segments that stay queued.
        public var keep: [String]
        public var queueBytes: UInt64
    }

    /// Nothing is dropped while the queue is at most `max` bytes; past it, the oldest segments go
    /// until the rest is at most `max`.
    public func decide(max: UInt64) -> Decision {
        guard bytes > max, segmentSize > 0 else { return Decision(drop: [], keep: segments, queueBytes: bytes) }
        let fits = Int(min(max / segmentSize, UInt64(segments.count)))
        let dropCount = segments.count - fits
        return Decision(drop: Array(segments.prefix(dropCount)), keep: Array(segments.dropFirst(dropCount)), queueBytes: bytes)
    }

    /// The queue in `statusDirectory` (`pg_wal/archive_status`) on `host`: `.ready` complete
    /// segments not yet acknowledged, as `isAcknowledged` says (given the directory's entries,
    /// listed once). archive-push runs on the database host itself; `info` may read another's.
    static func read(statusDirectory: FilePath, on host: PostgresHost = LocalHost(), segmentSize: UInt64,
                     isAcknowledged: (_ name: String, _ entries: Set<String>) throws -> Bool) throws -> ArchivePushQueue {
        guard let entries = try host.list(statusDirectory) else {
            throw PGKeepError(.pathMissing, "'\(statusDirectory)' does not exist",
                              hint: "--pg1-path must be the data directory of the cluster that archives (PostgreSQL runs archive_command in it)")
        }
        let listed = Set(entries)
        var names: [String] = []
        for entry in entries where entry.hasSuffix(".ready") {
            let name = String(entry.dropLast(".ready".count))
            guard WALFileName(name)?.kind == .segment, try !isAcknowledged(name, listed) else { continue }
            names.append(name)
        }
        return ArchivePushQueue(segments: names, segmentSize: segmentSize)
    }
}

extension ArchivePushQueue.Decision {
    /// What the server log hears for each dropped segment, asynchronous or not.
    func dropMessage(_ name: String, max: UInt64) -> String {
        "WAL segment \(name) was dropped without being archived: the archive-push queue held \(ProgressFormat.exactBytes(Int(queueBytes))) (\(drop.count + keep.count) segments), more than archive-push-queue-max \(ProgressFormat.exactBytes(Int(max)))"
    }

    /// The hint of a drop of `records`; `cause` says where to read why archiving fails.
    static func dropHint(_ records: [DroppedWAL], cause: String) -> String {
        let ranges = records.map { "\($0.start)...\($0.stop)" }.joined(separator: ", ")
        return "point-in-time recovery across \(ranges) is impossible until a new backup: fix archiving (\(cause)), then take a backup; raise or unset archive-push-queue-max to keep more WAL waiting"
    }
}
