#if canImport(Glibc)
import Glibc
import CLinux
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// The handful of POSIX calls swift-system does not cover (fsync, rename, mkdir, readdir, lstat,
/// symlinks, ownership and times), each turned into a `PGKeepError` that names the operation and
/// the path. Everything that touches a file system goes through here or through `FileDescriptor`.
public enum Posix {
    /// The kind of a directory entry, from `lstat` (links are never followed).
    public enum Kind: String, Sendable, Codable {
        case file, directory, link, other
    }

    /// What `lstat` says about a path.
    public struct Status: Sendable {
        public var kind: Kind
        public var size: UInt64
        public var mode: UInt32          // permission bits only (07777)
        public var uid: UInt32
        public var gid: UInt32
        public var mtime: Int64          // seconds since the epoch
        /// Modification time in nanoseconds since the epoch, to notice a change within a second.
        public var mtimeNanoseconds: Int64 = 0
        /// How many directory entries name the file (`st_nlink`).
        public var linkCount: UInt64 = 1

        public init(kind: Kind, size: UInt64, mode: UInt32, uid: UInt32, gid: UInt32, mtime: Int64,
                    mtimeNanoseconds: Int64 = 0, linkCount: UInt64 = 1) {
            self.kind = kind
            self.size = size
            self.mode = mode
            self.uid = uid
            self.gid = gid
            self.mtime = mtime
            self.mtimeNanoseconds = mtimeNanoseconds
            self.linkCount = linkCount
        }
    }

