#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// What a backup needs to know, resolved from configuration by the command front.
public struct BackupOptions: Sendable {
    public var dataDirectory: FilePath
    public var connection: PGConnectionOptions
    public var type: BackupType
    public var compression: CompressionType
    public var compressLevel: Int
    public var bufferSize: Int
    public var processMax: Int
    public var startFast: Bool
    public var archiveTimeout: Double
    public var lockPath: String
    /// Diff/incr: compare checksums instead of trusting size and modification time.
    public var delta = false
    /// Resume an interrupted backup of the same type and prior (`--resume`, the default).
    public var resume = true
    /// Small files go into bundle objects (`BundlePlan.swift`).
    public var bundle = BundleOptions()
    /// The repository lease this backup holds (`StanzaBackupLock`).
    public var lease = LeaseSettings()
    /// `--exclude`: paths relative to the data directory left out (`ClusterWalker.Exclusions`).
    public var exclude: [String] = []
    /// `--checksum-page`: verify data page checksums while copying; nil when not given (then
    /// they are verified when the cluster has data checksums, pgBackRest's default).
    public var checksumPage: Bool?
    /// `--archive-check`: wait for the WAL from start to stop to be archived before the backup
    /// is recorded.
    public var archiveCheck = true
    /// `--archive-copy`: also store that WAL in the backup as `pg_data/pg_wal/<segment>` entries
    /// (needs `archiveCheck`: it is copied from the archive).
    public var archiveCopy = false
    /// `--annotation`: the operator's notes, recorded in the manifest and backup.info.
    public var annotation: [String: String] = [:]

    public init(dataDirectory: FilePath, connection: PGConnectionOptions, type: BackupType, compression: CompressionType,
                compressLevel: Int, bufferSize: Int, processMax: Int, startFast: Bool, archiveTimeout: Double, lockPath: String) {
        self.dataDirectory = dataDirectory
        self.connection = connection
        self.type = type
        self.compression = compression
        self.compressLevel = compressLevel
        self.bufferSize = bufferSize
        self.processMax = processMax
        self.startFast = startFast
        self.archiveTimeout = archiveTimeout
        self.lockPath = lockPath
    }
}

/// An online backup of a running cluster (repo-layout.md §4 for the write order): full, or diff
/// (changes since the last full) or incr (changes since the last backup of any type).
///
/// 1. Take the stanza's backup lock (this host's and the repository's lease); check the cluster (pg_control on disk, the server's version,
///    archiving configured) matches the stanza. For diff/incr, find the prior backup and load its
///    manifest; without a usable prior (none, or one of another cluster identity) the backup
///    becomes a full one and says so.
/// 2. `pg_backup_start(label, fast)` in one session that stays open to the end: if it dies, the
///    server silently abandons the backup (docs/postgres-internals.md §1.1).
/// 3. Record the copy start (two seconds before the current one: `copyStart`), so that any write to a file
///    after it was listed gets a later mtime than the copy start. List the data directory and tablespaces with PostgreSQL's exclusions; for
///    diff/incr decide per file what changed (`IncrementalPlan`); copy what must be copied with
///    `--process-max` workers, largest first, each through SHA-256 and compression. Files of at
///    least `BlockIncremental.minimumFileSize` are stored in blocks, and a changed one stores only
///    the blocks that differ from the prior backup's block map.
/// 4. Copy `global/pg_control` last, re-read until its CRC is valid.
/// 5. `pg_backup_stop(false)`: store `backup_label` and `tablespace_map` byte for byte.
/// 6. Wait until every WAL segment from start to stop is in the archive (`--archive-timeout`):
///    without them the backup cannot reach consistency, so it is not a backup yet
///    (`--no-archive-check` skips the wait and says so). With `--archive-copy`, copy those
///    segments from the archive into the backup (`BackupCopy.storeArchivedWAL`).
/// 7. Write the manifest, then the `backup.info` entry: only now does the backup exist.
///
/// `run` does steps 1, 2 and, in `finish`, 6 and 7; `BackupCopy` (BackupCopy.swift) does 3 to 5.
/// The database host, its files and its server, is reached only through `host` (`PostgresHost`).
public final class BackupRun {
    let storage: Storage
    /// The database host: its files and its server (`PostgresHost`).
    let host: PostgresHost
    let layout: RepositoryLayout
    let options: BackupOptions
    let log: Log
    /// Held while `run` runs; confirmed before backup.info is written.
    private var lease: RepositoryLease?

    public init(storage: Storage, host: PostgresHost, layout: RepositoryLayout, options: BackupOptions, log: Log) {
        self.storage = storage
        self.host = host
        self.layout = layout
        self.options = options
        self.log = log
    }

