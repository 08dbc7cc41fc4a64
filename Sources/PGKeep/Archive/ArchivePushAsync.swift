#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepMover
import SystemPackage

/// Asynchronous `archive-push` (`--archive-async`): PostgreSQL still calls `archive-push %p` once
/// per segment and still hears success only once that segment is durable in the repository, but
/// the work happens ahead of it. The first call starts a background pusher that walks the
/// `pg_wal/archive_status/*.ready` queue and pushes `--process-max` files at a time, recording a
/// `.ok` per file in the spool. Each call then only waits for its own `.ok`, which is
/// usually there already.
///
/// Nothing is acknowledged early: `.ok` is created only after the repository commit (temp, fsync,
/// rename, fsync directory) returned (`AsyncSpool.recordSuccess`). A crash of the pusher loses
/// nothing: files without `.ok` are pushed again by the next pusher (an identical duplicate is
/// success), and a waiting call restarts the pusher when it sees the pusher's lock free.
public struct ArchivePushAsync {
    public struct Settings: Sendable {
        public var spool: AsyncSpool
        public var lockPath: String
        public var dataDirectory: String
        public var processMax: Int
        public var timeout: Double
        public var logPath: String?
        public var logLevelFile: Log.Level
        /// `--archive-push-queue-max` in bytes; nil (the default): never drop WAL.
        public var queueMax: UInt64?

        public init(spool: AsyncSpool, lockPath: String, dataDirectory: String, processMax: Int, timeout: Double,
                    logPath: String?, logLevelFile: Log.Level, queueMax: UInt64? = nil) {
            self.spool = spool
            self.lockPath = lockPath
            self.dataDirectory = dataDirectory
            self.processMax = processMax
            self.timeout = timeout
            self.logPath = logPath
            self.logLevelFile = logLevelFile
            self.queueMax = queueMax
        }
    }

    let settings: Settings
    let stanza: String
    let log: Log
    /// Builds the synchronous pusher a worker uses; one per worker thread (buffers, codec contexts).
    let makePush: @Sendable (Log) -> ArchivePush

    public init(settings: Settings, stanza: String, log: Log, makePush: @escaping @Sendable (Log) -> ArchivePush) {
        self.settings = settings
        self.stanza = stanza
        self.log = log
        self.makePush = makePush
    }

    // MARK: - The call PostgreSQL makes

    /// Waits until `walPath`'s file is durable in the repository, starting the background pusher when
    /// it is not running. Throws the pusher's recorded error, or `archiveTimeout`.
    public func push(walPath: String) throws {
        let name = Posix.basename(walPath)
        guard WALFileName(name) != nil else {
            throw PGKeepError(.walInvalid, "'\(walPath)' is not a WAL file name PostgreSQL archives",
                              hint: "archive_command must pass %p: archive_command = 'pgkeep --stanza=\(stanza) --archive-async archive-push %p'")
        }
        let spool = settings.spool
        let start = Clock.monotonic()
        var nextLaunchCheck = 0.0
        while true {
            switch try spool.pushStatus(name) {
            case .ok:
                // Consumed: PostgreSQL marks the file done once we return; if it asks again (a crash
                // before it did), the pusher finds it archived with the same content.
                _ = try? Posix.unlink(spool.okFile(name))
                log.info("\(name) is in the repository (pushed asynchronously)")
                return
            case .dropped(let message, let hint):
                // PostgreSQL hears success (it may recycle the segment: that is the point of the
                // option); its server log, which receives our stderr, hears the error.
                _ = try? Posix.unlink(spool.okFile(name))
                log.error("\(PGKeepError(.archiveDropped, message, hint: hint))")
                return
            case .failed(let error):
                // Reported once; the next call starts over with a fresh attempt.
                _ = try? Posix.unlink(spool.errorFile(name))
                throw error
            case nil:
                break
            }
            let elapsed = Clock.monotonic() - start
            if elapsed >= settings.timeout {
                throw PGKeepError(.archiveTimeout,
                                  "asynchronous archive-push of \(name) did not finish within \(settings.timeout) seconds",
                                  hint: "see \(settings.logPath.map { "'\($0)/\(stanza)-archive-push-async.log'" } ?? "the archive-push-async log"); PostgreSQL will call again")
            }
            // Start the pusher now, and again whenever its lock is free (it exited or crashed)
            // while our file still has no status.
            if elapsed >= nextLaunchCheck {
                try StopFile.refuse("archive-push", lockPath: settings.lockPath, stanza: stanza)
                try launchPusherIfIdle()
                nextLaunchCheck = elapsed + 0.5
            }
            Clock.sleep(seconds: 0.005)
        }
    }

