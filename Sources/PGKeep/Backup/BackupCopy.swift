import SystemPackage
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepMover

/// Steps 3 to 5 of a backup (`BackupRun`'s list): between `pg_backup_start` and the manifest.
/// One instance per backup; `run` calls one method per step:
///
/// 1. `readStartCheckpoint`: pg_control on the host must show the checkpoint the start waited for.
/// 2. `listCluster`: databases and tablespaces from the server, then the data directory's files.
/// 3. `makeManifest` and `planIncremental`: the manifest so far; what diff/incr may reference.
/// 4. `reuseInterrupted` (a resumed backup) and `copyFiles`: workers copy the rest; each result
///    becomes the file's entry through `record`.
/// 5. `collectReferences`: damaged pages reported, the other backups this one needs.
/// 6. `storeControlFile` and `stopBackup`: pg_control last, then `pg_backup_stop` and the files
///    it returns, stored byte for byte.
final class BackupCopy {
    let run: BackupRun
    let session: PostgresSQL
    let label: BackupLabel
    let type: BackupType
    let prior: PriorManifest?
    let resumed: Manifest?
    let startLSN: LSN
    let startTime: Int64

    private var options: BackupOptions { run.options }
    private var host: PostgresHost { run.host }
    private var log: Log { run.log }

    // Filled in as the steps run.
    private(set) var manifest: Manifest!
    private var control: PGControl!
    private var walker: ClusterWalker!
    private var listing = ClusterWalker.Listing()
    private var listedAt: Int64 = 0
    private var copyStart: Int64 = 0
    private var databases: [PGDatabase] = []
    private var plan: IncrementalPlan?
    private var mover: Mover!
    /// The entries so far (listed files), the original bytes this backup copied, and the other
    /// backups that hold objects it needs (beyond the entries' references).
    private(set) var outcomes = BackupFileTable(fileCount: 0)
    private(set) var copiedBytes: UInt64 = 0
    private(set) var references = Set<BackupLabel>()
    private var bundles: [Manifest.BundleEntry] = []
    private var vanished = 0
    private var resumedCount = 0
    /// The first and last WAL segment the backup needs, once it has stopped.
    private(set) var walRange: (first: WALSegmentName, last: WALSegmentName)?

    init(run: BackupRun, session: PostgresSQL, label: BackupLabel, type: BackupType, prior: PriorManifest?,
         resumed: Manifest?, startLSN: LSN, startTime: Int64) {
        self.run = run
        self.session = session
        self.label = label
        self.type = type
        self.prior = prior
        self.resumed = resumed
        self.startLSN = startLSN
        self.startTime = startTime
    }

    /// Runs the steps; returns the manifest (stop LSN and WAL range set) and its file entries.
    func run(databaseID: Int) throws -> Manifest {
        try readStartCheckpoint()
        try listCluster()
        makeManifest(databaseID: databaseID)
        planIncremental()
        let partial = try startPartialManifest()
        try copyFiles(partial: partial)
        collectReferences()
        try storeControlFile()
        try stopBackup()
        return manifest
    }

    /// Every file entry of the manifest: the listed files' (kept in the compact table), then the
    /// ones stored from memory (`manifest.files`).
    func allFiles() -> some Sequence<Manifest.FileEntry> {
        [AnySequence(outcomes.entries(listing.files)), AnySequence(manifest.files)].joined()
    }

    // MARK: Steps

    /// The checkpoint pg_backup_start waited for must be visible in pg_control on disk: proves
    /// we read the same storage the server writes (and gives the timeline).
    private func readStartCheckpoint() throws {
        let control = try PGControl.read(from: host, dataDirectory: options.dataDirectory).control
        guard control.checkpoint >= startLSN else {
            throw PGKeepError(.pgControlInvalid,
                              "pg_control in '\(options.dataDirectory)' shows checkpoint \(control.checkpoint), before the backup start \(startLSN)",
                              hint: "--pg1-path must be the data directory of the server pgkeep connects to")
        }
        self.control = control
    }

