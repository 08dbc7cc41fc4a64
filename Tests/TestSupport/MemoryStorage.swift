import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepMover
import PGKeepEngine
import PGKeepConfig
import Synchronization

/// An in-memory storage driver shaped like an object store: a lock-protected dictionary from path
/// to bytes, with directories that exist only while a file lies below them.
///
/// It passes `StorageConformance` (which shows the suite is not POSIX-shaped) and serves as a fast
/// repository for unit tests. A write buffers its bytes in the writer and publishes them under the
/// lock in `commit`, so readers see the old file or the new one, never a mix; a dropped writer
/// publishes nothing.
public final class MemoryStorage: Storage, @unchecked Sendable {
    /// Shown by `describe` as `memory://<name>/<path>`.
    public let name: String
    private let lock = Mutex(())
    private var files: [StoragePath: [UInt8]] = [:]
    /// When each file was committed (`StorageEntry.modified`), see `stamp`.
    private var modified: [StoragePath: Int64] = [:]
    private var clock: Int64 = 0
    private var gap: UInt64 = 128 << 10
    private var ranged = 0

    /// The gap readers read through before they start a new ranged read; settable so tests can
    /// make every gap a new ranged read (0).
    public var rangedReadGap: UInt64 {
        get { lock.withLock { _ in gap } }
        set { lock.withLock { _ in gap = newValue } }
    }

    /// Sets a file's modification time (seconds since the epoch), as an old file left behind has.
    public func setModified(_ path: StoragePath, seconds: Int64) {
        lock.withLock { _ in if files[path] != nil { modified[path] = seconds * 1_000_000_000 } }
    }

    /// How many reads with a range were opened so far.
    public var rangedReadCount: Int { lock.withLock { _ in ranged } }

    public init(name: String = "test") {
        self.name = name
    }

    public func describe(_ path: StoragePath) -> String { "memory://\(name)/\(path)" }

    public func openRead(_ path: StoragePath, range: Range<UInt64>?) throws -> StorageReader? {
        guard let bytes = lock.withLock({ _ in files[path] }) else { return nil }
        guard let range else { return MemoryReader(bytes) }
        lock.withLock { _ in ranged += 1 }
        let start = Int(min(range.lowerBound, UInt64(bytes.count)))
        let end = Int(min(range.upperBound, UInt64(bytes.count)))
        return MemoryReader(Array(bytes[start..<end]))
    }

    public func openWrite(_ path: StoragePath) throws -> StorageWriter {
        try lock.withLock { _ in try checkWritable(path) }
        return MemoryWriter(storage: self, path: path)
    }

    public func info(_ path: StoragePath) throws -> StorageEntry? {
        lock.withLock { _ in
            if let bytes = files[path] { return StorageEntry(name: path.name, kind: .file, size: UInt64(bytes.count), modified: modified[path] ?? 0) }
            if path.isRoot || files.keys.contains(where: { $0.isStrictlyBelow(path) }) {
                return StorageEntry(name: path.name, kind: .directory, size: 0)
            }
            return nil
        }
    }

    public func list(_ path: StoragePath) throws -> [StorageEntry] {
        let depth = path.components.count
        // Keyed by the name's bytes: names that differ only in Unicode normalization are distinct.
        var children: [[UInt8]: StorageEntry] = [:]
        lock.withLock { _ in
            for (key, bytes) in files where key.isStrictlyBelow(path) {
                let child = key.components[depth]
                if key.components.count == depth + 1 {
                    children[Array(child.utf8)] = StorageEntry(name: child, kind: .file, size: UInt64(bytes.count), modified: modified[key] ?? 0)
                } else {
                    children[Array(child.utf8)] = StorageEntry(name: child, kind: .directory, size: 0)
                }
            }
        }
        return children.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map(\.value)
    }

    public func createExclusive(_ path: StoragePath, _ bytes: [UInt8]) throws -> Bool {
        try lock.withLock { _ in
            if files[path] != nil || files.keys.contains(where: { $0.isStrictlyBelow(path) }) { return false }
            try checkWritable(path)
            stamp(path, bytes)
            return true
        }
    }

    public func remove(_ path: StoragePath) throws {
        try lock.withLock { _ in
            if files.removeValue(forKey: path) == nil, files.keys.contains(where: { $0.isStrictlyBelow(path) }) {
                throw PGKeepError(.fileWrite, "unable to remove '\(describe(path))': it is a directory")
            }
        }
    }

    public func removeTree(_ path: StoragePath) throws {
        lock.withLock { _ in
            files = files.filter { key, _ in key != path && !key.isStrictlyBelow(path) }
        }
    }

    /// Publishes a committed write; the last commit of a path wins.
    fileprivate func publish(_ path: StoragePath, _ bytes: [UInt8]) throws {
        try lock.withLock { _ in
            try checkWritable(path)
            stamp(path, bytes)
        }
    }

    /// Stores a file with its modification time: the wall clock in nanoseconds, as a file system
    /// records it, kept strictly increasing so two commits never tie. Caller holds the lock.
    private func stamp(_ path: StoragePath, _ bytes: [UInt8]) {
        files[path] = bytes
        clock = max(clock + 1, Int64(Clock.nowPrecise() * 1e9))
        modified[path] = clock
    }

    /// A file can be written where no ancestor is a file and no file lies below. Caller holds the lock.
    private func checkWritable(_ path: StoragePath) throws {
        if path.isRoot { throw PGKeepError(.pathInvalid, "cannot write the storage root '\(describe(path))'") }
        var ancestor = path.parent
        while !ancestor.isRoot {
            if files[ancestor] != nil {
                throw PGKeepError(.pathCreate, "unable to create directory '\(describe(ancestor))': a file is in the way")
            }
            ancestor = ancestor.parent
        }
        if files.keys.contains(where: { $0.isStrictlyBelow(path) }) {
            throw PGKeepError(.fileOpen, "unable to create '\(describe(path))': it is a directory")
        }
    }
}

final class MemoryReader: StorageReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - offset)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress! + offset, byteCount: n)
        }
        offset += n
        return n
    }
}

final class MemoryWriter: StorageWriter {
    private let storage: MemoryStorage
    private let path: StoragePath
    private var bytes: [UInt8] = []
    private var done = false

    init(storage: MemoryStorage, path: StoragePath) {
        self.storage = storage
        self.path = path
    }

    func write(_ chunk: UnsafeRawBufferPointer) throws {
        guard !done else { throw PGKeepError(.internal, "write to '\(storage.describe(path))' after commit or abort") }
        bytes.append(contentsOf: chunk)
    }

    func commit() throws {
        precondition(!done, "commit after commit or abort")
        done = true
        try storage.publish(path, bytes)
        bytes = []
    }

    func abort() {
        done = true
        bytes = []
    }
}

extension StoragePath {
    /// True when `self` lies somewhere below `directory` (not equal to it).
    func isStrictlyBelow(_ directory: StoragePath) -> Bool {
        components.count > directory.components.count
            && zip(components, directory.components).allSatisfy { $0.utf8.elementsEqual($1.utf8) }
    }
}
