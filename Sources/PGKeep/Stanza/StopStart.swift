#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PGKeepCore

/// `stop` and `start`: the stop file of a stanza, or of all stanzas, on this host (`StopFile`).
///
/// `stop`:
/// 1. Create the stop file (already there: a warning, not an error, as in pgBackRest, so that a
///    runbook can run it twice).
/// 2. With `--force`, send SIGTERM to the processes holding the stanza's backup lock (a backup,
///    an expire, a stanza-repair or stanza-delete) and asynchronous archive-push lock, and wait up
///    to `terminateWait` seconds for each lock to be free. A backup ended this way is resumed by
///    the next backup after `start`, as after any crash.
///
/// `start`: remove the stop file (none there: a warning).
public struct StanzaStop {
    public struct Outcome: Sendable, Equatable {
        public var stopFile: StopFile
        /// False when the stop file existed already.
        public var created: Bool
        /// The processes terminated (`--force`).
        public var terminated: [StanzaLock.Holder] = []
        /// Of those, the ones whose lock was still held after the wait.
        public var stillRunning: [StanzaLock.Holder] = []
    }

    /// The locks whose holders the stop file stops (archive-get's prefetcher serves a restore,
    /// which a stop file does not stop).
    static let stoppableLocks: [StanzaLock.Kind] = [.backup, .archivePushAsync]

    let lockPath: String
    let stanza: String?
    let log: Log
    /// How long `--force` waits for a terminated process to let go of its lock.
    var terminateWait: Double = 10

    public init(lockPath: String, stanza: String?, log: Log) {
        self.lockPath = lockPath
        self.stanza = stanza
        self.log = log
    }

    public func stop(force: Bool) throws -> Outcome {
        let file = StopFile(lockPath: lockPath, stanza: stanza)
        var outcome = Outcome(stopFile: file, created: try file.create(lockPath: lockPath))
        if !outcome.created { log.warn("stop file '\(file.path)' already exists: \(file.scope) already stopped") }
        if force { try terminateHolders(&outcome) }
        return outcome
    }

    /// Returns false when there was no stop file to remove.
    public func start() throws -> Bool {
        let file = StopFile(lockPath: lockPath, stanza: stanza)
        let removed = try file.remove(lockPath: lockPath)
        if !removed { log.warn("stop file '\(file.path)' does not exist: \(file.scope) was not stopped") }
        if stanza != nil, let all = try StopFile.active(lockPath: lockPath, stanza: nil) {
            log.warn("'\(all.path)' still stops all stanzas: run 'pgkeep start' without --stanza to remove it")
        }
        return removed
    }

    private func terminateHolders(_ outcome: inout Outcome) throws {
        let holders = try StanzaLock.holders(lockPath: lockPath, stanza: stanza, kinds: Self.stoppableLocks)
        for holder in holders where kill(holder.pid, SIGTERM) == 0 {
            log.info("sent SIGTERM to process \(holder.pid), which holds '\(holder.path)'")
            outcome.terminated.append(holder)
        }
        let deadline = Clock.monotonic() + terminateWait
        var waiting = outcome.terminated
        while !waiting.isEmpty && Clock.monotonic() < deadline {
            Clock.sleep(seconds: 0.05)
            let held = try StanzaLock.holders(lockPath: lockPath, stanza: stanza, kinds: Self.stoppableLocks)
            waiting.removeAll { !held.contains($0) }
        }
        outcome.stillRunning = waiting
        for holder in waiting {
            log.warn("process \(holder.pid) still holds '\(holder.path)' \(Int(terminateWait)) s after SIGTERM")
        }
    }
}
