#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization
import PGKeepCore
import PGKeepPostgres

/// Executes file jobs with `processMax` worker threads.
///
/// 1. Jobs are sorted largest first, so a huge relation segment does not start last and leave the
///    other workers idle at the end.
/// 2. Each worker is a dedicated OS thread (blocking file I/O must not occupy Swift's cooperative
///    pool) that owns one read buffer and its filters, C contexts included, created once and reset
///    per file: memory is bounded by workers x (buffer + codec buffers), whatever the file count.
/// 3. Workers take the next job under a lock; the first error stops new jobs, the running ones
///    finish, and that error is thrown after every thread has joined.
/// 4. Results are delivered on the worker's thread to `onResult`, serialized by the mover's lock.
///    A restored file's result may arrive before its `fsync` (batched, see `DeferredSyncs`); every
///    file is synced before its worker's thread ends, and `run` returns only after all have ended
///    and throws if any sync failed.
/// 5. A job may be a placeholder that `prepare` completes when a worker takes it (under the same
///    lock): a backup of a million small files then holds the details of the bundles in progress,
///    not of every file at once.
public final class Mover {
    public let storage: Storage
    /// The database host whose files jobs read (backup) or compare (delta restore).
    public let host: PostgresHost
    public let processMax: Int
    public let bufferSize: Int

    public init(storage: Storage, host: PostgresHost, processMax: Int, bufferSize: Int) {
        self.storage = storage
        self.host = host
        self.processMax = max(1, processMax)
        self.bufferSize = bufferSize
    }

    public func run(_ jobs: [FileJob], prepare: ((FileJob) throws -> FileJob)? = nil,
                    onResult: @escaping (FileJob, FileJobResult) throws -> Void) throws {
        let ordered = jobs.sorted { ($0.size, $1.id) > ($1.size, $0.id) }
        let state = SharedState(jobs: ordered)
        let workerCount = min(processMax, max(1, ordered.count))
        let syncLimit = DeferredSyncs.limit(workers: workerCount)
        let body: (Int) -> Void = { [storage, host, bufferSize] _ in
            let worker: Worker
            do { worker = try Worker(storage: storage, host: host, bufferSize: bufferSize, deferredSyncLimit: syncLimit) } catch { state.fail(error); return }
            while let next = state.next() {
                do {
                    var job = next
                    if let prepare { job = try state.callbacks.withLock { _ in try prepare(next) } }
                    let result = try worker.execute(job)
                    try state.callbacks.withLock { _ in try onResult(job, result) }
                } catch {
                    state.fail(error)
                }
            }
            // Restored files whose fsync was batched: durable before this thread ends, so before
            // `run` returns.
            do { try worker.syncDeferred() } catch { state.fail(error) }
        }
        if workerCount == 1 {
            body(0)
        } else {
            try WorkerThreads.run(count: workerCount, body)
        }
        if let error = state.firstError { throw error }
    }

    /// The jobs and the first error, shared by the worker threads. `callbacks` makes the caller's
    /// `prepare` and `onResult` run one at a time, so the caller's state needs no lock of its own.
    final class SharedState: Sendable {
        private struct Progress {
            var index = 0
            var firstError: Error?
        }
        let jobs: [FileJob]
        private let progress = Mutex(Progress())
        let callbacks = Mutex(())

        init(jobs: [FileJob]) { self.jobs = jobs }

        var firstError: Error? { progress.withLock { $0.firstError } }

        func next() -> FileJob? {
            progress.withLock { progress in
                guard progress.firstError == nil, progress.index < jobs.count else { return nil }
                defer { progress.index += 1 }
                return jobs[progress.index]
            }
        }

        func fail(_ error: Error) {
            progress.withLock { if $0.firstError == nil { $0.firstError = error } }
        }
    }
}

/// Starts `count` OS threads running `body(index)` and joins them all.
package enum WorkerThreads {
    package static func run(count: Int, _ body: @escaping (Int) -> Void) throws {
        var threads: [pthread_t] = []
        defer { for thread in threads { pthread_join(thread, nil) } }
        for index in 0..<count {
            threads.append(try OSThread.start { body(index) })
        }
    }
}

extension Mover {
    /// Stores a small in-memory buffer (pg_control, backup_label) through the same filters as a
    /// file job, on the calling thread.
    public func store(bytes: [UInt8], destination: StoragePath, compression: CompressionType,
                      compressLevel: Int) throws -> (checksum: SHA256Digest, repoSize: UInt64, repoChecksum: SHA256Digest) {
        let worker = try Worker(storage: storage, host: host, bufferSize: bufferSize)
        let result = try worker.store(source: MemorySource(bytes), destination: destination,
                                      limit: UInt64(bytes.count), compression: compression, compressLevel: compressLevel)
        guard case .stored(_, let checksum, let repoSize, let repoChecksum, _) = result else {
            throw PGKeepError(.internal, "in-memory store of '\(destination)' produced no result")
        }
        return (checksum, repoSize, repoChecksum)
    }

    /// Copies the stored object `source` (encoded with `compression`) verbatim to `destination`,
    /// decoding it on the way to measure the original: the copy is committed only when the
    /// original has `size` bytes with SHA-256 `checksum` (archived WAL copied into a backup,
    /// `--archive-copy`), so a damaged object is never copied as if it were whole.
    public func copyStored(_ source: StoragePath, compression: CompressionType, to destination: StoragePath,
                           size: UInt64, checksum: SHA256Digest) throws -> (repoSize: UInt64, repoChecksum: SHA256Digest) {
        let worker = try Worker(storage: storage, host: host, bufferSize: bufferSize)
        guard let reader = try storage.openRead(source) else {
            throw PGKeepError(.fileMissing, "stored file '\(storage.describe(source))' is missing from the repository")
        }
        let writer = try storage.openWrite(destination)
        do {
            try worker.codec.readChain(ObjectEncoding(compression: compression))
                .run(from: CopyingSource(reader, copyingTo: writer), into: DiscardSink(), buffer: worker.buffer)
            let original = (size: worker.codec.original.size, checksum: try worker.codec.original.digest())
            guard original.size == size, original.checksum == checksum else {
                throw PGKeepError(.checksumMismatch,
                                  "stored file '\(storage.describe(source))' holds \(original.size) bytes with SHA-256 \(original.checksum.hex), expected \(size) bytes with \(checksum.hex)",
                                  hint: "the archive is damaged: run 'pgkeep verify'")
            }
            try writer.commit()
        } catch {
            writer.abort()
            if let error = error as? PGKeepError, error.code == .compression {
                throw PGKeepError(.checksumMismatch, "stored file '\(storage.describe(source))' is damaged: \(error.message)",
                                  hint: "the archive is damaged: run 'pgkeep verify'")
            }
            throw error
        }
        return (worker.codec.stored.size, try worker.codec.stored.digest())
    }
}

