#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage
import Synchronization

/// The storage driver for a local (or mounted) file system.
///
/// Temporary files are named `<name>.pgkeep-tmp.<pid>.<n>` in the destination directory, so a
/// rename is atomic (same file system) and concurrent writers of the same path (two archive-push
/// processes) never share a temp file. Listings hide them.
public final class PosixStorage: Storage, Sendable {
    /// Absolute path of the storage root.
    public let root: String
    /// Mode for new files and directories.
    let fileMode: UInt32
    let directoryMode: UInt32

    static let temporaryMarker = ".pgkeep-tmp."

    /// Whether writers go through a `DirectStage` (O_DIRECT for each full 1 MiB).
    let directWrites: Bool

    /// Reading through up to 128 KiB costs less than a seek and a new read from the page cache
    /// would save; tests set 0 to take the ranged path everywhere.
    public let rangedReadGap: UInt64

    /// - Parameter directWrites: nil decides by the file system under `root` (`DirectStage.suits`).
    public init(root: String, fileMode: UInt32 = 0o640, directoryMode: UInt32 = 0o750, directWrites: Bool? = nil,
                rangedReadGap: UInt64 = 128 << 10) {
        var root = Posix.absolute(root)
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.root = root
        self.fileMode = fileMode
        self.directoryMode = directoryMode
        self.directWrites = directWrites ?? DirectStage.suits(root)
        self.rangedReadGap = rangedReadGap
    }

    func absolute(_ path: StoragePath) -> String {
        path.isRoot ? root : Posix.join(root, path.description)
    }

    public func describe(_ path: StoragePath) -> String { absolute(path) }

    public func openRead(_ path: StoragePath, range: Range<UInt64>?) throws -> StorageReader? {
        let full = absolute(path)
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(full), .readOnly, options: [.closeOnExec])
        } catch let error as Errno {
            if error == .noSuchFileOrDirectory || error == .notDirectory { return nil }
            throw PGKeepError.system(.fileOpen, "unable to open", path: full, errno: error.rawValue)
        }
        let reader = PosixReader(fd: fd, path: full, remaining: range.map { $0.upperBound - $0.lowerBound })
        if let start = range?.lowerBound, start > 0 {
            do {
                // A seek past the end is allowed and reads nothing, as the contract says.
                _ = try fd.seek(offset: Int64(clamping: start), from: .start)
            } catch let error as Errno {
                throw PGKeepError.system(.fileRead, "unable to seek to offset \(start)", path: full, errno: error.rawValue)
            }
        }
        return reader
    }

    public func openWrite(_ path: StoragePath) throws -> StorageWriter { try makeWriter(path) }

    /// The temporary file is written and synced as for any write, then linked (not renamed) to
    /// the final name: link(2) fails when the name exists, so the create is atomic and exclusive,
    /// on NFS too (O_EXCL is not reliable there on every client).
    public func createExclusive(_ path: StoragePath, _ bytes: [UInt8]) throws -> Bool {
        let writer = try makeWriter(path)
        do {
            try bytes.withUnsafeBytes { try writer.write($0) }
            return try writer.commitExclusive()
        } catch {
            writer.abort()
            throw error
        }
    }

    private func makeWriter(_ path: StoragePath) throws -> PosixWriter {
        guard !path.isRoot else { throw PGKeepError(.pathInvalid, "cannot write the storage root '\(root)'") }
        let final = absolute(path)
        let directory = Posix.dirname(final)
        try Posix.mkdirs(directory, mode: directoryMode)
        let temp = final + PosixStorage.temporaryMarker + "\(getpid()).\(PosixStorage.nextTemporaryNumber())"
        let sink = try FileSink(creating: temp, mode: fileMode, exclusive: true, temporaryFor: final)
        do {
            try Posix.chmod(temp, mode: fileMode)  // open(2) applies the umask; the mode is the storage's
        } catch {
            try? sink.close()
            _ = try? Posix.unlink(temp)
            throw error
        }
        if directWrites { sink.stage = DirectStage.take() }
        return PosixWriter(sink: sink, temporary: temp, final: final, directory: directory)
    }

    public func info(_ path: StoragePath) throws -> StorageEntry? {
        guard let st = try Posix.lstat(absolute(path)) else { return nil }
        return StorageEntry(name: path.name, kind: st.kind == .directory ? .directory : .file, size: st.size,
                            modified: st.mtimeNanoseconds)
    }

    public func list(_ path: StoragePath) throws -> [StorageEntry] {
        let full = absolute(path)
        guard let names = try Posix.listDirectory(full) else { return [] }
        var entries: [StorageEntry] = []
        entries.reserveCapacity(names.count)
        for name in names where !name.contains(PosixStorage.temporaryMarker) {
            guard let st = try Posix.lstat(Posix.join(full, name)) else { continue }  // removed meanwhile
            entries.append(StorageEntry(name: name, kind: st.kind == .directory ? .directory : .file, size: st.size,
                                        modified: st.mtimeNanoseconds))
        }
        return entries
    }

    public func remove(_ path: StoragePath) throws {
        let full = absolute(path)
        // Sync the directory only when an entry went away: a missing parent is a missing file.
        if try Posix.unlink(full) { try Posix.fsyncDirectory(Posix.dirname(full)) }
    }

    public func removeTree(_ path: StoragePath) throws {
        let full = absolute(path)
        guard let st = try Posix.lstat(full) else { return }
        try PosixStorage.removeRecursively(full, kind: st.kind)
        if !path.isRoot, (try Posix.lstat(Posix.dirname(full))) != nil {
            try Posix.fsyncDirectory(Posix.dirname(full))
        }
    }

    public func removeTemporaryFiles(under path: StoragePath) throws -> Int {
        try PosixStorage.removeTemporaries(in: absolute(path))
    }

    private static func removeTemporaries(in directory: String) throws -> Int {
        guard let names = try Posix.listDirectory(directory) else { return 0 }
        var removed = 0
        for name in names {
            let child = Posix.join(directory, name)
            guard let st = try Posix.lstat(child) else { continue }
            if st.kind == .directory {
                removed += try removeTemporaries(in: child)
            } else if name.contains(temporaryMarker), try Posix.unlink(child) {
                removed += 1
            }
        }
        if removed > 0 { try Posix.fsyncDirectory(directory) }
        return removed
    }

    static func removeRecursively(_ path: String, kind: Posix.Kind) throws {
        if kind == .directory {
            for name in try Posix.listDirectory(path) ?? [] {
                let child = Posix.join(path, name)
                if let st = try Posix.lstat(child) { try removeRecursively(child, kind: st.kind) }
            }
            try Posix.rmdir(path)
        } else {
            try Posix.unlink(path)
        }
    }

    private static let counter = Mutex(0)
    private static func nextTemporaryNumber() -> Int {
        counter.withLock { $0 += 1; return $0 }
    }
}

