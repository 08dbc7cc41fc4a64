#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PGKeepPostgres

/// A worker's restored files whose `fsync` is batched instead of paid one file at a time.
///
/// Restore writes hundreds of small files; an `fsync` right after each forces one journal commit
/// per file (ext4: each new inode sits in the running transaction), and the worker waits for the
/// disk every time. Here a finished, verified file is handed over still open: its writeback is
/// started at once (`HostFileWriter.startWriteback`, locally `FileSink`'s), and it is `fsync`ed
/// and closed only when more than `limit` files are waiting, oldest first, or at `syncAll`.
/// By then its data is usually on disk and the first `fsync` commits the metadata of all the
/// files created before it, so the others return quickly.
///
/// The durability contract is unchanged: every file is `fsync`ed through the descriptor that
/// wrote it (so a writeback error is reported there, never lost with a closed descriptor), and
/// the mover calls `syncAll` on the worker's thread before the run returns, so a restore reports
/// success, syncs the directories and writes `global/pg_control` only after every file is durable.
/// `limit` 0 syncs each file as it is handed over.
final class DeferredSyncs {
    /// Files allowed to wait; each holds one open descriptor.
    let limit: Int
    private var pending: [HostFileWriter] = []
    private var head = 0

    init(limit: Int) { self.limit = max(0, limit) }

    /// Files handed over and not yet synced.
    var count: Int { pending.count - head }

    /// Takes over a completely written, verified file; it must not be written to any more.
    func add(_ sink: HostFileWriter) throws {
        guard limit > 0 else {
            try sink.sync()
            try sink.close()
            return
        }
        try sink.startWriteback()
        pending.append(sink)
        while count > limit { try syncOldest() }
    }

    /// Syncs and closes every waiting file, oldest first. On an error the files not yet synced
    /// stay waiting (`abandon` closes them).
    func syncAll() throws {
        while count > 0 { try syncOldest() }
        pending.removeAll(keepingCapacity: true)
        head = 0
    }

    /// Closes the waiting files without syncing them: the run failed and reports no success.
    func abandon() {
        for sink in pending[head...] { try? sink.close() }
        pending.removeAll()
        head = 0
    }

    private func syncOldest() throws {
        let sink = pending[head]
        // Advanced before the sync so that a failing file is not synced twice; it is closed by
        // its deinit.
        head += 1
        try sink.sync()
        try sink.close()
        // Keep the array from growing without bound over a long run.
        if head > 1024, head * 2 > pending.count {
            pending.removeFirst(head)
            head = 0
        }
    }

    /// Files each of `workers` workers may keep waiting: a share of the open-file limit, so that
    /// the waiting descriptors never starve the readers and writers the restore still opens.
    static func limit(workers: Int) -> Int {
        var limits = rlimit()
        let available: UInt64
        #if canImport(Glibc)
        let status = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limits)
        #else
        let status = getrlimit(RLIMIT_NOFILE, &limits)
        #endif
        available = status == 0 ? UInt64(limits.rlim_cur) : 1024
        // A quarter of the limit for all workers together, at most 256 each (more saves nothing:
        // a few batches already share each journal commit).
        return Int(min(256, available / 4 / UInt64(max(1, workers))))
    }
}
