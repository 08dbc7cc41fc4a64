import Foundation
import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig
import Synchronization

/// A clock the tests move by hand: lease times are seconds since the epoch. It starts 10 s ahead
/// of the wall clock that stamps the storage's modification times, so the times a lease records
/// decide its age (a damaged lease has only its modification time: 10 s old at the start).
final class ManualClock: @unchecked Sendable {
    private let lock = Mutex(())
    private var value: Int64

    init(_ start: Int64 = Clock.now() + 10) { value = start }
    var now: Int64 { lock.withLock { _ in value } }
    func advance(_ seconds: Int64) { lock.withLock { _ in value += seconds } }
}

/// Warnings a lease gave, collected from any thread.
final class Warnings: @unchecked Sendable {
    private let lock = Mutex(())
    private var items: [String] = []
    func append(_ item: String) { lock.withLock { _ in items.append(item) } }
    var all: [String] { lock.withLock { _ in items } }
}

@Suite("Repository lease")
struct RepositoryLeaseTests {
    let storage = MemoryStorage(name: "repo")
    let path = try! RepositoryLayout(stanza: "main").backupLease
    let clock = ManualClock()
    let warnings = Warnings()

    func settings(host: String, duration: Double = 60) -> LeaseSettings {
        let clock = clock
        return LeaseSettings(host: host, duration: duration, clock: { clock.now })
    }

    func acquire(host: String = "host-a", command: String = "backup", duration: Double = 60) throws -> RepositoryLease {
        let warnings = warnings
        return try RepositoryLease.acquire(storage: storage, path: path, command: command,
                                           settings: settings(host: host, duration: duration), warn: { warnings.append($0) })
    }

    func holder() throws -> LeaseHolder? {
        guard let bytes = try storage.readSmallFile(path) else { return nil }
        return try SealedFile.open(LeaseHolder.self, from: bytes, name: "lease")
    }

