import SystemPackage
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// `stanza-create`: records which cluster a stanza serves, from its pg_control on disk, by writing
/// `archive.info` and then `backup.info` (repo-layout.md §4). Running it again for the same cluster
/// is a no-op; for another cluster it is refused and nothing is changed. It completes a stanza
/// whose backup.info was never written (a crash between the two writes), never one whose info
/// files were lost or damaged: that is `stanza-repair`'s work (an empty backup.info would make
/// every backup directory look interrupted to the next backup and expire).
public struct StanzaCreate {
    public enum Outcome: Equatable, Sendable { case created, alreadyExists }

    let storage: Storage
    /// The database host, whose pg_control names the cluster (`PostgresHost`).
    let host: PostgresHost
    let layout: RepositoryLayout
    let log: Log

    public init(storage: Storage, host: PostgresHost, layout: RepositoryLayout, log: Log) {
        self.storage = storage
        self.host = host
        self.layout = layout
        self.log = log
    }

    public func run(dataDirectory: String) throws -> Outcome {
        let control = try PGControl.read(from: host, dataDirectory: FilePath(dataDirectory)).control
        try PGVersion.requireSupported(control.version.major, of: "the cluster in '\(dataDirectory)'")
        let identity = DatabaseIdentity(control: control, id: 1)
        // A damaged info file, or a missing one in a stanza that holds backups or WAL, is refused
        // here: rebuilding it is stanza-repair's, from what the repository holds.
        let archiveInfo = try InfoFiles.load(ArchiveInfo.self, from: layout.archiveInfo, storage, layout, warn: log.warn)
        let backupInfo = try InfoFiles.load(BackupInfo.self, from: layout.backupInfo, storage, layout, warn: log.warn)

        for (name, existing) in [("archive.info", archiveInfo?.current), ("backup.info", backupInfo?.current)] {
            if let existing, !existing.matches(systemIdentifier: identity.systemIdentifier, version: identity.version) {
                throw PGKeepError(.stanzaMismatch,
                                  "stanza '\(layout.stanza)' already serves another cluster (\(name): system identifier \(existing.systemIdentifier), PostgreSQL \(existing.version)); '\(dataDirectory)' has system identifier \(identity.systemIdentifier), PostgreSQL \(identity.version)",
                                  hint: "use another --stanza name for this cluster, or, if it is the stanza's cluster after pg_upgrade, run 'pgkeep --stanza=\(layout.stanza) stanza-upgrade'; nothing was changed")
            }
        }
        if let archiveInfo, let backupInfo {
            if archiveInfo.current != backupInfo.current {
                throw PGKeepError(.repositoryInvalid, "archive.info and backup.info of stanza '\(layout.stanza)' disagree",
                                  hint: "the repository was modified by hand or is damaged")
            }
            log.info("stanza '\(layout.stanza)' already exists for this cluster")
            return .alreadyExists
        }
        // Complete a half-created stanza (a crash between the two writes) with the same identity.
        let current = archiveInfo?.current ?? backupInfo?.current ?? identity
        if archiveInfo == nil { try SealedFile.save(ArchiveInfo(current: current), to: layout.archiveInfo, in: storage) }
        if backupInfo == nil { try SealedFile.save(BackupInfo(current: current), to: layout.backupInfo, in: storage) }
        log.info("stanza '\(layout.stanza)' created for system identifier \(current.systemIdentifier), PostgreSQL \(current.version)")
        return .created
    }
}
