import Foundation

/// A throwaway PostgreSQL cluster living in a ``Scratch`` directory.
///
/// Layout, for a cluster named `name`:
///
///     <scratch>/<name>/data        data directory (initdb --data-checksums, or one restored by pgkeep)
///     <scratch>/<name>/sock        unix_socket_directories; TCP is off (listen_addresses = '')
///     <scratch>/<name>/server.log  pg_ctl -l log
///
/// All PostgreSQL programs run as the postgres OS user when the test process is root. The binaries come from
/// `$PGKEEP_PG_BINDIR`, default `/usr/lib/postgresql/15/bin`: one major per test process (`make test`'s version
/// matrix sets it to each of `scripts/deps.sh`'s builds of 16, 17 and 18 in turn; docs/postgres-versions.md).
///
/// Lifecycle: ``start(wait:)`` and ``stop(mode:)`` are explicit; prefer
/// ``withCluster(name:scratch:archiveCommand:extraConf:environment:_:)``, which always stops the cluster.
/// As a safety net `deinit` stops a cluster that may still be running.
public final class Cluster: @unchecked Sendable {
    /// How ``stop(mode:)`` shuts the server down (`pg_ctl stop -m`).
    public enum StopMode: String, Sendable {
        case smart, fast, immediate
    }

    /// The cluster's name, also its directory under the scratch directory.
    public let name: String
    /// The scratch directory; held strongly so it outlives the cluster.
    public let scratch: Scratch
    /// `<scratch>/<name>`.
    public let directory: String
    /// The data directory (`PGDATA`).
    public let dataDirectory: String
    /// The directory holding the server's unix socket; pass it as `-h`/`PGHOST`.
    public let socketDirectory: String
    /// The port (only names the socket file `.s.PGSQL.<port>`, as TCP is disabled).
    public let port: Int
    /// The server log written by `pg_ctl -l`.
    public let logFile: String
    /// Variables added to the server's environment at start, hence also to `archive_command` and
    /// `restore_command` (for example a `PGKEEP_*` setting).
    public let serverEnvironment: [String: String]
    /// The PostgreSQL programs this cluster runs with: ``binDirectory`` unless the test names
    /// another major's (an upgrade test runs a 15 and a 17 cluster side by side).
    public let programs: String

    private let lock = NSLock()
    private var mayBeRunning = false

    /// Directory of the PostgreSQL programs (one major's).
    public static var binDirectory: String {
        ProcessInfo.processInfo.environment["PGKEEP_PG_BINDIR"] ?? "/usr/lib/postgresql/15/bin"
    }

    /// The major version of the programs in ``binDirectory`` (`postgres --version`: "postgres (PostgreSQL) 17.10").
    public static let major: Int = {
        guard let result = try? Shell.run(binDirectory + "/postgres", ["--version"], timeout: .seconds(30)),
              let version = result.stdout.split(separator: " ").last,
              let major = Int(version.split(separator: ".").first ?? "") else { return 15 }
        return major
    }()

    /// The repository's archive id of a stanza made for a cluster of ``major`` (`<major>-1`, repo-layout.md).
    public static var archiveID: String { "\(major)-1" }

    /// libpq variables removed from every PostgreSQL program's environment, so a developer's `PGHOST`,
    /// `PGSERVICE`, `PGOPTIONS`... cannot redirect or alter what the harness does.
    public static let scrubbedEnvironment = [
        "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGPASSFILE", "PGSERVICE",
        "PGSERVICEFILE", "PGOPTIONS", "PGAPPNAME", "PGSSLMODE", "PGREQUIRESSL", "PGTARGETSESSIONATTRS",
        "PGCONNECT_TIMEOUT", "PGCLIENTENCODING", "PGDATESTYLE", "PGTZ", "PGDATA", "PGSYSCONFDIR",
    ] + PGKeepBinary.harnessVariables

