/// What a backup needs to know, resolved from configuration by the command front.
public struct BackupOptions: Sendable {
    public var dataDirectory: String
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

    public init(dataDirectory: String, connection: PGConnectionOptions, type: BackupType, compression: CompressionType,
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
///    without them the backup cannot reach consistency, so it is not a backup yet.
/// 7. Write the manifest, then the `backup.info` entry: only now does the backup exist.
public final class BackupRun {
    let storage: Storage
    let layout: RepositoryLayout
    let options: BackupOptions
    let log: Log
    /// Held while `run` runs; confirmed before backup.info is written.
    private var lease: RepositoryLease?

    public init(storage: Storage, layout: RepositoryLayout, options: BackupOptions, log: Log) {
        self.storage = storage
        self.layout = layout
        self.options = options
        self.log = log
    }

    public func run() throws -> BackupSummary {
        let lock = try StanzaBackupLock(storage: storage, layout: layout, lockPath: options.lockPath, lease: options.lease,
                                        command: "backup", log: log)
        defer { withExtendedLifetime(lock) {} }
        lease = lock.lease

        let archiveInfo = try InfoFiles.loadArchiveInfo(storage, layout, warn: log.warn)
        var backupInfo = try InfoFiles.loadBackupInfo(storage, layout, warn: log.warn)
        let control = try PGControl.read(dataDirectory: options.dataDirectory)
        try StanzaCheck.verify(control: control, dataDirectory: options.dataDirectory,
                               archiveInfo: archiveInfo, backupInfo: backupInfo, stanza: layout.stanza)

        let session = try PGSession(options.connection, applicationName: "pgkeep backup")
        try ServerCheck.verifyForBackup(session, dataDirectory: options.dataDirectory, log: log)

        let prior = try findPrior(info: backupInfo, control: control)
        let type = prior == nil ? BackupType.full : options.type
        let resumed = try takeOverInterrupted(info: backupInfo, type: type, prior: prior?.backup.label, control: control)
        let label = try resumed?.backup.label ?? nextLabel(after: backupInfo, type: type, full: prior?.backup.label.fullLabel)
        log.info("backup \(label) (\(type.rawValue)\(prior.map { ", prior \($0.backup.label)" } ?? "")) of stanza '\(layout.stanza)' \(resumed == nil ? "starting" : "resuming")")
        try session.query("SET search_path = pg_catalog")
        try session.query("SET max_parallel_workers_per_gather = 0")

        let startTime = Clock.now()
        guard let startText = try session.value("SELECT pg_backup_start($1, $2)::text",
                                                ["pgkeep backup \(label)", options.startFast ? "true" : "false"]),
              let startLSN = LSN(startText) else {
            throw PGKeepError(.dbQuery, "pg_backup_start returned no start LSN")
        }
        log.info("backup start LSN \(startLSN)")
        do {
            return try copyAndFinish(session: session, label: label, type: type, prior: prior, resumed: resumed, startLSN: startLSN,
                                     startTime: startTime, archiveInfo: archiveInfo, backupInfo: &backupInfo)
        } catch {
            // End the backup in the server if the session still works; the partial directory has
            // no backup.info entry, so no reader takes it for a backup.
            _ = try? session.query("SELECT pg_backup_stop(false)")
            throw error
        }
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

    private func copyAndFinish(session: PGSession, label: BackupLabel, type: BackupType, prior: PriorManifest?, resumed: Manifest?, startLSN: LSN,
                               startTime: Int64, archiveInfo: ArchiveInfo, backupInfo: inout BackupInfo) throws -> BackupSummary {
        // The checkpoint pg_backup_start waited for must be visible in pg_control on disk: proves
        // we read the same storage the server writes (and gives the timeline).
        let control = try PGControl.read(dataDirectory: options.dataDirectory)
        guard control.checkpoint >= startLSN else {
            throw PGKeepError(.pgControlInvalid,
                              "pg_control in '\(options.dataDirectory)' shows checkpoint \(control.checkpoint), before the backup start \(startLSN)",
                              hint: "--pg1-path must be the data directory of the server pgkeep connects to")
        }
        let timeline = control.timeline
        let segmentSize = control.walSegmentSize

        let databases = try session.query("SELECT oid::text, datname FROM pg_database ORDER BY oid").map {
            Manifest.DatabaseEntry(oid: UInt32($0[0] ?? "0") ?? 0, name: $0[1] ?? "")
        }
        var tablespaces: [UInt32: (name: String, location: String)] = [:]
        for row in try session.query("SELECT oid::text, spcname, pg_tablespace_location(oid) FROM pg_tablespace WHERE oid >= 16384") {
            if let oid = UInt32(row[0] ?? ""), let name = row[1] { tablespaces[oid] = (name, row[2] ?? "") }
        }

        let copyStart = Self.copyStart(listingAt: Clock.nowPrecise())

        var walker = ClusterWalker(dataDirectory: options.dataDirectory, version: control.version, tablespaces: tablespaces)
        let listing = try walker.walk()
        let listedAt = Clock.now()
        for path in listing.skippedSpecial { log.warn("skipping special file '\(path)'") }

        var manifest = Manifest(
            backup: .init(label: label, type: type, prior: prior?.backup.label, timestampStart: startTime, timestampStop: startTime,
                          lsnStart: startLSN, lsnStop: startLSN, walStart: "", walStop: "", timeline: timeline.rawValue,
                          timestampCopyStart: copyStart),
            database: .init(id: backupInfo.current.id, systemIdentifier: control.systemIdentifier, version: control.version.major,
                            controlVersion: control.controlVersion, catalogVersion: control.catalogVersion,
                            walSegmentSize: UInt32(segmentSize.bytes), pageChecksums: control.dataChecksumVersion != 0),
            options: .init(compressType: options.compression, compressLevel: options.compressLevel,
                           bufferSize: options.bufferSize, processMax: options.processMax, startFast: options.startFast,
                           bundle: options.bundle.enabled, bundleLimit: options.bundle.enabled ? options.bundle.limit : nil,
                           bundleSize: options.bundle.enabled ? options.bundle.size : nil))
        manifest.databases = databases
        manifest.targets = listing.targets
        manifest.paths = listing.paths
        manifest.links = listing.links
        if listing.targets.contains(where: { $0.kind == .link }) { manifest.format = RepositoryFormat.linkTargets }

        // Decide what to copy, then copy it.
        let plan = prior.map { IncrementalPlan.make(files: listing.files, prior: $0, listedAt: listedAt, delta: options.delta,
                                                    timeline: timeline.rawValue) }
        if let plan, plan.checksumMode {
            log.info("comparing checksums of files whose size is unchanged: \(plan.checksumReasons.joined(separator: "; "))")
        }
        let mover = Mover(storage: storage, processMax: options.processMax, bufferSize: options.bufferSize)
        // With data checksums on, every relation file's pages are verified as they are copied.
        func pageCheck(_ name: String) -> FileJob.PageCheck? {
            guard control.dataChecksumVersion != 0, let segment = PageChecksum.relationSegment(manifestName: name) else { return nil }
            return .init(startLSN: startLSN.value, segment: segment, relsegSize: control.relsegSize)
        }
        // The entries so far, the original bytes this backup copied, and the other backups that
        // hold objects it needs (beyond the entries' references).
        var outcomes = BackupFileTable(fileCount: listing.files.count)
        var copiedBytes: UInt64 = 0
        var references = Set<BackupLabel>()
        for (index, file) in listing.files.enumerated() {
            if case .reference(let entry) = plan?.actions[index] {
                try outcomes.set(index, reused(entry, as: file))
            }
        }
        var resumedCount = 0
        if let resumed {
            resumedCount = try reuseInterrupted(resumed, label: label, files: listing.files, checksumMode: plan?.checksumMode ?? false,
                                                hasPrior: prior != nil, outcomes: &outcomes, copiedBytes: &copiedBytes)
        }
        let partial = PartialManifest(manifest: manifest, path: try layout.partialManifest(label: label), storage: storage,
                                      totalBytes: listing.files.reduce(0) { $0 + $1.size })
        try partial.save(outcomes.entries(listing.files))

        var jobs: [FileJob] = []
        jobs.reserveCapacity(listing.files.count)
        // Files to bundle, by listing index; their jobs are made bundle by bundle (`bundleJobs`).
        var toBundle: [Int] = []
        for (index, file) in listing.files.enumerated() {
            let action = plan?.actions[index] ?? .copy
            let priorEntry = action.prior
            if outcomes.contains(index) { continue }  // referenced or resumed
            let verify: Bool
            if case .verify = action { verify = true } else { verify = false }
            if file.size >= BlockIncremental.minimumFileSize {
                var blocks = FileJob.StoreBlocks(
                    source: file.path, limit: file.size, label: label,
                    blockObject: try layout.blockObject(label: label, name: file.name),
                    blockMap: try layout.blockMap(label: label, name: file.name), blockSize: BlockIncremental.blockSize,
                    compression: options.compression, compressLevel: options.compressLevel, prior: nil)
                blocks.pageCheck = pageCheck(file.name)
                if let priorEntry, let mapSize = priorEntry.blockMapSize, let mapChecksum = priorEntry.blockMapChecksum {
                    blocks.prior = .init(map: try layout.blockMap(label: priorEntry.reference, name: file.name),
                                         mapSize: mapSize, mapChecksum: mapChecksum, size: priorEntry.size, checksum: priorEntry.checksum)
                } else if verify, let priorEntry {
                    blocks.unchangedSize = priorEntry.size
                    blocks.unchangedChecksum = priorEntry.checksum
                }
                jobs.append(FileJob(id: index, operation: .storeBlocks(blocks), size: file.size))
            } else if options.bundle.bundles(size: file.size) {
                toBundle.append(index)
            } else {
                var store = FileJob.StoreFile(
                    source: file.path,
                    destination: try layout.backupFile(label: label, name: file.name, compression: options.compression),
                    limit: file.size, compression: options.compression, compressLevel: options.compressLevel)
                store.pageCheck = pageCheck(file.name)
                if verify, let priorEntry {
                    store.unchangedSize = priorEntry.size
                    store.unchangedChecksum = priorEntry.checksum
                }
                jobs.append(FileJob(id: index, operation: .store(store), size: file.size))
            }
        }
        // Bundle jobs start empty; their members are made when a worker takes the bundle.
        var (bundleJobList, bundleMembers) = try bundleJobs(toBundle, files: listing.files, label: label, firstJobID: listing.files.count)
        jobs += bundleJobList
        bundleJobList = []
        toBundle = []
        func bundleMember(_ index: Int) -> FileJob.BundledFile {
            let file = listing.files[index]
            var bundled = FileJob.BundledFile(id: index, source: file.path, limit: file.size,
                                              compression: options.compression, compressLevel: options.compressLevel)
            bundled.pageCheck = pageCheck(file.name)
            if case .verify = plan?.actions[index], let priorEntry = plan?.actions[index].prior {
                bundled.unchangedSize = priorEntry.size
                bundled.unchangedChecksum = priorEntry.checksum
            }
            return bundled
        }
        func prepare(_ job: FileJob) throws -> FileJob {
            guard case .storeBundle(var bundle) = job.operation, bundle.files.isEmpty else { return job }
            bundle.files = bundleMembers[bundle.bundle - 1].map(bundleMember)
            bundleMembers[bundle.bundle - 1] = []
            return FileJob(id: job.id, operation: .storeBundle(bundle), size: job.size)
        }
        var bundles: [Manifest.BundleEntry] = []
        var vanished = 0
        let progress = ProgressReporter(
            operation: "backup", bytesTotal: listing.files.reduce(0) { $0 + $1.size }, filesTotal: listing.files.count,
            bytesDone: listing.files.indices.reduce(0) { $0 + (outcomes.contains($1) ? listing.files[$1].size : 0) },
            filesDone: outcomes.count, log: log,
            record: (BackupProgressRecord.path(lockPath: options.lockPath, stanza: layout.stanza), label.text))
        var copied = false
        defer { if !copied { progress.finish(success: false) } }
        try mover.run(jobs, prepare: prepare) { job, result in
            if case .storedBundle(let stored) = result {
                if let repoSize = stored.repoSize, let repoChecksum = stored.repoChecksum {
                    bundles.append(.init(id: stored.bundle, repoSize: repoSize, repoChecksum: repoChecksum))
                }
                for item in stored.files {
                    let file = listing.files[item.id]
                    switch item.outcome {
                    case .stored(let offset, let size, let checksum, let repoSize, let repoChecksum, let pageErrors):
                        var entry = Manifest.FileEntry(name: file.name, size: size, mtime: file.mtime, mode: file.mode, user: file.user,
                                                       group: file.group, checksum: checksum, repoSize: repoSize, repoChecksum: repoChecksum,
                                                       compression: self.options.compression, reference: label)
                        entry.bundle = stored.bundle
                        entry.bundleOffset = offset
                        entry.pageChecksumErrors = pageErrors.isEmpty ? nil : pageErrors
                        try outcomes.set(item.id, entry)
                        copiedBytes += size
                    case .unchanged:
                        guard let priorEntry = plan?.actions[item.id].prior else {
                            throw PGKeepError(.internal, "'\(file.path)' reported unchanged without a prior backup entry")
                        }
                        try outcomes.set(item.id, self.reused(priorEntry, as: file))
                    case .vanished:
                        vanished += 1
                        self.log.detail("skip file removed by database '\(file.path)'")
                    }
                }
                return
            }
            let file = listing.files[job.id]
            defer {
                progress.advance(bytes: file.size)
                partial.stored(bytes: file.size) { outcomes.entries(listing.files) }
            }
            let base = Manifest.FileEntry(name: file.name, size: 0, mtime: file.mtime, mode: file.mode, user: file.user,
                                          group: file.group, checksum: .zero, repoSize: 0, repoChecksum: .zero,
                                          compression: self.options.compression, reference: label)
            switch result {
            case .stored(let size, let checksum, let repoSize, let repoChecksum, let pageErrors):
                var entry = base
                entry.pageChecksumErrors = pageErrors.isEmpty ? nil : pageErrors
                entry.size = size
                entry.checksum = checksum
                entry.repoSize = repoSize
                entry.repoChecksum = repoChecksum
                try outcomes.set(job.id, entry)
                copiedBytes += size
            case .storedBlocks(let stored):
                var entry = base
                entry.pageChecksumErrors = stored.pageErrors.isEmpty ? nil : stored.pageErrors
                entry.size = stored.size
                entry.checksum = stored.checksum
                entry.repoSize = stored.repoSize
                entry.repoChecksum = stored.repoChecksum
                entry.blockSize = stored.blockSize
                entry.blockMapSize = stored.mapSize
                entry.blockMapChecksum = stored.mapChecksum
                try outcomes.set(job.id, entry)
                copiedBytes += stored.changedBytes
                references.formUnion(stored.otherLabels)
            case .unchanged:
                guard let priorEntry = plan?.actions[job.id].prior else {
                    throw PGKeepError(.internal, "'\(file.path)' reported unchanged without a prior backup entry")
                }
                try outcomes.set(job.id, self.reused(priorEntry, as: file))
            case .vanished:
                vanished += 1
                self.log.detail("skip file removed by database '\(file.path)'")
            case .restored, .kept, .verified, .storedBundle, .restoredBundle, .verifiedBundle:
                break
            }
        }
        copied = true
        progress.finish(success: true)
        // The listed files' entries stay in the compact table; `manifest.files` gets only the files
        // stored from memory below, and the manifest is written from both (`allFiles`).
        let listed = outcomes
        let listedFiles = listing.files
        func allFiles() -> some Sequence<Manifest.FileEntry> {
            [AnySequence(listed.entries(listedFiles)), AnySequence(manifest.files)].joined()
        }
        manifest.bundles = bundles.isEmpty ? nil : bundles.sorted { $0.id < $1.id }
        // Damaged pages are reported, not fatal: the backup still holds what the disk holds, and
        // the operator must hear which blocks to look at (pgBackRest's checksum-page behaviour).
        for (index, blocks) in outcomes.damagedPages where !blocks.isEmpty {
            guard let entry = outcomes.entry(index, file: listing.files[index]), entry.reference == label else { continue }
            log.warn("invalid page checksums found in file '\(entry.name)' at block\(blocks.count == 1 ? "" : "s") \(blocks.map(String.init).joined(separator: ", "))")
        }
        references.formUnion(outcomes.references)
        // A reused block-incremental entry's map may use any backup its own backup referenced (and
        // a resumed one any backup the prior referenced).
        if let prior, outcomes.containsBlockIncremental(where: { $0 != label || resumed != nil }) {
            references.formUnion(prior.backup.references ?? [])
            references.insert(prior.backup.label)
        }
        references.remove(label)
        let copiedCount = outcomes.count(referencing: label)
        log.info("copied \(copiedCount) files\(resumedCount > 0 ? " (\(resumedCount) of them by the interrupted run)" : ""), referenced \(outcomes.count - copiedCount) unchanged\(vanished > 0 ? " (\(vanished) removed by the database meanwhile)" : "")")

        // pg_control last, from a CRC-checked read.
        let controlPath = Posix.join(options.dataDirectory, "global/pg_control")
        let controlBytes = try PGControl.readWithBytes(path: controlPath).bytes
        guard let controlStatus = try Posix.lstat(controlPath) else {
            throw PGKeepError(.fileMissing, "'\(controlPath)' vanished during the backup")
        }
        copiedBytes += UInt64(controlBytes.count)
        manifest.files.append(try storeInline(controlBytes, name: "pg_data/global/pg_control", label: label,
                                              mode: controlStatus.mode, mtime: controlStatus.mtime,
                                              user: walker.owners.user(controlStatus.uid), group: walker.owners.group(controlStatus.gid), mover: mover))

        // Stop the backup and keep what the server says the restored cluster needs.
        let stopRows = try session.query("SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)")
        guard stopRows.count == 1, let stopText = stopRows[0][0], let stopLSN = LSN(stopText), let labelFile = stopRows[0][1] else {
            throw PGKeepError(.dbQuery, "pg_backup_stop returned an unexpected result")
        }
        let stopTime = Clock.now()
        let dataDirectoryOwner = try Posix.lstat(options.dataDirectory)
        let ownerUser = dataDirectoryOwner.flatMap { walker.owners.user($0.uid) }
        let ownerGroup = dataDirectoryOwner.flatMap { walker.owners.group($0.gid) }
        copiedBytes += UInt64(labelFile.utf8.count)
        manifest.files.append(try storeInline(Array(labelFile.utf8), name: "pg_data/backup_label", label: label,
                                              mode: 0o600, mtime: stopTime, user: ownerUser, group: ownerGroup, mover: mover))
        if let map = stopRows[0][2], !map.isEmpty {
            copiedBytes += UInt64(map.utf8.count)
            manifest.files.append(try storeInline(Array(map.utf8), name: "pg_data/tablespace_map", label: label,
                                                  mode: 0o600, mtime: stopTime, user: ownerUser, group: ownerGroup, mover: mover))
        }

        let walStart = WALSegmentName.segment(containing: startLSN, timeline: timeline, segmentSize: segmentSize)
        guard let walStop = WALSegmentName.segment(endingAt: stopLSN, timeline: timeline, segmentSize: segmentSize) else {
            throw PGKeepError(.dbQuery, "pg_backup_stop returned an invalid stop LSN \(stopLSN)")
        }
        manifest.backup.timestampStop = stopTime
        manifest.backup.lsnStop = stopLSN
        manifest.backup.walStart = walStart.name
        manifest.backup.walStop = walStop.name
        log.info("backup stop LSN \(stopLSN); waiting for WAL \(walStart.name) ... \(walStop.name) to reach the archive")

        try ArchiveWait.waitForSegments(from: walStart, through: walStop, archiveID: archiveInfo.current.archiveID,
                                        storage: storage, layout: layout, timeout: options.archiveTimeout)

        let referenceList = references.sorted()
        manifest.backup.references = referenceList.isEmpty ? nil : referenceList
        try manifest.save(files: allFiles(), to: try layout.manifest(label: label), in: storage)
        // The commit point: only while this backup still holds the stanza's lease (no other host
        // took it over while this one stalled). Re-read under it, so nothing another command wrote
        // meanwhile is lost.
        try lease?.confirm()
        backupInfo = try InfoFiles.loadBackupInfo(storage, layout, warn: log.warn)
        let referencedRepoSize = backupInfo.backups.filter { references.contains($0.label) }.reduce(UInt64(0)) { $0 + $1.repoSize }
        let summary = BackupSummary(manifest: manifest, files: allFiles(), sizeDelta: copiedBytes, referencedRepoSize: referencedRepoSize)
        backupInfo.backups.append(summary)
        try SealedFile.save(backupInfo, to: layout.backupInfo, in: storage)
        // The backup exists now; its partial manifest has served its purpose.
        do { try storage.remove(try layout.partialManifest(label: label)) } catch {
            log.warn("unable to remove the partial manifest of backup \(label): \(error)")
        }
        log.info("backup \(label) complete: \(summary.fileCount) files, \(summary.size) bytes, \(summary.repoSize) bytes in the repository")
        return summary
    }

    /// Resume (§4.2): the files of the interrupted backup that `BackupResume` allows to stand are
    /// put in `outcomes`; every other object in the directory is removed before copying starts.
    private func reuseInterrupted(_ resumed: Manifest, label: BackupLabel, files: ClusterWalker.FileList, checksumMode: Bool,
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
            try outcomes.set(candidate.index, reused(entry, as: files[candidate.index]))
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

    /// Bundle jobs for the small files (listing order is name order), numbered from 1; job ids
    /// continue after the listing's indexes. The jobs have no members yet: `members[n - 1]` lists
    /// the listing indexes of bundle n, made into `BundledFile`s when a worker takes it.
    private func bundleJobs(_ files: [Int], files listed: ClusterWalker.FileList, label: BackupLabel,
                            firstJobID: Int) throws -> (jobs: [FileJob], members: [[Int]]) {
        guard !files.isEmpty else { return ([], []) }
        let groups = BundlePlan.group(files.map { ($0, listed[$0].size) }, bundleSize: options.bundle.size,
                                      processMax: options.processMax)
        var jobs: [FileJob] = []
        for (index, group) in groups.enumerated() {
            let bundle = FileJob.StoreBundle(bundle: index + 1, destination: try layout.bundle(label: label, id: index + 1), files: [])
            jobs.append(FileJob(id: firstJobID + index, operation: .storeBundle(bundle),
                                size: group.reduce(UInt64(0)) { $0 + listed[$1].size }))
        }
        log.detail("\(files.count) small files go into \(jobs.count) bundles")
        return (jobs, groups)
    }

    /// Stores bytes held in memory (pg_control, backup_label, tablespace_map) through the same
    /// filters as every other file.
    private func storeInline(_ bytes: [UInt8], name: String, label: BackupLabel, mode: UInt32, mtime: Int64,
                             user: String?, group: String?, mover: Mover) throws -> Manifest.FileEntry {
        let destination = try layout.backupFile(label: label, name: name, compression: options.compression)
        let result = try mover.store(bytes: bytes, destination: destination,
                                     compression: options.compression, compressLevel: options.compressLevel)
        return Manifest.FileEntry(name: name, size: UInt64(bytes.count), mtime: mtime, mode: mode, user: user, group: group,
                                  checksum: result.checksum, repoSize: result.repoSize, repoChecksum: result.repoChecksum,
                                  compression: options.compression, reference: label)
    }

    /// The prior entry for a file found unchanged: same stored object, current attributes.
    private func reused(_ entry: Manifest.FileEntry, as file: ClusterWalker.ListedFile) -> Manifest.FileEntry {
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
final class PartialManifest {
    private let manifest: Manifest
    let path: StoragePath
    let storage: Storage
    let threshold: UInt64
    private var unsaved: UInt64 = 0
    private var unsavedFiles = 0
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
        guard unsaved >= threshold || Clock.monotonic() - lastSave >= 10 else { return }
        // A failed save loses nothing but resumability; the copy itself will meet the same
        // problem (a full disk) and fail with a clear error.
        try? save(entries())
    }
}
