#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage
import PGKeepCore

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

    // MARK: PostgresHostWriting

    public func makeDirectories(_ path: FilePath, mode: UInt32) throws { try Posix.mkdirs(path.string, mode: mode) }

    public func setMode(_ path: FilePath, mode: UInt32) throws { try Posix.chmod(path.string, mode: mode) }

    public func setOwner(_ path: FilePath, uid: UInt32, gid: UInt32) throws { try Posix.lchown(path.string, uid: uid, gid: gid) }

    public func setModificationTime(_ path: FilePath, seconds: Int64) throws {
        try Posix.setModificationTime(path.string, seconds: seconds)
    }

    public func makeLink(_ path: FilePath, destination: String) throws { try Posix.symlink(target: destination, at: path.string) }

    @discardableResult
    public func remove(_ path: FilePath) throws -> Bool { try Posix.unlink(path.string) }

    public func removeDirectory(_ path: FilePath) throws { try Posix.rmdir(path.string) }

    public func rename(_ from: FilePath, to: FilePath) throws { try Posix.rename(from.string, to.string) }

    public func syncDirectory(_ path: FilePath) throws { try Posix.fsyncDirectory(path.string) }

    public func syncFileSystem(containing path: FilePath) throws { try Posix.syncFileSystem(containing: path.string) }

    public func createFile(_ path: FilePath, mode: UInt32, temporaryFor final: FilePath?) throws -> HostFileWriter {
        try FileSink(creating: path.string, mode: mode, temporaryFor: final?.string)
    }

    public func userID(name: String) -> UInt32? { Posix.userID(name: name) }

    public func groupID(name: String) -> UInt32? { Posix.groupID(name: name) }

    public func primaryGroupID(name: String) -> UInt32? { Posix.primaryGroupID(name: name) }

    public var runsAsRoot: Bool { geteuid() == 0 }

    public func processExists(_ pid: Int32) -> Bool { Posix.processExists(pid) }

    public func runningClusters() -> [RunningClusters.Cluster] { RunningClusters.find() }

    public func freeBytes(_ path: FilePath) -> UInt64? { LocalFileSystems.freeBytes(path.string) }

    public func mountedFileSystem(containing path: FilePath) -> (mountPoint: String, source: String, type: String)? {
        LocalFileSystems.FileSystem(containing: path.string).map { ($0.mountPoint, $0.source, $0.type) }
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
