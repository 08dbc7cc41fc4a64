import Foundation

/// What a finished child process left behind.
///
/// `status` is the exit status; a child killed by a signal reports `128 + signal`, as a shell would.
/// A non-zero status is not an error by itself: call ``check()`` where success is expected.
public struct ShellResult: Sendable, CustomStringConvertible {
    /// The command line as it was run (after any `runuser`/`env` wrapping), shell-quoted, for messages.
    public let commandLine: String
    /// Exit status, or `128 + signal` when the child died from a signal (`-1` if the status was lost because
    /// something else in the process reaped the child).
    public let status: Int32
    /// Everything the child wrote to standard output (decoded as UTF-8, invalid bytes repaired).
    public let stdout: String
    /// Everything the child wrote to standard error.
    public let stderr: String

    /// Creates a result; ``Shell/run(_:_:environment:unsetEnvironment:workingDirectory:stdin:asPostgres:timeout:)`` is the usual source.
    public init(commandLine: String, status: Int32, stdout: String, stderr: String) {
        self.commandLine = commandLine
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }

    /// Whether the child exited with status 0.
    public var succeeded: Bool { status == 0 }

    /// Returns `self` when the child exited 0, otherwise throws a ``ShellError`` naming the command line and
    /// carrying both outputs.
    @discardableResult
    public func check() throws -> ShellResult {
        guard status == 0 else {
            throw ShellError(reason: .exitStatus(status), commandLine: commandLine, stdout: stdout, stderr: stderr)
        }
        return self
    }

    public var description: String {
        ShellError.render(headline: "exit status \(status)", commandLine: commandLine, stdout: stdout, stderr: stderr)
    }
}

/// A child process that did not finish cleanly: it could not be started, timed out, or (through
/// ``ShellResult/check()``) exited non-zero. The description holds the command line and both outputs.
public struct ShellError: Error, Sendable, CustomStringConvertible {
    /// Why the command failed.
    public enum Reason: Sendable, Equatable {
        /// The child could not be started at all (missing executable, bad working directory, ...).
        case launchFailed(String)
        /// The child (and its process group) was killed after running longer than the timeout.
        case timedOut(seconds: Double)
        /// The child exited with this non-zero status (`128 + signal` for a signal).
        case exitStatus(Int32)
    }

    public let reason: Reason
    public let commandLine: String
    public let stdout: String
    public let stderr: String

    public var description: String {
        let headline: String
        switch reason {
        case .launchFailed(let why): headline = "could not start: \(why)"
        case .timedOut(let seconds): headline = "timed out after \(seconds) s (process group killed)"
        case .exitStatus(let status): headline = "exited with status \(status)"
        }
        return Self.render(headline: headline, commandLine: commandLine, stdout: stdout, stderr: stderr)
    }

    static func render(headline: String, commandLine: String, stdout: String, stderr: String) -> String {
        func block(_ name: String, _ text: String) -> String {
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            return trimmed.isEmpty ? "\(name): (empty)" : "\(name):\n\(trimmed)"
        }
        return "command \(headline)\n$ \(commandLine)\n\(block("stdout", stdout))\n\(block("stderr", stderr))"
    }
}

