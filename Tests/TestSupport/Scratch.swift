import Foundation

/// The `postgres` OS user that clusters and the pgkeep binary run as when the test process is root.
public enum PostgresUser {
    /// The account name.
    public static let name = "postgres"

    /// Whether the test process runs as root (and therefore switches to ``name`` for PostgreSQL commands).
    public static var isRoot: Bool { geteuid() == 0 }

    /// `(uid, gid)` of the account, or `nil` when it does not exist.
    public static let ids: (uid: uid_t, gid: gid_t)? = {
        guard let entry = getpwnam(name) else { return nil }
        return (entry.pointee.pw_uid, entry.pointee.pw_gid)
    }()

    /// Hands `path` (not recursively) to the postgres user when root; does nothing otherwise, because then the
    /// current user is the one running PostgreSQL.
    public static func takeOwnership(of path: String) throws {
        guard isRoot else { return }
        guard let ids else {
            throw HarnessError("the test process is root but there is no '\(name)' OS user to run PostgreSQL as")
        }
        guard chown(path, ids.uid, ids.gid) == 0 else {
            throw HarnessError("chown \(name) \(path) failed: \(String(cString: strerror(errno)))")
        }
    }
}

/// A throwaway directory `/tmp/pgkeep-test-XXXXXX` for one test, owned by the postgres user when the test runs
/// as root.
///
/// It is removed by ``remove()``, by ``withScratch(mode:_:)`` when its body ends, or at the latest when the
/// object is released, unless `PGKEEP_KEEP_TEST_DIRS=1` is set: then it is kept and its path is printed to
/// standard error. A ``Cluster`` holds its scratch strongly, so the directory outlives every cluster in it.
public final class Scratch: @unchecked Sendable {
    /// Absolute path of the directory.
    public let path: String

    private let lock = NSLock()
    private var removed = false

    /// Whether `PGKEEP_KEEP_TEST_DIRS=1` asks to keep scratch directories for inspection.
    public static var keepDirectories: Bool { ProcessInfo.processInfo.environment["PGKEEP_KEEP_TEST_DIRS"] == "1" }

    /// Creates a fresh directory with `mode`: `0o700` for directories only PostgreSQL needs, `0o755` where
    /// other users must reach files (binaries run by postgres while the test is not root, for example).
    public init(mode: mode_t = 0o700) throws {
        path = try makeTemporaryDirectory(prefix: "pgkeep-test-", mode: mode)
        try PostgresUser.takeOwnership(of: path)
    }

    /// `path/relative`, without touching the file system.
    public func path(_ relative: String) -> String {
        relative.isEmpty ? path : path + "/" + relative
    }

    /// Creates `path/relative` (and missing parents) with `mode`, owned by the postgres user when root, and
    /// returns its absolute path. Existing directories get the mode and owner too.
    @discardableResult
    public func directory(_ relative: String, mode: mode_t = 0o700) throws -> String {
        var current = path
        for component in relative.split(separator: "/") {
            current += "/" + component
            if mkdir(current, mode) != 0 && errno != EEXIST {
                throw HarnessError("mkdir \(current) failed: \(String(cString: strerror(errno)))")
            }
            try PostgresUser.takeOwnership(of: current)
            guard chmod(current, mode) == 0 else {
                throw HarnessError("chmod \(String(mode, radix: 8)) \(current) failed: \(String(cString: strerror(errno)))")
            }
        }
        return current
    }

    /// Writes `contents` to `path/relative` (replacing it), owned by the postgres user when root, and returns
    /// the absolute path.
    @discardableResult
    public func writeFile(_ relative: String, contents: String, mode: mode_t = 0o644) throws -> String {
        let target = path(relative)
        try Data(contents.utf8).write(to: URL(fileURLWithPath: target))
        try PostgresUser.takeOwnership(of: target)
        guard chmod(target, mode) == 0 else {
            throw HarnessError("chmod \(String(mode, radix: 8)) \(target) failed: \(String(cString: strerror(errno)))")
        }
        return target
    }

    /// Deletes the directory tree, or keeps it and prints its path when `PGKEEP_KEEP_TEST_DIRS=1`. Idempotent.
    /// Stop clusters living here first (``withCluster(name:scratch:archiveCommand:extraConf:environment:_:)`` does).
    public func remove() {
        lock.lock()
        defer { lock.unlock() }
        guard !removed else { return }
        removed = true
        if Self.keepDirectories {
            FileHandle.standardError.write(Data("pgkeep test: keeping scratch directory \(path)\n".utf8))
            return
        }
        // Guard against ever deleting anything but our own temporary directories.
        guard path.hasPrefix("/tmp/pgkeep-test-") else { return }
        try? FileManager.default.removeItem(atPath: path)
    }

    deinit { remove() }
}

/// Runs `body` with a fresh ``Scratch`` and removes it afterwards, also when `body` throws.
public func withScratch<T>(mode: mode_t = 0o700, _ body: (Scratch) async throws -> T) async throws -> T {
    let scratch = try Scratch(mode: mode)
    defer { scratch.remove() }
    return try await body(scratch)
}

/// A harness failure with a self-contained message.
public struct HarnessError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// `mkdtemp("/tmp/<prefix>XXXXXX")` followed by `chmod(mode)` (mkdtemp always creates 0700).
func makeTemporaryDirectory(prefix: String, mode: mode_t) throws -> String {
    var template = Array("/tmp/\(prefix)XXXXXX".utf8CString)
    guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
        throw HarnessError("mkdtemp /tmp/\(prefix)XXXXXX failed: \(String(cString: strerror(errno)))")
    }
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    guard chmod(path, mode) == 0 else {
        throw HarnessError("chmod \(String(mode, radix: 8)) \(path) failed: \(String(cString: strerror(errno)))")
    }
    return path
}