    /// Lists the cluster: the copy start is taken before the listing begins (`BackupRun.copyStart`).
    private func listCluster() throws {
        if options.checksumPage == true && control.dataChecksumVersion == 0 {
            log.warn("--checksum-page is set, but the cluster in '\(options.dataDirectory)' has no data checksums (initdb --data-checksums, or pg_checksums --enable): pages are not verified")
        }
        databases = try session.databases()
        let tablespaces = try session.tablespaces()
        copyStart = BackupRun.copyStart(listingAt: Clock.nowPrecise())
        walker = ClusterWalker(host: host, dataDirectory: options.dataDirectory, version: control.version, tablespaces: tablespaces,
                               exclusions: try ClusterWalker.Exclusions(options.exclude))
        listing = try walker.walk()
        listedAt = Clock.now()
        for path in listing.skippedSpecial { log.warn("skipping special file '\(path)'") }
        for path in listing.excluded { log.info("'\(path)' left out of the backup (--exclude)") }
        outcomes = BackupFileTable(fileCount: listing.files.count)
    }

    private func makeManifest(databaseID: Int) {
        var manifest = Manifest(
            backup: .init(label: label, type: type, prior: prior?.backup.label, timestampStart: startTime, timestampStop: startTime,
                          lsnStart: startLSN, lsnStop: startLSN, walStart: "", walStop: "", timeline: control.timeline.rawValue,
                          timestampCopyStart: copyStart),
            database: .init(id: databaseID, systemIdentifier: control.systemIdentifier, version: control.version.major,
                            controlVersion: control.controlVersion, catalogVersion: control.catalogVersion,
                            walSegmentSize: UInt32(control.walSegmentSize.bytes), pageChecksums: control.dataChecksumVersion != 0),
            options: .init(compressType: options.compression, compressLevel: options.compressLevel,
                           bufferSize: options.bufferSize, processMax: options.processMax, startFast: options.startFast,
                           bundle: options.bundle.enabled, bundleLimit: options.bundle.enabled ? options.bundle.limit : nil,
                           bundleSize: options.bundle.enabled ? options.bundle.size : nil))
        manifest.options.archiveCheck = options.archiveCheck
        manifest.options.archiveCopy = options.archiveCopy
        manifest.options.checksumPage = options.checksumPage
        manifest.options.exclude = options.exclude.isEmpty ? nil : options.exclude
        manifest.annotation = options.annotation.isEmpty ? nil : options.annotation
        manifest.backup.pgkeepVersion = PGKeepVersion.current
        manifest.databases = databases.map { Manifest.DatabaseEntry(oid: $0.oid, name: $0.name) }
        manifest.targets = listing.targets
        manifest.paths = listing.paths
        manifest.links = listing.links
        if listing.targets.contains(where: { $0.kind == .link }) { manifest.format = RepositoryFormat.linkTargets }
        self.manifest = manifest
    }

    /// Diff/incr: which files the prior backup's entries still describe.
    private func planIncremental() {
        plan = prior.map { IncrementalPlan.make(files: listing.files, prior: $0, listedAt: listedAt, delta: options.delta,
                                                timeline: control.timeline.rawValue) }
        if let plan, plan.checksumMode {
            log.info("comparing checksums of files whose size is unchanged: \(plan.checksumReasons.joined(separator: "; "))")
        }
    }

    /// Entries referenced from the prior and reused from an interrupted run go into the table
    /// before anything is copied, and the partial manifest records them.
    private func startPartialManifest() throws -> PartialManifest {
        for (index, file) in listing.files.enumerated() {
            if case .reference(let entry) = plan?.actions[index] {
                try outcomes.set(index, BackupRun.reused(entry, as: file))
            }
        }
        if let resumed {
            resumedCount = try run.reuseInterrupted(resumed, label: label, files: listing.files, checksumMode: plan?.checksumMode ?? false,
                                                    hasPrior: prior != nil, outcomes: &outcomes, copiedBytes: &copiedBytes)
        }
        let partial = PartialManifest(manifest: manifest, path: try run.layout.partialManifest(label: label), storage: run.storage,
                                      totalBytes: listing.files.reduce(0) { $0 + $1.size })
        try partial.save(outcomes.entries(listing.files))
        return partial
    }