    public func run() throws -> BackupSummary {
        if options.archiveCopy && !options.archiveCheck {
            throw PGKeepError(.optionInvalid, "--archive-copy needs --archive-check: the WAL it stores in the backup is copied from the archive once it is there",
                              hint: "remove --no-archive-check (archive-check=n), or --archive-copy")
        }
        let lock = try StanzaBackupLock(storage: storage, layout: layout, lockPath: options.lockPath, lease: options.lease,
                                        command: "backup", log: log)
        defer { withExtendedLifetime(lock) {} }
        lease = lock.lease

        let archiveInfo = try InfoFiles.loadArchiveInfo(storage, layout, warn: log.warn)
        let backupInfo = try InfoFiles.loadBackupInfo(storage, layout, warn: log.warn)
        let control = try checkCluster(archiveInfo: archiveInfo, backupInfo: backupInfo)
        let session = try host.connect(options.connection, applicationName: "pgkeep backup")
        try ServerCheck.verifyForBackup(session, host: host, dataDirectory: options.dataDirectory, log: log)

        let prior = try findPrior(info: backupInfo, control: control)
        let type = prior == nil ? BackupType.full : options.type
        let resumed = try takeOverInterrupted(info: backupInfo, type: type, prior: prior?.backup.label, control: control)
        let label = try resumed?.backup.label ?? nextLabel(after: backupInfo, type: type, full: prior?.backup.label.fullLabel)
        log.info("backup \(label) (\(type.rawValue)\(prior.map { ", prior \($0.backup.label)" } ?? "")) of stanza '\(layout.stanza)' \(resumed == nil ? "starting" : "resuming")")

        try session.prepareForBackup()
        let waiting = announceCheckpointWait(session)
        let startTime = Clock.now()
        let startLSN = try session.startBackup(label: "pgkeep backup \(label)", fast: options.startFast)
        if waiting { log.setStatus(nil) }
        log.info("backup start LSN \(startLSN)")
        do {
            let copy = BackupCopy(run: self, session: session, label: label, type: type, prior: prior, resumed: resumed,
                                  startLSN: startLSN, startTime: startTime)
            _ = try copy.run(databaseID: backupInfo.current.id)
            return try finish(copy, archiveInfo: archiveInfo)
        } catch {
            // End the backup in the server if the session still works; the partial directory has
            // no backup.info entry, so no reader takes it for a backup.
            session.abandonBackup()
            throw error
        }
    }

    /// Without `--start-fast`, pg_backup_start returns after PostgreSQL's next checkpoint, spread
    /// over checkpoint_completion_target x checkpoint_timeout: minutes in which nothing would
    /// move. Say so, in the log and on a terminal's status line; true when a status line is shown.
    private func announceCheckpointWait(_ session: PostgresSQL) -> Bool {
        guard !options.startFast else { return false }
        let timeout = (try? session.setting("checkpoint_timeout")) ?? nil
        let target = (try? session.setting("checkpoint_completion_target")) ?? nil
        let bound = timeout.map { " (up to checkpoint_completion_target \(target ?? "?") x checkpoint_timeout \($0))" } ?? ""
        log.info("waiting for PostgreSQL's next checkpoint to finish before the backup starts\(bound); --start-fast asks for an immediate one")
        guard isatty(STDERR_FILENO) == 1, log.consoleLevel != .off else { return false }
        log.setStatus("backup: waiting for PostgreSQL's checkpoint\(bound); --start-fast asks for an immediate one")
        return true
    }

    /// pg_control on the host must describe the cluster the stanza serves.
    private func checkCluster(archiveInfo: ArchiveInfo, backupInfo: BackupInfo) throws -> PGControl {
        let control = try PGControl.read(from: host, dataDirectory: options.dataDirectory).control
        try StanzaCheck.verify(control: control, dataDirectory: options.dataDirectory.string,
                               archiveInfo: archiveInfo, backupInfo: backupInfo, stanza: layout.stanza)
        return control
    }