    /// Creates a new cluster: runs `initdb --data-checksums` into `<scratch>/<name>/data` and appends the
    /// harness settings to its `postgresql.conf`. Does not start it.
    ///
    /// - Parameters:
    ///   - archiveCommand: with a command, `archive_mode = on` and this `archive_command`; `nil` leaves archiving off.
    ///   - extraConf: further `postgresql.conf` lines (`"archive_timeout = 1"`), appended last so they win.
    ///   - environment: see ``serverEnvironment``.
    ///   - initdbArguments: further `initdb` arguments (`--waldir=<dir>`).
    public init(
        name: String,
        scratch: Scratch,
        archiveCommand: String?,
        extraConf: [String] = [],
        environment: [String: String] = [:],
        initdbArguments: [String] = [],
        programs: String? = nil
    ) throws {
        self.name = name
        self.scratch = scratch
        self.serverEnvironment = environment
        self.programs = programs ?? Self.binDirectory
        directory = try scratch.directory(name, mode: 0o700)
        dataDirectory = directory + "/data"
        socketDirectory = try scratch.directory(name + "/sock", mode: 0o700)
        logFile = directory + "/server.log"
        port = try PortAllocator.shared.next(socketDirectory: socketDirectory)

        try tool(
            "initdb",
            ["-D", dataDirectory, "--data-checksums", "-A", "trust", "-U", "postgres", "--encoding=UTF8",
             "--locale=C", "--no-sync", "--no-instructions"] + initdbArguments
        ).check()

        var settings = [
            "port = \(port)",
            "unix_socket_directories = \(Self.quoteSetting(socketDirectory))",
            "listen_addresses = ''",
            "wal_level = replica",
            "max_wal_senders = 2",
            "max_connections = 20",
            "fsync = on",
            "logging_collector = off",
        ]
        if let archiveCommand {
            settings += ["archive_mode = on", "archive_command = \(Self.quoteSetting(archiveCommand))"]
        } else {
            settings.append("archive_mode = off")
        }
        try appendSettings(settings + extraConf, to: "postgresql.conf")
    }

    /// Adopts an existing data directory, typically one pgkeep restored, giving it this harness's own port and
    /// socket directory `<scratch>/<name>/sock`: the restored configuration still points at the source
    /// cluster's. The overrides are appended to `postgresql.auto.conf` (created if missing), where later lines win.
    /// Does not start it.
    ///
    /// - Parameters:
    ///   - existingDataDirectory: the data directory; it must already belong to the postgres user with mode 0700.
    ///   - archiveCommand: when given, replaces the restored `archive_command` (and turns `archive_mode` on);
    ///     `nil` keeps what was restored. Pass `extraConf: ["archive_mode = off"]` to stop archiving.
    ///   - extraConf: further lines for `postgresql.auto.conf`, appended last.
    public init(
        name: String,
        scratch: Scratch,
        existingDataDirectory: String,
        archiveCommand: String? = nil,
        extraConf: [String] = [],
        environment: [String: String] = [:],
        programs: String? = nil
    ) throws {
        self.name = name
        self.scratch = scratch
        self.serverEnvironment = environment
        self.programs = programs ?? Self.binDirectory
        directory = try scratch.directory(name, mode: 0o700)
        dataDirectory = existingDataDirectory
        socketDirectory = try scratch.directory(name + "/sock", mode: 0o700)
        logFile = directory + "/server.log"
        port = try PortAllocator.shared.next(socketDirectory: socketDirectory)

        guard FileManager.default.fileExists(atPath: dataDirectory + "/PG_VERSION") else {
            throw HarnessError("\(dataDirectory) is not a PostgreSQL data directory (no PG_VERSION)")
        }
        var settings = [
            "port = \(port)",
            "unix_socket_directories = \(Self.quoteSetting(socketDirectory))",
            "listen_addresses = ''",
        ]
        if let archiveCommand {
            settings += ["archive_mode = on", "archive_command = \(Self.quoteSetting(archiveCommand))"]
        }
        try appendSettings(settings + extraConf, to: "postgresql.auto.conf")
    }

    deinit {
        // Safety net only: withCluster and explicit stop() are the normal paths.
        if mayBeRunning { try? stop(mode: .fast) }
    }

    // MARK: - Lifecycle

    /// Starts the server with `pg_ctl start -l <logFile>`. With `wait` (the default) it waits up to 120 s until
    /// the server accepts connections; without, it returns at once (for clusters that go through a long archive
    /// recovery; follow with ``waitForRecoveryEnd(timeout:)``).
    /// - Throws: ``HarnessError`` with pg_ctl's output and the tail of the server log.
    public func start(wait: Bool = true) throws {
        setMayBeRunning(true)
        let result = try tool(
            "pg_ctl",
            ["start", "-D", dataDirectory, "-l", logFile, "-s"] + (wait ? ["-w", "-t", "120"] : ["-W"]),
            environment: serverEnvironment,
            timeout: .seconds(180))
        if !result.succeeded {
            throw HarnessError("starting cluster '\(name)' failed\n\(result)\n\(logSection())")
        }
    }

