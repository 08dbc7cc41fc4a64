import Foundation

/// The built `pgkeep` executable, copied to a place the postgres user can reach.
///
/// The repository clone may sit under a directory postgres cannot enter (`/root/...`), yet PostgreSQL runs
/// `archive_command` and `restore_command` as postgres. So the binary is copied, once per test process, into a
/// `0755` directory `/tmp/pgkeep-bin-XXXXXX`, which is deleted at process exit (kept with
/// `PGKEEP_KEEP_TEST_DIRS=1`).
///
/// The source is the first that exists of:
/// 1. `$PGKEEP_BIN`;
/// 2. `pgkeep` next to the running test executable (so `swift test -c release` uses the release build);
/// 3. `<package root>/.build/debug/pgkeep`, the package root found from this file's `#filePath`.
public struct PGKeepBinary: Sendable {
    /// Path of the copy; use this in `archive_command`/`restore_command` and to run it.
    public let path: String
    /// Path of the build product the copy was made from.
    public let sourcePath: String

    /// The process-wide copy, made on first use (thread-safe: a Swift `static let` is initialised once).
    /// - Throws: ``HarnessError`` naming the paths tried ("run swift build first") or the copy failure.
    public static func shared() throws -> PGKeepBinary {
        try cached.get()
    }

    /// Runs the copied binary as the postgres user (see ``Shell/run(_:_:environment:unsetEnvironment:workingDirectory:stdin:asPostgres:timeout:)``).
    /// A non-zero exit is returned, not thrown; only a launch failure or timeout throws.
    public func run(
        _ arguments: [String],
        env: [String: String] = [:],
        cwd: String? = nil,
        stdin: String? = nil,
        timeout: Duration = .seconds(300)
    ) throws -> ShellResult {
        try Shell.run(path, arguments, environment: env, unsetEnvironment: Self.harnessVariables, workingDirectory: cwd, stdin: stdin,
                      asPostgres: true, timeout: timeout)
    }

    /// The harness's own `PGKEEP_*` knobs. pgkeep reads every `PGKEEP_*` variable as an option and refuses
    /// unknown ones, so they are removed from the environment of pgkeep and of PostgreSQL (which runs pgkeep as
    /// archive_command and restore_command).
    public static let harnessVariables = ["PGKEEP_BIN", "PGKEEP_KEEP_TEST_DIRS", "PGKEEP_PG_BINDIR", "PGKEEP_PG_ROOT", "PGKEEP_SOAK_SECONDS", "PGKEEP_SOAK_SEED"]

    /// A shell command line running the copy with `arguments`, quoted for `archive_command` or
    /// `restore_command`; PostgreSQL placeholders such as `%p` and `%f` pass through unquoted.
    ///
    ///     try binary.commandLine(["archive-push", "--repo", repo, "%p"])
    public func commandLine(_ arguments: [String]) -> String {
        Shell.shellQuote([path] + arguments)
    }

    // MARK: - Locating and copying

    private static let cached: Result<PGKeepBinary, any Error> = Result { try locateAndCopy() }

    private static func locateAndCopy() throws -> PGKeepBinary {
        let source = try locate()
        let directory = try makeTemporaryDirectory(prefix: "pgkeep-bin-", mode: 0o755)
        copyDirectory = directory
        atexit { PGKeepBinary.removeCopy() }
        let destination = directory + "/pgkeep"
        do {
            try FileManager.default.copyItem(atPath: source, toPath: destination)
        } catch {
            throw HarnessError("copying the pgkeep binary \(source) to \(destination) failed: \(error)")
        }
        guard chmod(destination, 0o755) == 0 else {
            throw HarnessError("chmod 755 \(destination) failed: \(String(cString: strerror(errno)))")
        }
        return PGKeepBinary(path: destination, sourcePath: source)
    }

    private static func locate() throws -> String {
        var tried: [String] = []
        if let explicit = ProcessInfo.processInfo.environment["PGKEEP_BIN"], !explicit.isEmpty {
            guard isExecutableFile(explicit) else {
                throw HarnessError("PGKEEP_BIN=\(explicit) is not an executable file")
            }
            return explicit
        }
        if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            tried.append((executable as NSString).deletingLastPathComponent + "/pgkeep")
        }
        tried.append(packageRoot + "/.build/debug/pgkeep")
        if let found = tried.first(where: isExecutableFile) { return found }
        throw HarnessError(
            "the pgkeep executable was not found (tried \(tried.joined(separator: ", "))); "
                + "run swift build first, or set PGKEEP_BIN to its path")
    }

    /// The package root: this file is `<root>/Tests/TestSupport/PGKeepBinary.swift`.
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    private static func isExecutableFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
            && access(path, X_OK) == 0
    }

    nonisolated(unsafe) private static var copyDirectory: String?

    private static func removeCopy() {
        guard let directory = copyDirectory, directory.hasPrefix("/tmp/pgkeep-bin-") else { return }
        if Scratch.keepDirectories {
            FileHandle.standardError.write(Data("pgkeep test: keeping binary copy \(directory)/pgkeep\n".utf8))
            return
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
