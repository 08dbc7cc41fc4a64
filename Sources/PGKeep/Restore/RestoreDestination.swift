#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FoundationEssentials
import SystemPackage
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// The checks a restore's destination passes before anything is written, in one place: a restore
/// runs them and refuses on the first problem; `restore --plan` reports all of them.
///
/// A restore may destroy what is in its way (`--delta` removes whatever the backup does not
/// have), so the destination must be proved to be *this cluster's* data directory, or free:
/// - Always: the data directory, if it exists, is a directory; no running PostgreSQL uses it or any
///   of the backup's tablespace locations (found through `postmaster.pid` and the working
///   directories of the running `postgres` processes, which is where a postmaster and its
///   backends live, `RunningClusters`). Never overridden.
/// - Without `--delta`: the data directory and every tablespace location are empty (or absent).
/// - With `--delta`, over a non-empty data directory: it holds `PG_VERSION` of the backup's major
///   version or pgkeep's restore marker (`RestoreMarker`), and its `pg_control` (or the marker)
///   names the backup's system identifier. A tablespace location, or the directory or file another
///   link of the data directory points to (a linked `pg_wal`), that holds anything must be the
///   one this data directory already links to: a location nobody links to from here belongs to
///   another cluster, or to nobody pgkeep knows of. `--force` overrides these identity checks,
///   never the running-server ones.
public struct RestoreDestination {
    public let dataDirectory: String
    public let delta: Bool
    public let force: Bool
    /// The host the restore writes to: every check looks through it.
    let host: PostgresHost
    let manifest: Manifest
    let locations: [Location]
    let running: [RunningClusters.Cluster]

    /// A place outside the data directory the restore writes: a tablespace location, or where a
    /// link of the data directory points (a directory, or one linked file).
    struct Location {
        enum Kind { case tablespace, directoryLink, fileLink }
        var kind: Kind
        var path: String
        /// The link in the data directory that points at it (`pg_tblspc/<oid>`, `pg_wal`).
        var link: String

        var what: String {
            switch kind {
            case .tablespace: return "tablespace location"
            case .directoryLink: return "linked directory"
            case .fileLink: return "linked file"
            }
        }
    }

    /// `running`: the servers running on the host; asked of the host when not given.
    init(host: PostgresHost, dataDirectory: String, delta: Bool, force: Bool, manifest: Manifest, targets: TargetMap,
         running: [RunningClusters.Cluster]? = nil) throws {
        self.host = host
        self.dataDirectory = dataDirectory
        self.delta = delta
        self.force = force
        self.manifest = manifest
        var locations = targets.tablespaceTargets.map {
            Location(kind: .tablespace, path: $0.location, link: Posix.join(dataDirectory, $0.name))
        }
        for link in targets.linkTargets {
            locations.append(Location(kind: link.isFile ? .fileLink : .directoryLink, path: link.location,
                                      link: try targets.linkPath(link.name)))
        }
        self.locations = locations
        self.running = running ?? host.runningClusters()
    }

    /// Every problem, in the order a restore meets them; empty when the restore may write.
    public func problems() throws -> [PGKeepError] {
        var problems: [PGKeepError] = []
        let directory = dataDirectory
        let existing = try host.statusFollowing(FilePath(directory))
        if let existing, existing.kind != .directory {
            return [PGKeepError(.pathInvalid, "'\(directory)' exists and is not a directory", hint: "choose another --pg1-path")]
        }
        problems += try runningServers()
        let names = existing == nil ? [] : (try host.list(FilePath(directory)) ?? [])
        if !delta {
            if names.contains("postmaster.pid") {
                problems.append(PGKeepError(.pgRunning, "'\(directory)/postmaster.pid' exists: PostgreSQL may be running on this data directory",
                                            hint: "stop PostgreSQL (pg_ctl stop) before restoring; if it is not running, remove the stale postmaster.pid"))
            } else if !names.isEmpty {
                problems.append(PGKeepError(.pathNotEmpty, "data directory '\(directory)' is not empty (\(names.count) entries, e.g. '\(names[0])')",
                                            hint: "restore into an empty or new directory, or, over this cluster's own stopped data directory, with --delta"))
            }
            for location in locations {
                if let occupied = try occupied(location) {
                    problems.append(PGKeepError(.pathNotEmpty, "\(location.what) '\(location.path)' \(occupied)",
                                                hint: "empty it or restore on a host where the \(location.what) is free"))
                }
            }
            return problems
        }
        if !names.isEmpty, !force { problems += try identity(names: names) }
        problems += try tablespaceOwnership(dataDirectoryIsEmpty: names.isEmpty)
        return problems
    }

