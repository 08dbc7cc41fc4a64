#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive, advisory lock per stanza and purpose (`flock` on `<lock-path>/<stanza>-<kind>.lock`).
/// The kernel releases it when the process exits, however it exits, so a crashed backup never
/// leaves a stale lock behind. Two backups of one stanza (or a backup and an expire) cannot run
/// at once on this host; `StanzaBackupLock` adds the repository lease for the other hosts sharing
/// the repository. archive-push takes no lock (concurrent pushes are safe by construction).
public final class StanzaLock {
    public enum Kind: String, Sendable {
        case backup
        /// The background pusher of asynchronous archive-push: one per stanza.
        case archivePushAsync = "archive-push-async"
        /// The background prefetcher of asynchronous archive-get: one per stanza.
        case archiveGetAsync = "archive-get-async"
    }

    private let fd: Int32
    public let path: String

    public init(lockPath: String, stanza: String, kind: Kind) throws {
        try Posix.mkdirs(lockPath, mode: 0o770)
        path = Posix.join(lockPath, "\(stanza)-\(kind.rawValue).lock")
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        if fd < 0 {
            throw PGKeepError.system(.fileOpen, "unable to open lock file", path: path, errno: errno,
                                     hint: "check that --lock-path is writable by this user")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK {
                throw PGKeepError(.lockHeld, "another pgkeep \(kind.rawValue) is running for stanza '\(stanza)' (lock '\(path)' is held)",
                                  hint: "wait for it to finish; the lock is released when that process exits")
            }
            throw PGKeepError.system(.fileOpen, "unable to lock", path: path, errno: code)
        }
        // Record who holds it, for operators looking at the file.
        let text = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { write(fd, $0, strlen($0)) }
    }

    /// Whether nobody holds the lock right now (a snapshot: take the lock itself to act on it).
    public static func isFree(lockPath: String, stanza: String, kind: Kind) -> Bool {
        let path = Posix.join(lockPath, "\(stanza)-\(kind.rawValue).lock")
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return true }  // never taken
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return true
        }
        return false
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }

    /// A process holding one of this host's lock files.
    public struct Holder: Sendable, Equatable {
        public var path: String
        public var kind: Kind
        public var pid: Int32
    }

    /// Who holds the `kinds` locks of `stanza` (of every stanza when nil) right now, from the pid
    /// each holder writes into its file. A snapshot, for `stop --force`.
    public static func holders(lockPath: String, stanza: String?, kinds: [Kind]) throws -> [Holder] {
        guard let names = try Posix.listDirectory(lockPath) else { return [] }
        var found: [Holder] = []
        for name in names.sorted() {
            guard let kind = kinds.first(where: { name.hasSuffix("-\($0.rawValue).lock") }) else { continue }
            if let stanza, name != "\(stanza)-\(kind.rawValue).lock" { continue }
            let path = Posix.join(lockPath, name)
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { continue }
            defer { close(fd) }
            if flock(fd, LOCK_SH | LOCK_NB) == 0 {  // free: nobody to stop
                flock(fd, LOCK_UN)
                continue
            }
            var bytes = [UInt8](repeating: 0, count: 32)
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
            let text = n > 0 ? String(decoding: bytes[0..<n], as: UTF8.self) : ""
            guard let pid = Int32(text.trimmingCharacters(in: " \n")), pid > 0 else { continue }
            found.append(Holder(path: path, kind: kind, pid: pid))
        }
        return found
    }
}
