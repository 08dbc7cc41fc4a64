import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepMover
import PGKeepEngine
import PGKeepConfig
import SystemPackage
import Synchronization

/// A database host held in memory: a file tree the test builds and a server (`ScriptedSQL`) that
/// answers the facade's calls from values the test sets. Backup code reads it and restore code
/// writes it (`PostgresHostWriting`) exactly as they use `LocalHost`, so their error paths (a file
/// vanishing, the server failing a call, storage failing under it) run in unit tests without a
/// PostgreSQL server. Integration tests still use real servers.
///
/// It keeps the `PostgresHost` contract (Sources/PGKeep/Postgres/PostgresHost.swift): missing
/// paths read as nil, listings are sorted byte-wise, links resolve against their directory.
public final class ScriptedHost: PostgresHost, @unchecked Sendable {  // @unchecked: every mutable field is read and written under `lock`, except the answers a test sets before the host is used (`accounts`, `clusters`, `asRoot`, `processes`, `free`)
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

    // MARK: PostgresHostWriting

    /// What happened to the tree, in order, for tests that assert on durability: "syncDirectory
    /// /pg/data", "syncFile /pg/data/PG_VERSION", "rename a -> b", ...
    public var events: [String] { lock.withLock { _ in _events } }
    private var _events: [String] = []
    /// Owners set with `setOwner`, by path.
    public var owners: [FilePath: (uid: UInt32, gid: UInt32)] { lock.withLock { _ in _owners } }
    private var _owners: [FilePath: (uid: UInt32, gid: UInt32)] = [:]
    /// The node at `path` (a link is not followed), for assertions.
    public func node(_ path: String) -> Node? { lock.withLock { _ in nodes[FilePath(path)] } }
    /// Accounts `userID` / `groupID` know, besides postgres.
    public var accounts: [String: UInt32] = [:]
    /// What `runningClusters` reports.
    public var clusters: [RunningClusters.Cluster] = []
    /// What `runsAsRoot` reports.
    public var asRoot = false
    /// The process ids `processExists` knows.
    public var processes: Set<Int32> = []
    /// What `freeBytes` reports.
    public var free: UInt64? = nil

    public func makeDirectories(_ path: FilePath, mode: UInt32) throws {
        try lock.withLock { _ in
            var missing: [FilePath] = []
            var current = path
            while true {
                if let existing = try follow(current), case .directory = nodes[existing] { break }
                if nodes[current] != nil {
                    throw PGKeepError(.pathCreate, "unable to create directory '\(current)': a non-directory is in the way")
                }
                missing.append(current)
                let parent = current.removingLastComponent()
                if parent == current || current.components.isEmpty { break }
                current = parent
            }
            for directory in missing.reversed() {
                nodes[directory] = .directory(mode: mode)
                _events.append("syncDirectory \(directory.removingLastComponent())")
            }
        }
    }

    public func setMode(_ path: FilePath, mode: UInt32) throws {
        try lock.withLock { _ in
            guard let target = try follow(path), let node = nodes[target] else { throw missing("set mode on", path) }
            switch node {
            case .file(let bytes, _, let mtime): nodes[target] = .file(bytes: bytes, mode: mode, mtime: mtime)
            case .directory: nodes[target] = .directory(mode: mode)
            case .link: break
            }
        }
    }

    public func setOwner(_ path: FilePath, uid: UInt32, gid: UInt32) throws {
        try lock.withLock { _ in
            guard nodes[path] != nil else { throw missing("set owner on", path) }
            _owners[path] = (uid, gid)
        }
    }

    public func setModificationTime(_ path: FilePath, seconds: Int64) throws {
        try lock.withLock { _ in
            guard let node = nodes[path] else { throw missing("set modification time on", path) }
            if case .file(let bytes, let mode, _) = node { nodes[path] = .file(bytes: bytes, mode: mode, mtime: seconds) }
        }
    }

    public func makeLink(_ path: FilePath, destination: String) throws {
        try lock.withLock { _ in
            guard nodes[path] == nil else { throw PGKeepError(.pathCreate, "unable to create link to '\(destination)' at '\(path)': exists") }
            try requireParent(path)
            nodes[path] = .link(destination: destination)
        }
    }

    @discardableResult
    public func remove(_ path: FilePath) throws -> Bool {
        try lock.withLock { _ in
            guard let node = nodes[path] else { return false }
            if case .directory = node { throw PGKeepError(.fileWrite, "unable to remove '\(path)': is a directory") }
            nodes[path] = nil
            return true
        }
    }