    /// Copies every file not yet in the table with `--process-max` workers, largest first.
    private func copyFiles(partial: PartialManifest) throws {
        mover = Mover(storage: run.storage, host: host, processMax: options.processMax, bufferSize: options.bufferSize)
        var jobs = BackupJobs(copy: self)
        try jobs.make()
        let progress = ProgressReporter(
            operation: "backup", bytesTotal: listing.files.reduce(0) { $0 + $1.size }, filesTotal: listing.files.count,
            bytesDone: listing.files.indices.reduce(0) { $0 + (outcomes.contains($1) ? listing.files[$1].size : 0) },
            filesDone: outcomes.count, log: log,
            record: (BackupProgressRecord.path(lockPath: options.lockPath, stanza: run.layout.stanza), label.text))
        var copied = false
        defer { if !copied { progress.finish(success: false) } }
        try mover.run(jobs.jobs, prepare: { try jobs.prepare($0) }) { job, result in
            for (index, outcome) in try self.outcomes(of: job, result) {
                try self.record(index, outcome)
                let size = self.listing.files[index].size
                progress.advance(bytes: size)
                partial.stored(bytes: size) { self.outcomes.entries(self.listing.files) }
            }
        }
        copied = true
        progress.finish(success: true)
        let copiedCount = outcomes.count(referencing: label)
        // The counts add up to the progress line's total; pg_control and backup_label (and
        // tablespace_map) follow, which is why the backup's final line counts two or three more.
        log.info("copied \(copiedCount) files\(resumedCount > 0 ? " (\(resumedCount) of them by the interrupted run)" : ""), referenced \(outcomes.count - copiedCount) unchanged\(vanished > 0 ? " (\(vanished) removed by the database meanwhile)" : ""); pg_control and backup_label follow")
    }

    /// Damaged pages are reported, not fatal: the backup still holds what the disk holds, and the
    /// operator must hear which blocks to look at (pgBackRest's checksum-page behaviour). Then the
    /// other backups this one's entries and block maps need.
    private func collectReferences() {
        manifest.bundles = bundles.isEmpty ? nil : bundles.sorted { $0.id < $1.id }
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
    }

    /// pg_control last, from a CRC-checked read.
    private func storeControlFile() throws {
        let controlPath = options.dataDirectory.joined(PGControl.relativePath)
        let controlBytes = try PGControl.read(from: host, dataDirectory: options.dataDirectory).bytes
        guard let status = try host.status(controlPath) else {
            throw PGKeepError(.fileMissing, "'\(controlPath)' vanished during the backup")
        }
        try storeInline(controlBytes, name: "pg_data/global/pg_control", mode: status.mode, mtime: status.mtime,
                        user: walker.owners.user(status.uid), group: walker.owners.group(status.gid))
    }

    /// Stops the backup and keeps what the server says the restored cluster needs, owned like
    /// the data directory.
    private func stopBackup() throws {
        let stop = try session.stopBackup()
        let stopTime = Clock.now()
        let owner = try host.status(options.dataDirectory)
        let user = owner.flatMap { walker.owners.user($0.uid) }
        let group = owner.flatMap { walker.owners.group($0.gid) }
        try storeInline(Array(stop.labelFile.utf8), name: "pg_data/backup_label", mode: 0o600, mtime: stopTime, user: user, group: group)
        if let map = stop.tablespaceMap {
            try storeInline(Array(map.utf8), name: "pg_data/tablespace_map", mode: 0o600, mtime: stopTime, user: user, group: group)
        }
        let timeline = control.timeline
        let segmentSize = control.walSegmentSize
        let walStart = WALSegmentName.segment(containing: startLSN, timeline: timeline, segmentSize: segmentSize)
        guard let walStop = WALSegmentName.segment(endingAt: stop.lsn, timeline: timeline, segmentSize: segmentSize) else {
            throw PGKeepError(.dbQuery, "pg_backup_stop returned an invalid stop LSN \(stop.lsn)")
        }
        manifest.backup.timestampStop = stopTime
        manifest.backup.lsnStop = stop.lsn
        manifest.backup.walStart = walStart.name
        manifest.backup.walStop = walStop.name
        walRange = (walStart, walStop)
    }

    // MARK: Results

