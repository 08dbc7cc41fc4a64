import PGKeepCore
import PGKeepConfig

/// The one place that turns the repository options into a storage driver. Commands and the
/// library see only `any Storage`; a second driver (S3, a remote agent) is chosen here, from its
/// own `repo1-*` options, and nowhere else.
enum RepositoryStorage {
    /// The storage of `--repo1-path` (a local or mounted file system).
    static func open(_ config: Configuration) -> any Storage {
        PosixStorage(root: repositoryPath(config))
    }

    /// The options that locate this repository, for a command line another pgkeep process runs
    /// against the same repository (the `restore_command` a restore writes).
    static func locatingArguments(_ config: Configuration) -> [String] {
        ["--repo1-path=\(repositoryPath(config))"]
    }

    /// `--repo1-path`, absolute (the restored cluster runs `restore_command` from its own
    /// directory) and without a trailing slash, as `PosixStorage.root` keeps it.
    private static func repositoryPath(_ config: Configuration) -> String {
        var path = Posix.absolute(config.string(.repo1Path) ?? "/var/lib/pgkeep")
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        return path
    }
}
