/// Checks that a cluster and a stanza belong together, before anything is written.
public enum StanzaCheck {
    public static func verify(control: PGControl, dataDirectory: String, archiveInfo: ArchiveInfo,
                              backupInfo: BackupInfo, stanza: String) throws {
        for (name, identity) in [("archive.info", archiveInfo.current), ("backup.info", backupInfo.current)] {
            guard identity.matches(systemIdentifier: control.systemIdentifier, version: control.version.major) else {
                throw PGKeepError(.stanzaMismatch,
                                  "the cluster in '\(dataDirectory)' (system identifier \(control.systemIdentifier), PostgreSQL \(control.version.major)) does not match stanza '\(stanza)' \(name) (system identifier \(identity.systemIdentifier), PostgreSQL \(identity.version))",
                                  hint: "check --stanza and --pg1-path; a stanza serves exactly one cluster")
            }
        }
        guard archiveInfo.current == backupInfo.current else {
            throw PGKeepError(.repositoryInvalid, "archive.info and backup.info of stanza '\(stanza)' disagree about the cluster",
                              hint: "the repository was modified by hand or is damaged")
        }
    }
}

/// Checks of the running server before a backup.
public enum ServerCheck {
    public static func verifyForBackup(_ session: PGSession, dataDirectory: String, log: Log) throws {
        let versionNumber = session.serverVersionNumber
        guard PGVersion.supported.contains(versionNumber / 10000) else {
            throw PGKeepError(.dbVersion, "PostgreSQL \(versionNumber / 10000) (server_version_num \(versionNumber)) is not supported",
                              hint: "pgkeep supports PostgreSQL \(PGVersion.supported.sorted().map(String.init).joined(separator: ", "))")
        }
        if try session.value("SELECT pg_is_in_recovery()::text") == "true" {
            throw PGKeepError(.dbConfig, "the server is in recovery (a standby); backup from a standby is not supported yet",
                              hint: "point --pg1-socket-path/--pg1-port at the primary")
        }
        let archiveMode = try session.value("SELECT current_setting('archive_mode')") ?? "off"
        let archiveCommand = try session.value("SELECT current_setting('archive_command')") ?? ""
        let archiveLibrary = try session.value("SELECT current_setting('archive_library')") ?? ""
        guard archiveMode != "off" else {
            throw PGKeepError(.dbConfig, "archive_mode is off: the backup could never become consistent",
                              hint: "set archive_mode = on and archive_command = 'pgkeep --stanza=<stanza> archive-push %p' in postgresql.conf, then restart PostgreSQL")
        }
        guard !archiveCommand.isEmpty || !archiveLibrary.isEmpty else {
            throw PGKeepError(.dbConfig, "archive_command is empty: WAL is not archived",
                              hint: "set archive_command = 'pgkeep --stanza=<stanza> archive-push %p' and reload PostgreSQL")
        }
        // data_directory needs superuser or pg_read_all_settings; without it, trust --pg1-path.
        if let serverDirectory = try? session.value("SELECT current_setting('data_directory')"),
           realPath(serverDirectory) != realPath(dataDirectory) {
            throw PGKeepError(.dbMismatch, "--pg1-path '\(dataDirectory)' is not the data directory of the server ('\(serverDirectory)')",
                              hint: "set --pg1-path to '\(serverDirectory)' or connect to the right server")
        }
    }

    static func realPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
