import SystemPackage
import PGKeepCore

/// What a restore does to the database host: the writes and the few host-wide questions (the
/// running clusters, free space) behind the same seam as the reads (`PostgresHost`,
/// PostgresHost.swift). `LocalHost` implements it with the POSIX calls restore always made; the
/// remote agent will implement it over the network; `ScriptedHost` (Tests/TestSupport) over its
/// in-memory tree, so a restore's write steps run in unit tests.
///
/// It is a protocol of its own, which `PostgresHost` refines, so that the read contract (what a
/// backup needs) stays readable on its own and each half is documented where it is declared;
/// every host is both, because a restore needs the reads too (delta compares, `--delta` cleans).
///
/// The contract (the read side's items 1 and 4 hold here too):
/// 1. **Removing is idempotent**: `remove` and `removeDirectory` of a missing path succeed
///    (`remove` says whether something was removed); every other failure throws a `PGKeepError`
///    naming the operation and the path, with the errno's code (a full disk is `.diskFull`).
/// 2. **Durability is explicit**: nothing is synced unless asked. A file is durable after its
///    writer's `sync`; a new, renamed or removed entry after `syncDirectory` of its directory
///    (`makeDirectories` is the exception: it syncs each parent that gained a directory).
/// 3. **Modes**: `makeDirectories` gives the directories it creates exactly `mode`; `createFile`'s
///    mode is subject to the host's umask, so restore always sets the recorded mode with
///    `setMode` afterwards. `setMode` follows a final link, `setOwner` and
///    `setModificationTime` do not.
/// 4. `createFile` creates or truncates (a delta restore rewrites a file that differs); the
///    writer is the only way its bytes are written, and it is closed exactly once.
/// 5. Account lookups (`userID`, `groupID`, `primaryGroupID`), `runsAsRoot` and
///    `processExists` answer for the host, not for the machine pgkeep's command runs on, because
///    the files and the server belong to the host.
public protocol PostgresHostWriting: AnyObject, Sendable {
    /// Makes `path` and any missing parents as directories with `mode` (contract item 2); an
    /// existing directory, or a link to one, is left as it is.
    func makeDirectories(_ path: FilePath, mode: UInt32) throws
    /// Sets the permission bits, following a final link.
    func setMode(_ path: FilePath, mode: UInt32) throws
    /// Sets the owner without following a final link (lchown).
    func setOwner(_ path: FilePath, uid: UInt32, gid: UInt32) throws
    /// Sets access and modification time (whole seconds) without following a final link.
    func setModificationTime(_ path: FilePath, seconds: Int64) throws
    /// Creates a symbolic link at `path` holding `destination` as given.
    func makeLink(_ path: FilePath, destination: String) throws
    /// Removes a file or link; returns whether an entry was removed (contract item 1).
    @discardableResult func remove(_ path: FilePath) throws -> Bool
    /// Removes an empty directory (contract item 1).
    func removeDirectory(_ path: FilePath) throws
    /// Renames within one file system, replacing `to`.
    func rename(_ from: FilePath, to: FilePath) throws
    /// Makes the entries of a directory durable (contract item 2).
    func syncDirectory(_ path: FilePath) throws
    /// Makes everything on the file system holding the directory `path` durable (syncfs).
    func syncFileSystem(containing path: FilePath) throws
    /// Creates (or truncates) a file for writing with `mode`. With `temporaryFor`, `path` is the
    /// temporary name of that file in the same directory, and a failure names the final file.
    func createFile(_ path: FilePath, mode: UInt32, temporaryFor final: FilePath?) throws -> HostFileWriter
    /// The host's accounts (contract item 5).
    func userID(name: String) -> UInt32?
    func groupID(name: String) -> UInt32?
    func primaryGroupID(name: String) -> UInt32?
    /// Whether the files written on the host are written by root, which alone may give them the
    /// owners the manifest records (contract item 5).
    var runsAsRoot: Bool { get }
    /// Whether a process with this id exists on the host, also one of another user (contract
    /// item 5): the check of the pid a `postmaster.pid` names.
    func processExists(_ pid: Int32) -> Bool
    /// The PostgreSQL servers running on the host, as far as pgkeep may see them.
    func runningClusters() -> [RunningClusters.Cluster]
    /// Bytes an unprivileged user can still write on the file system holding `path`; nil when
    /// the host cannot say.
    func freeBytes(_ path: FilePath) -> UInt64?
    /// The mounted file system holding `path` (mount point, device or source, type), for a
    /// disk-full message; nil when the host cannot say.
    func mountedFileSystem(containing path: FilePath) -> (mountPoint: String, source: String, type: String)?
}

/// A file on the host open for writing: a byte sink whose data becomes durable at `sync`.
/// `LocalHost`'s is `FileSink` itself, so restore writes through no extra layer.
public protocol HostFileWriter: ByteSink {
    /// Bytes written so far.
    var written: UInt64 { get }
    /// Start writeback every this many bytes while writing (0: never); see `startWriteback`.
    var writeBehind: UInt64 { get set }
    /// Asks the host to start writing what was written since the last call, without waiting.
    func startWriteback() throws
    /// Sets the file's length to `size` (a hole where nothing was written: reads as zeros and
    /// takes no space), after what was written.
    func extend(to size: UInt64) throws
    /// Makes the file's data and metadata durable.
    func sync() throws
    /// Closes the file; a second call does nothing.
    func close() throws
}

extension FileSink: HostFileWriter {}
