import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import SystemPackage

/// `--archive-push-queue-max` without `--archive-async`, as pgBackRest applies it: PostgreSQL calls
/// `archive-push %p` for its oldest `.ready` segment; when that push fails and PostgreSQL's queue
/// (`ArchivePushQueue`, read from `pg_wal/archive_status`: `.ready` complete segments without a
/// `.done`) exceeds the maximum with this segment among the oldest to give up, the segment is
/// acknowledged (exit 0) without being stored, the server log hears an `archive-dropped` error,
/// and the drop is recorded (`DroppedWAL`).
///
/// Why only after the push failed (pgBackRest checks before pushing): WAL the repository can take
/// is never given up, as the asynchronous pusher retries before it drops; and the push that
/// succeeds, the latency-critical common case, costs nothing more than without the option (no
/// listing of archive_status).
///
/// Where the record goes: the repository's archive id `dropped/` directory. The repository is
/// usually why the queue grew, so when it refuses the record too, the record is kept in the
/// spool (`--spool-path`, only when set explicitly: a synchronous host need not have the default
/// spool directory) and moved into the repository by the next successful push, as the
/// asynchronous pusher does. Without it the drop is still made (bounding pg_wal is what the
/// operator chose), and the error says loudly that the repository has no record: readers then
/// report the gap as plain missing WAL, without its cause, and info cannot see a gap past the end
/// of the archive.
public struct SynchronousQueueLimit {
    public enum Outcome: Sendable {
        case pushed(ArchivePush.Outcome)
        /// Acknowledged without being stored; the error was logged.
        case dropped(PGKeepError)
    }

    let max: UInt64
    let spool: AsyncSpool?
    let log: Log

    public init(max: UInt64, spool: AsyncSpool?, log: Log) {
        self.max = max
        self.spool = spool
        self.log = log
    }

    /// `pg_wal/archive_status` for `%p`: beside the segment PostgreSQL names (its `pg_wal`, relative
    /// to the data directory it runs us in); for a bare name, under the data directory.
    public static func statusDirectory(walPath: String, dataDirectory: String?) -> String {
        guard walPath.contains("/") else { return Posix.join(dataDirectory ?? ".", "pg_wal/archive_status") }
        return Posix.join(Posix.dirname(walPath), "archive_status")
    }

    public func push(walPath: String, dataDirectory: String?, with push: ArchivePush) throws -> Outcome {
        let outcome: ArchivePush.Outcome
        do {
            outcome = try push.push(walPath: walPath, dataDirectory: dataDirectory)
        } catch {
            let name = Posix.basename(walPath)
            // Only complete segments are ever given up: history, partial and backup history files are
            // tiny, and a missing history file would break timeline following for every restore.
            guard WALFileName(name)?.kind == .segment, let (decision, size) = decide(walPath: walPath, dataDirectory: dataDirectory),
                  decision.drop.contains(name) else { throw error }
            return .dropped(drop(name, size: size, decision: decision, failure: error, push: push))
        }
        if let spool {
            // A successful push means the repository takes writes again: move in what it refused.
            do {
                try spool.flushPendingDrops(into: push)
            } catch {
                log.warn("unable to record dropped WAL in the repository yet (kept in '\(spool.outDirectory)', retried by the next push): \(Self.text(error))")
            }
        }
        return .pushed(outcome)
    }

    /// The decision about PostgreSQL's queue, or nil when it cannot be read: the option only
    /// permits dropping, so a queue that cannot be measured drops nothing (the push's own failure
    /// goes to PostgreSQL, which retries).
    private func decide(walPath: String, dataDirectory: String?) -> (ArchivePushQueue.Decision, WALSegmentSize)? {
        let statusDirectory = Self.statusDirectory(walPath: walPath, dataDirectory: dataDirectory)
        // The cluster is the one whose pg_wal holds the segment (pg_wal/<name> → "."), unless named.
        let cluster = dataDirectory ?? Posix.dirname(Posix.dirname(walPath))
        do {
            let size = try PGControl.read(dataDirectory: cluster).walSegmentSize
            // PostgreSQL renames .ready to .done once a segment is archived; a .done beside a .ready
            // (a crash between the two) means archived.
            let queue = try ArchivePushQueue.read(statusDirectory: FilePath(statusDirectory), segmentSize: size.bytes) { name, entries in
                entries.contains(name + ".done")
            }
            return (queue.decide(max: max), size)
        } catch {
            log.warn("archive-push-queue-max: unable to measure the archive queue in '\(statusDirectory)' (\(Self.text(error))); nothing is dropped")
            return nil
        }
    }

    private func drop(_ name: String, size: WALSegmentSize, decision: ArchivePushQueue.Decision, failure: Error, push: ArchivePush) -> PGKeepError {
        let records = DroppedWAL.records(for: WALSegmentName(name, segmentSize: size).map { [$0] } ?? [],
                                         droppedAt: Clock.now(), queueSize: decision.queueBytes, queueMax: max)
        var message = decision.dropMessage(name, max: max) + "; its push failed: \(Self.text(failure))"
        do {
            let archiveID = try InfoFiles.loadArchiveInfo(push.storage, push.layout, warn: log.warn).current.archiveID
            for record in records { try record.save(storage: push.storage, layout: push.layout, archiveID: archiveID) }
        } catch {
            message += "; THE REPOSITORY REFUSED THE RECORD OF THIS DROP (\(Self.text(error)))"
            if let spool {
                do {
                    for record in records { try spool.savePendingDrop(record) }
                    message += ": it is kept in '\(spool.outDirectory)' until a later archive-push can write it"
                } catch {
                    message += ", and it could not be kept in '\(spool.outDirectory)' either (\(Self.text(error))): this log is the only record of the drop"
                }
            } else {
                message += " and no --spool-path is set to keep it: this log is the only record of the drop (info and verify will report the gap as missing WAL without its cause)"
            }
        }
        let dropped = PGKeepError(.archiveDropped, message,
                                  hint: ArchivePushQueue.Decision.dropHint(records, cause: "the push failure above"))
        log.error("\(dropped)")
        return dropped
    }

    private static func text(_ error: Error) -> String { (error as? PGKeepError)?.message ?? "\(error)" }
}
