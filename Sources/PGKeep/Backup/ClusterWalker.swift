import SystemPackage
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// Lists what a backup copies: walks the data directory and every tablespace, applies
/// PostgreSQL's base-backup exclusions (`PGDataRules`, docs/postgres-internals.md §2), and produces the
/// manifest's targets, paths, links and the files to copy with the attributes `lstat` saw.
///
/// 1. The data directory is walked depth-first; each entry's path relative to it is classified.
///    Skipped directories are not entered; "keep empty" directories are recorded but not entered.
/// 2. In database directories the sibling names are known before classifying, so forks of
///    unlogged relations (which have an `_init` fork) are left out and `_init` kept.
/// 3. `pg_tblspc/<oid>` links become link entries and targets; their `PG_<major>_<catversion>`
///    directory is walked with names `pg_tblspc/<oid>/...`, the same relative form PostgreSQL's
///    own rules use.
/// 4. `global/pg_control` is not listed: the backup copies it after everything else.
/// 5. Other links in the data directory (a `pg_wal` made by `initdb --waldir`, a linked config
///    file or log directory) become link entries and `link` targets, and are followed: their
///    contents are listed under the link's name, by the same rules (a linked `pg_wal` is kept
///    empty). Restore makes the link again. A link inside a linked directory or a tablespace is
///    only followed.
/// 6. Entries that vanish while listing are skipped (PostgreSQL dropped them).
///
/// Everything is read through the `PostgresHost`, so the same walk lists a local cluster, a
/// remote one, or a scripted one in tests.
struct ClusterWalker {
    struct Listing {
        var targets: [Manifest.Target] = []
        var paths: [Manifest.PathEntry] = []
        var links: [Manifest.LinkEntry] = []
        var files = FileList()
        var skippedSpecial: [String] = []
        /// What `--exclude` left out (relative paths), for the log.
        var excluded: [String] = []
    }

    /// `--exclude=PATH` of backup, relative to the data directory, as pgBackRest reads it: `junk`
    /// leaves out the file or directory `junk` and everything below it; `junk/` keeps the
    /// directory and leaves out everything in it. Paths below a tablespace are
    /// `pg_tblspc/<oid>/...`. What restore needs to start a cluster cannot be excluded.
    struct Exclusions: Sendable, Equatable {
        let paths: [String]

        init(_ paths: [String]) throws {
            for path in paths {
                let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
                let parts = trimmed.split(separator: "/", omittingEmptySubsequences: false)
                guard !trimmed.isEmpty, !path.hasPrefix("/"), !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
                    throw PGKeepError(.optionInvalid, "--exclude '\(path)' is not a path relative to the data directory",
                                      hint: "write it as PostgreSQL's data directory names it, e.g. --exclude=log/ or --exclude=pg_log")
                }
                for needed in ["PG_VERSION", "global/pg_control", "global/pg_filenode.map"] where needed == trimmed || needed.hasPrefix(trimmed + "/") {
                    throw PGKeepError(.optionInvalid, "--exclude '\(path)' would leave out '\(needed)', without which the restored cluster cannot start",
                                      hint: "exclude only what the cluster can do without (logs, files of other programs in the data directory)")
                }
            }
            self.paths = paths
        }