    /// The backup a diff (the latest full) or incr (the latest backup) builds on, with its
    /// manifest; nil for a full backup, or when there is no usable prior (then the backup
    /// becomes a full one, with a warning, as pgBackRest does).
    private func findPrior(info: BackupInfo, control: PGControl) throws -> PriorManifest? {
        guard options.type != .full else { return nil }
        guard let candidate = options.type == .diff ? info.latestFull : info.latest else {
            log.warn("no prior backup exists, \(options.type.rawValue) backup has been changed to full")
            return nil
        }
        guard candidate.databaseID == info.current.id else {
            log.warn("the latest backup \(candidate.label) was taken from an earlier cluster identity (database id \(candidate.databaseID)), \(options.type.rawValue) backup has been changed to full")
            return nil
        }
        guard let manifest = try SealedFile.loadStreamed(PriorManifest.self, from: try layout.manifest(label: candidate.label), in: storage, warn: log.warn) else {
            throw PGKeepError(.backupMissing, "the manifest of prior backup \(candidate.label) is missing from '\(storage.describe(try layout.backupDirectory(label: candidate.label)))'",
                              hint: "the repository is damaged; take a full backup with --type=full")
        }
        guard manifest.backup.label == candidate.label else {
            throw PGKeepError(.repositoryInvalid, "the manifest in backup \(candidate.label) describes backup \(manifest.backup.label)",
                              hint: "the repository is damaged; take a full backup with --type=full")
        }
        guard manifest.database.systemIdentifier == control.systemIdentifier, manifest.database.version == control.version.major else {
            log.warn("prior backup \(candidate.label) is of another cluster (system identifier \(manifest.database.systemIdentifier), PostgreSQL \(manifest.database.version)), \(options.type.rawValue) backup has been changed to full")
            return nil
        }
        return manifest
    }

    /// Backup directories without a `backup.info` entry are interrupted backups (§4.2): the newest
    /// one is resumed when `BackupResume.decide` allows it (its partial manifest is returned, and
    /// the backup keeps its label), every other one is removed. Both are said on the console.
    private func takeOverInterrupted(info: BackupInfo, type: BackupType, prior: BackupLabel?, control: PGControl) throws -> Manifest? {
        let completed = Set(info.backups.map(\.label))
        let interrupted = try storage.list(layout.backupRoot).filter { $0.kind == .directory }
            .compactMap { BackupLabel($0.name) }.filter { !completed.contains($0) }.sorted()
        guard let newest = interrupted.last else { return nil }
        for label in interrupted.dropLast() {
            log.warn("removing interrupted backup \(label): only the newest interrupted backup can be resumed")
            try storage.removeTree(try layout.backupDirectory(label: label))
        }
        var partial: Manifest?
        var problem: String?
        let partialPath = try layout.partialManifest(label: newest)
        do {
            if let bytes = try storage.readSmallFile(partialPath) {
                partial = try SealedFile.open(Manifest.self, from: bytes, name: storage.describe(partialPath))
            }
        } catch {
            problem = (error as? PGKeepError)?.message ?? "\(error)"
        }
        var intent = BackupResume.Intent(type: type, prior: prior, compression: options.compression,
                                         systemIdentifier: control.systemIdentifier, version: control.version.major,
                                         databaseID: info.current.id, newestLabel: info.backups.map(\.label).max())
        intent.enabled = options.resume
        switch BackupResume.decide(label: newest, partial: partial, problem: problem, intent: intent) {
        case .resume:
            log.warn("resuming interrupted backup \(newest): files it stored are reused when unchanged and intact, the rest is copied again")
            return partial
        case .remove(let reason):
            log.warn("interrupted backup \(newest) cannot be resumed: \(reason); removing it")
            try storage.removeTree(try layout.backupDirectory(label: newest))
            return nil
        }
    }

    /// Steps 6 and 7: the WAL the backup needs reaches the archive, then the manifest and the
    /// `backup.info` entry are written, only while this backup still holds the stanza's lease.
    private func finish(_ copy: BackupCopy, archiveInfo: ArchiveInfo) throws -> BackupSummary {
        var manifest = copy.manifest!
        let label = manifest.backup.label
        if options.archiveCheck {
            log.info("backup stop LSN \(manifest.backup.lsnStop); waiting for WAL \(manifest.backup.walStart) ... \(manifest.backup.walStop) to reach the archive")
            try waitForArchive(copy, archiveID: archiveInfo.current.archiveID)
        } else {
            log.warn("backup stop LSN \(manifest.backup.lsnStop); not waiting for WAL \(manifest.backup.walStart) ... \(manifest.backup.walStop) (--no-archive-check): the backup restores only once that WAL is in the archive")
        }
        if options.archiveCopy {
            try copy.storeArchivedWAL(archiveID: archiveInfo.current.archiveID)
            manifest = copy.manifest!
        }

        let referenceList = copy.references.sorted()
        manifest.backup.references = referenceList.isEmpty ? nil : referenceList
        try manifest.save(files: copy.allFiles(), to: try layout.manifest(label: label), in: storage)
        // The commit point: only while this backup still holds the stanza's lease (no other host
        // took it over while this one stalled). Re-read under it, so nothing another command wrote
        // meanwhile is lost.
        try lease?.confirm()
        var backupInfo = try InfoFiles.loadBackupInfo(storage, layout, warn: log.warn)
        let referencedRepoSize = backupInfo.backups.filter { copy.references.contains($0.label) }.reduce(UInt64(0)) { $0 + $1.repoSize }
        let summary = BackupSummary(manifest: manifest, files: copy.allFiles(), sizeDelta: copy.copiedBytes, referencedRepoSize: referencedRepoSize)
        backupInfo.backups.append(summary)
        try SealedFile.save(backupInfo, to: layout.backupInfo, in: storage)
        // The backup exists now; its partial manifest has served its purpose.
        do { try storage.remove(try layout.partialManifest(label: label)) } catch {
            log.warn("unable to remove the partial manifest of backup \(label): \(error)")
        }
        log.info("backup \(label) complete: \(summary.fileCount) files, \(summary.size) bytes, \(summary.repoSize) bytes in the repository")
        return summary
    }

