/// Repository storage: one small protocol that every driver (POSIX now; S3 and the remote agent
/// later) implements, and that `StorageConformance` (Tests/TestSupport) checks.
///
/// The contract:
/// 1. **Atomic writes.** `openWrite` returns a writer whose bytes are invisible at `path` until
///    `commit()` returns; a crash or `abort()` before that leaves `path` as it was (missing or the
///    old complete file), never a partial file. On POSIX: temp name in the same directory, write,
///    fsync, rename, fsync the directory. After `commit()` returns, the file survives a crash.
/// 2. **Missing files are not errors on read.** `openRead` and `info` return nil for a missing path;
///    `list` returns an empty array for a missing directory. Removal of a missing path succeeds.
/// 3. **Listing** returns the direct children of a directory, sorted by name byte-wise, without
///    temporary files of writes in progress.
/// 4. **Directories are implicit.** Writing `a/b/c` creates `a/b` as needed; callers never create
///    directories (object stores have none).
/// 5. **Paths never escape the root**: every path is a `StoragePath`.
/// 6. Drivers are safe to use from several worker threads at once (distinct paths).
/// 7. **Exclusive creation.** `createExclusive` publishes a small file only when nothing is at
///    its path, in one atomic step: of any number of callers (threads, processes, hosts sharing
///    the storage) exactly one succeeds. It is how a repository lease is taken (`RepositoryLease`).
public protocol Storage: AnyObject, Sendable {
    /// Opens a file for streaming reads of the bytes in `range` (nil: all of it); nil when it does
    /// not exist. A range reaching past the end reads what exists, one starting past the end reads
    /// nothing: the caller compares what it got with the size it expected.
    func openRead(_ path: StoragePath, range: Range<UInt64>?) throws -> StorageReader?
    /// How many unwanted bytes between two wanted ones are cheaper to read through than to skip with
    /// a new ranged read (a local seek costs less than reading 128 KiB; an object store request costs
    /// as much as some megabytes).
    var rangedReadGap: UInt64 { get }
    /// Starts an atomic write of `path` (see the contract above).
    func openWrite(_ path: StoragePath) throws -> StorageWriter
    /// Size and kind of `path`; nil when it does not exist.
    func info(_ path: StoragePath) throws -> StorageEntry?
    /// The direct children of a directory, sorted by name; empty when the directory is missing.
    func list(_ path: StoragePath) throws -> [StorageEntry]
    /// Creates `path` with `bytes`, durable and complete like a committed write, only when nothing
    /// exists at `path`: returns false, changing nothing, when something does (contract item 7).
    func createExclusive(_ path: StoragePath, _ bytes: [UInt8]) throws -> Bool
    /// Removes a file; succeeds when it is already missing.
    func remove(_ path: StoragePath) throws
    /// Removes a directory and everything under it; succeeds when it is already missing.
    func removeTree(_ path: StoragePath) throws
    /// A human-readable location for messages (an absolute path, a URL).
    func describe(_ path: StoragePath) -> String
    /// Removes, under the directory `path` and its sub-directories, the temporary files that
    /// interrupted writes left behind (listings hide them). Only for a directory no other writer
    /// uses (a backup's own directory, under the backup lock). Returns how many were removed.
    func removeTemporaryFiles(under path: StoragePath) throws -> Int
}

/// One entry of a listing or the answer of `info`.
public struct StorageEntry: Hashable, Sendable {
    public enum Kind: String, Sendable { case file, directory }
    public var name: String
    public var kind: Kind
    public var size: UInt64
    /// When the file was last written (committed), in nanoseconds since the epoch; 0 when the
    /// storage cannot tell. An order of events: which of two archived objects came later
    /// (`TimelineDivergence`); and the age of a damaged lease (`RepositoryLease`), compared with
    /// this host's clock. Not part of an entry's identity (equality and hash).
    public var modified: Int64

    public init(name: String, kind: Kind, size: UInt64, modified: Int64 = 0) {
        self.name = name
        self.kind = kind
        self.size = size
        self.modified = modified
    }

    public static func == (lhs: StorageEntry, rhs: StorageEntry) -> Bool {
        lhs.name == rhs.name && lhs.kind == rhs.kind && lhs.size == rhs.size
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(kind)
        hasher.combine(size)
    }
}

/// A file open for reading.
public protocol StorageReader: ByteSource {}

/// A file being written atomically: bytes go to `write`, then exactly one of `commit` or `abort`.
public protocol StorageWriter: ByteSink {
    /// Makes the file durable and visible at its path, replacing any file there.
    func commit() throws
    /// Discards what was written; the path is left as it was. Never throws: it runs on error paths.
    func abort()
}

extension Storage {
    /// Drivers whose interrupted writes leave nothing behind have nothing to remove.
    public func removeTemporaryFiles(under path: StoragePath) throws -> Int { 0 }

    /// Opens a whole file for streaming reads; nil when it does not exist.
    public func openRead(_ path: StoragePath) throws -> StorageReader? { try openRead(path, range: nil) }

    public var rangedReadGap: UInt64 { 128 << 10 }

    /// Reads a whole small file (metadata: info files, manifests), failing above `limit` bytes so a
    /// damaged or hostile file cannot exhaust memory. nil when missing.
    public func readSmallFile(_ path: StoragePath, limit: Int = 1 << 30) throws -> [UInt8]? {
        guard let reader = try openRead(path) else { return nil }
        let bytes = try reader.readAll(upTo: limit)
        if bytes.count > limit {
            throw PGKeepError(.formatInvalid, "file '\(describe(path))' is larger than \(limit) bytes",
                              hint: "the file is damaged or not a pgkeep metadata file")
        }
        return bytes
    }

    /// Writes a whole small file atomically.
    public func writeSmallFile(_ path: StoragePath, _ bytes: [UInt8]) throws {
        let writer = try openWrite(path)
        do {
            try bytes.withUnsafeBytes { try writer.write($0) }
            try writer.commit()
        } catch {
            writer.abort()
            throw error
        }
    }
}
