#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// The database host pgkeep runs on: the `PostgresHost` contract (PostgresHost.swift) over
/// POSIX calls (`Posix`, `FileSource`) and libpq (`PGSession`). It holds no state, so one
/// instance serves every worker thread.
public final class LocalHost: PostgresHost {
    public init() {}

    public func status(_ path: FilePath) throws -> HostFileStatus? { try Posix.lstat(path.string) }

    public func statusFollowing(_ path: FilePath) throws -> HostFileStatus? { try Posix.statFollowing(path.string) }

    public func list(_ directory: FilePath) throws -> [String]? { try Posix.listDirectory(directory.string) }

    public func readLink(_ path: FilePath) throws -> String { try Posix.readLink(path.string) }

    public func resolve(_ path: FilePath) -> FilePath {
        guard let resolved = realpath(path.string, nil) else { return path }
        defer { free(resolved) }
        return FilePath(String(cString: resolved))
    }

    public func openRead(_ path: FilePath) throws -> HostFileReader? {
        try FileSource.open(path.string).map { LocalFileReader(source: $0, path: path) }
    }

    public func userName(uid: UInt32) -> String? { Posix.userName(uid: uid) }

    public func groupName(gid: UInt32) -> String? { Posix.groupName(gid: gid) }

    public func connect(_ options: PGConnectionOptions, applicationName: String) throws -> PostgresSQL {
        try PGSession(options, applicationName: applicationName)
    }
}

/// A local file open for reading.
final class LocalFileReader: HostFileReader {
    let source: FileSource
    let path: FilePath

    init(source: FileSource, path: FilePath) {
        self.source = source
        self.path = path
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int { try source.read(into: buffer) }

    func status() throws -> HostFileStatus { try Posix.fstat(source.fd, path: source.path) }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var filled = 0
        while filled < buffer.count {
            let n = pread(source.fd.rawValue, buffer.baseAddress! + filled, buffer.count - filled, off_t(offset) + off_t(filled))
            if n < 0 {
                if errno == EINTR { continue }
                throw PGKeepError.system(.fileRead, "unable to read", path: source.path, errno: errno)
            }
            if n == 0 { break }
            filled += n
        }
        return filled
    }
}
