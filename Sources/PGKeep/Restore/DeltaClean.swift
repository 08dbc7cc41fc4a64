#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// The first step of `restore --delta`: makes an existing data directory (and the backup's
/// tablespace directories) hold nothing the backup does not have.
///
/// Every entry is judged by `lstat`, links are never followed except where the backup expects a
/// directory (a symlinked `pg_wal` stays a link and is cleaned inside). Entries the manifest does
/// not list are removed, as are entries of the wrong kind and tablespace links pointing elsewhere;
/// regular files the manifest lists stay for the restore to compare by size and SHA-256.
/// In a tablespace location only this cluster's `PG_<major>_<catalog version>` directory is
/// cleaned: other entries there (another major version's directory) are not ours.
struct DeltaClean {
    enum Expected: Equatable {
        case directory
        case file
        case link(String)
    }

    let expected: [String: Expected]
    /// The host holding the directories; every look and every removal goes through it.
    let host: PostgresHost
    let log: Log
    private(set) var removed = 0

    /// `keep`: absolute paths of files the restore itself put there (its marker).
    init(host: PostgresHost, manifest: Manifest, targets: TargetMap, keep: [String] = [], log: Log) throws {
        var expected: [String: Expected] = [:]
        for path in keep { expected[path] = .file }
        for path in manifest.paths { expected[try targets.absolute(path.name)] = .directory }
        for file in manifest.files { expected[try targets.absolute(file.name)] = .file }
        for link in manifest.links where targets.makes(link) {
            expected[try targets.linkPath(link.name)] = .link(try targets.linkDestination(link))
        }
        self.expected = expected
        self.host = host
        self.log = log
    }

    /// Cleans the data directory, the tablespace locations and the directories the data
    /// directory's links point to (a linked `pg_wal`): those hold only what the backup has.
    mutating func run(dataDirectory: String, tablespaceLocations: [String], linkedDirectories: [String] = []) throws {
        if let st = try host.status(FilePath(dataDirectory)), st.kind == .directory {
            try clean(directory: dataDirectory, isTablespaceLocation: false)
        }
        for location in linkedDirectories {
            if let st = try host.statusFollowing(FilePath(location)), st.kind == .directory {
                try clean(directory: location, isTablespaceLocation: false)
            }
        }
        for location in tablespaceLocations {
            if let st = try host.statusFollowing(FilePath(location)), st.kind == .directory {
                try clean(directory: location, isTablespaceLocation: true)
            }
        }
    }

    private mutating func clean(directory: String, isTablespaceLocation: Bool) throws {
        guard let names = try host.list(FilePath(directory)) else { return }
        var changed = false
        for name in names {
            let path = Posix.join(directory, name)
            guard let st = try host.status(FilePath(path)) else { continue }
            switch expected[path] {
            case .directory:
                if st.kind == .directory {
                    try clean(directory: path, isTablespaceLocation: false)
                    continue
                }
                if st.kind == .link, let target = try host.statusFollowing(FilePath(path)), target.kind == .directory {
                    try clean(directory: path, isTablespaceLocation: false)
                    continue
                }
            case .file:
                if st.kind == .file { continue }
            case .link(let destination):
                if st.kind == .link {
                    let found = try host.readLink(FilePath(path))
                    let pointsTo = FilePath(found.hasPrefix("/") ? found : Posix.join(directory, found))
                    if host.resolve(pointsTo) == host.resolve(FilePath(destination)) { continue }
                }
            case nil:
                // Not ours to judge: the rest of a tablespace location.
                if isTablespaceLocation { continue }
            }
            try remove(path, kind: st.kind)
            changed = true
        }
        if changed { try host.syncDirectory(FilePath(directory)) }
    }

    /// Removes a file, link or whole directory, counting every entry removed.
    private mutating func remove(_ path: String, kind: Posix.Kind) throws {
        if kind == .directory {
            for name in try host.list(FilePath(path)) ?? [] {
                let child = Posix.join(path, name)
                if let st = try host.status(FilePath(child)) { try remove(child, kind: st.kind) }
            }
            try host.removeDirectory(FilePath(path))
        } else {
            try host.remove(FilePath(path))
        }
        removed += 1
        log.detail("removed '\(path)': not in the backup")
    }

}
