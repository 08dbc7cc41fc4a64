#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PGKeep

/// A storage driver in front of another one that behaves like a file system with little room
/// left: every byte written takes space from `freeBytes`, and a write that does not fit fails
/// with ENOSPC, the way write(2) does on a full file system.
///
/// It exists so that the disk-full paths of backup, archive-push and expire run in every unit
/// test run, on every machine: an integration test needs a mountable tmpfs or loop device, which
/// containers often refuse. The accounting follows what a POSIX driver occupies: a write in
/// progress holds its bytes until it is aborted (the temporary file is removed) or committed
/// (the file it replaces, if any, gives its space back); `remove` and `removeTree` give back the
/// size of what they removed. Directories and metadata take no space.
public final class FaultyStorage: Storage, @unchecked Sendable {
    public let inner: Storage
    private let lock = Mutex()
    private var free: UInt64
    private var failed = 0

    /// - Parameter freeBytes: how many bytes may still be written before writes fail.
    public init(_ inner: Storage, freeBytes: UInt64) {
        self.inner = inner
        self.free = freeBytes
    }

    /// The bytes that can still be written.
    public var freeBytes: UInt64 {
        get { lock.withLock { free } }
        set { lock.withLock { free = newValue } }
    }

    /// How many writes failed for lack of space: a test asserts this is not zero, so it cannot pass
    /// without the fault having happened.
    public var diskFullFailures: Int { lock.withLock { failed } }

    public func describe(_ path: StoragePath) -> String { inner.describe(path) }
    public func openRead(_ path: StoragePath, range: Range<UInt64>?) throws -> StorageReader? { try inner.openRead(path, range: range) }
    public var rangedReadGap: UInt64 { inner.rangedReadGap }
    public func info(_ path: StoragePath) throws -> StorageEntry? { try inner.info(path) }
    public func list(_ path: StoragePath) throws -> [StorageEntry] { try inner.list(path) }
    public func removeTemporaryFiles(under path: StoragePath) throws -> Int { try inner.removeTemporaryFiles(under: path) }

    public func openWrite(_ path: StoragePath) throws -> StorageWriter {
        FaultyWriter(storage: self, path: path, inner: try inner.openWrite(path))
    }

    /// Takes the file's bytes from the free space; gives them back when the file was not created.
    public func createExclusive(_ path: StoragePath, _ bytes: [UInt8]) throws -> Bool {
        try reserve(bytes.count, for: path)
        var created = false
        defer { if !created { release(UInt64(bytes.count)) } }
        created = try inner.createExclusive(path, bytes)
        return created
    }

    public func remove(_ path: StoragePath) throws {
        let size = try inner.info(path).flatMap { $0.kind == .file ? $0.size : nil } ?? 0
        try inner.remove(path)
        release(size)
    }

    public func removeTree(_ path: StoragePath) throws {
        let size = try occupied(path)
        try inner.removeTree(path)
        release(size)
    }

    /// The bytes of every file at or below `path`.
    private func occupied(_ path: StoragePath) throws -> UInt64 {
        guard let entry = try inner.info(path) else { return 0 }
        if entry.kind == .file { return entry.size }
        var total: UInt64 = 0
        for child in try inner.list(path) { total += try occupied(try path.appending(child.name)) }
        return total
    }

    /// Takes `count` bytes from the free space, or fails as write(2) does when they are not there.
    fileprivate func reserve(_ count: Int, for path: StoragePath) throws {
        try lock.withLock {
            guard UInt64(count) <= free else {
                failed += 1
                throw PGKeepError.system(.fileWrite, "unable to write", path: inner.describe(path), errno: ENOSPC)
            }
            free -= UInt64(count)
        }
    }

    fileprivate func release(_ count: UInt64) {
        lock.withLock { free += count }
    }
}

final class FaultyWriter: StorageWriter {
    private let storage: FaultyStorage
    private let path: StoragePath
    private let inner: StorageWriter
    /// Bytes this write holds until it ends.
    private var held: UInt64 = 0

    init(storage: FaultyStorage, path: StoragePath, inner: StorageWriter) {
        self.storage = storage
        self.path = path
        self.inner = inner
    }

    func write(_ chunk: UnsafeRawBufferPointer) throws {
        try storage.reserve(chunk.count, for: path)
        held += UInt64(chunk.count)
        try inner.write(chunk)
    }

    func commit() throws {
        let replaced = try storage.inner.info(path).flatMap { $0.kind == .file ? $0.size : nil } ?? 0
        do {
            try inner.commit()
        } catch {
            storage.release(held)
            held = 0
            throw error
        }
        held = 0
        storage.release(replaced)
    }

    func abort() {
        inner.abort()
        storage.release(held)
        held = 0
    }
}