    public func removeDirectory(_ path: FilePath) throws {
        try lock.withLock { _ in
            guard let node = nodes[path] else { return }
            guard case .directory = node, !nodes.keys.contains(where: { $0 != path && $0.removingLastComponent() == path }) else {
                throw PGKeepError(.fileWrite, "unable to remove directory '\(path)': not an empty directory")
            }
            nodes[path] = nil
        }
    }

    public func rename(_ from: FilePath, to: FilePath) throws {
        try lock.withLock { _ in
            guard let node = nodes[from] else { throw missing("rename", from) }
            nodes[from] = nil
            nodes[to] = node
            _events.append("rename \(from) -> \(to)")
        }
    }

    public func syncDirectory(_ path: FilePath) throws { lock.withLock { _ in _events.append("syncDirectory \(path)") } }

    public func syncFileSystem(containing path: FilePath) throws { lock.withLock { _ in _events.append("syncFileSystem \(path)") } }

    public func createFile(_ path: FilePath, mode: UInt32, temporaryFor final: FilePath?) throws -> HostFileWriter {
        try lock.withLock { _ in
            if let target = try follow(path), case .directory = nodes[target] {
                throw PGKeepError(.fileOpen, "unable to create '\(path)': is a directory")
            }
            try requireParent(path)
            // Time 0, unlike any file a test adds, and the mode as a umask of 077 leaves it (as
            // open(2) applies the umask): a restore must set the recorded time and mode itself.
            nodes[path] = .file(bytes: [], mode: mode & 0o700, mtime: 0)
        }
        return ScriptedFileWriter(host: self, path: path)
    }

    public func userID(name: String) -> UInt32? { name == "postgres" ? uid : accounts[name] }
    public func groupID(name: String) -> UInt32? { name == "postgres" ? gid : accounts[name] }
    public func primaryGroupID(name: String) -> UInt32? { name == "postgres" ? gid : nil }
    public var runsAsRoot: Bool { asRoot }
    public func processExists(_ pid: Int32) -> Bool { processes.contains(pid) }
    public func runningClusters() -> [RunningClusters.Cluster] { clusters }
    public func freeBytes(_ path: FilePath) -> UInt64? { free }
    public func mountedFileSystem(containing path: FilePath) -> (mountPoint: String, source: String, type: String)? { nil }

    /// Appends to a file a `ScriptedFileWriter` writes (its mode and mtime are kept).
    fileprivate func append(_ bytes: UnsafeRawBufferPointer, to path: FilePath) throws {
        try lock.withLock { _ in
            guard case .file(var content, let mode, let mtime) = nodes[path] else { throw missing("write", path) }
            nodes[path] = nil  // keeps `content` uniquely referenced while it grows
            content.append(contentsOf: bytes)
            nodes[path] = .file(bytes: content, mode: mode, mtime: mtime)
        }
    }

    fileprivate func record(_ event: String) { lock.withLock { _ in _events.append(event) } }

    // MARK: Internals (under the lock)

    private func requireParent(_ path: FilePath) throws {
        guard let parent = try follow(path.removingLastComponent()), case .directory = nodes[parent] else {
            throw missing("create", path)
        }
    }

    private func missing(_ operation: String, _ path: FilePath) -> PGKeepError {
        PGKeepError(.fileMissing, "unable to \(operation) '\(path)': missing")
    }

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

/// A file of a `ScriptedHost` open for writing: bytes land in the tree as they are written.
final class ScriptedFileWriter: HostFileWriter {
    let host: ScriptedHost
    let path: FilePath
    private(set) var written: UInt64 = 0
    var writeBehind: UInt64 = 0
    private var closed = false

    init(host: ScriptedHost, path: FilePath) {
        self.host = host
        self.path = path
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!closed, "write after close of '\(path)'")
        try host.append(bytes, to: path)
        written += UInt64(bytes.count)
    }

    func startWriteback() throws {}

    func extend(to size: UInt64) throws {
        guard size > written else { return }
        let zeros = [UInt8](repeating: 0, count: Int(size - written))
        try zeros.withUnsafeBytes { try host.append($0, to: path) }
        written = size
        host.record("extend \(path) \(size)")
    }

    func sync() throws { host.record("syncFile \(path)") }

    func close() throws { closed = true }
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
    /// The segment `switchWAL` completes; the test puts it into the archive (or not).
    public var switchedSegment = "000000010000000000000007"
    public var archiver = ArchiverStatus(lastArchived: nil, lastFailed: nil, failedCount: 0)
    public func switchWAL(restorePoint: String) throws -> String { try call("switchWAL"); return switchedSegment }
    public func archiverStatus() throws -> ArchiverStatus { try call("archiverStatus"); return archiver }
}
