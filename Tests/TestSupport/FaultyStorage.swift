#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepMover
import PGKeepEngine
import PGKeepConfig
import Synchronization

/// A fault a test scripts into `FaultyStorage`: the `nth` operation of its kind on a path that
/// `matching` accepts (counting from 1) fails, once; the operations before and after it succeed.
/// Each error is the one the POSIX driver throws for that failure, so the command code under test
/// takes the path it takes on a real file system.
public struct StorageFault: Sendable {
    public enum Kind: Sendable, Equatable {
        /// `openWrite` fails as creating the temporary file does (open(2)).
        case openWrite(errno: Int32)
        /// One `write` of a writer fails as write(2) does; the writer holds what came before.
        case write(errno: Int32)
        /// `commit` fails as `PosixStorage`'s rename does: nothing is published at the path and
        /// the temporary file is gone.
        case commit(errno: Int32)
        /// The reader of an `openRead` reports the end of the file after `bytes` bytes, as a
        /// truncated object (or a connection cut short) reads, while `info` keeps the full size.
        case shortRead(bytes: UInt64)
    }

    /// An injected fault: which, and on what path.
    public struct Injection: Sendable, Equatable {
        public var kind: Kind
        public var path: StoragePath

        public init(kind: Kind, path: StoragePath) {
            self.kind = kind
            self.path = path
        }
    }

    public var kind: Kind
    public var nth: Int
    public var matching: @Sendable (StoragePath) -> Bool

    public init(_ kind: Kind, nth: Int = 1, matching: @escaping @Sendable (StoragePath) -> Bool = { _ in true }) {
        precondition(nth >= 1, "operations are counted from 1")
        self.kind = kind
        self.nth = nth
        self.matching = matching
    }

    public static func openWrite(nth: Int = 1, errno: Int32 = EIO, matching: @escaping @Sendable (StoragePath) -> Bool = { _ in true }) -> StorageFault {
        StorageFault(.openWrite(errno: errno), nth: nth, matching: matching)
    }

    public static func write(nth: Int = 1, errno: Int32 = EIO, matching: @escaping @Sendable (StoragePath) -> Bool = { _ in true }) -> StorageFault {
        StorageFault(.write(errno: errno), nth: nth, matching: matching)
    }

    public static func commit(nth: Int = 1, errno: Int32 = EIO, matching: @escaping @Sendable (StoragePath) -> Bool = { _ in true }) -> StorageFault {
        StorageFault(.commit(errno: errno), nth: nth, matching: matching)
    }

    public static func shortRead(nth: Int = 1, keeping bytes: UInt64, matching: @escaping @Sendable (StoragePath) -> Bool = { _ in true }) -> StorageFault {
        StorageFault(.shortRead(bytes: bytes), nth: nth, matching: matching)
    }

    /// The operation the fault counts.
    enum Operation { case openWrite, write, commit, read }

    var operation: Operation {
        switch kind {
        case .openWrite: return .openWrite
        case .write: return .write
        case .commit: return .commit
        case .shortRead: return .read
        }
    }
}

/// A storage driver in front of another one that fails the way a file system does: writes beyond
/// `freeBytes` fail with ENOSPC, and the `StorageFault`s a test scripts (a failed open, write or
/// commit, a truncated read) happen at the operation they name. Every fault is counted
/// (`diskFullFailures`, `injected`), so a test asserts it happened and cannot pass without it.
///
/// It exists so that the error paths of backup, restore, archive-push, archive-get and expire run
/// in every unit test run, on every machine: an integration test needs a mountable tmpfs or loop
/// device, or a failing disk, which containers refuse. The space accounting follows what a POSIX
/// driver occupies: a write in progress holds its bytes until it is aborted (the temporary file is
/// removed) or committed (the file it replaces, if any, gives its space back); `remove` and
/// `removeTree` give back the size of what they removed. Directories and metadata take no space.
public final class FaultyStorage: Storage, @unchecked Sendable {
    public let inner: Storage
    private let lock = Mutex(())
    private var free: UInt64
    private var failed = 0
    private let faults: [StorageFault]
    /// Per fault: the matching operations seen so far.
    private var seen: [Int]
    private var injections: [StorageFault.Injection] = []

