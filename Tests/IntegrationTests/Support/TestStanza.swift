import Foundation
import Testing
import TestSupport

/// One stanza in a throwaway repository, driven through the built `pgkeep` binary exactly as an
/// operator (or PostgreSQL's archiver) would run it: as the postgres user, with options on the
/// command line.
struct TestStanza {
    let binary: PGKeepBinary
    let name: String
    /// Absolute path of the repository root (`--repo1-path`).
    let repository: String
    /// Lock directory of its own, so concurrent test processes never share a lock.
    let lockPath: String
    /// Log directory of its own (`--log-path`): `<stanza>-<command>.log` files land here.
    let logPath: String
    /// The host this stanza's commands pretend to run on (`--lock-host`); nil: the real one.
    let host: String?

    /// - Parameter host: another host sharing the same repository: its own lock and log
    ///   directories (so its flocks are not this host's) and `leaseOptions` naming it.
    init(scratch: Scratch, name: String = "main", host: String? = nil) throws {
        binary = try PGKeepBinary.shared()
        self.name = name
        self.host = host
        let suffix = host.map { "-" + $0 } ?? ""
        repository = try scratch.directory("repo", mode: 0o750)
        lockPath = try scratch.directory("lock" + suffix, mode: 0o750)
        logPath = try scratch.directory("log" + suffix, mode: 0o750)
    }

    /// `--lock-host` for the commands that hold the repository lease (backup, expire).
    var leaseOptions: [String] { host.map { ["--lock-host=\($0)"] } ?? [] }

    /// Where the stanza's repository lease lies.
    var leasePath: String { repository + "/lock/\(name)/backup.lease" }

    /// Options every command of this stanza takes.
    var common: [String] {
        ["--stanza=\(name)", "--repo1-path=\(repository)", "--lock-path=\(lockPath)", "--log-path=\(logPath)"]
    }

    /// `archive_command` for a cluster archiving into this stanza.
    var archiveCommand: String { binary.commandLine(common + ["archive-push", "%p"]) }

    /// The options pointing pgkeep at a running cluster.
    static func clusterOptions(_ cluster: Cluster) -> [String] {
        ["--pg1-path=\(cluster.dataDirectory)", "--pg1-socket-path=\(cluster.socketDirectory)",
         "--pg1-port=\(cluster.port)"]
    }

    /// Runs `pgkeep <common> <arguments>`; the result is returned whatever the exit status.
    func run(_ arguments: [String], timeout: Duration = .seconds(300)) throws -> ShellResult {
        try binary.run(common + arguments, timeout: timeout)
    }

    /// Runs a command that must succeed.
    @discardableResult
    func check(_ arguments: [String], timeout: Duration = .seconds(300)) throws -> ShellResult {
        try run(arguments, timeout: timeout).check()
    }

    func create(_ cluster: Cluster) throws {
        try check(["--pg1-path=\(cluster.dataDirectory)", "stanza-create"])
    }

    /// A backup of `cluster`; returns the new backup's label.
    @discardableResult
    func backup(_ cluster: Cluster, _ extra: [String] = []) throws -> String {
        let before = Set(try labels())
        try check(Self.clusterOptions(cluster) + ["backup", "--start-fast"] + extra)
        let added = Set(try labels()).subtracting(before)
        guard added.count == 1, let label = added.first else {
            throw HarnessError("backup did not add exactly one backup to info: \(added.sorted())")
        }
        return label
    }

    /// `info --output=json` for this stanza, parsed.
    func info() throws -> [String: Any] {
        let result = try check(["info", "--output=json"])
        guard let array = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]],
              let stanza = array.first(where: { $0["name"] as? String == name }) else {
            throw HarnessError("info --output=json has no stanza '\(name)':\n\(result.stdout)")
        }
        return stanza
    }

    /// Labels of the backups `info` lists, oldest first.
    func labels() throws -> [String] {
        let backups = try info()["backup"] as? [[String: Any]] ?? []
        return backups.compactMap { $0["label"] as? String }
    }

    /// Restores into `directory` (which must not exist or be empty); returns the result unchecked.
    func restore(into directory: String, _ extra: [String] = []) throws -> ShellResult {
        try run(["--pg1-path=\(directory)", "restore", "--process-max=2"] + extra, timeout: .seconds(600))
    }

    /// Absolute paths of every regular file below `relative` in the repository.
    func repositoryFiles(under relative: String) -> [String] {
        let root = repository + "/" + relative
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        var files: [String] = []
        for case let entry as String in walker {
            var isDirectory: ObjCBool = false
            let full = root + "/" + entry
            if FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue {
                files.append(full)
            }
        }
        return files.sorted()
    }
}

extension Cluster {
    /// Closes the current WAL segment with `pg_switch_wal()` and waits until the archiver reports it archived.
    /// Returns the name of the segment that was closed.
    @discardableResult
    func switchWALAndWaitForArchive(timeout: Duration = .seconds(60)) async throws -> String {
        // In a fresh segment pg_switch_wal() is a no-op; a tiny write makes sure there is something to close.
        _ = try psql("select txid_current()")
        let segment = try psql("select pg_walfile_name(pg_switch_wal())")
        try await waitUntilArchived(segment, timeout: timeout)
        return segment
    }

    /// Waits until `pg_stat_archiver` reports `segment` (or a later one) archived.
    func waitUntilArchived(_ segment: String, timeout: Duration = .seconds(60)) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            let done = try psql("select coalesce(last_archived_wal >= '\(segment)', false) from pg_stat_archiver")
            if done == "t" { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        let stats = try psql("select * from pg_stat_archiver")
        throw HarnessError("segment \(segment) not archived after \(timeout): \(stats)\n\(serverLogTail())")
    }
}

/// Returns the bytes of a file, or throws a harness error naming it.
func readBytes(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw HarnessError("cannot read \(path)")
    }
    return [UInt8](data)
}

/// Overwrites a file's bytes in place (keeping owner and mode).
func writeBytes(_ path: String, _ bytes: [UInt8]) throws {
    guard let handle = FileHandle(forWritingAtPath: path) else { throw HarnessError("cannot open \(path)") }
    defer { try? handle.close() }
    try handle.truncate(atOffset: 0)
    try handle.write(contentsOf: Data(bytes))
}
