import SystemPackage
import PGKeepCore

/// The database host: everything pgkeep does where PostgreSQL runs, behind one small protocol.
/// `LocalHost` is this machine (the POSIX calls pgkeep always made); the remote agent will be a
/// second implementation that does the same over the network, and `ScriptedHost`
/// (Tests/TestSupport) serves a data directory held in memory, so that a backup's error paths
/// run in unit tests without a server.
///
/// The contract:
/// 1. **Paths are absolute host paths** (`FilePath`), as the host's file system names them; a
///    caller never hands over a path relative to its own working directory.
/// 2. **Missing is not an error on read**: `status`, `list` and `openRead` return nil for a path
///    that does not exist (PostgreSQL drops and truncates files while a backup reads the cluster),
///    and every other failure throws a `PGKeepError` naming the operation and the path.
/// 3. `list` returns the names in a directory, without `.` and `..`, sorted byte-wise.
/// 4. A host is safe to use from several worker threads at once (distinct files).
/// 5. SQL goes through the session `connect` returns (`PostgresSQL`, Postgres/ServerSQL.swift),
///    the one place that holds the statements a command runs.
/// 6. What a restore writes goes through the same host: `PostgresHostWriting`
///    (PostgresHostWriting.swift), which this protocol refines, has its own numbered contract.
public protocol PostgresHost: PostgresHostWriting {
    /// What `lstat` says of `path` (a link is not followed); nil when it does not exist.
    func status(_ path: FilePath) throws -> HostFileStatus?
    /// What `stat` says of `path`, following links; nil when it or a link's target does not exist.
    func statusFollowing(_ path: FilePath) throws -> HostFileStatus?
    /// The names in a directory (contract item 3); nil when the directory does not exist.
    func list(_ directory: FilePath) throws -> [String]?
    /// The destination a symbolic link holds, as written (possibly relative to its directory).
    func readLink(_ path: FilePath) throws -> String
    /// `path` with every link resolved, when it exists; `path` itself otherwise. For comparing two
    /// names of one directory, never for opening.
    func resolve(_ path: FilePath) -> FilePath
    /// Opens a file for streaming reads; nil when it does not exist.
    func openRead(_ path: FilePath) throws -> HostFileReader?
    /// The names of the host's users and groups, for the owners a manifest records.
    func userName(uid: UInt32) -> String?
    func groupName(gid: UInt32) -> String?
    /// A session with the server on this host, open until the value is released.
    func connect(_ options: PGConnectionOptions, applicationName: String) throws -> PostgresSQL
}

/// What the host says about one file: kind, size, permission bits, owner and modification time.
public typealias HostFileStatus = Posix.Status

/// A file on the host open for reading: a byte source positioned at the start, which can also
/// read at an offset without moving (re-reading a page whose checksum failed).
public protocol HostFileReader: ByteSource {
    /// The path it was opened at, for messages.
    var path: FilePath { get }
    /// What the open file is now (`fstat`): its size when the read began, not when it was listed.
    func status() throws -> HostFileStatus
    /// Reads up to `buffer.count` bytes at `offset`, fewer only at the end of the file.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

extension PostgresHost {
    /// Reads a whole small file (pg_control, a WAL page header), failing above `limit` bytes;
    /// nil when it does not exist.
    public func readSmallFile(_ path: FilePath, limit: Int) throws -> [UInt8]? {
        guard let reader = try openRead(path) else { return nil }
        let bytes = try reader.readAll(upTo: limit)
        guard bytes.count <= limit else {
            throw PGKeepError(.formatInvalid, "file '\(path)' is larger than \(limit) bytes",
                              hint: "the file is damaged or is not the file pgkeep expects at this path")
        }
        return bytes
    }

    /// The pid in `<dataDirectory>/postmaster.pid` when that process is alive on this host: a
    /// PostgreSQL server (or one whose stale lock file names a reused pid, which no check from
    /// outside can tell apart) runs on the directory. nil when there is no such file or it names
    /// no live process.
    public func livePostmaster(dataDirectory: FilePath) throws -> Int32? {
        guard let source = try openRead(dataDirectory.joined("postmaster.pid")) else { return nil }
        let buffer = IOBuffer(size: 64)
        let n = try source.read(into: buffer.bytes)
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<n]), as: UTF8.self)
        guard let first = text.split(separator: "\n").first, let pid = Int32(first.trimmingCharacters(in: " \t")), pid > 0 else {
            return nil
        }
        return processExists(pid) ? pid : nil
    }
}

extension FilePath {
    /// `self` with `relative` appended (a manifest name below a target: `base/5/16384`).
    public func joined(_ relative: String) -> FilePath {
        relative.isEmpty ? self : appending(relative)
    }
}
