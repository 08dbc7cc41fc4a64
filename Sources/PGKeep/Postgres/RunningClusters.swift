#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PGKeepCore

/// The PostgreSQL servers running on this host, found through `/proc`: a postmaster and its
/// backends run with their data directory as working directory. Processes pgkeep may not inspect
/// (another user's, without privileges) are not seen: the `postmaster.pid` check covers the
/// restore's own data directory regardless.
public enum RunningClusters {
    public struct Cluster: Sendable, Equatable {
        public var pid: Int32
        public var dataDirectory: String
        /// Where its `pg_tblspc` links and the other links at its top level (`pg_wal`) point, resolved.
        public var linkedLocations: [String]
    }

    /// The local scan (`LocalHost.runningClusters`); a remote host runs its own.
    public static func find() -> [Cluster] {
        guard let entries = try? Posix.listDirectory("/proc") else { return [] }
        var byDirectory: [String: Cluster] = [:]
        for entry in entries {
            guard let pid = Int32(entry), pid != getpid() else { continue }
            guard let comm = commandName(of: entry),
                  comm.hasPrefix("postgres") || comm.hasPrefix("postmaster") else { continue }
            guard let cwd = try? Posix.readLink("/proc/\(entry)/cwd"), cwd.hasPrefix("/"),
                  byDirectory[cwd] == nil else { continue }
            // Only a data directory: a postgres process elsewhere (initdb's, a client's) is not a server.
            guard (try? Posix.lstat(Posix.join(cwd, "PG_VERSION"))) != nil else { continue }
            var locations: [String] = []
            for directory in ["pg_tblspc", ""] {
                for name in (try? Posix.listDirectory(Posix.join(cwd, directory))) ?? [] {
                    let link = Posix.join(Posix.join(cwd, directory), name)
                    guard (try? Posix.lstat(link))??.kind == .link, let target = try? Posix.readLink(link) else { continue }
                    locations.append(resolve(target.hasPrefix("/") ? target : Posix.join(Posix.dirname(link), target)))
                }
            }
            byDirectory[cwd] = Cluster(pid: pid, dataDirectory: cwd, linkedLocations: locations)
        }
        return byDirectory.values.sorted { $0.dataDirectory < $1.dataDirectory }
    }

    /// The path with links resolved when it exists (so two names of one directory compare equal).
    static func resolve(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    package static func sameLocation(_ a: String, _ b: String) -> Bool { resolve(a) == resolve(b) }

    /// Whether one path is the other or lies below it.
    package static func overlaps(_ a: String, _ b: String) -> Bool {
        let (x, y) = (resolve(a), resolve(b))
        return x == y || x.hasPrefix(y.hasSuffix("/") ? y : y + "/") || y.hasPrefix(x.hasSuffix("/") ? x : x + "/")
    }

    /// The process's command name (`/proc/<pid>/comm`, at most 16 bytes); nil when it is gone.
    private static func commandName(of pid: String) -> String? {
        guard let source = try? FileSource.open("/proc/\(pid)/comm"), let bytes = try? source.readAll(upTo: 4096) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}