    /// The pid of a process that has exited (and been reaped): nobody has it.
    func deadPID() throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        return process.processIdentifier
    }

    /// Writes a lease of another holder, as its pgkeep would have.
    func plant(_ holder: LeaseHolder) throws {
        try storage.writeSmallFile(path, try SealedFile.seal(holder))
    }

    func foreign(host: String, pid: Int32, renewed: Int64) -> LeaseHolder {
        LeaseHolder(host: host, pid: pid, command: "expire", since: renewed - 5, renewed: renewed, duration: 60, token: "0ther")
    }

    func expectHeld(_ body: () throws -> Void, naming parts: [String]) {
        do {
            try body()
            Issue.record("the lease was taken, expected lock-held")
        } catch let error as PGKeepError {
            #expect(error.code == .lockHeld, "\(error)")
            for part in parts { #expect(error.description.contains(part), "'\(part)' missing from: \(error)") }
            #expect(error.hint?.isEmpty == false, "\(error)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("acquire creates a sealed lease naming host, pid, command and times; release removes it")
    func acquireAndRelease() throws {
        let lease = try acquire()
        let recorded = try #require(try holder())
        #expect(recorded.host == "host-a" && recorded.pid == getpid() && recorded.command == "backup")
        #expect(recorded.since == clock.now && recorded.renewed == clock.now && recorded.duration == 60)
        #expect(storage.describe(path) == "memory://repo/lock/main/backup.lease")
        try lease.confirm()
        lease.release()
        #expect(try storage.info(path) == nil)
        #expect(warnings.all.isEmpty, "\(warnings.all)")
        // Free again: the next command takes it.
        let next = try acquire(command: "expire")
        #expect(try holder()?.command == "expire")
        next.release()
    }

    @Test("a live lease is refused with lock-held naming the lease path and its holder, on this host and from another")
    func refusesHeld() throws {
        let lease = try acquire()
        let since = Clock.format(seconds: clock.now, style: .iso8601)
        // This host, a live pid (this process): held.
        expectHeld({ _ = try acquire(command: "expire") },
                   naming: ["memory://repo/lock/main/backup.lease", "host 'host-a'", "pid \(getpid())", "command 'backup'", since])
        // Another host, just before the lease goes stale: held.
        clock.advance(60)
        expectHeld({ _ = try acquire(host: "host-b") }, naming: ["backup.lease", "host 'host-a'", "last renewed 60 s ago"])
        #expect(try holder()?.host == "host-a", "a refused acquire leaves the lease as it was")
        lease.release()
    }

    @Test("a lease of this host whose process is gone is taken over at once, with a warning naming the old holder")
    func takesOverDeadLocalPID() throws {
        let pid = try deadPID()
        try plant(foreign(host: "host-a", pid: pid, renewed: clock.now))
        let lease = try acquire()
        #expect(try holder()?.pid == getpid())
        #expect(warnings.all.count == 1)
        #expect(warnings.all.first?.contains("pid \(pid)") == true && warnings.all.first?.contains("no longer exists") == true, "\(warnings.all)")
        lease.release()
    }

    @Test("a lease of another host with the same pid is not taken over because that pid is dead here")
    func foreignPIDIsNotJudgedHere() throws {
        try plant(foreign(host: "host-b", pid: try deadPID(), renewed: clock.now))
        expectHeld({ _ = try acquire() }, naming: ["host 'host-b'", "command 'expire'"])
    }

    @Test("a lease of another host is taken over only once stale, with a warning naming the old holder")
    func takesOverStaleForeign() throws {
        try plant(foreign(host: "host-b", pid: 4242, renewed: clock.now))
        clock.advance(60)
        expectHeld({ _ = try acquire() }, naming: ["host 'host-b'", "pid 4242"])
        clock.advance(1)
        let lease = try acquire()
        #expect(try holder()?.host == "host-a")
        let warning = try #require(warnings.all.first)
        #expect(warning.contains("stale") && warning.contains("host 'host-b'") && warning.contains("pid 4242") && warning.contains("not renewed for 61 s"), "\(warning)")
        lease.release()
    }

    @Test("staleness uses the longer of the holder's lease duration and this host's")
    func holdersDurationCounts() throws {
        var holder = foreign(host: "host-b", pid: 4242, renewed: clock.now)
        holder.duration = 600
        try plant(holder)
        clock.advance(300)
        expectHeld({ _ = try acquire(duration: 5) }, naming: ["host 'host-b'", "600 s"])
    }

    @Test("renewal keeps a lease live past its duration; without it the lease goes stale")
    func renewalKeepsItLive() throws {
        let lease = try acquire(duration: 60)
        for _ in 0..<3 {
            clock.advance(50)
            lease.renew()
        }
        #expect(try holder()?.renewed == clock.now)
        clock.advance(50)
        // 200 s after it was taken, 50 s after the last renewal: still held.
        expectHeld({ _ = try acquire(host: "host-b") }, naming: ["host 'host-a'", "last renewed 50 s ago"])
        clock.advance(11)
        let successor = try acquire(host: "host-b")
        #expect(try holder()?.host == "host-b")
        // The old holder finds out before it changes anything, and leaves the successor's lease.
        expectHeld({ try lease.confirm() }, naming: ["taken over by host 'host-b'"])
        lease.release()
        #expect(try holder()?.host == "host-b")
        successor.release()
        #expect(try storage.info(path) == nil)
    }

    @Test("the holder's thread renews the lease every sixth of the duration")
    func backgroundRenewal() async throws {
        let lease = try acquire(duration: 0.6)
        let taken = clock.now
        clock.advance(30)
        let deadline = ContinuousClock.now + .seconds(5)
        while try holder()?.renewed != clock.now, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try holder()?.renewed == taken + 30)
        #expect(try holder()?.since == taken)
        lease.release()
        #expect(try storage.info(path) == nil)
    }

    @Test("a damaged lease is held until stale by its modification time, and the message says it is damaged")
    func damagedLease() throws {
        var bytes = try SealedFile.seal(foreign(host: "host-b", pid: 4242, renewed: clock.now))
        bytes[10] ^= 0x01
        try storage.writeSmallFile(path, bytes)
        expectHeld({ _ = try acquire() }, naming: ["backup.lease", "damaged", "checksum mismatch", "treated as held until stale"])
        clock.advance(62)
        let lease = try acquire()
        #expect(try holder()?.host == "host-a")
        let warning = try #require(warnings.all.first)
        #expect(warning.contains("damaged") && warning.contains("backup.lease"), "\(warning)")
        lease.release()
    }

    @Test("releasing twice, or after the lease was removed by hand, is harmless")
    func releaseIsIdempotent() throws {
        let lease = try acquire()
        try storage.remove(path)
        expectHeld({ try lease.confirm() }, naming: ["was removed"])
        lease.release()
        lease.release()
        #expect(try storage.info(path) == nil)
    }
}