    /// The backup's major version and system identifier against what the directory holds.
    private func identity(names: [String]) throws -> [PGKeepError] {
        let directory = dataDirectory
        let database = manifest.database
        let overridable = "if you are sure this directory may be replaced by backup \(manifest.backup.label), add --force"
        let marker = try RestoreMarker.read(on: host, dataDirectory: directory)
        let versionText = try Self.readSmallFile(on: host, Posix.join(directory, "PG_VERSION"))?
            .split(whereSeparator: { $0 == "\n" || $0 == " " }).first.map(String.init)
        guard versionText != nil || marker != nil else {
            return [PGKeepError(.pathNotEmpty,
                                "'\(directory)' is not empty (\(names.count) entries, e.g. '\(names[0])') and is not a PostgreSQL data directory: it has neither PG_VERSION nor a pgkeep restore marker (\(RestoreMarker.fileName)); --delta would remove everything in it that backup \(manifest.backup.label) does not have",
                                hint: "check --pg1-path: --delta restores over a cluster's own stopped data directory; restore into an empty directory otherwise; \(overridable)")]
        }
        if let marker, marker.systemIdentifier != database.systemIdentifier {
            return [PGKeepError(.dbMismatch,
                                "'\(directory)' holds an interrupted restore of another cluster (\(RestoreMarker.fileName): stanza '\(marker.stanza)', backup \(marker.label), system identifier \(marker.systemIdentifier)); backup \(manifest.backup.label) has system identifier \(database.systemIdentifier)",
                                hint: "check --pg1-path and --stanza; \(overridable)")]
        }
        if let versionText, versionText != String(database.version) {
            return [PGKeepError(.dbMismatch,
                                "'\(directory)' is a PostgreSQL \(versionText) data directory (PG_VERSION); backup \(manifest.backup.label) is of PostgreSQL \(database.version)",
                                hint: "check --pg1-path and --stanza; \(overridable)")]
        }
        let controlPath = Posix.join(directory, PGControl.relativePath)
        guard (try host.status(FilePath(controlPath))) != nil else {
            // An interrupted delta restore removed it first; PG_VERSION (and the marker, when a
            // restore of this pgkeep was interrupted) is what is left to go by.
            return []
        }
        let control: PGControl
        do {
            control = try PGControl.read(from: host, dataDirectory: FilePath(directory), attempts: 1).control
        } catch {
            return [PGKeepError(.pgControlInvalid,
                                "'\(controlPath)' cannot be read, so pgkeep cannot prove '\(directory)' is the data directory of the cluster backup \(manifest.backup.label) came from: \(error.message)",
                                hint: overridable)]
        }
        guard control.systemIdentifier == database.systemIdentifier else {
            return [PGKeepError(.dbMismatch,
                                "'\(directory)' is the data directory of another cluster: its pg_control has system identifier \(control.systemIdentifier), backup \(manifest.backup.label) has \(database.systemIdentifier); a delta restore would replace that cluster",
                                hint: "check --pg1-path and --stanza; \(overridable)")]
        }
        return []
    }

    /// What is in the way at a location, or nil when it is free: an absent path, an empty
    /// directory.
    func occupied(_ location: Location) throws -> String? {
        if location.kind == .fileLink {
            return try host.status(FilePath(location.path)) == nil ? nil : "exists"
        }
        guard let inside = try host.list(FilePath(location.path)), !inside.isEmpty else { return nil }
        return "is not empty (e.g. '\(inside[0])')"
    }

    /// A location holding anything must be linked from this data directory.
    private func tablespaceOwnership(dataDirectoryIsEmpty: Bool) throws -> [PGKeepError] {
        var problems: [PGKeepError] = []
        for location in locations {
            guard let occupied = try occupied(location) else { continue }
            var linkedHere = false
            if !dataDirectoryIsEmpty, let st = try host.status(FilePath(location.link)), st.kind == .link {
                linkedHere = host.resolve(FilePath(try host.readLink(FilePath(location.link)))) == host.resolve(FilePath(location.path))
            }
            if linkedHere || force { continue }
            problems.append(PGKeepError(.pathNotEmpty,
                                        "\(location.what) '\(location.path)' \(occupied) and '\(location.link)' does not link to it: it belongs to another cluster or to an earlier one, not to this data directory",
                                        hint: "restore on a host where the location is free, or empty it; --delta only rewrites what the data directory it restores over links to; add --force if you are sure the location may be replaced"))
        }
        return problems
    }

