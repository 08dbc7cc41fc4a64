import PGKeep
import SystemPackage
import Synchronization

/// A database host held in memory: a file tree the test builds and a server (`ScriptedSQL`) that
/// answers the facade's calls from values the test sets. Backup code runs against it exactly as
/// against `LocalHost`, so its error paths (a file vanishing, the server failing a call, storage
/// failing under it) run in unit tests without a PostgreSQL server. Integration tests still use
/// real servers.
///
/// It keeps the `PostgresHost` contract (Sources/PGKeep/Postgres/PostgresHost.swift): missing
/// paths read as nil, listings are sorted byte-wise, links resolve against their directory.
public final class ScriptedHost: PostgresHost, @unchecked Sendable {  // @unchecked: every mutable field is read and written under `lock`
    public enum Node: Sendable {
        case file(bytes: [UInt8], mode: UInt32, mtime: Int64)
        case directory(mode: UInt32)
        case link(destination: String)
    }

    private let lock = Mutex(())
    private var nodes: [FilePath: Node] = [:]
    private var vanishing: Set<FilePath> = []
    private var opened: [FilePath] = []
    /// The server; one session object, shared by every `connect`.
    public let sql = ScriptedSQL()
    /// The owner every node has, and its names.
    public let uid: UInt32 = 26
    public let gid: UInt32 = 26

    public init() {}

    // MARK: Building the tree

    /// Adds a file, making its parent directories (mode 0700).
    public func addFile(_ path: String, _ bytes: [UInt8], mode: UInt32 = 0o600, mtime: Int64 = 1_795_734_000) {
        let path = FilePath(path)
        lock.withLock { _ in
            makeParents(of: path)
            nodes[path] = .file(bytes: bytes, mode: mode, mtime: mtime)
        }
    }

    /// Adds a directory and its parents.
    public func addDirectory(_ path: String, mode: UInt32 = 0o700) {
        let path = FilePath(path)
        lock.withLock { _ in
            makeParents(of: path)
            nodes[path] = .directory(mode: mode)
        }
    }

    /// Adds a symbolic link holding `destination`.
    public func addLink(_ path: String, destination: String) {
        let path = FilePath(path)
        lock.withLock { _ in
            makeParents(of: path)
            nodes[path] = .link(destination: destination)
        }
    }

    /// Removes `path` the moment a reader opens it (after it was listed): the way PostgreSQL drops
    /// a table while a backup runs.
    public func vanishWhenOpened(_ path: String) {
        _ = lock.withLock { _ in vanishing.insert(FilePath(path)) }
    }

    /// Every path opened for reading, in order.
    public var openedPaths: [FilePath] { lock.withLock { _ in opened } }

    private func makeParents(of path: FilePath) {
        var parent = path.removingLastComponent()
        while !parent.isEmpty, parent != path, nodes[parent] == nil {
            nodes[parent] = .directory(mode: 0o700)
            if parent.components.isEmpty { break }
            parent = parent.removingLastComponent()
        }
    }

    // MARK: PostgresHost

    public func status(_ path: FilePath) throws -> HostFileStatus? {
        lock.withLock { _ in nodes[path].map(status) }
    }

    public func statusFollowing(_ path: FilePath) throws -> HostFileStatus? {
        try lock.withLock { _ in try follow(path).flatMap { nodes[$0] }.map(status) }
    }

    public func list(_ directory: FilePath) throws -> [String]? {
        lock.withLock { _ in
            guard let target = try? follow(directory), case .directory = nodes[target] else { return nil }
            return nodes.keys.filter { $0.removingLastComponent() == target && $0 != target }
                .compactMap { $0.lastComponent?.string }
                .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        }
    }

    public func readLink(_ path: FilePath) throws -> String {
        try lock.withLock { _ in
            guard case .link(let destination) = nodes[path] else {
                throw PGKeepError(.fileRead, "unable to read link '\(path)': not a link")
            }
            return destination
        }
    }

    public func resolve(_ path: FilePath) -> FilePath {
        lock.withLock { _ in (try? follow(path)) ?? path }
    }

    public func openRead(_ path: FilePath) throws -> HostFileReader? {
        try lock.withLock { _ in
            opened.append(path)
            if vanishing.remove(path) != nil { nodes[path] = nil }
            guard let target = try follow(path), case .file(let bytes, _, _) = nodes[target], let node = nodes[target] else { return nil }
            return ScriptedFileReader(path: path, bytes: bytes, status: status(node))
        }
    }

    public func userName(uid: UInt32) -> String? { uid == self.uid ? "postgres" : nil }
    public func groupName(gid: UInt32) -> String? { gid == self.gid ? "postgres" : nil }

