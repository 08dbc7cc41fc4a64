#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization
import PGKeepCore

/// What a repository lease file records (repo-layout.md §3.8): who holds it and since when, sealed
/// like every metadata file so a torn or edited lease is told from a valid one.
public struct LeaseHolder: Codable, Sendable, Equatable, FormatVersioned {
    public var format = RepositoryFormat.current
    /// The holder's host: `--lock-host`, by default the host name.
    public var host: String
    public var pid: Int32
    /// The command that holds it (`backup`, `expire`, `stanza-repair`).
    public var command: String
    /// When it was taken and when last renewed: seconds since the epoch, on the holder's clock.
    public var since: Int64
    public var renewed: Int64
    /// Seconds after `renewed` within which the holder promises to renew again.
    public var duration: Double
    /// Random: tells this holding from a later one by the same host and pid.
    public var token: String
    /// Features a reader, and besides them a writer, must know (repo-layout.md §3.9); none yet, so
    /// never written, but read so that a file of a later pgkeep naming one is refused.
    public var readerFeatures: [String]? = nil
    public var writerFeatures: [String]? = nil

    public static var highestReadableFormat: Int { RepositoryFormat.current }

    public init(host: String, pid: Int32, command: String, since: Int64, renewed: Int64, duration: Double, token: String) {
        self.host = host
        self.pid = pid
        self.command = command
        self.since = since
        self.renewed = renewed
        self.duration = duration
        self.token = token
    }

    /// What a holding is at `now` (repo-layout.md §3.8), the one rule both the writer taking the
    /// lease and `info` reporting it apply: stale when not renewed within `duration` by the later
    /// of `renewed` and the file's modification time `modified` (seconds; nil when the storage
    /// records none); else gone when held on `host` (the judge's own) by a process that no longer
    /// exists; else live.
    public enum State: Sendable, Equatable { case live, stale, holderGone }

    public func state(now: Int64, modified: Int64?, host: String, duration: Double) -> State {
        if now - lastRenewed(modified: modified) > Int64(duration.rounded(.up)) { return .stale }
        if self.host == host && !Posix.processExists(pid) { return .holderGone }
        return .live
    }

    /// When the holder last renewed, by its own record or the file's modification time, whichever is later.
    public func lastRenewed(modified: Int64?) -> Int64 { max(renewed, modified ?? renewed) }

    /// `host 'a', pid 12, command 'backup', since 2026-11-26 23:05:01+00`, for messages.
    public var description: String {
        "host '\(host)', pid \(pid), command '\(command)', since \(Clock.format(seconds: since, style: .iso8601))"
    }
}

/// How a lease is held and judged: the identity this host gives itself, and the lease duration.
public struct LeaseSettings: Sendable {
    public static let defaultDuration = 60.0

    /// This host's name in leases (`--lock-host`). Hosts sharing a repository need distinct names:
    /// a lease of this host whose pid is gone is taken over at once.
    public var host: String
    /// A lease not renewed for this long (`--lock-lease`, seconds) is stale: its holder is taken
    /// to be dead. The holder renews six times per duration, so a few missed renewals (a slow
    /// NFS server) do not lose it.
    public var duration: Double
    /// Seconds since the epoch; tests move it.
    public var clock: @Sendable () -> Int64

    public var renewInterval: Double { duration / 6 }

    public init(host: String = Posix.hostName(), duration: Double = LeaseSettings.defaultDuration,
                clock: @escaping @Sendable () -> Int64 = { Clock.now() }) {
        self.host = host
        self.duration = duration
        self.clock = clock
    }
}

/// A lease on a repository object (`lock/<stanza>/backup.lease`, repo-layout.md §3.8): the lock of
/// the stanza for every host that shares the repository, where the `flock` of `StanzaLock` only
/// excludes commands of one host.
///
/// Taken by creating the file exclusively (`Storage.createExclusive`); renewed by a thread of its
/// own every `renewInterval`; removed by `release` (also on error paths: `deinit`). A holder that
/// dies leaves the file behind: a lease of this host whose pid no longer exists is taken over at
/// once, any other once stale (not renewed within the lease duration), each with a warning naming
/// the old holder. A damaged lease is held until stale by its file's modification time.
///
/// Staleness compares the later of the recorded renewal and the file's modification time with
/// this host's clock: hosts sharing a repository need clocks within a few seconds of each other.
/// Removing a stale lease and creating the new one are two steps; the file is read again just
/// before the removal, so two hosts taking over the same stale lease at the same instant is the
/// remaining window, and the loser finds out at its next renewal or `confirm`.
public final class RepositoryLease: Sendable {
    public let path: StoragePath
    let storage: Storage
    let settings: LeaseSettings
    let warn: @Sendable (String) -> Void