    private func launchPusherIfIdle() throws {
        guard StanzaLock.isFree(lockPath: settings.lockPath, stanza: stanza, kind: .archivePushAsync) else { return }
        let settings = self.settings
        let stanza = self.stanza
        let makePush = self.makePush
        try Detached.spawn {
            let log = Log(consoleLevel: .off)
            if let logPath = settings.logPath {
                log.openFile(directory: logPath, name: "\(stanza)-archive-push-async.log", level: settings.logLevelFile)
            }
            // Another caller may have started one between our check and now: the lock decides.
            guard let lock = try? StanzaLock(lockPath: settings.lockPath, stanza: stanza, kind: .archivePushAsync) else { return 0 }
            defer { withExtendedLifetime(lock) {} }
            let pusher = ArchivePushAsync(settings: settings, stanza: stanza, log: log, makePush: makePush)
            do {
                try pusher.drainQueue()
                return 0
            } catch {
                log.error("archive-push-async stopped: \(error)")
                return 1
            }
        }
    }

    // MARK: - The background pusher

    /// Pushes every `.ready` file that has no status yet, `processMax` at a time, until the queue stays
    /// empty for a moment. Runs with the archive-push-async lock held.
    func drainQueue() throws {
        log.info("archive-push-async begin: data directory '\(settings.dataDirectory)', process-max \(settings.processMax)")
        let started = Clock.monotonic()
        var pushed = 0
        var repaired = 0
        var idleSince: Double?
        var dropper = settings.queueMax.map { QueueLimiter(max: $0) }
        while true {
            // `pgkeep stop` reaches a pusher already running: it ends at the next round, and the
            // callers waiting for their files then fail with the stop error themselves.
            if let stop = try StopFile.active(lockPath: settings.lockPath, stanza: stanza) {
                log.warn("archive-push-async stopping: stop file '\(stop.path)' exists")
                break
            }
            if dropper != nil {
                try dropper!.flushPendingDrops(self)
                try dropper!.enforce(self)
            }
            let pending = try pendingFiles()
            if pending.isEmpty {
                let now = Clock.monotonic()
                if let since = idleSince, now - since > 1.0 { break }
                if idleSince == nil { idleSince = now }
                Clock.sleep(seconds: 0.05)
                continue
            }
            idleSince = nil
            let round = try pushAll(pending)
            pushed += round.pushed
            repaired += round.repaired
            try pruneAcknowledged()
        }
        let seconds = Clock.monotonic() - started
        // Repairs are counted apart: each one means the repository had damaged an archived file.
        let summary = "archive-push-async end: \(pushed) files pushed in \(Int(seconds * 1000))ms"
        if repaired == 0 {
            log.info(summary)
        } else {
            log.warn(summary + "; \(repaired) of them replaced a damaged archived copy")
        }
    }

    /// `.ready` files without a status, history files first (PostgreSQL archives those first: a
    /// new timeline must be visible before its segments), then by name.
    func pendingFiles() throws -> [String] {
        let statusDirectory = Posix.join(settings.dataDirectory, "pg_wal/archive_status")
        guard let entries = try Posix.listDirectory(statusDirectory) else {
            throw PGKeepError(.pathMissing, "'\(statusDirectory)' does not exist",
                              hint: "--pg1-path must be the data directory of the cluster that archives (PostgreSQL runs archive_command in it)")
        }
        var names: [String] = []
        for entry in entries where entry.hasSuffix(".ready") {
            let name = String(entry.dropLast(".ready".count))
            guard WALFileName(name) != nil else { continue }
            if try Posix.lstat(settings.spool.okFile(name)) != nil { continue }
            if try Posix.lstat(settings.spool.errorFile(name)) != nil { continue }
            names.append(name)
        }
        return names.sorted { a, b in
            let aHistory = a.hasSuffix(".history"), bHistory = b.hasSuffix(".history")
            return aHistory != bHistory ? aHistory : a < b
        }
    }

    /// Pushes `names` with up to `processMax` worker threads; returns how many succeeded, and how
    /// many of those replaced a damaged stored copy.
    fileprivate func pushAll(_ names: [String]) throws -> (pushed: Int, repaired: Int) {
        let queue = WorkQueue(names)
        let succeeded = Counter()
        let repaired = Counter()
        let log = self.log
        let spool = settings.spool
        let dataDirectory = settings.dataDirectory
        let walDirectory = Posix.join(dataDirectory, "pg_wal")
        let makePush = self.makePush
        try WorkerThreads.run(count: max(1, min(settings.processMax, names.count))) { _ in
            let push = makePush(log)
            while let name = queue.next() {
                do {
                    let outcome = try push.push(walPath: Posix.join(walDirectory, name), dataDirectory: dataDirectory)
                    try spool.recordSuccess(name)
                    succeeded.add()
                    if case .repaired = outcome { repaired.add() }
                } catch {
                    log.error("push of \(name) failed: \(error)")
                    try? spool.recordFailure(name, error)
                }
            }
        }
        return (succeeded.value, repaired.value)
    }