/// Runs child processes for tests and captures what they print.
///
/// Children are started with `posix_spawn` in their own process group (which the timeout kills), with every
/// descriptor but 0/1/2 closed. Outputs go to unlinked temporary files rather than pipes, so a child that
/// leaves a daemon behind holding its stdout (as `pg_ctl start` does with the postmaster) can never make the
/// harness hang, and large outputs cannot deadlock. Standard input is `/dev/null` unless `stdin` is given.
/// Waiting blocks the calling thread (polling `waitpid`).
public enum Shell {
    /// Runs `executable` with `arguments` and waits for it.
    ///
    /// - Parameters:
    ///   - executable: an absolute path, or a bare name looked up in `PATH` (plus `/usr/sbin`, `/sbin`).
    ///   - environment: variables added to (or replacing those in) the test process's environment.
    ///   - unsetEnvironment: variables removed from the child's environment (applied before `environment`).
    ///   - workingDirectory: the child's working directory. For `asPostgres` commands it defaults to `/`, since
    ///     the test's own directory may be one the `postgres` user cannot enter.
    ///   - stdin: text fed to the child's standard input; `/dev/null` when `nil`.
    ///   - asPostgres: run as the `postgres` OS user. When the test process is root this wraps the command in
    ///     `runuser -u postgres --`; otherwise the command runs directly as the current user.
    ///   - timeout: after this long the child's whole process group gets `SIGKILL` and ``ShellError`` is thrown.
    /// - Returns: the exit status and outputs; a non-zero status is returned, not thrown (see ``ShellResult/check()``).
    /// - Throws: ``ShellError`` with `.launchFailed` or `.timedOut`.
    public static func run(
        _ executable: String,
        _ arguments: [String] = [],
        environment: [String: String] = [:],
        unsetEnvironment: [String] = [],
        workingDirectory: String? = nil,
        stdin: String? = nil,
        asPostgres: Bool = false,
        timeout: Duration = .seconds(300)
    ) throws -> ShellResult {
        let resolved = resolveExecutable(executable)
        var launchPath = resolved
        var launchArguments = arguments
        var childEnvironment = ProcessInfo.processInfo.environment
        var cwd = workingDirectory

        if asPostgres && PostgresUser.isRoot {
            // runuser keeps the caller's environment (minus HOME, SHELL, USER, LOGNAME), so environment changes
            // are applied inside the switch with env(1) to be sure they reach the command.
            var wrapped = ["-u", PostgresUser.name, "--"]
            let present = unsetEnvironment.filter { childEnvironment[$0] != nil }
            if !environment.isEmpty || !present.isEmpty {
                wrapped.append(resolveExecutable("env"))
                for name in present { wrapped += ["-u", name] }
                for (key, value) in environment.sorted(by: { $0.key < $1.key }) { wrapped.append("\(key)=\(value)") }
            }
            wrapped.append(resolved)
            launchPath = resolveExecutable("runuser")
            launchArguments = wrapped + arguments
        } else {
            for name in unsetEnvironment { childEnvironment.removeValue(forKey: name) }
            childEnvironment.merge(environment) { _, new in new }
        }
        if asPostgres && cwd == nil { cwd = "/" }

        let commandLine = shellQuote([launchPath] + launchArguments)
        func failure(_ reason: ShellError.Reason, _ out: String = "", _ err: String = "") -> ShellError {
            ShellError(reason: reason, commandLine: commandLine, stdout: out, stderr: err)
        }

        let stdoutFD: Int32, stderrFD: Int32, stdinFD: Int32
        do {
            stdoutFD = try anonymousFile()
            stderrFD = try anonymousFile()
            stdinFD = try stdin.map { text in
                let fd = try anonymousFile()
                try writeAll(fd, Array(text.utf8))
                lseek(fd, 0, SEEK_SET)
                return fd
            } ?? openNullDevice()
        } catch {
            throw failure(.launchFailed("could not create capture files: \(error)"))
        }
        defer {
            close(stdoutFD)
            close(stderrFD)
            close(stdinFD)
        }

        let pid: pid_t
        do {
            pid = try spawn(
                launchPath, launchArguments, environment: childEnvironment, workingDirectory: cwd,
                stdin: stdinFD, stdout: stdoutFD, stderr: stderrFD)
        } catch {
            throw failure(.launchFailed("\(error)"))
        }

        let seconds = timeout.seconds
        guard let waitStatus = waitForExit(pid, seconds: seconds) else {
            // Foundation-free spawn: the child leads its own process group, so this reaches its descendants
            // too, unless one of them started a new session (as pg_ctl does for the postmaster).
            if kill(-pid, SIGKILL) != 0 { _ = kill(pid, SIGKILL) }
            _ = waitForExit(pid, seconds: 30)
            throw failure(.timedOut(seconds: seconds), readAll(stdoutFD), readAll(stderrFD))
        }
        return ShellResult(
            commandLine: commandLine, status: waitStatus, stdout: readAll(stdoutFD), stderr: readAll(stderrFD))
    }

    /// Quotes `words` so the result can be pasted into `sh` (or used in `archive_command`) unchanged.
    public static func shellQuote(_ words: [String]) -> String {
        words.map(shellQuote).joined(separator: " ")
    }