    /// What the renewing thread and the command share.
    private struct State {
        var holder: LeaseHolder
        /// Why the lease is no longer this process's (taken over, removed); nil while it holds it.
        var lost: String?
        var released = false
        var renewer: PeriodicThread?
    }
    private let state: Mutex<State>

    /// Takes the lease at `path` for `command`, or throws `.lockHeld` naming the holder.
    public static func acquire(storage: Storage, path: StoragePath, command: String, settings: LeaseSettings,
                               warn: @escaping @Sendable (String) -> Void) throws -> RepositoryLease {
        let now = settings.clock()
        let holder = LeaseHolder(host: settings.host, pid: getpid(), command: command, since: now, renewed: now,
                                 duration: settings.duration, token: String(UInt64.random(in: 1...UInt64.max), radix: 16))
        let lease = RepositoryLease(storage: storage, path: path, settings: settings, holder: holder, warn: warn)
        // A few rounds: each one that finds a lease either refuses it or removes it and tries again.
        for _ in 0..<5 {
            if try storage.createExclusive(path, try SealedFile.seal(holder)) {
                try lease.startRenewing()
                return lease
            }
            try lease.judgeExisting()
        }
        throw PGKeepError(.lockHeld, "the lease '\(storage.describe(path))' changed hands five times while this \(command) tried to take it",
                          hint: "other pgkeep commands of this stanza are starting on other hosts; run again when they finished")
    }

    private init(storage: Storage, path: StoragePath, settings: LeaseSettings, holder: LeaseHolder, warn: @escaping @Sendable (String) -> Void) {
        self.storage = storage
        self.path = path
        self.settings = settings
        state = Mutex(State(holder: holder))
        self.warn = warn
    }

    deinit { release() }

    var location: String { storage.describe(path) }

    // MARK: taking over

    /// What is at the lease's path.
    enum Found {
        case missing
        case held(LeaseHolder, bytes: [UInt8], modified: Int64?)
        /// Unreadable: the reason, and the file's modification time when the storage records one.
        case damaged(String, bytes: [UInt8], modified: Int64?)
    }

    func read() throws -> Found {
        guard let bytes = try storage.readSmallFile(path, limit: 1 << 16) else { return .missing }
        let modified = try Self.modifiedSeconds(storage, path)
        do {
            return .held(try SealedFile.open(LeaseHolder.self, from: bytes, name: location), bytes: bytes, modified: modified)
        } catch let error as PGKeepError {
            return .damaged(error.message, bytes: bytes, modified: modified)
        }
    }

    /// Looks at the lease another command left: refuses it while live (throws), or removes it when
    /// its holder is dead, so the caller can try to create it again.
    private func judgeExisting() throws {
        let now = settings.clock()
        let found = try read()
        switch found {
        case .missing:
            return  // released meanwhile
        case .held(let other, let bytes, let modified):
            let last = other.lastRenewed(modified: modified)
            let duration = max(other.duration, settings.duration)
            switch other.state(now: now, modified: modified, host: settings.host, duration: duration) {
            case .stale:
                try remove(bytes, warning: "taking over the stale lease '\(location)' of \(other.description): not renewed for \(now - last) s (lease duration \(Self.seconds(duration)) s)")
            case .holderGone:
                try remove(bytes, warning: "taking over the lease '\(location)' of \(other.description): that process no longer exists on this host")
            case .live:
                throw PGKeepError(.lockHeld, "another pgkeep holds the repository lease '\(location)': \(other.description), last renewed \(max(0, now - last)) s ago",
                                  hint: "wait for that \(other.command) to finish; a lease not renewed for \(Self.seconds(duration)) s is taken over (its holder died). "
                                      + "Hosts sharing a repository need distinct --lock-host names")
            }
        case .damaged(let reason, let bytes, let modified):
            guard let modified else {
                throw PGKeepError(.lockHeld, "the repository lease '\(location)' is damaged (\(reason)) and is treated as held; the storage records no modification time to tell when it is stale",
                                  hint: "if no pgkeep backup or expire of this stanza runs on any host, remove the file and run again")
            }
            let duration = Int64(settings.duration.rounded(.up))
            if now - modified > duration {
                try remove(bytes, warning: "taking over the damaged lease '\(location)' (\(reason)): not written for \(now - modified) s (lease duration \(duration) s)")
            } else {
                throw PGKeepError(.lockHeld, "the repository lease '\(location)' is damaged (\(reason)) and is treated as held until stale: written \(max(0, now - modified)) s ago, stale after \(duration) s",
                                  hint: "run again in \(duration - max(0, now - modified) + 1) s; if no pgkeep backup or expire of this stanza runs on any host, you may remove the file now")
            }
        }
    }

    /// Removes the lease judged dead, unless it changed since it was read (another command took
    /// it over first: the caller's next round judges the new one).
    private func remove(_ judged: [UInt8], warning: String) throws {
        guard try storage.readSmallFile(path, limit: 1 << 16) == judged else { return }
        warn(warning)
        try storage.remove(path)
    }