    /// A running PostgreSQL on the data directory or on one of the tablespace locations.
    private func runningServers() throws -> [PGKeepError] {
        var problems: [PGKeepError] = []
        if let pid = try host.livePostmaster(dataDirectory: FilePath(dataDirectory)) {
            problems.append(PGKeepError(.pgRunning, "'\(dataDirectory)/postmaster.pid' names process \(pid), which is running: PostgreSQL may be running on this data directory",
                                        hint: "stop PostgreSQL (pg_ctl stop) before restoring over it"))
        }
        for cluster in running {
            if problems.isEmpty, RunningClusters.sameLocation(cluster.dataDirectory, dataDirectory) {
                problems.append(PGKeepError(.pgRunning, "PostgreSQL (process \(cluster.pid)) is running on '\(dataDirectory)'",
                                            hint: "stop PostgreSQL (pg_ctl stop) before restoring over it"))
            }
            for location in locations {
                if RunningClusters.overlaps(location.path, cluster.dataDirectory) {
                    problems.append(PGKeepError(.pgRunning, "\(location.what) '\(location.path)' lies in the data directory '\(cluster.dataDirectory)' of a running PostgreSQL (process \(cluster.pid))",
                                                hint: "restore on another host, or stop that server"))
                }
                for used in cluster.linkedLocations where RunningClusters.overlaps(location.path, used) {
                    problems.append(PGKeepError(.pgRunning, "\(location.what) '\(location.path)' is in use by the running PostgreSQL on '\(cluster.dataDirectory)' (process \(cluster.pid), which links to '\(used)')",
                                                hint: "a restore would overwrite that cluster's files: restore on another host, or stop that server; --force does not override this"))
                }
            }
        }
        return problems
    }

    /// A whole configuration file as text; nil when it does not exist. Above 64 MiB it is not a
    /// configuration file: an error naming it.
    static func readText(on host: PostgresHost, _ path: String) throws -> String? {
        guard let source = try host.openRead(FilePath(path)) else { return nil }
        let bytes = try source.readAll(upTo: 64 << 20)
        guard bytes.count <= 64 << 20 else {
            throw PGKeepError(.formatInvalid, "'\(path)' is larger than 64 MiB", hint: "it is not a PostgreSQL configuration file")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The first 4 KiB of a small file (PG_VERSION, a marker) as text; nil when it does
    /// not exist.
    static func readSmallFile(on host: PostgresHost, _ path: String) throws -> String? {
        guard let source = try host.openRead(FilePath(path)) else { return nil }
        let buffer = IOBuffer(size: 4096)
        let n = try source.read(into: buffer.bytes)
        return String(decoding: UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<n]), as: UTF8.self)
    }
}

/// `<data directory>/pgkeep.restore-in-progress`: written by a restore before it removes or
/// writes anything, removed after `global/pg_control` is in place. It says which cluster the
/// half-restored directory belongs to, so a `--delta` re-run after an interruption can prove the
/// directory is this cluster's although pg_control (and perhaps PG_VERSION) is not there yet.
/// Backups leave it out (`PGDataRules.rootOnlyExcludedNames`).
public struct RestoreMarker: Codable, Sendable, Equatable {
    public static let fileName = "pgkeep.restore-in-progress"

    public var stanza: String
    public var label: BackupLabel
    public var systemIdentifier: UInt64
    public var version: Int

    public static func read(on host: PostgresHost, dataDirectory: String) throws -> RestoreMarker? {
        let path = Posix.join(dataDirectory, fileName)
        guard let text = try RestoreDestination.readSmallFile(on: host, path) else { return nil }
        // An unreadable marker proves nothing: it is as if there were none.
        return try? JSONDecoder().decode(RestoreMarker.self, from: Data(text.utf8))
    }

    func write(on host: PostgresHostWriting, dataDirectory: String, owner: (uid: UInt32, gid: UInt32)?) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = Array(try encoder.encode(self)) + [10]
        try RecoveryConfig.writeFile(on: host, Posix.join(dataDirectory, Self.fileName), bytes, mode: 0o600, owner: owner)
        try host.syncDirectory(FilePath(dataDirectory))
    }

    static func remove(on host: PostgresHostWriting, dataDirectory: String) throws {
        if try host.remove(FilePath(Posix.join(dataDirectory, fileName))) { try host.syncDirectory(FilePath(dataDirectory)) }
    }
}