    /// Without every segment from start to stop in the archive the backup cannot reach
    /// consistency, so it is not a backup yet (`--archive-timeout`).
    private func waitForArchive(_ copy: BackupCopy, archiveID: String) throws {
        guard let (first, last) = copy.walRange else {
            throw PGKeepError(.internal, "backup \(copy.label) has no WAL range")
        }
        try ArchiveWait.waitForSegments(from: first, through: last, archiveID: archiveID,
                                        storage: storage, layout: layout, timeout: options.archiveTimeout)
    }

    /// Resume (§4.2): the files of the interrupted backup that `BackupResume` allows to stand are
    /// put in `outcomes`; every other object in the directory is removed before copying starts.
    func reuseInterrupted(_ resumed: Manifest, label: BackupLabel, files: ClusterWalker.FileList, checksumMode: Bool,
                                  hasPrior: Bool, outcomes: inout BackupFileTable, copiedBytes: inout UInt64) throws -> Int {
        var partialFiles: [String: Manifest.FileEntry] = [:]
        for entry in resumed.files { partialFiles[entry.name] = entry }
        let trust = !options.delta && !checksumMode
        if !trust { log.warn("checksum mode: the files of interrupted backup \(label) are not trusted and are copied again") }
        var candidates: [(index: Int, entry: Manifest.FileEntry)] = []
        for (index, file) in files.enumerated() where !outcomes.contains(index) {
            guard let entry = partialFiles[file.name],
                  BackupResume.mayReuse(file, entry: entry, partial: resumed, compression: options.compression, trustTimestamps: trust)
            else { continue }
            candidates.append((index, entry))
        }
        let intact = try BackupResume.verifyStored(candidates.map(\.entry), layout: layout, storage: storage,
                                                   processMax: options.processMax, bufferSize: options.bufferSize)
        var keep = Set<StoragePath>()
        var reusedBytes: UInt64 = 0
        var reusedCount = 0
        for (candidate, ok) in zip(candidates, intact) where ok {
            let entry = candidate.entry
            // Bytes this backup copied (in its interrupted run); a block-incremental file's
            // changed blocks are not recorded in the manifest, so its copy counts as nothing.
            let copied = entry.isBlockIncremental && hasPrior ? 0 : entry.size
            try outcomes.set(candidate.index, Self.reused(entry, as: files[candidate.index]))
            copiedBytes += copied
            keep.formUnion(try BackupResume.objects(of: entry, layout: layout))
            reusedBytes += entry.size
            reusedCount += 1
        }
        keep.insert(try layout.partialManifest(label: label))
        let removed = try BackupResume.clean(directory: try layout.backupDirectory(label: label), keep: keep, storage: storage)
        let failed = candidates.count - reusedCount
        log.warn("resumed backup \(label): \(reusedCount) files (\(ProgressFormat.bytes(reusedBytes))) reused from the interrupted run\(failed > 0 ? ", \(failed) failed their checksum check" : ""), \(removed) other stored files removed; everything else is copied again")
        return reusedCount
    }

    /// The prior entry for a file found unchanged: same stored object, current attributes.
    static func reused(_ entry: Manifest.FileEntry, as file: ClusterWalker.ListedFile) -> Manifest.FileEntry {
        var entry = entry
        entry.mtime = file.mtime
        entry.mode = file.mode
        entry.user = file.user
        entry.group = file.group
        return entry
    }

