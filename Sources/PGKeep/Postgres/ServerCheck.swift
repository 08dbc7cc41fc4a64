import SystemPackage
import PGKeepCore

/// Checks of the running server before a backup.
public enum ServerCheck {
    /// The server's major must be one pgkeep supports (`PGVersion.supported`).
    public static func verifyVersion(_ session: PostgresSQL) throws {
        let versionNumber = session.serverVersionNumber
        try PGVersion.requireSupported(versionNumber / 10000, of: "the server (server_version_num \(versionNumber))")
    }

    public static func verifyForBackup(_ session: PostgresSQL, host: PostgresHost, dataDirectory: FilePath, log: Log) throws {
        try verifyVersion(session)
        if try session.isInRecovery() {
            throw PGKeepError(.dbConfig, "the server is in recovery (a standby); backup from a standby is not supported yet",
                              hint: "point --pg1-socket-path/--pg1-port at the primary")
        }
        let archiveMode = try session.setting("archive_mode") ?? "off"
        let archiveCommand = try session.setting("archive_command") ?? ""
        let archiveLibrary = try session.setting("archive_library") ?? ""
        guard archiveMode != "off" else {
            throw PGKeepError(.dbConfig, "archive_mode is off: the backup could never become consistent",
                              hint: "set archive_mode = on and archive_command = 'pgkeep --stanza=<stanza> archive-push %p' in postgresql.conf, then restart PostgreSQL")
        }
        guard !archiveCommand.isEmpty || !archiveLibrary.isEmpty else {
            throw PGKeepError(.dbConfig, "archive_command is empty: WAL is not archived",
                              hint: "set archive_command = 'pgkeep --stanza=<stanza> archive-push %p' and reload PostgreSQL")
        }
        // data_directory needs superuser or pg_read_all_settings; without it, trust --pg1-path.
        if let serverDirectory = try? session.setting("data_directory"),
           host.resolve(FilePath(serverDirectory)) != host.resolve(dataDirectory) {
            throw PGKeepError(.dbMismatch, "--pg1-path '\(dataDirectory)' is not the data directory of the server ('\(serverDirectory)')",
                              hint: "set --pg1-path to '\(serverDirectory)' or connect to the right server")
        }
    }
}