        /// Whether `relative` (a file or directory) is left out.
        func excludes(_ relative: String) -> Bool {
            paths.contains { path in
                if path.hasSuffix("/") { return relative.hasPrefix(path) }
                return relative == path || relative.hasPrefix(path + "/")
            }
        }
    }

    /// A file to copy: its manifest name, absolute path on the host, and attributes at listing time.
    struct ListedFile {
        var name: String
        /// The absolute path as listed. Kept as text and made a `FilePath` only when asked for: the
        /// planning passes read every file's name and attributes several times and its path at most
        /// once, and a `FilePath` normalises its text when made.
        var pathText: String
        var size: UInt64
        var mtime: Int64
        var mode: UInt32
        var user: String?
        var group: String?

        var path: FilePath { FilePath(pathText) }

        init(name: String, path: FilePath, size: UInt64, mtime: Int64, mode: UInt32, user: String?, group: String?) {
            self.init(name: name, pathText: path.string, size: size, mtime: mtime, mode: mode, user: user, group: group)
        }

        init(name: String, pathText: String, size: UInt64, mtime: Int64, mode: UInt32, user: String?, group: String?) {
            self.name = name
            self.pathText = pathText
            self.size = size
            self.mtime = mtime
            self.mode = mode
            self.user = user
            self.group = group
        }
    }

    let host: PostgresHost
    let dataDirectory: FilePath
    let version: PGVersion
    let tablespaces: [UInt32: PGTablespace]
    let rules: PGDataRules
    var owners: OwnerNames
    let exclusions: Exclusions
    /// Whether the walk is below a linked directory (whose own links are only followed).
    private var insideLink = false

    init(host: PostgresHost, dataDirectory: FilePath, version: PGVersion, tablespaces: [PGTablespace],
         exclusions: Exclusions = try! Exclusions([])) {
        self.exclusions = exclusions
        self.host = host
        self.dataDirectory = dataDirectory
        self.version = version
        self.tablespaces = Dictionary(tablespaces.map { ($0.oid, $0) }, uniquingKeysWith: { first, _ in first })
        rules = PGDataRules(version: version)
        owners = OwnerNames(host: host)
    }

    mutating func walk() throws -> Listing {
        var listing = Listing()
        guard let root = try host.status(dataDirectory), root.kind == .directory else {
            throw PGKeepError(.pathMissing, "data directory '\(dataDirectory)' does not exist or is not a directory",
                              hint: "check --pg1-path")
        }
        listing.targets.append(Manifest.Target(name: "pg_data", kind: .dataDirectory, path: dataDirectory.string,
                                               tablespaceOID: nil, tablespaceName: nil))
        listing.paths.append(pathEntry("pg_data", root))
        try walkDirectory(absolute: dataDirectory, relative: "", into: &listing)
        return listing
    }

    private mutating func pathEntry(_ name: String, _ st: HostFileStatus) -> Manifest.PathEntry {
        Manifest.PathEntry(name: name, mode: st.mode, user: owners.user(st.uid), group: owners.group(st.gid))
    }

    /// `relative` is the path PostgreSQL's rules see: relative to the data directory, with
    /// tablespace contents under `pg_tblspc/<oid>/`.
    private mutating func walkDirectory(absolute: FilePath, relative: String, into listing: inout Listing) throws {
        guard let names = try host.list(absolute) else { return }  // vanished
        let siblings = Set(names)
        for name in names {
            let childAbsolute = absolute.joined(name)
            let childRelative = relative.isEmpty ? name : relative + "/" + name
            if exclusions.excludes(childRelative) {
                listing.excluded.append(childRelative)
                continue
            }
            guard var st = try host.status(childAbsolute) else { continue }  // vanished

            if st.kind == .link {
                if relative == "pg_tblspc", let oid = UInt32(name) {
                    try walkTablespace(oid: oid, linkPath: childAbsolute, linkStatus: st, into: &listing)
                    continue
                }
                // Follow other links; a dangling one is skipped like a vanished file.
                guard let target = try host.statusFollowing(childAbsolute) else { continue }
                let skipped = rules.rule(forRelativePath: childRelative, isDirectory: target.kind == .directory, siblingNames: siblings) == .skip
                if !skipped, !insideLink, !childRelative.hasPrefix("pg_tblspc/"), target.kind == .directory || target.kind == .file {
                    try recordLink(relative: childRelative, linkPath: childAbsolute, linkStatus: st, into: &listing)
                }
                st = target
            }

            let manifestName = manifestName(forRelative: childRelative)
            switch st.kind {
            case .directory:
                switch rules.rule(forRelativePath: childRelative, isDirectory: true, siblingNames: siblings) {
                case .skip:
                    continue
                case .keepEmptyDirectory:
                    listing.paths.append(pathEntry(manifestName, st))
                    // pg_wal/archive_status: recorded with pg_wal's mode, as pg_basebackup does.
                    for synthesized in rules.synthesizedDirectories(inside: childRelative) {
                        listing.paths.append(pathEntry(self.manifestName(forRelative: synthesized), st))
                    }
                case .copy, .copyLast:
                    listing.paths.append(pathEntry(manifestName, st))
                    let wasInside = insideLink
                    if try host.status(childAbsolute)?.kind == .link { insideLink = true }
                    defer { insideLink = wasInside }
                    try walkDirectory(absolute: childAbsolute, relative: childRelative, into: &listing)
                }
            case .file:
                switch rules.rule(forRelativePath: childRelative, isDirectory: false, siblingNames: siblings) {
                case .skip, .keepEmptyDirectory, .copyLast:
                    continue
                case .copy:
                    try listing.files.append(ListedFile(name: manifestName, path: childAbsolute, size: st.size, mtime: st.mtime,
                                                    mode: st.mode, user: owners.user(st.uid), group: owners.group(st.gid)))
                }
            case .link, .other:
                // Sockets, FIFOs, devices: PostgreSQL's base backup skips them with a warning too.
                listing.skippedSpecial.append(childAbsolute.string)
            }
        }
    }

    private mutating func walkTablespace(oid: UInt32, linkPath: FilePath, linkStatus: HostFileStatus, into listing: inout Listing) throws {
        let destination = try host.readLink(linkPath)
        let location = Self.linkLocation(destination, of: linkPath)
        let name = tablespaces[oid]?.name
        listing.links.append(Manifest.LinkEntry(name: "pg_data/pg_tblspc/\(oid)", destination: destination,
                                                user: owners.user(linkStatus.uid), group: owners.group(linkStatus.gid)))
        listing.targets.append(Manifest.Target(name: "pg_tblspc/\(oid)", kind: .tablespace, path: location.string,
                                               tablespaceOID: oid, tablespaceName: name))
        guard let locationStatus = try host.statusFollowing(location), locationStatus.kind == .directory else {
            throw PGKeepError(.pathMissing, "tablespace \(oid) location '\(location)' (link '\(linkPath)') is missing",
                              hint: "fix or drop the tablespace before backing up")
        }
        listing.paths.append(pathEntry("pg_tblspc/\(oid)", locationStatus))
        // Only this major version's directory belongs to this cluster; another version's (left
        // by pg_upgrade) is not ours to copy.
        let versionDirectory = version.tablespaceDirectoryName
        let versionPath = location.joined(versionDirectory)
        guard let versionStatus = try host.status(versionPath), versionStatus.kind == .directory else { return }
        let relative = "pg_tblspc/\(oid)/\(versionDirectory)"
        listing.paths.append(pathEntry(relative, versionStatus))
        try walkDirectory(absolute: versionPath, relative: relative, into: &listing)
    }

    /// A link in the data directory (not a tablespace's): its entry, and a `link` target at the
    /// absolute path it resolves to.
    private mutating func recordLink(relative: String, linkPath: FilePath, linkStatus: HostFileStatus, into listing: inout Listing) throws {
        let destination = try host.readLink(linkPath)
        let location = Self.linkLocation(destination, of: linkPath)
        let name = "pg_data/" + relative
        listing.links.append(Manifest.LinkEntry(name: name, destination: destination,
                                                user: owners.user(linkStatus.uid), group: owners.group(linkStatus.gid)))
        listing.targets.append(Manifest.Target(name: name, kind: .link, path: host.resolve(location).string,
                                               tablespaceOID: nil, tablespaceName: nil))
    }

    /// Where a link's destination is: itself when absolute, else relative to the link's directory.
    /// Kept as written otherwise (`..` is not folded: it means what the host's links make it).
    static func linkLocation(_ destination: String, of linkPath: FilePath) -> FilePath {
        destination.hasPrefix("/") ? FilePath(destination) : FilePath(Posix.join(Posix.dirname(linkPath.string), destination))
    }

    /// Manifest names: data directory entries under `pg_data/`, tablespace entries as they are.
    func manifestName(forRelative relative: String) -> String {
        relative.hasPrefix("pg_tblspc/") && relative.split(separator: "/").count >= 3 ? relative : "pg_data/" + relative
    }
}

/// Caches the host's uid/gid → name lookups (getpwuid is slow and not thread-safe; the walk is
/// one thread).
struct OwnerNames {
    let host: PostgresHost
    private var users: [UInt32: String?] = [:]
    private var groups: [UInt32: String?] = [:]

    init(host: PostgresHost) { self.host = host }

    mutating func user(_ uid: UInt32) -> String? {
        if let cached = users[uid] { return cached }
        let name = host.userName(uid: uid)
        users[uid] = name
        return name
    }

    mutating func group(_ gid: UInt32) -> String? {
        if let cached = groups[gid] { return cached }
        let name = host.groupName(gid: gid)
        groups[gid] = name
        return name
    }
}