    public static func lstat(_ path: String) throws -> Status? {
        var st = stat()
        if Glibc.lstat(path, &st) != 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw PGKeepError.system(.fileOpen, "unable to stat", path: path, errno: errno)
        }
        return Status(st)
    }

    public static func fstat(_ fd: FileDescriptor, path: String) throws -> Status {
        var st = stat()
        if Glibc.fstat(fd.rawValue, &st) != 0 {
            throw PGKeepError.system(.fileOpen, "unable to stat", path: path, errno: errno)
        }
        return Status(st)
    }

    /// Flushes a file's data and metadata to stable storage.
    public static func fsync(_ fd: FileDescriptor, path: String) throws {
        while Glibc.fsync(fd.rawValue) != 0 {
            if errno == EINTR { continue }
            throw PGKeepError.system(.fileSync, "unable to sync", path: path, errno: errno)
        }
    }

    /// Flushes a directory so that entries created, renamed or removed in it survive a crash.
    public static func fsyncDirectory(_ path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw PGKeepError.system(.fileSync, "unable to open directory for sync", path: path, errno: errno) }
        defer { Glibc.close(fd) }
        while Glibc.fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw PGKeepError.system(.fileSync, "unable to sync directory", path: path, errno: errno)
        }
    }

    /// Makes everything on the file system holding `path` durable (syncfs(2)): one call instead
    /// of an fsync per file, for files this process did not write (a delta restore's kept files,
    /// which an interrupted earlier restore may have left in the page cache only).
    public static func syncFileSystem(containing path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw PGKeepError.system(.fileSync, "unable to open directory for sync", path: path, errno: errno) }
        defer { Glibc.close(fd) }
        #if os(Linux)
        while pgkeep_syncfs(fd) != 0 {
            if errno == EINTR { continue }
            throw PGKeepError.system(.fileSync, "unable to sync the file system of", path: path, errno: errno)
        }
        #else
        sync()
        #endif
    }

    public static func rename(_ from: String, _ to: String) throws {
        if Glibc.rename(from, to) != 0 {
            throw PGKeepError.system(.fileWrite, "unable to rename '\(from)' to", path: to, errno: errno)
        }
    }

    /// Makes `to` a second name of the file `from` (link(2)); returns false when `to` exists. One
    /// atomic step on every file system, NFS included, which makes it the exclusive create of
    /// `PosixStorage.createExclusive`. On NFS a retransmitted request can report an error (EEXIST
    /// among them) for a link the server did make: the file then has two names, which is what
    /// decides.
    public static func link(_ from: String, _ to: String) throws -> Bool {
        if Glibc.link(from, to) == 0 { return true }
        let code = errno
        if let st = try lstat(from), st.linkCount == 2 { return true }
        if code == EEXIST { return false }
        throw PGKeepError.system(.fileWrite, "unable to link '\(from)' to", path: to, errno: code)
    }

    /// Removes a file; a missing file is not an error (removal is idempotent). Returns whether an
    /// entry was removed. ENOTDIR (a parent is a file) counts as missing, as in `lstat`.
    @discardableResult
    public static func unlink(_ path: String) throws -> Bool {
        if Glibc.unlink(path) == 0 { return true }
        if errno == ENOENT || errno == ENOTDIR { return false }
        throw PGKeepError.system(.fileWrite, "unable to remove", path: path, errno: errno)
    }

    /// Creates `path` as an empty file with `mode` (or truncates it), without syncing: for markers
    /// whose loss in a crash is harmless. ENOENT means the directory is missing.
    public static func createEmptyFile(_ path: String, mode: UInt32 = 0o600) throws {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode_t(mode))
        if fd < 0 {
            throw PGKeepError.system(.fileOpen, "unable to create", path: path, errno: errno)
        }
        Glibc.close(fd)
    }

    public static func rmdir(_ path: String) throws {
        if Glibc.rmdir(path) != 0 && errno != ENOENT {
            throw PGKeepError.system(.fileWrite, "unable to remove directory", path: path, errno: errno)
        }
    }

    /// Creates a directory with exactly `mode` (the umask does not apply); returns false when it
    /// already existed, leaving its mode as it was.
    @discardableResult
    public static func mkdir(_ path: String, mode: UInt32 = 0o750) throws -> Bool {
        if Glibc.mkdir(path, mode_t(mode)) == 0 { try chmod(path, mode: mode); return true }
        if errno == EEXIST, let st = try lstat(path), st.kind == .directory { return false }
        throw PGKeepError.system(.pathCreate, "unable to create directory", path: path, errno: errno)
    }

    /// Creates a directory and any missing parents, syncing each parent that gained an entry so the
    /// new directories survive a crash. Returns nothing; existing directories are left as they are.
    public static func mkdirs(_ path: String, mode: UInt32 = 0o750) throws {
        if let st = try lstat(path) {
            // A link to a directory serves as one (a data directory's pg_wal made by initdb --waldir).
            if st.kind == .directory { return }
            if st.kind == .link, try statFollowing(path)?.kind == .directory { return }
            throw PGKeepError(.pathCreate, "unable to create directory '\(path)': a non-directory is in the way")
        }
        let parent = dirname(path)
        if parent != path { try mkdirs(parent, mode: mode) }
        if try mkdir(path, mode: mode) { try fsyncDirectory(parent) }
    }

    /// Names in a directory, without `.` and `..`, sorted byte-wise. nil when the directory is missing.
    public static func listDirectory(_ path: String) throws -> [String]? {
        guard let dir = opendir(path) else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw PGKeepError.system(.fileOpen, "unable to list directory", path: path, errno: errno)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw PGKeepError.system(.fileRead, "unable to read directory", path: path, errno: errno) }
                break
            }
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        names.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        return names
    }

    public static func readLink(_ path: String) throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = Glibc.readlink(path, &buffer, buffer.count - 1)
        if n < 0 { throw PGKeepError.system(.fileRead, "unable to read link", path: path, errno: errno) }
        buffer[n] = 0
        return String(cString: buffer)
    }

    public static func symlink(target: String, at path: String) throws {
        if Glibc.symlink(target, path) != 0 {
            throw PGKeepError.system(.pathCreate, "unable to create link to '\(target)' at", path: path, errno: errno)
        }
    }

    public static func chmod(_ path: String, mode: UInt32) throws {
        if Glibc.chmod(path, mode_t(mode)) != 0 {
            throw PGKeepError.system(.fileWrite, "unable to set mode on", path: path, errno: errno)
        }
    }

    /// Changes ownership without following a final link.
    public static func lchown(_ path: String, uid: UInt32, gid: UInt32) throws {
        if Glibc.lchown(path, uid, gid) != 0 {
            throw PGKeepError.system(.fileWrite, "unable to set owner on", path: path, errno: errno)
        }
    }

    /// Sets access and modification time (seconds) without following a final link.
    public static func setModificationTime(_ path: String, seconds: Int64) throws {
        var times = [timespec(tv_sec: Int(seconds), tv_nsec: 0), timespec(tv_sec: Int(seconds), tv_nsec: 0)]
        if utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) != 0 {
            throw PGKeepError.system(.fileWrite, "unable to set modification time on", path: path, errno: errno)
        }
    }

    /// Writes `text` to standard error (file descriptor 2) whole, unbuffered: what the C stream
    /// `stderr` would do, without touching that global from several threads.
    public static func writeStandardError(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var done = 0
            while done < bytes.count {
                let n = write(2, bytes.baseAddress! + done, bytes.count - done)
                if n > 0 { done += n } else if n < 0 && errno == EINTR { continue } else { return }
            }
        }
    }

    /// This host's name (gethostname(2)); "localhost" when it has none.
    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0, buffer[0] != 0 else { return "localhost" }
        return String(cString: buffer)
    }

    /// Whether a process with this pid exists on this host (kill(2) with signal 0: EPERM means it
    /// exists under another user).
    public static func processExists(_ pid: Int32) -> Bool {
        pid > 0 && (kill(pid, 0) == 0 || errno == EPERM)
    }

    public static func userName(uid: UInt32) -> String? {
        guard let pw = getpwuid(uid) else { return nil }
        return String(cString: pw.pointee.pw_name)
    }

    public static func groupName(gid: UInt32) -> String? {
        guard let gr = getgrgid(gid) else { return nil }
        return String(cString: gr.pointee.gr_name)
    }

    public static func userID(name: String) -> UInt32? {
        guard let pw = getpwnam(name) else { return nil }
        return pw.pointee.pw_uid
    }

    public static func groupID(name: String) -> UInt32? {
        guard let gr = getgrnam(name) else { return nil }
        return gr.pointee.gr_gid
    }

    /// The primary group of the user `name`.
    public static func primaryGroupID(name: String) -> UInt32? {
        guard let pw = getpwnam(name) else { return nil }
        return pw.pointee.pw_gid
    }

    /// The directory part of a path (`/a/b` → `/a`, `a` → `.`, `/` → `/`).
    public static func dirname(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// The last component of a path.
    public static func basename(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// Joins two path pieces with exactly one slash.
    public static func join(_ base: String, _ relative: String) -> String {
        if relative.isEmpty { return base }
        if base.hasSuffix("/") { return base + relative }
        return base + "/" + relative
    }

    /// Makes a path absolute against the current directory.
    public static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let cwd = String(cString: buffer)
        return path == "." || path.isEmpty ? cwd : join(cwd, path)
    }
}

extension Posix.Status {
    init(_ st: stat) {
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .file
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .link
        default: kind = .other
        }
        size = UInt64(st.st_size)
        mode = UInt32(st.st_mode & 0o7777)
        uid = st.st_uid
        gid = st.st_gid
        mtime = Int64(st.st_mtim.tv_sec)
        mtimeNanoseconds = Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec)
        linkCount = UInt64(st.st_nlink)
    }
}

extension Posix {
    /// `stat` following links; nil when the path (or a link's target) does not exist.
    public static func statFollowing(_ path: String) throws -> Status? {
        var st = stat()
        if fstatat(AT_FDCWD, path, &st, 0) != 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw PGKeepError.system(.fileOpen, "unable to stat", path: path, errno: errno)
        }
        return Status(st)
    }
}