    /// Quotes one word for `sh`: left bare when it holds only safe characters, single-quoted otherwise.
    public static func shellQuote(_ word: String) -> String {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+%@")
        if !word.isEmpty && word.allSatisfy({ safe.contains($0) }) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// An absolute path for `name`: `name` itself when it contains a slash, else the first match in `PATH`
    /// followed by the sbin directories (root's tools such as `runuser` live there). Unresolvable names are
    /// returned unchanged so the launch error names them.
    public static func resolveExecutable(_ name: String) -> String {
        if name.contains("/") { return name }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        for directory in directories where !directory.isEmpty {
            let candidate = directory + "/" + name
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return name
    }

    // MARK: - Private

    /// Starts `path` with `posix_spawn` in a new process group, with default signal handling, the given
    /// descriptors as 0/1/2 and every other descriptor closed.
    ///
    /// Not Foundation's `Process`: on Linux it learns that a child ended from a socket the child inherits, so a
    /// daemon the child leaves behind (the postmaster after `pg_ctl start`) keeps `Process` waiting forever.
    private static func spawn(
        _ path: String, _ arguments: [String], environment: [String: String], workingDirectory: String?,
        stdin: Int32, stdout: Int32, stderr: Int32
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        guard let closeFrom = GlibcExtras.addCloseFrom, let addChdir = GlibcExtras.addChdir else {
            throw HarnessError("glibc lacks posix_spawn_file_actions_addclosefrom_np/addchdir_np (needs glibc 2.34)")
        }
        var result = closeFrom(&actions, 3)
        guard result == 0 else { throw HarnessError("posix_spawn_file_actions_addclosefrom_np: \(String(cString: strerror(result)))") }
        if let workingDirectory {
            result = workingDirectory.withCString { addChdir(&actions, $0) }
            guard result == 0 else { throw HarnessError("posix_spawn_file_actions_addchdir_np: \(String(cString: strerror(result)))") }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        result = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard result == 0 else { throw HarnessError("posix_spawn \(path): \(String(cString: strerror(result)))") }
        return pid
    }

    /// Waits up to `seconds` for `pid` to exit and returns its status (`128 + signal` for a signal), or `nil`
    /// on timeout. Polls with `WNOHANG`, backing off to 20 ms, so no thread is parked in `waitpid`.
    private static func waitForExit(_ pid: pid_t, seconds: Double) -> Int32? {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(seconds, 0) * 1e9)
        var pause: useconds_t = 500
        while true {
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid {
                let low = status & 0x7f
                return low == 0 ? (status >> 8) & 0xff : 128 + low
            }
            // ECHILD: someone else reaped it (a SIGCHLD handler elsewhere in the process); the status is lost.
            if reaped < 0 && errno != EINTR { return errno == ECHILD ? -1 : nil }
            if DispatchTime.now().uptimeNanoseconds >= deadline { return nil }
            usleep(pause)
            pause = min(pause * 2, 20_000)
        }
    }

    /// An unlinked read-write temporary file (close-on-exec for other spawners; ours dup2 it onto 0/1/2).
    private static func anonymousFile() throws -> Int32 {
        var template = Array("/tmp/pgkeep-shell-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw HarnessError("mkstemp: \(String(cString: strerror(errno)))") }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
        return fd
    }

    private static func openNullDevice() throws -> Int32 {
        let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw HarnessError("open /dev/null: \(String(cString: strerror(errno)))") }
        return fd
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw HarnessError("write: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    private static func readAll(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var offset: off_t = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            bytes += buffer[0..<count]
            offset += off_t(count)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// glibc functions the Swift Glibc module does not import (they sit behind feature macros), found with dlsym.
private enum GlibcExtras {
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    static let addCloseFrom: AddCloseFrom? = symbol("posix_spawn_file_actions_addclosefrom_np")
    static let addChdir: AddChdir? = symbol("posix_spawn_file_actions_addchdir_np")

    private static func symbol<T>(_ name: String) -> T? {
        guard let handle = dlopen(nil, RTLD_NOW), let address = dlsym(handle, name) else { return nil }
        return unsafeBitCast(address, to: T.self)
    }
}

extension Duration {
    /// The duration in (fractional) seconds.
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