    /// The holder of the lease at `path` while it is live (renewed within its duration, and, on
    /// this host, its process still running: a killed backup's lease is not a running backup),
    /// for reports: `info` on one host shows the backup another host runs. Nil when there is
    /// none, it is stale, its holder is gone, or it cannot be read.
    public static func liveHolder(storage: Storage, path: StoragePath, host: String = Posix.hostName(),
                                  now: Int64 = Clock.now()) -> LeaseHolder? {
        guard let bytes = try? storage.readSmallFile(path, limit: 1 << 16),
              let holder = try? SealedFile.open(LeaseHolder.self, from: bytes, name: storage.describe(path)) else { return nil }
        let modified = (try? Self.modifiedSeconds(storage, path)) ?? nil
        return holder.state(now: now, modified: modified, host: host, duration: holder.duration) == .live ? holder : nil
    }

    /// The lease file's modification time in whole seconds; nil when the storage records none.
    private static func modifiedSeconds(_ storage: Storage, _ path: StoragePath) throws -> Int64? {
        try storage.info(path).flatMap { $0.modified > 0 ? $0.modified / 1_000_000_000 : nil }
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? String(Int64(value)) : String(value)
    }

    // MARK: holding

    private func startRenewing() throws {
        let thread = try PeriodicThread(interval: settings.renewInterval) { [weak self] in self?.renew() }
        state.withLock { $0.renewer = thread }
    }

    /// One renewal: the lease is rewritten with a new renewal time, if it is still this
    /// process's. A failed write is retried at the next interval (the lease lasts six of them).
    func renew() {
        do {
            try confirm()
            var next = state.withLock { $0.holder }
            next.renewed = settings.clock()
            try storage.writeSmallFile(path, try SealedFile.seal(next))
            state.withLock { $0.holder = next }
        } catch let error as PGKeepError where error.code == .lockHeld {
            return  // lost: confirm said so once, and the command stops at its next confirm
        } catch {
            warn("unable to renew the repository lease '\(location)': \(error); trying again in \(Self.seconds(settings.renewInterval)) s")
        }
    }

    /// Throws `.lockHeld` unless the lease file is still this process's. Commands call it before
    /// they commit (a backup before it writes backup.info, expire before it removes anything), so
    /// a command whose lease was taken over (it stalled for longer than the lease duration) stops
    /// instead of working next to the new holder.
    public func confirm() throws {
        if let lost = state.withLock({ $0.lost }) { throw Self.lostError(lost) }
        let token = state.withLock { $0.holder.token }
        let reason: String
        switch try read() {
        case .held(let current, _, _) where current.token == token:
            return
        case .held(let current, _, _):
            reason = "taken over by \(current.description)"
        case .missing:
            reason = "removed"
        case .damaged(let damage, _, _):
            reason = "overwritten (\(damage))"
        }
        let text = "the repository lease '\(location)' was \(reason) while this process held it"
        state.withLock { $0.lost = text }
        warn(text)
        throw Self.lostError(text)
    }

    static func lostError(_ text: String) -> PGKeepError {
        PGKeepError(.lockHeld, text + "; stopping before changing the repository",
                    hint: "this command stalled for longer than the lease duration (--lock-lease) or another host took the lease; run it again")
    }

    /// Stops renewing and removes the lease when it is still this process's. Never throws: it
    /// runs on error paths; a lease it cannot remove goes stale and is taken over.
    public func release() {
        let thread: PeriodicThread? = state.withLock { state in
            if state.released { return nil }
            state.released = true
            defer { state.renewer = nil }
            return state.renewer
        }
        thread?.stop()
        guard state.withLock({ $0.lost == nil }) else { return }
        do {
            let token = state.withLock { $0.holder.token }
            if case .held(let current, _, _) = try read(), current.token == token { try storage.remove(path) }
        } catch {
            warn("unable to remove the repository lease '\(location)': \(error); the next command takes it over once stale (\(Self.seconds(settings.duration)) s)")
        }
    }
}

/// The backup lock of a stanza, which `backup`, `expire` and `stanza-repair` take: this host's
/// `flock` (`StanzaLock`, released by the kernel whatever happens) and then the repository lease,
/// which excludes the other hosts sharing the repository. Released in the reverse order.
public final class StanzaBackupLock {
    public let local: StanzaLock
    public let lease: RepositoryLease

    public init(storage: Storage, layout: RepositoryLayout, lockPath: String, lease settings: LeaseSettings,
                command: String, log: Log) throws {
        local = try StanzaLock(lockPath: lockPath, stanza: layout.stanza, kind: .backup)
        lease = try RepositoryLease.acquire(storage: storage, path: layout.backupLease, command: command,
                                            settings: settings, warn: { log.warn($0) })
    }

    deinit { lease.release() }
}
