#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// What a restore that ran out of space tells the operator (fault checklist 24): which file
/// system is full (mount point and device), how much room the backup's files take there, and how
/// to finish. The low-level disk-full error names only the file being written, and its generic
/// hint speaks of a repository.
enum RestoreSpace {
    /// Returns `error` unchanged unless it is a disk-full error; then the same code and message,
    /// extended with the space the backup needs on the full file system and how much is free.
    /// - Parameters:
    ///   - roots: the data directory and the tablespace locations; the one whose path the error
    ///     names is taken as the full one (the data directory when none is named).
    ///   - needed: the bytes of the manifest's files under `root`.
    ///   - host: the host the files were written to, which knows its mounts and free space.
    static func explain(_ error: any Error, label: BackupLabel, roots: [String], host: PostgresHostWriting = LocalHost(),
                        needed: (_ root: String) -> UInt64) -> any Error {
        guard let error = error as? PGKeepError, error.code == .diskFull, let first = roots.first else { return error }
        let root = roots.filter { error.message.contains("'\($0)/") || error.message.contains("'\($0)'") }
            .max { $0.count < $1.count } ?? first
        let bytes = needed(root)
        let where_ = host.mountedFileSystem(containing: FilePath(root)).map { "the file system mounted at '\($0.mountPoint)' (\($0.source), \($0.type))" }
            ?? "the file system holding '\(root)'"
        var message = error.message + "; backup \(label) needs \(ProgressFormat.bytes(bytes)) (\(bytes) bytes) under '\(root)' on \(where_)"
        if let free = host.freeBytes(FilePath(root)) { message += ", which has \(ProgressFormat.bytes(free)) free" }
        return PGKeepError(.diskFull, message, hint:
            "make room for \(bytes) bytes under '\(root)' (this restore's files there included) or restore onto a larger file system, "
            + "then run the restore again with --delta: it keeps the files already restored. Until a restore completes, "
            + "the directory has no global/pg_control and PostgreSQL refuses to start it")
    }

    /// Bytes an unprivileged user can still write on the file system holding `path`
    /// (`LocalHost.freeBytes`).
    static func freeBytes(_ path: String) -> UInt64? {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return nil }
        return UInt64(stats.f_bavail) * UInt64(stats.f_frsize)
    }

    /// A mounted file system, from /proc/self/mountinfo (proc(5)); `LocalHost.mountedFileSystem`.
    struct FileSystem {
        var mountPoint: String
        var source: String
        var type: String

        init(mountPoint: String, source: String, type: String) {
            self.mountPoint = mountPoint
            self.source = source
            self.type = type
        }

        /// The mount whose device is `path`'s and whose mount point is the longest prefix of it;
        /// nil where /proc is not mounted (or not Linux).
        init?(containing path: String) {
            var status = stat()
            guard stat(path, &status) == 0,
                  let source = try? FileSource.open("/proc/self/mountinfo"),
                  let text = try? RestoreSpace.readAll(source) else { return nil }
            let dev = UInt64(status.st_dev)
            // glibc's gnu_dev_major/minor, which Swift does not import (they are macros on some versions).
            let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff))
            let minor = (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff))
            var best: FileSystem?
            for line in text.split(separator: "\n") {
                // id parent major:minor root mount-point options [optional...] - type source super-options
                let fields = line.split(separator: " ").map(String.init)
                guard fields.count >= 10, fields[2] == "\(major):\(minor)",
                      let dash = fields.firstIndex(of: "-"), dash + 2 < fields.count else { continue }
                // Mount points with spaces are escaped (\040) and then match no path: the message falls back.
                let mountPoint = fields[4]
                guard path == mountPoint || path.hasPrefix(mountPoint == "/" ? "/" : mountPoint + "/") else { continue }
                if best.map({ mountPoint.count >= $0.mountPoint.count }) ?? true {
                    best = FileSystem(mountPoint: mountPoint, source: fields[dash + 2], type: fields[dash + 1])
                }
            }
            guard let best else { return nil }
            self = best
        }
    }

    private static func readAll(_ source: FileSource) throws -> String {
        // A mount table larger than this is not worth reading whole.
        String(decoding: try source.readAll(upTo: 4 << 20), as: UTF8.self)
    }
}
