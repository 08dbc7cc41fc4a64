#if canImport(Glibc)
import Glibc
import CLinux
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

// The file ends of a filter chain: every read of a data-directory or repository file and every
// restored or stored file goes through these two.

/// Reads a file through a `FileDescriptor`, retrying on EINTR; the source side of every chain.
public final class FileSource: ByteSource {
    public let fd: FileDescriptor
    public let path: String

    /// Opens `path` for reading; nil when it does not exist.
    public static func open(_ path: String) throws -> FileSource? {
        do {
            return FileSource(fd: try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]), path: path)
        } catch let error as Errno {
            if error == .noSuchFileOrDirectory { return nil }
            throw PGKeepError.system(.fileOpen, "unable to open", path: path, errno: error.rawValue)
        }
    }

    init(fd: FileDescriptor, path: String) { self.fd = fd; self.path = path }

    /// Goes back to the start, for a second pass over the same open file.
    public func rewind() throws {
        do {
            _ = try fd.seek(offset: 0, from: .start)
        } catch let error as Errno {
            throw PGKeepError.system(.fileRead, "unable to rewind", path: path, errno: error.rawValue)
        }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var filled = 0
        // Fill the whole buffer unless the file ends: filters see fewer, larger slices.
        while filled < buffer.count {
            let n: Int
            do {
                n = try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            } catch let error as Errno {
                throw PGKeepError.system(.fileRead, "unable to read", path: path, errno: error.rawValue)
            }
            if n == 0 { break }
            filled += n
        }
        return filled
    }

    deinit { try? fd.close() }
}

/// Writes a file through a `FileDescriptor`: the sink side of a restore chain.
public final class FileSink: ByteSink {
    public let fd: FileDescriptor
    public let path: String
    public private(set) var written: UInt64 = 0
    private var closed = false
    /// Write-behind: once this many bytes were written since writeback was last started, start it
    /// for them (`startWriteback`). 0 never starts it during writing.
    public var writeBehind: UInt64 = 0
    private var writebackStart: UInt64 = 0
    /// Set for repository writes: bytes go through a stage written with O_DIRECT (`DirectStage`).
    var stage: DirectStage?

    /// Creates (or truncates) `path` with `mode`. With `temporaryFor`, `path` is the temporary
    /// name of that file in the same directory, and a failure names the file and the directory
    /// rather than a temporary name the operator never sees.
    public init(creating path: String, mode: UInt32 = 0o600, exclusive: Bool = false, temporaryFor final: String? = nil) throws {
        var options: FileDescriptor.OpenOptions = [.create, .truncate, .closeOnExec]
        if exclusive { options.insert(.exclusiveCreate) }
        do {
            fd = try FileDescriptor.open(FilePath(path), .writeOnly, options: options, permissions: FilePermissions(rawValue: CModeT(mode)))
        } catch let error as Errno {
            guard let final else { throw PGKeepError.system(.fileOpen, "unable to create", path: path, errno: error.rawValue) }
            throw PGKeepError.system(.fileOpen, "unable to create the temporary file for '\(Posix.basename(final))' in directory",
                                     path: Posix.dirname(path), errno: error.rawValue)
        }
        self.path = path
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if let stage {
            try stage.write(bytes, to: fd.rawValue, path: path)
            written += UInt64(bytes.count)
            return
        }
        do {
            _ = try fd.writeAll(bytes)
        } catch let error as Errno {
            throw PGKeepError.system(.fileWrite, "unable to write", path: path, errno: error.rawValue)
        }
        written += UInt64(bytes.count)
        if writeBehind > 0, written - writebackStart >= writeBehind { try startWriteback() }
    }

    /// Asks the kernel to start writing the bytes written since the last call to disk, without
    /// waiting (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`, as PostgreSQL's `pg_flush_data`).
    /// It proves nothing about durability: only `sync()` does. It lets the disk work while the
    /// CPU produces the rest, so the final `fsync` finds little left to write, and keeps the
    /// kernel from accumulating gigabytes of dirty pages that would all be written at the end.
    /// A file system that does not support it is left to `fsync`; an I/O error is thrown.
    public func startWriteback() throws {
        try finishStaged()
        guard written > writebackStart else { return }
        #if os(Linux)
        if pgkeep_start_writeback(fd.rawValue, Int64(writebackStart), Int64(written - writebackStart)) != 0,
           errno != EINVAL, errno != ENOSYS, errno != ESPIPE {
            throw PGKeepError.system(.fileSync, "unable to start writeback of", path: path, errno: errno)
        }
        #endif
        writebackStart = written
    }

    /// ftruncate(2) to `size`: past what was written, a hole (a sparse file).
    public func extend(to size: UInt64) throws {
        try finishStaged()
        guard size > written else { return }
        if ftruncate(fd.rawValue, off_t(size)) != 0 {
            throw PGKeepError.system(.fileWrite, "unable to set the size of", path: path, errno: errno)
        }
        written = size
    }

    public func sync() throws {
        try finishStaged()
        try Posix.fsync(fd, path: path)
    }

    /// Writes what the stage still holds and gives the stage back: the file is complete.
    private func finishStaged() throws {
        guard let stage else { return }
        try stage.drain(to: fd.rawValue, path: path)
        self.stage = nil
    }

    /// Drops what a stage still holds, for a file about to be removed.
    func discardStaged() { stage = nil }

    /// Whether `close` has not been called yet.
    public var isOpen: Bool { !closed }

    public func close() throws {
        guard !closed else { return }
        closed = true
        do {
            try finishStaged()
        } catch {
            stage = nil
            try? fd.close()
            throw error
        }
        do { try fd.close() } catch let error as Errno {
            throw PGKeepError.system(.fileWrite, "unable to close", path: path, errno: error.rawValue)
        }
    }

    deinit {
        // A stage's writer thread may still use the descriptor: it ends before the close.
        stage = nil
        if !closed { try? fd.close() }
    }
}