    /// Stops the server with `pg_ctl stop -m <mode> -w`. Idempotent: a cluster that is not running is fine.
    /// If the stop fails, the server is still brought down (immediate mode, then `SIGKILL` to the postmaster)
    /// before the original failure is thrown, so no server outlives a test.
    public func stop(mode: StopMode = .fast) throws {
        guard isRunning else {
            setMayBeRunning(false)
            return
        }
        let result = try tool(
            "pg_ctl", ["stop", "-D", dataDirectory, "-m", mode.rawValue, "-w", "-t", "120", "-s"], timeout: .seconds(180))
        if result.succeeded || !isRunning {
            setMayBeRunning(false)
            return
        }
        forceDown()
        throw HarnessError("stopping cluster '\(name)' (\(mode.rawValue)) failed; it was killed instead\n\(result)\n\(logSection())")
    }

    /// Whether a postmaster is running on the data directory (`pg_ctl status` exits 0).
    public var isRunning: Bool {
        guard let result = try? tool("pg_ctl", ["status", "-D", dataDirectory], timeout: .seconds(30)) else {
            return postmasterPID != nil
        }
        return result.status == 0
    }

    /// The PID in `postmaster.pid`, or `nil` when there is no such file.
    public var postmasterPID: pid_t? {
        guard let text = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8),
              let first = text.split(separator: "\n").first
        else { return nil }
        return pid_t(first.trimmingCharacters(in: .whitespaces))
    }

    /// Polls `select pg_is_in_recovery()` until it returns false. Connection failures while the server starts up
    /// are retried; a server that is not running for 10 s in a row (crashed, or shut down by
    /// `recovery_target_action = shutdown`) fails at once.
    /// - Throws: ``HarnessError`` on timeout or shutdown, including the tail of the server log.
    public func waitForRecoveryEnd(timeout: Duration = .seconds(120)) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var notRunningSince: ContinuousClock.Instant?
        var lastProblem = "no answer yet"
        while clock.now < deadline {
            do {
                let inRecovery = try psql("select pg_is_in_recovery()")
                if inRecovery == "f" { return }
                lastProblem = "pg_is_in_recovery() = \(inRecovery)"
                notRunningSince = nil
            } catch {
                lastProblem = "\(error)"
                if isRunning {
                    notRunningSince = nil
                } else if let since = notRunningSince {
                    if clock.now - since > .seconds(10) {
                        throw HarnessError("cluster '\(name)' stopped before recovery ended\n\(logSection())")
                    }
                } else {
                    notRunningSince = clock.now
                }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw HarnessError(
            "cluster '\(name)' still in recovery after \(timeout); last check: \(lastProblem)\n\(logSection())")
    }

    // MARK: - Replication

    /// `primary_conninfo` for a standby streaming from this cluster over its unix socket (the
    /// harness's `local replication` access is trust).
    public var primaryConnInfo: String { "host=\(socketDirectory) port=\(port) user=postgres" }

    /// Promotes a standby with `pg_ctl promote -w`: returns once it accepts writes.
    public func promote() throws {
        let result = try tool("pg_ctl", ["promote", "-D", dataDirectory, "-w", "-t", "120", "-s"], timeout: .seconds(180))
        if !result.succeeded {
            throw HarnessError("promoting cluster '\(name)' failed\n\(result)\n\(logSection())")
        }
    }

    /// Polls a standby until it has replayed the WAL up to `lsn` (`X/X`, e.g. its primary's
    /// `pg_current_wal_lsn()` after the last write).
    public func waitForReplay(of lsn: String, timeout: Duration = .seconds(120)) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var lastProblem = "no answer yet"
        while clock.now < deadline {
            do {
                let answer = try psql("select coalesce(pg_last_wal_replay_lsn() >= '\(lsn)'::pg_lsn, false), pg_last_wal_replay_lsn()")
                if answer.hasPrefix("t|") { return }
                lastProblem = "replayed: \(answer)"
            } catch {
                lastProblem = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw HarnessError("cluster '\(name)' has not replayed \(lsn) after \(timeout): \(lastProblem)\n\(logSection())")
    }

    // MARK: - SQL and verification

    /// The connection options for libpq tools: `-h <socketDirectory> -p <port> -U postgres`.
    public var connectionArguments: [String] {
        ["-h", socketDirectory, "-p", String(port), "-U", "postgres"]
    }

    /// libpq environment variables pointing at this cluster (for pgkeep or other clients).
    public var connectionEnvironment: [String: String] {
        ["PGHOST": socketDirectory, "PGPORT": String(port), "PGUSER": "postgres", "PGDATA": dataDirectory]
    }

    /// Runs `sql` (any number of statements) with `psql -X -A -t -q -v ON_ERROR_STOP=1` and returns the
    /// unaligned, tuples-only output, trimmed; rows are separated by newlines and columns by `|`.
    /// - Throws: ``ShellError`` with psql's stderr when a statement fails.
    public func psql(_ sql: String, database: String = "postgres", timeout: Duration = .seconds(300)) throws -> String {
        let result = try tool(
            "psql",
            ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"] + connectionArguments + ["-d", database, "-f", "-"],
            stdin: sql,
            timeout: timeout)
        return try result.check().stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A plain-format `pg_dump` of `database`, deterministic for an unchanged database so two dumps can be
    /// compared for equality. The `\restrict`/`\unrestrict` lines (random per run since 15.14) are dropped.
    public func dump(database: String = "postgres") throws -> String {
        let result = try tool("pg_dump", connectionArguments + ["-d", database], timeout: .seconds(600))
        return Self.dropRestrictLines(try result.check().stdout)
    }

    /// Dumps of every database that is neither a template nor closed to connections, plus the global objects
    /// (roles, tablespaces) from `pg_dumpall --globals-only`.
    public func dumpAllDatabases() throws -> ClusterDump {
        let names = try psql(
            "select datname from pg_database where not datistemplate and datallowconn order by datname")
            .split(separator: "\n").map(String.init)
        var databases: [String: String] = [:]
        for name in names { databases[name] = try dump(database: name) }
        let globals = try tool("pg_dumpall", connectionArguments + ["--globals-only"], timeout: .seconds(300))
        return ClusterDump(globals: Self.dropRestrictLines(try globals.check().stdout), databases: databases)
    }

    /// Runs `pg_amcheck --install-missing --all` (plus `arguments`, e.g. `["--heapallindexed"]`) and returns its
    /// result unchecked; `status == 0` means every relation verified.
    ///
    /// `--install-missing` creates the `amcheck` extension; the harness drops it again afterwards from the
    /// databases where it was missing, so a dump taken later is unaffected. Needs a server out of recovery.
    public func amcheck(_ arguments: [String] = []) throws -> ShellResult {
        guard try hasAmcheck() else {
            throw HarnessError("the amcheck extension is not in this PostgreSQL build (\(Self.binDirectory)); check with hasAmcheck() first")
        }
        let lacking = try psql(
            "select datname from pg_database where datallowconn order by datname")
            .split(separator: "\n").map(String.init)
            .filter { database in
                (try? psql("select count(*) from pg_extension where extname = 'amcheck'", database: database)) == "0"
            }
        let result = try tool(
            "pg_amcheck", ["--install-missing", "--all"] + arguments + connectionArguments, timeout: .seconds(600))
        for database in lacking {
            _ = try psql("drop extension if exists amcheck", database: database)
        }
        return result
    }

    /// Whether this server's build has the amcheck extension: PostgreSQL 16.2 from `pgserver` has no contrib
    /// modules at all (docs/postgres-versions.md), the other builds the harness runs have.
    public func hasAmcheck() throws -> Bool {
        try psql("select count(*) from pg_available_extensions where name = 'amcheck'") == "1"
    }

    /// `pg_checksums --check` of a cleanly stopped data directory: every page of every relation fork
    /// carries a valid checksum. Runs on every major's build, amcheck or not.
    public static func checkPageChecksums(_ dataDirectory: String) throws -> ShellResult {
        try runTool("pg_checksums", ["--check", "-D", dataDirectory], timeout: .seconds(600))
    }

    /// The last `lines` lines of the server log (empty when there is no log yet).
    public func serverLogTail(lines: Int = 50) -> String {
        guard let data = FileManager.default.contents(atPath: logFile) else { return "" }
        let all = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        return all.suffix(lines + 1).joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs a program from ``binDirectory`` (or `programs`) as the postgres user, with the
    /// harness's scrubbed libpq environment.
    public static func runTool(
        _ tool: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        stdin: String? = nil,
        timeout: Duration = .seconds(300),
        programs: String? = nil
    ) throws -> ShellResult {
        try Shell.run(
            (programs ?? binDirectory) + "/" + tool, arguments, environment: environment, unsetEnvironment: scrubbedEnvironment,
            stdin: stdin, asPostgres: true, timeout: timeout)
    }

    /// ``runTool(_:_:environment:stdin:timeout:programs:)`` with this cluster's programs.
    public func tool(_ tool: String, _ arguments: [String], environment: [String: String] = [:], stdin: String? = nil,
                     timeout: Duration = .seconds(300)) throws -> ShellResult {
        try Self.runTool(tool, arguments, environment: environment, stdin: stdin, timeout: timeout, programs: programs)
    }

    // MARK: - Private

    func logSection(lines: Int = 40) -> String {
        let tail = serverLogTail(lines: lines)
        return "--- last \(lines) lines of \(logFile) ---\n" + (tail.isEmpty ? "(empty)" : tail)
    }

    private func setMayBeRunning(_ value: Bool) {
        lock.lock()
        mayBeRunning = value
        lock.unlock()
    }

    private func forceDown() {
        _ = try? tool("pg_ctl", ["stop", "-D", dataDirectory, "-m", "immediate", "-w", "-t", "30", "-s"],
                              timeout: .seconds(60))
        if isRunning, let pid = postmasterPID, pid > 0 {
            // Children notice the postmaster's death and exit on their own.
            kill(pid, SIGKILL)
        }
        setMayBeRunning(false)
    }

    private func appendSettings(_ lines: [String], to file: String) throws {
        let path = dataDirectory + "/" + file
        let existed = FileManager.default.fileExists(atPath: path)
        let block = "\n# pgkeep test harness\n" + lines.joined(separator: "\n") + "\n"
        if existed {
            guard let handle = FileHandle(forWritingAtPath: path) else {
                throw HarnessError("cannot open \(path) for appending")
            }
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(block.utf8))
        } else {
            try Data(block.utf8).write(to: URL(fileURLWithPath: path))
            try PostgresUser.takeOwnership(of: path)
            chmod(path, 0o600)
        }
    }

    /// Quotes a string setting for postgresql.conf: single quotes doubled and backslashes escaped, since the
    /// configuration lexer treats backslash as an escape (src/backend/utils/misc/guc-file.l, GUC_scanstr).
    public static func quoteSetting(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "''") + "'"
    }

    static func dropRestrictLines(_ dump: String) -> String {
        dump.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("\\restrict ") && !$0.hasPrefix("\\unrestrict ") }
            .joined(separator: "\n")
    }
}