    /// What a job's result says of each listed file it covered: a bundle speaks for its members.
    private func outcomes(of job: FileJob, _ result: FileJobResult) throws -> [(Int, CopyOutcome)] {
        switch result {
        case .storedBundle(let stored):
            if let repoSize = stored.repoSize, let repoChecksum = stored.repoChecksum {
                bundles.append(.init(id: stored.bundle, repoSize: repoSize, repoChecksum: repoChecksum))
            }
            return stored.files.map { item in
                switch item.outcome {
                case .stored(let offset, let size, let checksum, let repoSize, let repoChecksum, let pageErrors):
                    var object = CopyOutcome.Stored(size: size, checksum: checksum, repoSize: repoSize, repoChecksum: repoChecksum,
                                                    pageErrors: pageErrors, copiedBytes: size)
                    object.bundle = (stored.bundle, offset)
                    return (item.id, .stored(object))
                case .unchanged: return (item.id, .unchanged)
                case .vanished: return (item.id, .vanished)
                }
            }
        case .stored(let size, let checksum, let repoSize, let repoChecksum, let pageErrors):
            return [(job.id, .stored(.init(size: size, checksum: checksum, repoSize: repoSize, repoChecksum: repoChecksum,
                                           pageErrors: pageErrors, copiedBytes: size)))]
        case .storedBlocks(let stored):
            var object = CopyOutcome.Stored(size: stored.size, checksum: stored.checksum, repoSize: stored.repoSize,
                                            repoChecksum: stored.repoChecksum, pageErrors: stored.pageErrors,
                                            copiedBytes: stored.changedBytes)
            object.blocks = (stored.blockSize, stored.mapSize, stored.mapChecksum)
            references.formUnion(stored.otherLabels)
            return [(job.id, .stored(object))]
        case .unchanged: return [(job.id, .unchanged)]
        case .vanished: return [(job.id, .vanished)]
        case .restored, .kept, .zeroFilled, .verified, .restoredBundle, .verifiedBundle:
            throw PGKeepError(.internal, "a backup job of '\(listing.files[job.id].path)' returned a restore or verify result")
        }
    }

    /// The one place a copied file's outcome becomes its manifest entry.
    private func record(_ index: Int, _ outcome: CopyOutcome) throws {
        let file = listing.files[index]
        switch outcome {
        case .stored(let object):
            var entry = Manifest.FileEntry(name: file.name, size: object.size, mtime: file.mtime, mode: file.mode, user: file.user,
                                           group: file.group, checksum: object.checksum, repoSize: object.repoSize,
                                           repoChecksum: object.repoChecksum, compression: options.compression, reference: label)
            entry.pageChecksumErrors = object.pageErrors.isEmpty ? nil : object.pageErrors
            if let bundle = object.bundle {
                entry.bundle = bundle.id
                entry.bundleOffset = bundle.offset
            }
            if let blocks = object.blocks {
                entry.blockSize = blocks.blockSize
                entry.blockMapSize = blocks.mapSize
                entry.blockMapChecksum = blocks.mapChecksum
            }
            try outcomes.set(index, entry)
            copiedBytes += object.copiedBytes
        case .unchanged:
            guard let priorEntry = plan?.actions[index].prior else {
                throw PGKeepError(.internal, "'\(file.path)' reported unchanged without a prior backup entry")
            }
            try outcomes.set(index, BackupRun.reused(priorEntry, as: file))
        case .vanished:
            vanished += 1
            log.detail("skip file removed by database '\(file.path)'")
        }
    }

    /// `--archive-copy`: the archived WAL from start to stop, copied verbatim (in the compression
    /// it was archived with) into the backup as `pg_data/pg_wal/<segment>`, each checked against
    /// the SHA-256 its archive name carries. A restore then writes them into pg_wal, where
    /// recovery finds them when the archive does not have them. Runs after the archive wait.
    func storeArchivedWAL(archiveID: String) throws {
        guard let (first, last) = walRange else { throw PGKeepError(.internal, "backup \(label) has no WAL range") }
        let owner = manifest.paths.first { $0.name == "pg_data" }
        let stopTime = manifest.backup.timestampStop
        for segment in Array(first.through(last) ?? WALSegmentRange(timeline: first.timeline, segmentSize: first.segmentSize,
                                                                    first: first.segmentNumber, last: first.segmentNumber)) {
            guard let archived = try ArchiveLookup.find(walFile: segment.name, archiveID: archiveID, storage: run.storage, layout: run.layout).first else {
                throw PGKeepError(.archiveTimeout, "WAL segment \(segment.name) is no longer in the archive, so --archive-copy cannot store it in backup \(label)",
                                  hint: "something removed it after it was archived (an expire of another host?); take the backup again")
            }
            let name = "pg_data/pg_wal/" + segment.name
            let destination = try run.layout.backupFile(label: label, name: name, compression: archived.compression)
            let size = segment.segmentSize.bytes
            let stored = try mover.copyStored(archived.object, compression: archived.compression, to: destination,
                                              size: size, checksum: archived.checksum)
            manifest.files.append(Manifest.FileEntry(name: name, size: size, mtime: stopTime, mode: 0o600, user: owner?.user, group: owner?.group,
                                                     checksum: archived.checksum, repoSize: stored.repoSize, repoChecksum: stored.repoChecksum,
                                                     compression: archived.compression, reference: label))
            copiedBytes += size
        }
        log.info("stored WAL \(first.name) ... \(last.name) in backup \(label) (--archive-copy)")
    }

