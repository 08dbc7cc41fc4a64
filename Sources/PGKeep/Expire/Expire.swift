import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// What an expire needs, resolved by the command front.
public struct ExpireOptions: Sendable {
    public var policy: RetentionPolicy
    /// Expire this backup only (`--set`).
    public var set: BackupLabel?
    public var dryRun: Bool
    public var lockPath: String
    /// The repository lease this expire holds (`StanzaBackupLock`).
    public var lease = LeaseSettings()

    public init(policy: RetentionPolicy, set: BackupLabel?, dryRun: Bool, lockPath: String) {
        self.policy = policy
        self.set = set
        self.dryRun = dryRun
        self.lockPath = lockPath
    }
}

/// What an expire removed (or, with `--dry-run`, would remove).
public struct ExpireOutcome: Sendable, Equatable {
    public var expired: [ExpirePlan.Expired]
    /// Backup directories not listed in backup.info (interrupted backups), removed.
    public var orphans: [String]
    /// Per archive id: the WAL files removed, first and last name and count.
    public var wal: [WALRemoval]
    /// Records of WAL dropped by archive-push (repo-layout.md §3.7) that lie wholly before the
    /// kept WAL, removed with it: "<archive id>/<start>-<stop>".
    public var dropRecords: [String] = []
    public var dryRun: Bool

    public struct WALRemoval: Sendable, Equatable {
        public var archiveID: String
        public var first: String
        public var last: String
        public var count: Int
    }

    public var lines: [String] {
        let verb = dryRun ? "would expire" : "expired"
        var out = expired.map { "\(verb) backup \($0.label) (\($0.reason))" }
        out += orphans.map { "\(dryRun ? "would remove" : "removed") interrupted backup directory \($0)" }
        out += wal.map { "\(dryRun ? "would remove" : "removed") \($0.count) WAL file\($0.count == 1 ? "" : "s") from archive \($0.archiveID): \($0.first) ... \($0.last)" }
        out += dropRecords.map { record in
            let parts = record.split(separator: "/", maxSplits: 1).map(String.init)
            let range = parts.last?.split(separator: "-").joined(separator: "...") ?? record
            return "\(dryRun ? "would remove" : "removed") the record of WAL \(range) dropped by archive-push-queue-max from archive \(parts[0]) (older than any WAL kept)"
        }
        if out.isEmpty { out.append("nothing to expire") }
        return out
    }
}

/// `expire`: applies retention (repo-layout.md §4 for the order).
///
/// 1. Take the stanza lock (the backup's: this host's and the repository's lease): no backup of
///    any host sharing the repository runs meanwhile, so a directory not in backup.info is an
///    interrupted backup, not one being written.
/// 2. Plan from backup.info alone (`Retention`), by recorded stop times.
/// 3. Rewrite backup.info without the expired backups (sealed, atomic, with its copy) BEFORE any
///    file is removed: a crash afterwards leaves unlisted directories, which readers ignore and the
///    next expire removes, never a listed backup with missing files.
/// 4. Remove the expired backup directories, dependents first; then interrupted ones, except the
///    newest when the next backup may resume it (no manifest and a label after every listed
///    backup: `BackupResume` resumes only such a one); then the WAL no retained backup needs.
public final class ExpireRun {
    let storage: Storage
    let layout: RepositoryLayout
    let options: ExpireOptions
    let log: Log

    public init(storage: Storage, layout: RepositoryLayout, options: ExpireOptions, log: Log) {
        self.storage = storage
        self.layout = layout
        self.options = options
        self.log = log
    }

    public func run(now: Int64 = Clock.now()) throws -> ExpireOutcome {
        let lock = try StanzaBackupLock(storage: storage, layout: layout, lockPath: options.lockPath, lease: options.lease,
                                        command: "expire", log: log)
        defer { withExtendedLifetime(lock) {} }
        return try runLocked(now: now, lease: lock.lease)
    }

