import SystemPackage
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// What stanza-upgrade needs, resolved by the command front.
public struct StanzaUpgradeOptions: Sendable {
    /// The upgraded cluster's data directory (`--pg1-path`).
    public var dataDirectory: FilePath
    public var lockPath: String
    /// The repository lease it holds, as backup and expire do (`StanzaBackupLock`).
    public var lease = LeaseSettings()

    public init(dataDirectory: FilePath, lockPath: String) {
        self.dataDirectory = dataDirectory
        self.lockPath = lockPath
    }
}

/// `stanza-upgrade`: after `pg_upgrade` (a new major version and system identifier), records the
/// new cluster as the stanza's current database, next to the old one, as pgBackRest's command of
/// that name does. The backups and archived WAL of the old cluster stay where they are, under
/// their own database id and archive id (`15-1`), listed and restorable with the old major's
/// binaries; the new cluster's WAL goes to a new archive id (`17-2`), and its first backup is a
/// full one (a diff or incr never builds on another database id).
///
/// 1. Take the stanza lock and the repository lease: no backup or expire runs meanwhile.
/// 2. Read pg_control on `--pg1-path`: the identity to record. A major pgkeep does not support
///    is refused (`dbVersion`).
/// 3. Load archive.info and backup.info. Both current already: nothing to do (`.alreadyCurrent`).
///    One of them current (a crash between the two writes below): complete the other with the
///    same id. The identity of an older history entry is refused: going back to a cluster the
///    stanza has left is not an upgrade.
/// 4. The new entry gets the next id (one more than the history's largest) and becomes current
///    in archive.info, then in backup.info, each written with its copy (stanza-create's order).
public struct StanzaUpgrade {
    public enum Outcome: Equatable, Sendable {
        /// The cluster was recorded as database `id` (archive id `archiveID`).
        case upgraded(from: DatabaseIdentity, to: DatabaseIdentity)
        case alreadyCurrent(DatabaseIdentity)
    }

    let storage: Storage
    let host: PostgresHost
    let layout: RepositoryLayout
    let options: StanzaUpgradeOptions
    let log: Log

    public init(storage: Storage, host: PostgresHost, layout: RepositoryLayout, options: StanzaUpgradeOptions, log: Log) {
        self.storage = storage
        self.host = host
        self.layout = layout
        self.options = options
        self.log = log
    }

    public func run() throws -> Outcome {
        let lock = try StanzaBackupLock(storage: storage, layout: layout, lockPath: options.lockPath, lease: options.lease,
                                        command: "stanza-upgrade", log: log)
        defer { withExtendedLifetime(lock) {} }

        let control = try PGControl.read(from: host, dataDirectory: options.dataDirectory).control
        try PGVersion.requireSupported(control.version.major, of: "the cluster in '\(options.dataDirectory)'")
        var archiveInfo = try InfoFiles.loadArchiveInfo(storage, layout, warn: log.warn)
        var backupInfo = try InfoFiles.loadBackupInfo(storage, layout, warn: log.warn)
        let isCluster = { (identity: DatabaseIdentity) in
            identity.matches(systemIdentifier: control.systemIdentifier, version: control.version.major)
        }
        let archiveCurrent = isCluster(archiveInfo.current), backupCurrent = isCluster(backupInfo.current)
        if archiveCurrent && backupCurrent {
            log.info("stanza '\(layout.stanza)' is already current for this cluster (database id \(archiveInfo.current.id))")
            return .alreadyCurrent(archiveInfo.current)
        }
        let previous = archiveCurrent ? backupInfo.current : archiveInfo.current
        let identity = try newIdentity(control: control, archiveInfo: archiveInfo, backupInfo: backupInfo,
                                       completing: archiveCurrent ? archiveInfo.current : backupCurrent ? backupInfo.current : nil)
        if !archiveCurrent {
            archiveInfo.current = identity
            if !archiveInfo.history.contains(identity) { archiveInfo.history.append(identity) }
            try SealedFile.save(archiveInfo, to: layout.archiveInfo, in: storage)
        }
        if !backupCurrent {
            backupInfo.current = identity
            if !backupInfo.history.contains(identity) { backupInfo.history.append(identity) }
            try SealedFile.save(backupInfo, to: layout.backupInfo, in: storage)
        }
        log.info("stanza '\(layout.stanza)' upgraded: database \(identity.id) (system identifier \(identity.systemIdentifier), PostgreSQL \(identity.version), archive id \(identity.archiveID)) is current; database \(previous.id) (PostgreSQL \(previous.version), archive id \(previous.archiveID)) and its backups stay")
        return .upgraded(from: previous, to: identity)
    }

    /// Step 3's refusals and step 4's id. `completing` is the entry one file already made current.
    private func newIdentity(control: PGControl, archiveInfo: ArchiveInfo, backupInfo: BackupInfo,
                             completing: DatabaseIdentity?) throws -> DatabaseIdentity {
        if let completing { return completing }
        let history = archiveInfo.history + backupInfo.history
        if let old = history.first(where: { $0.matches(systemIdentifier: control.systemIdentifier, version: control.version.major) }) {
            throw PGKeepError(.stanzaMismatch,
                              "the cluster in '\(options.dataDirectory)' (system identifier \(control.systemIdentifier), PostgreSQL \(control.version.major)) is database \(old.id) of stanza '\(layout.stanza)', which the stanza has left for database \(archiveInfo.current.id) (PostgreSQL \(archiveInfo.current.version))",
                              hint: "stanza-upgrade records a new cluster after pg_upgrade; going back to an older one is not an upgrade: use another stanza for it")
        }
        let next = (history.map(\.id).max() ?? 0) + 1
        return DatabaseIdentity(control: control, id: next)
    }
}