    /// Stores bytes held in memory (pg_control, backup_label, tablespace_map) through the same
    /// filters as every other file, and adds their entry to the manifest.
    private func storeInline(_ bytes: [UInt8], name: String, mode: UInt32, mtime: Int64, user: String?, group: String?) throws {
        let destination = try run.layout.backupFile(label: label, name: name, compression: options.compression)
        let result = try mover.store(bytes: bytes, destination: destination,
                                     compression: options.compression, compressLevel: options.compressLevel)
        manifest.files.append(Manifest.FileEntry(name: name, size: UInt64(bytes.count), mtime: mtime, mode: mode, user: user, group: group,
                                                 checksum: result.checksum, repoSize: result.repoSize, repoChecksum: result.repoChecksum,
                                                 compression: options.compression, reference: label))
        copiedBytes += UInt64(bytes.count)
    }

    // MARK: Jobs

    /// The jobs for the files still to copy: block-incremental, bundled, or whole.
    struct BackupJobs {
        let copy: BackupCopy
        private(set) var jobs: [FileJob] = []
        /// The listing indexes of bundle n's members at `members[n - 1]`, made into
        /// `BundledFile`s when a worker takes the bundle (`prepare`).
        private var members: [[Int]] = []

        init(copy: BackupCopy) { self.copy = copy }

        mutating func make() throws {
            let files = copy.listing.files
            jobs.reserveCapacity(files.count)
            var toBundle: [Int] = []
            for (index, file) in files.enumerated() where !copy.outcomes.contains(index) {  // not referenced or resumed
                if file.size >= BlockIncremental.minimumFileSize {
                    jobs.append(FileJob(id: index, operation: .storeBlocks(try blocksJob(index, file)), size: file.size))
                } else if copy.options.bundle.bundles(size: file.size) {
                    toBundle.append(index)
                } else {
                    jobs.append(FileJob(id: index, operation: .store(try fileJob(index, file)), size: file.size))
                }
            }
            try makeBundles(toBundle, firstJobID: files.count)
        }

        /// A bundle job gets its members when a worker takes it (under the mover's lock): a backup
        /// of a million small files holds only the bundles in progress.
        mutating func prepare(_ job: FileJob) throws -> FileJob {
            guard case .storeBundle(var bundle) = job.operation, bundle.files.isEmpty else { return job }
            bundle.files = members[bundle.bundle - 1].map(bundledFile)
            members[bundle.bundle - 1] = []
            return FileJob(id: job.id, operation: .storeBundle(bundle), size: job.size)
        }

        /// The prior entry a checksum-mode file is compared with, when its action is `verify`.
        private func unchangedCandidate(_ index: Int) -> Manifest.FileEntry? {
            guard case .verify = copy.plan?.actions[index] else { return nil }
            return copy.plan?.actions[index].prior
        }

        /// With data checksums on, every relation file's pages are verified as they are copied
        /// (unless `--no-checksum-page`).
        private func pageCheck(_ name: String) -> FileJob.PageCheck? {
            guard copy.options.checksumPage ?? true, copy.control.dataChecksumVersion != 0,
                  let segment = PageChecksum.relationSegment(manifestName: name) else { return nil }
            return .init(startLSN: copy.startLSN.value, segment: segment, relsegSize: copy.control.relsegSize)
        }