/// Dumps of a whole cluster, for comparing the data before a backup with the data after a restore.
public struct ClusterDump: Equatable, Sendable, CustomStringConvertible {
    /// `pg_dumpall --globals-only`: roles and tablespaces.
    public var globals: String
    /// `pg_dump` of each non-template database, by name.
    public var databases: [String: String]

    public init(globals: String, databases: [String: String]) {
        self.globals = globals
        self.databases = databases
    }

    /// `nil` when equal, otherwise a short account of the first difference in each differing part, meant for
    /// `#expect(restored.difference(from: original) == nil)`.
    public func difference(from other: ClusterDump) -> String? {
        var notes: [String] = []
        let mine = Set(databases.keys), theirs = Set(other.databases.keys)
        if mine != theirs {
            notes.append("databases differ: \(theirs.sorted()) -> \(mine.sorted())")
        }
        if let note = Self.firstDifference(other.globals, globals) { notes.append("globals: \(note)") }
        for name in mine.intersection(theirs).sorted() {
            if let note = Self.firstDifference(other.databases[name]!, databases[name]!) {
                notes.append("database \(name): \(note)")
            }
        }
        return notes.isEmpty ? nil : notes.joined(separator: "\n")
    }

    public var description: String {
        let parts = databases.keys.sorted().map { "\($0) (\(databases[$0]!.utf8.count) bytes)" }
        return "ClusterDump(\(parts.joined(separator: ", ")); globals \(globals.utf8.count) bytes)"
    }

