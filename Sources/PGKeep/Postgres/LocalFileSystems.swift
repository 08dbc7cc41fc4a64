#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PGKeepCore

/// This host's file systems, as `LocalHost` reports them to a restore that ran out of space
/// (`RestoreSpace` in `Restore/RestoreSpace.swift` words the message).
enum LocalFileSystems {
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
                  let text = try? readAll(source) else { return nil }
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