        private func blocksJob(_ index: Int, _ file: ClusterWalker.ListedFile) throws -> FileJob.StoreBlocks {
            let layout = copy.run.layout, label = copy.label, options = copy.options
            var blocks = FileJob.StoreBlocks(
                source: file.path, limit: file.size, label: label,
                blockObject: try layout.blockObject(label: label, name: file.name),
                blockMap: try layout.blockMap(label: label, name: file.name), blockSize: BlockIncremental.blockSize,
                compression: options.compression, compressLevel: options.compressLevel, prior: nil)
            blocks.pageCheck = pageCheck(file.name)
            let priorEntry = copy.plan?.actions[index].prior
            if let priorEntry, let mapSize = priorEntry.blockMapSize, let mapChecksum = priorEntry.blockMapChecksum {
                blocks.prior = .init(map: try layout.blockMap(label: priorEntry.reference, name: file.name),
                                     mapSize: mapSize, mapChecksum: mapChecksum, size: priorEntry.size, checksum: priorEntry.checksum)
            } else if let candidate = unchangedCandidate(index) {
                blocks.unchangedSize = candidate.size
                blocks.unchangedChecksum = candidate.checksum
            }
            return blocks
        }

        private func fileJob(_ index: Int, _ file: ClusterWalker.ListedFile) throws -> FileJob.StoreFile {
            let options = copy.options
            var store = FileJob.StoreFile(
                source: file.path,
                destination: try copy.run.layout.backupFile(label: copy.label, name: file.name, compression: options.compression),
                limit: file.size, compression: options.compression, compressLevel: options.compressLevel)
            store.pageCheck = pageCheck(file.name)
            if let candidate = unchangedCandidate(index) {
                store.unchangedSize = candidate.size
                store.unchangedChecksum = candidate.checksum
            }
            return store
        }

        private func bundledFile(_ index: Int) -> FileJob.BundledFile {
            let file = copy.listing.files[index]
            var bundled = FileJob.BundledFile(id: index, source: file.path, limit: file.size,
                                              compression: copy.options.compression, compressLevel: copy.options.compressLevel)
            bundled.pageCheck = pageCheck(file.name)
            if let candidate = unchangedCandidate(index) {
                bundled.unchangedSize = candidate.size
                bundled.unchangedChecksum = candidate.checksum
            }
            return bundled
        }

        /// Bundle jobs for the small files (listing order is name order), numbered from 1; job ids
        /// continue after the listing's indexes. The jobs have no members yet (`prepare`).
        private mutating func makeBundles(_ indexes: [Int], firstJobID: Int) throws {
            guard !indexes.isEmpty else { return }
            let files = copy.listing.files
            let groups = BundlePlan.group(indexes.map { ($0, files[$0].size) }, bundleSize: copy.options.bundle.size,
                                          processMax: copy.options.processMax)
            for (offset, group) in groups.enumerated() {
                let bundle = FileJob.StoreBundle(bundle: offset + 1, destination: try copy.run.layout.bundle(label: copy.label, id: offset + 1),
                                                 files: [])
                jobs.append(FileJob(id: firstJobID + offset, operation: .storeBundle(bundle),
                                    size: group.reduce(UInt64(0)) { $0 + files[$1].size }))
            }
            members = groups
            copy.log.detail("\(indexes.count) small files go into \(groups.count) bundles")
        }
    }
}

/// What one copied file came to, whatever job copied it (a whole file, blocks, a bundle member).
enum CopyOutcome {
    struct Stored {
        var size: UInt64
        var checksum: SHA256Digest
        var repoSize: UInt64
        var repoChecksum: SHA256Digest
        var pageErrors: [UInt32]
        /// Original bytes this backup copied (a block-incremental file: only its changed blocks).
        var copiedBytes: UInt64
        /// A bundle member: the bundle and the frame's offset in it.
        var bundle: (id: Int, offset: UInt64)?
        /// A block-incremental file: block size, and the map's size and SHA-256.
        var blocks: (blockSize: Int, mapSize: UInt64, mapChecksum: SHA256Digest)?
    }

    case stored(Stored)
    /// Checksum mode found it identical to the prior backup's entry.
    case unchanged
    /// PostgreSQL removed it before it was read; it leaves the manifest.
    case vanished
}