    /// Removes `.ok` files PostgreSQL no longer needs (its `.ready` is gone: archived and marked done).
    private func pruneAcknowledged() throws {
        guard let entries = try Posix.listDirectory(settings.spool.outDirectory) else { return }
        let statusDirectory = Posix.join(settings.dataDirectory, "pg_wal/archive_status")
        for entry in entries where entry.hasSuffix(".ok") {
            let name = String(entry.dropLast(3))
            if try Posix.lstat(Posix.join(statusDirectory, name + ".ready")) == nil {
                _ = try? Posix.unlink(Posix.join(settings.spool.outDirectory, entry))
            }
        }
    }
}

/// `--archive-push-queue-max` in the background pusher (`ArchivePushQueue` has the semantics):
/// before each round, drops the oldest segments of a queue that grew past the maximum, recording
/// the drop in the spool first and in the repository as soon as it takes writes.
struct QueueLimiter {
    let max: UInt64
    /// The cluster's WAL segment size, from pg_control (read once).
    private var segmentSize: UInt64?
    /// Whether the last failure to write a pending record was logged (once per pusher run).
    private var flushFailureLogged = false

    init(max: UInt64) { self.max = max }

    mutating func enforce(_ pusher: ArchivePushAsync) throws {
        let settings = pusher.settings
        let spool = settings.spool
        if segmentSize == nil { segmentSize = try PGControl.read(dataDirectory: settings.dataDirectory).walSegmentSize.bytes }
        guard let segmentSize, let size = WALSegmentSize(bytes: segmentSize) else { return }
        let queue = try ArchivePushQueue.read(statusDirectory: FilePath(Posix.join(settings.dataDirectory, "pg_wal/archive_status")),
                                              segmentSize: segmentSize) { name, _ in try Posix.lstat(spool.okFile(name)) != nil }
        var decision = queue.decide(max: max)
        guard !decision.drop.isEmpty else { return }
        // Only WAL that cannot be stored now is given up. Segments whose last push failed are not
        // retried by a round until PostgreSQL asks again, and the repository may have recovered
        // meanwhile: push them once more first, and drop only what still fails.
        _ = try pusher.pushAll(decision.drop)
        decision = try ArchivePushQueue.read(statusDirectory: FilePath(Posix.join(settings.dataDirectory, "pg_wal/archive_status")),
                                             segmentSize: segmentSize) { name, _ in try Posix.lstat(spool.okFile(name)) != nil }.decide(max: max)
        guard !decision.drop.isEmpty else { return }
        let now = Clock.now()
        let records = DroppedWAL.records(for: decision.drop.compactMap { WALSegmentName($0, segmentSize: size) },
                                         droppedAt: now, queueSize: decision.queueBytes, queueMax: max)
        // The record first, durably in the spool: no segment is acknowledged as dropped before its
        // drop is written down somewhere that outlives this process.
        for record in records { try spool.savePendingDrop(record) }
        let hint = ArchivePushQueue.Decision.dropHint(records, cause: "see the archive-push-async log")
        for name in decision.drop {
            let message = decision.dropMessage(name, max: max)
            try spool.recordDropped(name, message: message, hint: hint)
            pusher.log.error("\(PGKeepError(.archiveDropped, message, hint: hint))")
        }
        try flushPendingDrops(pusher)
    }

    /// Writes the spool's pending drop records into the repository, each removed from the spool once
    /// the repository has it. A repository that still refuses writes keeps them pending: the next
    /// round tries again. Never throws for the repository: the drop already happened, and pushing
    /// must go on.
    mutating func flushPendingDrops(_ pusher: ArchivePushAsync) throws {
        let spool = pusher.settings.spool
        do {
            try spool.flushPendingDrops(into: pusher.makePush(pusher.log))
            flushFailureLogged = false
        } catch {
            if !flushFailureLogged {
                pusher.log.warn("unable to record dropped WAL in the repository yet (kept in '\(spool.outDirectory)', retried): \(error)")
                flushFailureLogged = true
            }
        }
    }
}

/// A fixed list handed out one item at a time to worker threads.
/// Each item goes to one thread.
final class WorkQueue<Item: Sendable>: Sendable {
    private let items: [Item]
    private let index = Mutex(0)

    init(_ items: [Item]) { self.items = items }

    func next() -> Item? {
        index.withLock { index in
            guard index < items.count else { return nil }
            defer { index += 1 }
            return items[index]
        }
    }
}

final class Counter: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
