import PGKeepCore
import PGKeepPostgres

/// Checks that a cluster and a stanza belong together, before anything is written.
public enum StanzaCheck {
    public static func verify(control: PGControl, dataDirectory: String, archiveInfo: ArchiveInfo,
                              backupInfo: BackupInfo, stanza: String) throws {
        for (name, identity) in [("archive.info", archiveInfo.current), ("backup.info", backupInfo.current)] {
            guard identity.matches(systemIdentifier: control.systemIdentifier, version: control.version.major) else {
                throw PGKeepError(.stanzaMismatch,
                                  "the cluster in '\(dataDirectory)' (system identifier \(control.systemIdentifier), PostgreSQL \(control.version.major)) does not match stanza '\(stanza)' \(name) (system identifier \(identity.systemIdentifier), PostgreSQL \(identity.version))",
                                  hint: "check --stanza and --pg1-path (a stanza serves one cluster at a time); after pg_upgrade, run 'pgkeep --stanza=\(stanza) stanza-upgrade' first")
            }
        }
        guard archiveInfo.current == backupInfo.current else {
            throw PGKeepError(.repositoryInvalid, "archive.info and backup.info of stanza '\(stanza)' disagree about the cluster",
                              hint: "the repository was modified by hand or is damaged")
        }
    }
}