    /// - Parameters:
    ///   - freeBytes: how many bytes may still be written before writes fail (unlimited by default).
    ///   - faults: the failures to inject, each once.
    public init(_ inner: Storage, freeBytes: UInt64 = .max, faults: [StorageFault] = []) {
        self.inner = inner
        self.free = freeBytes
        self.faults = faults
        self.seen = Array(repeating: 0, count: faults.count)
    }

    /// The bytes that can still be written.
    public var freeBytes: UInt64 {
        get { lock.withLock { _ in free } }
        set { lock.withLock { _ in free = newValue } }
    }

    /// How many writes failed for lack of space: a test asserts this is not zero, so it cannot pass
    /// without the fault having happened.
    public var diskFullFailures: Int { lock.withLock { _ in failed } }

    /// The scripted faults that happened, in order.
    public var injected: [StorageFault.Injection] { lock.withLock { _ in injections } }

    public func describe(_ path: StoragePath) -> String { inner.describe(path) }
    public var rangedReadGap: UInt64 { inner.rangedReadGap }
    public func info(_ path: StoragePath) throws -> StorageEntry? { try inner.info(path) }
    public func list(_ path: StoragePath) throws -> [StorageEntry] { try inner.list(path) }
    public func removeTemporaryFiles(under path: StoragePath) throws -> Int { try inner.removeTemporaryFiles(under: path) }

    public func openRead(_ path: StoragePath, range: Range<UInt64>?) throws -> StorageReader? {
        guard let reader = try inner.openRead(path, range: range) else { return nil }
        guard case .shortRead(let bytes)? = trip(.read, path) else { return reader }
        return TruncatedReader(inner: reader, remaining: bytes)
    }

    public func openWrite(_ path: StoragePath) throws -> StorageWriter {
        if case .openWrite(let errno)? = trip(.openWrite, path) {
            throw PGKeepError.system(.fileOpen, "unable to create the temporary file for '\(path.name)' in directory",
                                     path: Posix.dirname(inner.describe(path)), errno: errno)
        }
        return FaultyWriter(storage: self, path: path, inner: try inner.openWrite(path))
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
        try lock.withLock { _ in
            guard UInt64(count) <= free else {
                failed += 1
                throw PGKeepError.system(.fileWrite, "unable to write", path: inner.describe(path), errno: ENOSPC)
            }
            free -= UInt64(count)
        }
    }

    fileprivate func release(_ count: UInt64) {
        // Saturating: with unlimited space (`.max`) a replaced file's bytes come back to nothing.
        lock.withLock { _ in free = free > UInt64.max - count ? .max : free + count }
    }

    /// Counts one `operation` on `path`; returns the fault to inject when one is due now.
    fileprivate func trip(_ operation: StorageFault.Operation, _ path: StoragePath) -> StorageFault.Kind? {
        lock.withLock { _ in
            var due: StorageFault.Kind?
            for index in faults.indices where faults[index].operation == operation && faults[index].matching(path) {
                seen[index] += 1
                if seen[index] == faults[index].nth, due == nil {
                    due = faults[index].kind
                    injections.append(.init(kind: faults[index].kind, path: path))
                }
            }
            return due
        }
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
        if case .write(let errno)? = storage.trip(.write, path) {
            throw PGKeepError.system(.fileWrite, "unable to write", path: storage.describe(path) + ".pgkeep-tmp", errno: errno)
        }
        try storage.reserve(chunk.count, for: path)
        held += UInt64(chunk.count)
        try inner.write(chunk)
    }

    func commit() throws {
        if case .commit(let errno)? = storage.trip(.commit, path) {
            abort()
            let final = storage.describe(path)
            throw PGKeepError.system(.fileWrite, "unable to rename '\(final + ".pgkeep-tmp")' to", path: final, errno: errno)
        }
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

/// A reader that ends early: the first `remaining` bytes of the file, then end of file.
final class TruncatedReader: StorageReader {
    private let inner: StorageReader
    private var remaining: UInt64

    init(inner: StorageReader, remaining: UInt64) {
        self.inner = inner
        self.remaining = remaining
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let want = Int(min(UInt64(buffer.count), remaining))
        guard want > 0 else { return 0 }
        let count = try inner.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
        remaining -= UInt64(count)
        return count
    }
}