final class PosixReader: StorageReader {
    let source: FileSource
    /// Bytes left in the range read; nil: to the end of the file.
    private var remaining: UInt64?

    init(fd: FileDescriptor, path: String, remaining: UInt64?) {
        source = FileSource(fd: fd, path: path)
        self.remaining = remaining
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let left = remaining else { return try source.read(into: buffer) }
        let want = Int(min(UInt64(buffer.count), left))
        guard want > 0 else { return 0 }
        let n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
        remaining = left - UInt64(n)
        return n
    }
}

final class PosixWriter: StorageWriter {
    let sink: FileSink
    let temporary: String
    let final: String
    let directory: String
    private var done = false

    init(sink: FileSink, temporary: String, final: String, directory: String) {
        self.sink = sink
        self.temporary = temporary
        self.final = final
        self.directory = directory
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws { try sink.write(bytes) }

    /// temp → fsync → close → rename → fsync directory: "complete or missing".
    func commit() throws {
        _ = try finish { try Posix.rename(temporary, final); return true }
    }

    /// Like `commit`, but the file appears at its path only when nothing is there (a link instead
    /// of a rename); returns false, removing the temporary file, when something is.
    func commitExclusive() throws -> Bool {
        try finish {
            let linked = try Posix.link(temporary, final)
            try Posix.unlink(temporary)
            return linked
        }
    }

    /// Syncs and closes the temporary file, then `publish`es it under its final name; the
    /// directory is synced when that made a new entry. On failure the temporary file is removed.
    private func finish(_ publish: () throws -> Bool) throws -> Bool {
        precondition(!done, "commit after commit or abort")
        done = true
        let published: Bool
        do {
            try sink.sync()
            try sink.close()
            published = try publish()
        } catch {
            sink.discardStaged()
            try? sink.close()
            _ = try? Posix.unlink(temporary)
            throw error
        }
        if published { try Posix.fsyncDirectory(directory) }
        return published
    }

    func abort() {
        guard !done else { return }
        done = true
        sink.discardStaged()
        try? sink.close()
        _ = try? Posix.unlink(temporary)
    }

    deinit { abort() }
}
