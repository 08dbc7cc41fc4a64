#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The stop files of `pgkeep stop` and `pgkeep start`: `<lock-path>/<stanza>.stop` stops one
/// stanza, `<lock-path>/all.stop` every stanza on this host (the names pgBackRest uses, so an
/// operator's runbook carries over). While one exists, the commands that change the repository
/// (backup, archive-push, expire, stanza-create, stanza-repair, stanza-upgrade) refuse with
/// `.stopped`; readers (restore, archive-get, info, verify) go on, so a stopped host can still
/// recover a cluster.
///
/// A stop file is host-local, like the lock files beside it: it stops what runs on this host,
/// not another host sharing the repository (that host needs its own `stop`).
public struct StopFile: Sendable, Equatable {
    /// The stanza it stops; nil for `all.stop`.
    public let stanza: String?
    public let path: String

    public init(lockPath: String, stanza: String?) {
        self.stanza = stanza
        path = Posix.join(lockPath, "\(stanza ?? "all").stop")
    }

    /// What it stops, for messages: "stanza 'main'" or "all stanzas".
    public var scope: String { stanza.map { "stanza '\($0)'" } ?? "all stanzas" }

    public func exists() throws -> Bool { try Posix.lstat(path) != nil }

    /// Creates the file durably (synced directory); false when it was there already.
    public func create(lockPath: String) throws -> Bool {
        try Posix.mkdirs(lockPath, mode: 0o770)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        if fd < 0 {
            if errno == EEXIST { return false }
            throw PGKeepError.system(.fileOpen, "unable to create stop file", path: path, errno: errno,
                                     hint: "check that --lock-path is writable by this user")
        }
        close(fd)
        try Posix.fsyncDirectory(lockPath)
        return true
    }

    /// Removes the file durably; false when there was none.
    public func remove(lockPath: String) throws -> Bool {
        guard try Posix.unlink(path) else { return false }
        try Posix.fsyncDirectory(lockPath)
        return true
    }

    /// The stop file that stops `stanza` now, if any: its own, else `all.stop`.
    public static func active(lockPath: String, stanza: String?) throws -> StopFile? {
        let candidates = (stanza.map { [StopFile(lockPath: lockPath, stanza: $0)] } ?? [])
            + [StopFile(lockPath: lockPath, stanza: nil)]
        return try candidates.first { try $0.exists() }
    }

    /// Throws `.stopped` when a stop file stops `stanza`: the check every repository-changing
    /// command makes before it does anything.
    public static func refuse(_ command: String, lockPath: String, stanza: String?) throws {
        guard let stop = try active(lockPath: lockPath, stanza: stanza) else { return }
        throw PGKeepError(.stopped, "\(command) is stopped for \(stop.scope): stop file '\(stop.path)' exists",
                          hint: "run 'pgkeep\(stop.stanza.map { " --stanza=\($0)" } ?? "") start' to allow it again")
    }
}