    /// The copy start recorded for a listing that begins at `now` (seconds): a second such that a
    /// file whose mtime is not later was last written before the listing, so any write after it
    /// was read gives it a later mtime (§4.1). File systems stamp mtimes in steps of up to 2 s
    /// (FAT's even seconds; whole seconds on ext3, and on ext4 with 128-byte inodes): a file
    /// stamped m may be written again, without its mtime changing, until its step ends (by m + 2).
    /// So the copy start is two seconds before the listing's second: every mtime not later than
    /// it lies in a step that ended before the listing began. Recording an earlier second instead
    /// of waiting keeps the guarantee for every reader of the manifest without costing seconds per
    /// backup; the price is that files written in the two seconds before the listing are compared
    /// by checksum by the next backup. The 0.1 s margin covers file systems stamping mtimes from a
    /// coarse clock that lags the precise one by a tick.
    static func copyStart(listingAt now: Double) -> Int64 {
        Int64((now - 0.1).rounded(.down)) - maximumTimestampStep
    }

    /// The coarsest mtime resolution pgkeep allows for, in seconds (FAT).
    static let maximumTimestampStep: Int64 = 2

    /// A label later than every existing one. Labels have one-second resolution, so a backup
    /// started in the same second as the previous one waits for the next second.
    private func nextLabel(after info: BackupInfo, type: BackupType, full: BackupLabel?) throws -> BackupLabel {
        let newest = info.backups.map(\.label).max()
        for _ in 0..<3 {
            let now = Clock.now()
            let label = full.map { BackupLabel.dependent(of: $0, type: type, at: now) } ?? BackupLabel.full(at: now)
            if newest.map({ label > $0 }) ?? true { return label }
            // Into the next second (never less than a few milliseconds, whatever the clocks say).
            let precise = Clock.nowPrecise()
            Clock.sleep(seconds: max(0.005, precise.rounded(.down) + 1 - precise))
        }
        throw PGKeepError(.internal, "unable to make a backup label later than '\(newest?.text ?? "")'",
                          hint: "the system clock may have gone backwards; check it")
    }
}


/// `backup.manifest.partial` (repo-layout.md §4.2): the manifest so far, with every file this
/// backup has stored (and whose object is durable), saved at the start of the copy and then
/// whenever 1% of the backup's bytes (at least 16 MiB) or 10 seconds' worth of files are newly
/// stored. A backup killed mid-way loses at most that much work.
///
/// The byte rule only applies once the newly stored bytes are worth rewriting the manifest for:
/// each save writes every entry so far (~500 bytes each), so a backup of many small files would
/// otherwise write more manifest than data (50 000 files of 8 KiB: a 25 MB manifest every 16 MiB
/// stored). There the 10-second rule alone bounds the lost work.
final class PartialManifest {
    private let manifest: Manifest
    let path: StoragePath
    let storage: Storage
    let threshold: UInt64
    private var unsaved: UInt64 = 0
    private var unsavedFiles = 0
    /// Files recorded so far: what the next save writes.
    private var recordedFiles = 0
    /// Roughly what one entry of the manifest takes (`"name"`, sizes, checksums, owner, mode...).
    static let entryBytes: UInt64 = 512
    /// The byte rule saves only when the unsaved copy work is this many times the manifest's size.
    static let worthFactor: UInt64 = 8
    private var lastSave = Clock.monotonic()

    init(manifest: Manifest, path: StoragePath, storage: Storage, totalBytes: UInt64) {
        self.manifest = manifest
        self.path = path
        self.storage = storage
        threshold = max(totalBytes / 100, 16 << 20)
    }

    /// Saves the entries this backup stored itself (references to other backups need no resume),
    /// streamed from `entries` as they are written: no copy of the entries, no document in memory.
    func save<Entries: Sequence<Manifest.FileEntry>>(_ entries: Entries) throws {
        let label = manifest.backup.label
        try SealedFile.write(to: path, in: storage) { writer in
            try manifest.writeJSON(to: &writer, files: entries.lazy.filter { $0.reference == label })
        }
        unsaved = 0
        unsavedFiles = 0
        lastSave = Clock.monotonic()
    }

    /// One more file stored; saves when enough is unsaved.
    func stored<Entries: Sequence<Manifest.FileEntry>>(bytes: UInt64, entries: () -> Entries) {
        unsaved += bytes
        unsavedFiles += 1
        recordedFiles += 1
        let worthIt = unsaved >= Self.worthFactor * Self.entryBytes * UInt64(recordedFiles)
        guard (unsaved >= threshold && worthIt) || Clock.monotonic() - lastSave >= 10 else { return }
        // A failed save loses nothing but resumability; the copy itself will meet the same
        // problem (a full disk) and fail with a clear error.
        try? save(entries())
    }
}