    /// The expire itself; the caller holds the stanza lock (or, in tests, owns the storage). The
    /// lease, when given, is confirmed before anything is changed.
    public func runLocked(now: Int64, lease: RepositoryLease? = nil) throws -> ExpireOutcome {
        let archiveInfo = try InfoFiles.loadArchiveInfo(storage, layout, warn: log.warn)
        let backupInfo = try InfoFiles.loadBackupInfo(storage, layout, warn: log.warn)
        let plan = try retentionPlan(backupInfo, now: now)
        if let note = plan.archiveNote, plan.archive == nil { log.info(note) }
        let orphans = try interruptedBackups(backupInfo)
        let removals = try plan.archive.map { try walRemovals(archiveInfo, retention: $0) } ?? WALRemovals()

        let outcome = ExpireOutcome(expired: plan.expired, orphans: orphans.map(\.text), wal: removals.summary,
                                    dropRecords: removals.dropRecords.map { "\($0.archiveID)/\($0.record.name)" }, dryRun: options.dryRun)
        if options.dryRun { return outcome }
        try lease?.confirm()
        try removeBackups(plan, orphans: orphans)
        try remove(removals)
        return outcome
    }

    /// Step 2: the plan, from `--set` alone or from the retention policy.
    private func retentionPlan(_ backupInfo: BackupInfo, now: Int64) throws -> ExpirePlan {
        guard let set = options.set else {
            if !options.policy.isSet {
                log.warn("repo1-retention-full is not set: no backup expires; set it to keep the repository from growing without bound")
            }
            return Retention.plan(backups: backupInfo.backups, policy: options.policy, now: now)
        }
        let plan: ExpirePlan
        do {
            plan = try Retention.planAdhoc(backups: backupInfo.backups, set: set, policy: options.policy)
        } catch {
            if let error = error as? PGKeepError, error.code == .backupMissing {
                throw PGKeepError(.backupMissing, "backup set \(set) does not exist in stanza '\(layout.stanza)'",
                                  hint: "run 'pgkeep --stanza=\(layout.stanza) info' to list the backups")
            }
            throw error
        }
        if backupInfo.latest?.label == set {
            log.warn("expiring the latest backup \(set): point-in-time recovery from it is no longer possible")
        }
        return plan
    }

    /// Interrupted backups: directories with a label name that backup.info does not list, except
    /// the one the next backup may resume.
    private func interruptedBackups(_ backupInfo: BackupInfo) throws -> [BackupLabel] {
        let listed = Set(backupInfo.backups.map(\.label))
        let newestListed = backupInfo.backups.map(\.label).max()
        var orphans: [BackupLabel] = []
        for entry in try storage.list(layout.backupRoot) where entry.kind == .directory {
            guard let label = BackupLabel(entry.name), !listed.contains(label) else { continue }
            let hasManifest = try storage.info(try layout.manifest(label: label)) != nil
            if !hasManifest, newestListed.map({ label > $0 }) ?? true {
                log.info("keeping backup directory \(label): not in backup.info and newer than every listed backup, the next backup may resume it")
                continue
            }
            orphans.append(label)
        }
        return orphans
    }

    /// The WAL objects and drop records no retained backup needs.
    private struct WALRemovals {
        /// One archive directory's objects to remove; `whole` when that is every file in it.
        struct Directory {
            var archiveID: String
            var directory: StoragePath
            var objects: [StoragePath]
            var names: [String]
            var whole: Bool
        }
        var directories: [Directory] = []
        var dropRecords: [(archiveID: String, record: StoragePath)] = []

        /// Per archive id: first, last and count of the WAL files removed.
        var summary: [ExpireOutcome.WALRemoval] {
            Set(directories.map(\.archiveID)).sorted().map { id in
                let names = directories.filter { $0.archiveID == id }.flatMap(\.names).sorted()
                return .init(archiveID: id, first: names.first!, last: names.last!, count: names.count)
            }
        }
    }