    public func connect(_ options: PGConnectionOptions, applicationName: String) throws -> PostgresSQL {
        try sql.connect()
        return sql
    }

    // MARK: Internals (under the lock)

    /// `path` with links followed (at most 8 deep); nil when something on the way is missing.
    private func follow(_ path: FilePath, depth: Int = 0) throws -> FilePath? {
        guard depth < 8 else { throw PGKeepError(.fileOpen, "too many levels of links at '\(path)'") }
        guard let node = nodes[path] else { return nil }
        guard case .link(let destination) = node else { return path }
        let next = destination.hasPrefix("/") ? FilePath(destination) : path.removingLastComponent().appending(destination).lexicallyNormalized()
        return try follow(next, depth: depth + 1)
    }

    private func status(_ node: Node) -> HostFileStatus {
        switch node {
        case .file(let bytes, let mode, let mtime):
            return HostFileStatus(kind: .file, size: UInt64(bytes.count), mode: mode, uid: uid, gid: gid, mtime: mtime,
                                  mtimeNanoseconds: mtime * 1_000_000_000)
        case .directory(let mode):
            return HostFileStatus(kind: .directory, size: 4096, mode: mode, uid: uid, gid: gid, mtime: 1_795_734_000)
        case .link(let destination):
            return HostFileStatus(kind: .link, size: UInt64(destination.utf8.count), mode: 0o777, uid: uid, gid: gid, mtime: 1_795_734_000)
        }
    }
}

/// A file of a `ScriptedHost`, read from the bytes it had when opened.
final class ScriptedFileReader: HostFileReader {
    let path: FilePath
    private let bytes: [UInt8]
    private let openStatus: HostFileStatus
    private var offset = 0

    init(path: FilePath, bytes: [UInt8], status: HostFileStatus) {
        self.path = path
        self.bytes = bytes
        openStatus = status
    }

    func status() throws -> HostFileStatus { openStatus }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try read(at: UInt64(offset), into: buffer)
        offset += n
        return n
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < UInt64(bytes.count) else { return 0 }
        let n = min(buffer.count, bytes.count - Int(offset))
        bytes.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress! + Int(offset), byteCount: n)
        }
        return n
    }
}

/// The server of a `ScriptedHost`: answers from its fields, records every call, and fails the
/// call named in `failing` with `.dbQuery`, the way a server error or a lost connection would.
public final class ScriptedSQL: PostgresSQL, @unchecked Sendable {  // @unchecked: every mutable field is read and written under `lock`
    private let lock = Mutex(())
    private var _settings: [String: String] = [
        "archive_mode": "on", "archive_command": "pgkeep --stanza=demo archive-push %p", "archive_library": "",
    ]
    private var _calls: [String] = []
    private var _failing: Set<String> = []
    public var serverVersionNumber = 150_000
    public var inRecovery = false
    public var startLSN = LSN(0x600_0028)
    public var stop = BackupStop(lsn: LSN(0x600_0100), labelFile: "START WAL LOCATION: 0/6000028 (file 000000010000000000000006)\n",
                                 tablespaceMap: nil)
    public var databaseList = [PGDatabase(oid: 1, name: "template1"), PGDatabase(oid: 5, name: "postgres")]
    public var tablespaceList: [PGTablespace] = []

    public init() {}

    /// The calls made so far, by name (`startBackup`, `stopBackup`, `abandonBackup`, ...).
    public var calls: [String] { lock.withLock { _ in _calls } }

    /// Makes every later call named `name` (or `connect`) fail.
    public func fail(_ name: String) { _ = lock.withLock { _ in _failing.insert(name) } }

    public func set(_ name: String, _ value: String?) { lock.withLock { _ in _settings[name] = value } }

    func connect() throws { try call("connect") }

    private func call(_ name: String) throws {
        let failing = lock.withLock { _ in
            _calls.append(name)
            return _failing.contains(name)
        }
        if failing { throw PGKeepError(.dbQuery, "scripted failure of \(name)") }
    }

    public func isInRecovery() throws -> Bool { try call("isInRecovery"); return inRecovery }
    public func setting(_ name: String) throws -> String? {
        try call("setting")
        return lock.withLock { _ in _settings[name] }
    }
    public func prepareForBackup() throws { try call("prepareForBackup") }
    public func startBackup(label: String, fast: Bool) throws -> LSN { try call("startBackup"); return startLSN }
    public func stopBackup() throws -> BackupStop { try call("stopBackup"); return stop }
    public func abandonBackup() { try? call("abandonBackup") }
    public func databases() throws -> [PGDatabase] { try call("databases"); return databaseList }
    public func tablespaces() throws -> [PGTablespace] { try call("tablespaces"); return tablespaceList }
}