    private static func firstDifference(_ old: String, _ new: String) -> String? {
        guard old != new else { return nil }
        let a = old.split(separator: "\n", omittingEmptySubsequences: false)
        let b = new.split(separator: "\n", omittingEmptySubsequences: false)
        for index in 0..<max(a.count, b.count) {
            let left = index < a.count ? String(a[index]) : "<end>"
            let right = index < b.count ? String(b[index]) : "<end>"
            if left != right { return "line \(index + 1): \(left.debugDescription) -> \(right.debugDescription)" }
        }
        return "differ"
    }
}

/// A cluster failure: the underlying error plus the tail of the server log.
public struct ClusterFailure: Error, CustomStringConvertible {
    public let clusterName: String
    public let underlying: any Error
    public let serverLogTail: String
    /// A failure to stop the cluster afterwards, if that went wrong too.
    public let stopFailure: (any Error)?

    public var description: String {
        var text = "cluster '\(clusterName)': \(underlying)\n\(serverLogTail)"
        if let stopFailure { text += "\nstopping it afterwards also failed: \(stopFailure)" }
        return text
    }
}

/// Creates a fresh cluster (see ``Cluster/init(name:scratch:archiveCommand:extraConf:environment:)``), starts
/// it, runs `body`, and stops it whatever happens. When `body` throws, the error is rethrown as a
/// ``ClusterFailure`` carrying the server log tail.
public func withCluster<T>(
    name: String,
    scratch: Scratch,
    archiveCommand: String?,
    extraConf: [String] = [],
    environment: [String: String] = [:],
    _ body: (Cluster) async throws -> T
) async throws -> T {
    let cluster = try Cluster(
        name: name, scratch: scratch, archiveCommand: archiveCommand, extraConf: extraConf, environment: environment)
    return try await withCluster(cluster, body)
}

