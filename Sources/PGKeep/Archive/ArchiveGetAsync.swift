#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization
import PGKeepCore
import PGKeepPostgres
import PGKeepMover

/// Asynchronous `archive-get` (`--archive-async`): recovery asks for one segment at a time and
/// replays it before asking for the next, so every fetch latency stalls replay. Each call hands over
/// the segment from the spool when it was prefetched (else fetches it directly, as without
/// `--archive-async`), and makes sure a background prefetcher is fetching the following segments
/// of the same timeline, up to `--archive-get-queue-max` bytes, `--process-max` at a time.
///
/// A prefetched file is fetched through the same checksum-verifying path as a direct fetch,
/// fsynced, and only then renamed to its final spool name, which carries the SHA-256 it was verified
/// against: a spool file that exists is complete and verified, even after a power failure. Timeline
/// history files and partial segments are always fetched directly (PostgreSQL asks for history
/// files that do not exist and must hear so at once).
///
/// The prefetcher never decides what recovery hears: its failures are only logged, and the call
/// PostgreSQL makes fetches directly whatever the spool lacks, so "not in the archive" always comes
/// from the archive. At hand-over a spool file's size must be the segment size; one that is short,
/// long or unreadable is discarded and the file fetched directly. Its content is not hashed again:
/// it was verified against the archive's SHA-256 and fsynced before it got its final name, seconds
/// earlier, and a second SHA-256 would put ~9 ms per 16 MiB segment on recovery's critical path,
/// which is what prefetching exists to shorten.
public struct ArchiveGetAsync {
    public struct Settings: Sendable {
        public var spool: AsyncSpool
        public var lockPath: String
        public var dataDirectory: String
        public var queueMax: Int
        public var processMax: Int
        public var bufferSize: Int
        public var logPath: String?
        public var logLevelFile: Log.Level

        public init(spool: AsyncSpool, lockPath: String, dataDirectory: String, queueMax: Int, processMax: Int,
                    bufferSize: Int, logPath: String?, logLevelFile: Log.Level) {
            self.spool = spool
            self.lockPath = lockPath
            self.dataDirectory = dataDirectory
            self.queueMax = queueMax
            self.processMax = processMax
            self.bufferSize = bufferSize
            self.logPath = logPath
            self.logLevelFile = logLevelFile
        }
    }

    let settings: Settings
    let stanza: String
    let log: Log
    let makeGet: @Sendable (Log) -> ArchiveGet

    public init(settings: Settings, stanza: String, log: Log, makeGet: @escaping @Sendable (Log) -> ArchiveGet) {
        self.settings = settings
        self.stanza = stanza
        self.log = log
        self.makeGet = makeGet
    }

    public func get(walFile: String, destination: String) throws {
        guard let segmentSize = segmentSize(),
              let segment = WALSegmentName(walFile, segmentSize: segmentSize), walFile.count == WALSegmentName.nameLength else {
            // Not a whole segment (history, partial, backup history), or the segment size is unknown.
            try makeGet(log).get(walFile: walFile, destination: destination)
            return
        }
        waitWhilePrefetching(walFile)
        if let spooled = try settings.spool.findPrefetched(walFile),
           try handOver(spooled.path, size: segmentSize.bytes, walFile: walFile, to: destination) {
            log.info("handed over \(walFile) from the prefetch queue")
        } else {
            try makeGet(log).get(walFile: walFile, destination: destination)
        }
        // Only now, with the requested file in place: a missing segment (the end of the archive)
        // starts no prefetching, since the error above left already. The file is delivered, so a
        // prefetcher that cannot start must not turn that into a failure: it only costs speed.
        do {
            try launchPrefetcherIfIdle(after: segment)
        } catch {
            log.warn("unable to start the archive-get prefetcher, recovery continues without it: \(error)")
        }
    }

    /// When the prefetcher is fetching this very segment right now (its partial file is in the
    /// spool), waits for it rather than fetching the same bytes a second time; gives up when the
    /// prefetcher stops or after a generous bound (a stuck prefetcher must not stall recovery).
    private func waitWhilePrefetching(_ walFile: String) {
        let started = Clock.monotonic()
        let marker = walFile + "."
        while Clock.monotonic() - started < 30 {
            if (try? settings.spool.findPrefetched(walFile)) != nil { return }
            guard !StanzaLock.isFree(lockPath: settings.lockPath, stanza: stanza, kind: .archiveGetAsync),
                  let entries = try? Posix.listDirectory(settings.spool.inDirectory),
                  entries.contains(where: { $0.hasPrefix(marker) }) else { return }
            Clock.sleep(seconds: 0.002)
        }
    }

    /// The cluster's WAL segment size from the pg_control of the data directory being recovered.
    private func segmentSize() -> WALSegmentSize? {
        guard let control = try? PGControl.read(dataDirectory: settings.dataDirectory) else { return nil }
        return control.walSegmentSize
    }

