import SystemPackage
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// What stanza-delete needs, resolved by the command front.
public struct StanzaDeleteOptions: Sendable {
    /// The cluster's data directory (`--pg1-path`), checked for a running server.
    public var dataDirectory: FilePath?
    /// Delete even when PostgreSQL may be running, or when there is no data directory to check
    /// (`--force`). The stop file is required all the same.
    public var force: Bool
    public var lockPath: String
    /// The repository lease it holds, as backup and expire do (`StanzaBackupLock`).
    public var lease = LeaseSettings()

    public init(dataDirectory: FilePath?, force: Bool, lockPath: String) {
        self.dataDirectory = dataDirectory
        self.force = force
        self.lockPath = lockPath
    }
}

/// `stanza-delete`: removes a stanza, every backup and all archived WAL of it, from the
/// repository (pgBackRest's command of that name, with its preconditions).
///
/// 1. Refuse (`stanzaInUse`) unless a stop file stops the stanza on this host (`pgkeep stop`):
///    no backup, archive-push or expire of it can start while it goes. The stop file stays; a
///    stanza created again later starts stopped until `pgkeep start`.
/// 2. Refuse (`stanzaInUse`) when PostgreSQL runs on `--pg1-path` (its archive_command would
///    keep failing against a stanza that is gone), or when there is no data directory to check,
///    unless `--force`.
/// 3. Take the stanza lock and the repository lease that backup and expire take: no backup or
///    expire of the stanza on any host sharing the repository is half-way through.
/// 4. Remove backup.info and archive.info (each with its copy) first: from then on every reader
///    and writer sees no stanza, never a stanza with some backups gone. Then the backup and
///    archive trees, then the stanza's lease directory once the lease is released.
///
/// Deleting what is already gone is not an error: a delete interrupted half-way is finished by
/// running it again, and a stanza that does not exist reports that and changes nothing.
public struct StanzaDelete {
    public enum Outcome: Equatable, Sendable { case deleted, notFound }

    let storage: Storage
    let host: PostgresHost
    let layout: RepositoryLayout
    let options: StanzaDeleteOptions
    let log: Log

    public init(storage: Storage, host: PostgresHost, layout: RepositoryLayout, options: StanzaDeleteOptions, log: Log) {
        self.storage = storage
        self.host = host
        self.layout = layout
        self.options = options
        self.log = log
    }

    public func run() throws -> Outcome {
        try refuseUnlessStopped()
        try refuseRunningCluster()
        guard try stanzaExists() else {
            log.info("stanza '\(layout.stanza)' does not exist in the repository: nothing to delete")
            return .notFound
        }
        do {
            let lock = try StanzaBackupLock(storage: storage, layout: layout, lockPath: options.lockPath, lease: options.lease,
                                            command: "stanza-delete", log: log)
            defer { withExtendedLifetime(lock) {} }
            try removeInfoFiles()
            try storage.removeTree(layout.backupRoot)
            try storage.removeTree(layout.archiveRoot)
        }
        // The lease is released (the lock above is gone); its directory goes last.
        try storage.removeTree(layout.backupLease.parent)
        log.info("stanza '\(layout.stanza)' deleted: '\(storage.describe(layout.backupRoot))' and '\(storage.describe(layout.archiveRoot))' removed")
        return .deleted
    }

    /// Step 1: the stanza's own stop file, or `all.stop`.
    private func refuseUnlessStopped() throws {
        guard try StopFile.active(lockPath: options.lockPath, stanza: layout.stanza) == nil else { return }
        let own = StopFile(lockPath: options.lockPath, stanza: layout.stanza)
        throw PGKeepError(.stanzaInUse, "stanza '\(layout.stanza)' is not stopped: stop file '\(own.path)' does not exist",
                          hint: "run 'pgkeep --stanza=\(layout.stanza) stop' on this host first, so that no backup or archive-push of the stanza starts while it is deleted")
    }

    /// Step 2: a live postmaster on the data directory, or no data directory to look at.
    private func refuseRunningCluster() throws {
        guard !options.force else { return }
        guard let dataDirectory = options.dataDirectory else {
            throw PGKeepError(.stanzaInUse, "stanza-delete cannot tell whether PostgreSQL still runs for stanza '\(layout.stanza)': no --pg1-path",
                              hint: "pass --pg1-path=<data directory> so that it can be checked, or --force if the cluster is gone")
        }
        if let pid = try host.livePostmaster(dataDirectory: dataDirectory) {
            throw PGKeepError(.stanzaInUse, "PostgreSQL is running on '\(dataDirectory)' (postmaster.pid names live process \(pid)): its archive_command still sends WAL to stanza '\(layout.stanza)'",
                              hint: "stop the cluster first, or pass --force to delete the stanza anyway")
        }
    }

    private func stanzaExists() throws -> Bool {
        for path in [layout.backupRoot, layout.archiveRoot, layout.backupLease.parent] where try storage.info(path) != nil {
            return true
        }
        return false
    }

    /// Step 4's first half: backup.info before archive.info, the reverse of stanza-create.
    private func removeInfoFiles() throws {
        for info in [layout.backupInfo, layout.archiveInfo] {
            try storage.remove(info)
            try storage.remove(try SealedFile.copyPath(of: info))
        }
    }
}