/// Starts `cluster` (waiting until it accepts connections when `waitForStart`), runs `body`, and stops the
/// cluster whatever happens; for clusters made with ``Cluster/init(name:scratch:existingDataDirectory:archiveCommand:extraConf:environment:)``.
/// When `body` throws, the error is rethrown as a ``ClusterFailure`` carrying the server log tail (a start
/// failure is rethrown as is: its ``HarnessError`` already holds pg_ctl's output and the log tail).
public func withCluster<T>(
    _ cluster: Cluster,
    waitForStart: Bool = true,
    _ body: (Cluster) async throws -> T
) async throws -> T {
    do {
        try cluster.start(wait: waitForStart)
    } catch {
        // The start error already carries the log tail; stop in case a half-started server is up.
        try? cluster.stop(mode: .immediate)
        throw error
    }
    let outcome: Result<T, any Error>
    do {
        outcome = .success(try await body(cluster))
    } catch {
        outcome = .failure(error)
    }
    var stopFailure: (any Error)?
    do { try cluster.stop(mode: .fast) } catch { stopFailure = error }

    switch outcome {
    case .success(let value):
        if let stopFailure { throw stopFailure }
        return value
    case .failure(let error):
        throw ClusterFailure(
            clusterName: cluster.name, underlying: error, serverLogTail: cluster.logSection(), stopFailure: stopFailure)
    }
}

/// Hands out ports whose socket file is free, never the same one twice in a process. TCP is disabled for test
/// clusters, so the port only names `.s.PGSQL.<port>` (and its lock file) in a private socket directory; an
/// ephemeral port from the kernel is still used so that a cluster with TCP enabled by `extraConf` works too.
final class PortAllocator: @unchecked Sendable {
    static let shared = PortAllocator()

    private let lock = NSLock()
    private var handedOut: Set<Int> = []

    func next(socketDirectory: String) throws -> Int {
        lock.lock()
        defer { lock.unlock() }
        for _ in 0..<50 {
            let port = try Self.ephemeralPort()
            if handedOut.insert(port).inserted {
                let socketPath = "\(socketDirectory)/.s.PGSQL.\(port)"
                // sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
                guard socketPath.utf8.count < 108 else {
                    throw HarnessError("unix socket path too long (\(socketPath.utf8.count) bytes, max 107): \(socketPath)")
                }
                return port
            }
        }
        throw HarnessError("could not find an unused port")
    }

    /// Binds a TCP socket to 127.0.0.1:0 and reads back the port the kernel chose.
    private static func ephemeralPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket() failed: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw HarnessError("bind(127.0.0.1:0) failed: \(String(cString: strerror(errno)))") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw HarnessError("getsockname failed: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