    /// Moves the spool file into place once its size is the segment size: a rename when on the
    /// same file system, else a copy to a temporary name and a rename (PostgreSQL must never see a
    /// short file at `%p`). Returns false, having removed the spool file, when it is short, long or
    /// unreadable: the caller then fetches from the repository.
    private func handOver(_ spoolFile: String, size: UInt64, walFile: String, to destination: String) throws -> Bool {
        do {
            guard let source = try FileSource.open(spoolFile) else { return false }
            let found = try Posix.fstat(source.fd, path: spoolFile).size
            guard found == size else {
                throw PGKeepError(.sizeMismatch, "it has \(found) bytes, not the segment size \(size)")
            }
        } catch {
            log.warn("prefetched '\(spoolFile)' is damaged or unreadable (\(error)); discarding it and fetching \(walFile) from the repository")
            _ = try? Posix.unlink(spoolFile)
            return false
        }
        if Glibc.rename(spoolFile, destination) == 0 { return true }
        // Gone since it was checked (a prefetcher cleaning its window): fetch it directly.
        if errno == ENOENT { return false }
        guard errno == EXDEV else {
            throw PGKeepError.system(.fileWrite, "unable to move prefetched file to '\(destination)'", path: spoolFile, errno: errno)
        }
        guard let source = try FileSource.open(spoolFile) else {
            throw PGKeepError(.fileMissing, "prefetched file '\(spoolFile)' vanished")
        }
        let temporary = destination + ".pgkeep-tmp.\(getpid())"
        let sink = try FileSink(creating: temporary, mode: 0o600, temporaryFor: destination)
        do {
            try FilterChain([]).run(from: source, into: sink, buffer: IOBuffer(size: settings.bufferSize))
            try sink.close()
            try Posix.rename(temporary, destination)
        } catch {
            try? sink.close()
            _ = try? Posix.unlink(temporary)
            throw error
        }
        _ = try? Posix.unlink(spoolFile)
        return true
    }

    private func launchPrefetcherIfIdle(after segment: WALSegmentName) throws {
        guard StanzaLock.isFree(lockPath: settings.lockPath, stanza: stanza, kind: .archiveGetAsync) else { return }
        let settings = self.settings
        let stanza = self.stanza
        let makeGet = self.makeGet
        try Detached.spawn {
            let log = Log(consoleLevel: .off)
            if let logPath = settings.logPath {
                log.openFile(directory: logPath, name: "\(stanza)-archive-get-async.log", level: settings.logLevelFile)
            }
            guard let lock = try? StanzaLock(lockPath: settings.lockPath, stanza: stanza, kind: .archiveGetAsync) else { return 0 }
            defer { withExtendedLifetime(lock) {} }
            let prefetcher = ArchiveGetAsync(settings: settings, stanza: stanza, log: log, makeGet: makeGet)
            do {
                try prefetcher.prefetch(after: segment)
                return 0
            } catch {
                log.error("archive-get-async stopped: \(error)")
                return 1
            }
        }
    }

    /// The segments to hold after `segment`: as many as fit in the queue, at least one.
    func window(after segment: WALSegmentName) -> [WALSegmentName] {
        let count = max(1, settings.queueMax / Int(segment.segmentSize.bytes))
        var names: [WALSegmentName] = []
        var current = segment
        for _ in 0..<count {
            current = current.next
            names.append(current)
        }
        return names
    }

    /// Fills the queue after `segment`, dropping spool files outside the window (consumed, skipped,
    /// or from another timeline). Runs with the archive-get-async lock held.
    func prefetch(after segment: WALSegmentName) throws {
        let window = window(after: segment)
        let wanted = Set(window.map(\.name))
        let directory = settings.spool.inDirectory
        try Posix.mkdirs(directory, mode: 0o750)
        // Everything but a complete file of the window goes: consumed or skipped segments, other
        // timelines, and partial files a killed prefetcher left (we hold the lock: none is ours).
        var held: Set<String> = []
        for entry in try Posix.listDirectory(directory) ?? [] {
            if let parsed = AsyncSpool.parsePrefetched(entry), wanted.contains(parsed.wal), held.insert(parsed.wal).inserted { continue }
            _ = try? Posix.unlink(Posix.join(directory, entry))
        }
        let missing = window.map(\.name).filter { !held.contains($0) }
        guard !missing.isEmpty else { return }
        log.info("archive-get-async begin: prefetching \(missing.count) segments after \(segment.name)")
        let queue = WorkQueue(missing)
        let fetched = Counter()
        let log = self.log
        let spool = settings.spool
        let makeGet = self.makeGet
        // Past the end of the archive every fetch would fail: stop handing out names after the
        // first one the archive does not have.
        let endReached = Flag()
        try WorkerThreads.run(count: max(1, min(settings.processMax, missing.count))) { _ in
            let get = makeGet(log)
            while !endReached.isSet, let name = queue.next() {
                let partial = spool.prefetching(name)
                do {
                    let checksum = try get.get(walFile: name, destination: partial)
                    guard let file = try FileSource.open(partial) else { continue }
                    try Posix.fsync(file.fd, path: partial)
                    try Posix.rename(partial, spool.prefetched(name, checksum: checksum))
                    try Posix.fsyncDirectory(spool.inDirectory)
                    fetched.add()
                } catch {
                    _ = try? Posix.unlink(partial)
                    if let error = error as? PGKeepError, error.code == .archiveFileMissing {
                        endReached.set()
                    } else {
                        log.error("prefetch of \(name) failed: \(error)")
                    }
                }
            }
        }
        log.info("archive-get-async end: \(fetched.value) segments prefetched")
    }
}

final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