    private func walRemovals(_ archiveInfo: ArchiveInfo, retention: ArchiveRetention) throws -> WALRemovals {
        var removals = WALRemovals()
        let order = archiveInfo.history.map(\.id)
        for identity in archiveInfo.history {
            let root = try layout.archiveDirectory(archiveID: identity.archiveID)
            for directory in try storage.list(root) where directory.kind == .directory && directory.name.count == 16 {
                let path = try root.appending(directory.name)
                let files = try storage.list(path).filter { $0.kind == .file }
                var remove: [StoragePath] = []
                var names: [String] = []
                for file in files {
                    guard let parsed = RepositoryLayout.parseArchiveObjectName(file.name), WALFileName(parsed.name) != nil else { continue }
                    if !retention.keeps(walFile: parsed.name, databaseID: identity.id, order: order) {
                        remove.append(try path.appending(file.name))
                        names.append(parsed.name)
                    }
                }
                guard !remove.isEmpty else { continue }
                removals.directories.append(.init(archiveID: identity.archiveID, directory: path, objects: remove, names: names,
                                                  whole: remove.count == files.count))
            }
            // Drop records explain an absence; once the WAL around it is gone for good there is
            // no absence left to explain. Judged by file name (`<start>-<stop>`): a damaged
            // record goes as well as an intact one.
            let droppedDirectory = try DroppedWAL.directory(layout: layout, archiveID: identity.archiveID)
            let recordNames = Set(try storage.list(droppedDirectory).filter { $0.kind == .file }.map {
                $0.name.hasSuffix(".copy") ? String($0.name.dropLast(5)) : $0.name
            }).filter(DroppedWAL.isRecordName)
            for name in recordNames.sorted() {
                let stop = String(name.split(separator: "-")[1])
                guard retention.releases(dropRecordEndingAt: stop, databaseID: identity.id, order: order) else { continue }
                removals.dropRecords.append((identity.archiveID, try droppedDirectory.appending(name)))
            }
        }
        return removals
    }

    /// Steps 3 and 4 for backups: backup.info first, then the expired directories, then the
    /// interrupted ones.
    private func removeBackups(_ plan: ExpirePlan, orphans: [BackupLabel]) throws {
        if !plan.expired.isEmpty {
            let expired = Set(plan.expiredLabels)
            // Re-read under the lock so nothing written meanwhile is lost (the lock excludes backups).
            var backupInfo = try InfoFiles.loadBackupInfo(storage, layout, warn: log.warn)
            backupInfo.backups.removeAll { expired.contains($0.label) }
            try SealedFile.save(backupInfo, to: layout.backupInfo, in: storage)
            for item in plan.expired {
                try removeBackupDirectory(item.label)
                log.info("expired backup \(item.label) (\(item.reason))")
            }
        }
        for label in orphans {
            try removeBackupDirectory(label)
            log.info("removed interrupted backup directory \(label)")
        }
    }

    /// Step 4 for WAL: the objects, then the drop records.
    private func remove(_ removals: WALRemovals) throws {
        for removal in removals.directories {
            if removal.whole {
                try storage.removeTree(removal.directory)
            } else {
                for object in removal.objects { try storage.remove(object) }
            }
        }
        for item in removals.summary { log.info("removed \(item.count) WAL files from archive \(item.archiveID): \(item.first) ... \(item.last)") }
        // After the WAL: a crash in between leaves a record that the next expire removes. The
        // main file before its copy, as for a manifest; a lone copy is found by its name next time.
        for removal in removals.dropRecords {
            try storage.remove(removal.record)
            try storage.remove(try SealedFile.copyPath(of: removal.record))
            log.info("removed the record of WAL \(removal.record.name.split(separator: "-").joined(separator: "...")) dropped by archive-push-queue-max from archive \(removal.archiveID)")
        }
    }

    /// Removes a backup directory, its manifest first: a half-removed directory then no longer
    /// looks like a complete backup to anyone reading the repository.
    private func removeBackupDirectory(_ label: BackupLabel) throws {
        let manifest = try layout.manifest(label: label)
        try storage.remove(manifest)
        try storage.remove(try SealedFile.copyPath(of: manifest))
        try storage.removeTree(try layout.backupDirectory(label: label))
    }
}
