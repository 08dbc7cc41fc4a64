import PGKeepCore

/// pgBackRest's options that pgkeep does not implement (yet), each with what to do instead.
///
/// A configuration carried over from pgBackRest may name them. Ignoring one would run the
/// command without what it asks for: `repo1-cipher-type=aes-256-cbc` would write an unencrypted
/// repository, `repo1-type=s3` a local one. So a name listed here is an error wherever it
/// appears, the environment included, where unknown `PGKEEP_*` names are otherwise only a
/// warning (so that a stray variable cannot stall archiving). An option leaves this list when
/// pgkeep implements it; `ConfigForeignOptionTests` proves no name is in both.
enum ForeignOptions {
    /// The hint for a pgBackRest option pgkeep lacks; nil for a name that is not one.
    static func hint(for name: String) -> String? {
        if let hint = notImplemented[name] { return hint }
        if let group = indexedGroup(name) { return group }
        for (prefix, hint) in prefixes where name.hasPrefix(prefix) { return hint }
        return nil
    }

    /// The error for `name` found at `location` ("on the command line", "in environment variable
    /// PGKEEP_REPO1_TYPE", "in config file ...:3").
    static func error(for name: String, _ location: String) -> PGKeepError? {
        guard let hint = hint(for: name) else { return nil }
        return PGKeepError(.optionInvalid, "option '\(name)' \(location) is a pgBackRest option pgkeep does not implement: the command would not do what it asks",
                           hint: hint)
    }

    private static let encryption = "pgkeep does not encrypt the repository yet; remove the option (and do not rely on encryption at rest), or keep this repository with pgBackRest"
    private static let objectStorage = "pgkeep's repository is a local or mounted file system (repo1-path); object storage is not implemented yet"
    private static let remote = "pgkeep runs on the database host and reaches the repository through repo1-path; a repository or database host over the network is not implemented yet"
    private static let later = "not implemented yet: remove the option; 'pgkeep help <command>' lists what pgkeep accepts"

    /// Families of options: every name with the prefix.
    private static let prefixes: [(String, String)] = [
        ("repo1-s3-", objectStorage), ("repo1-azure-", objectStorage), ("repo1-gcs-", objectStorage),
        ("repo1-sftp-", objectStorage), ("repo1-storage-", objectStorage), ("repo1-host", remote),
        ("pg1-host", remote), ("tcp-keep-alive", remote),
    ]

    private static let notImplemented: [String: String] = [
        "repo1-type": objectStorage,
        "repo1-cipher-type": encryption,
        "repo1-cipher-pass": encryption,
        "cipher-type": encryption,
        "cipher-pass": encryption,
        "repo": "pgkeep has one repository, repo1: remove --repo",
        "repo1-block": "pgkeep always stores files of 1 MiB and more block by block in diff and incr backups; remove the option",
        "repo1-hardlink": "pgkeep references unchanged files from earlier backups instead of hard-linking them; remove the option",
        "repo1-retention-history": later,
        "cmd-ssh": remote,
        "compress-level-network": remote,
        "io-timeout": later,
        "db-timeout": later,
        "sck-keep-alive": remote,
        "backup-standby": "backup from a standby is not implemented yet: point pg1-socket-path/pg1-port at the primary",
        "archive-mode-check": later,
        "archive-header-check": "pgkeep always checks a WAL file's header against the stanza; remove the option",
        "page-header-check": later,
        "manifest-save-threshold": later,
        "stop-auto": later,
        "neutral-umask": later,
        "log-level-stderr": "pgkeep logs to the console (log-level-console) and the file (log-level-file); remove the option",
        "log-subprocess": later,
        "log-timestamp": later,
        "config-include-path": later,
        "config-path": later,
        "compress": "use compress-type=none|lz4|zst",
    ]

    /// `repo2-path`, `pg3-host`: pgkeep has one repository and one cluster per stanza.
    private static func indexedGroup(_ name: String) -> String? {
        for (group, what) in [("repo", "one repository (repo1-*)"), ("pg", "one cluster per stanza (pg1-*)")] {
            guard name.hasPrefix(group) else { continue }
            let rest = name.dropFirst(group.count)
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, rest.dropFirst(digits.count).hasPrefix("-"), let index = Int(digits), index >= 2 else { continue }
            return "pgkeep has \(what): use the \(group)1- option, or another stanza for another \(group == "repo" ? "repository" : "cluster")"
        }
        return nil
    }

    /// Every listed name, for the test that no option is both pgkeep's and listed here.
    static var listedNames: [String] { Array(notImplemented.keys) }
}
