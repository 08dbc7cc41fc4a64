import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepMover

/// What a verify needs, resolved by the command front.
public struct VerifyOptions: Sendable {
    /// Only this backup (and the WAL it needs).
    public var set: BackupLabel?
    /// Skip what `verify.state` records as proven.
    public var sinceLast: Bool
    public var processMax: Int
    public var bufferSize: Int

    public init(set: BackupLabel?, sinceLast: Bool, processMax: Int, bufferSize: Int) {
        self.set = set
        self.sinceLast = sinceLast
        self.processMax = processMax
        self.bufferSize = bufferSize
    }
}

/// `verify`: proves that what the repository claims to hold can be read back.
///
/// 1. `archive.info`, `backup.info` and their `.copy` twins are each opened and checked: a damaged
///    main file with a good twin is a warning (the twin takes over), both damaged is a problem.
/// 2. Each backup's manifest is loaded (twin fallback as above); each file entry's stored objects
///    (`StoredObjectRequirement`) are resolved: a reference to another backup must name a listed
///    backup whose manifest holds the same stored object.
/// 3. The archive is listed per archive id: every object name must parse, and one WAL name must
///    not have objects with different checksums.
/// 4. The WAL each backup needs (walStart through walStop) must be in the archive.
/// 5. Every stored object (backup files and archived WAL, each once) is re-read by `--process-max`
///    workers through the restore filters: stored size and SHA-256, then decompressed size and
///    SHA-256 (for WAL: the checksum in the object name and the segment size).
/// 6. WAL continuity per timeline (ranges and gaps) is computed, timeline history files parsed.
/// 7. What was proven is recorded in `verify.state`; `--since-last` skips objects proven before.
///
/// Damage never stops the run: every finding is collected, named with the backups it affects.
/// `run()` takes the steps in this order, one method of `Pass` (the run's working state) each.
public final class VerifyRun {
    let storage: Storage
    let layout: RepositoryLayout
    let options: VerifyOptions
    let log: Log

    public init(storage: Storage, layout: RepositoryLayout, options: VerifyOptions, log: Log) {
        self.storage = storage
        self.layout = layout
        self.options = options
        self.log = log
    }

    // Working state of one run.
    private var problems: [VerifyReport.Finding] = []
    private var warnings: [VerifyReport.Finding] = []
    private var infoReports: [VerifyReport.InfoFile] = []
    /// Labels that have a problem attributed to them.
    private var damaged = Set<BackupLabel>()

    private func problem(_ kind: String, _ path: String, wal: String? = nil, backups: [BackupLabel] = [], reason: String? = nil,
                         _ message: String) {
        let labels = Array(Set(backups)).sorted()
        damaged.formUnion(labels)
        problems.append(.init(kind: kind, path: path, walFile: wal, backups: labels.map(\.text), message: message, reason: reason))
    }

    private func warning(_ kind: String, _ path: String, wal: String? = nil, backups: [BackupLabel] = [], reason: String? = nil,
                         _ message: String) {
        warnings.append(.init(kind: kind, path: path, walFile: wal, backups: Array(Set(backups)).sorted().map(\.text), message: message,
                              reason: reason))
    }

    // MARK: step 1: sealed files with their twins

    /// Appended to an info file without a valid twin: the way back.
    static let repairAdvice = "; stanza-repair rebuilds it from the backup manifests"

    /// Opens `path` and `path.copy` independently and reports on both. Returns the usable value.
    private func checkSealed<T: Decodable>(_ type: T.Type, _ path: StoragePath, backups: [BackupLabel] = [],
                                           report: Bool = true) -> (value: T?, bothMissing: Bool) {
        let copy = try! SealedFile.copyPath(of: path)
        func open(_ p: StoragePath) -> (value: T?, error: String?) {
            do {
                guard let bytes = try storage.readSmallFile(p) else { return (nil, "'\(p)' is missing") }
                return (try SealedFile.open(T.self, from: bytes, name: p.description), nil)
            } catch {
                return (nil, (error as? PGKeepError)?.message ?? "\(error)")
            }
        }
        let main = open(path)
        let twin = open(copy)
        let name = path.description
        let isManifest = path.name == "backup.manifest"
        var status = "ok"
        var message: String?
        switch (main.value, twin.value) {
        case (.some, .some):
            break
        case (.some(let value), nil):
            status = "copy-damaged"
            message = twin.error
            warning("copy-damaged", copy.description, backups: backups, twin.error ?? "")
            if report && !isManifest { infoReports.append(.init(file: name, status: status, message: message)) }
            return (value, false)
        case (nil, .some(let value)):
            status = "copy-used"
            message = main.error
            warning("copy-used", name, backups: backups, "\(main.error ?? ""); the copy '\(copy)' takes over")
            if report && !isManifest { infoReports.append(.init(file: name, status: status, message: message)) }
            return (value, false)
        case (nil, nil):
            let bothMissing = main.error?.hasSuffix("is missing") == true && twin.error?.hasSuffix("is missing") == true
            status = "damaged"
            message = "\(main.error ?? ""); and the copy: \(twin.error ?? "")"
            if !bothMissing || isManifest {
                problem(isManifest ? "manifest-invalid" : "info-invalid", name, backups: backups,
                        message! + (isManifest ? "" : Self.repairAdvice))
            }
            if report && !isManifest { infoReports.append(.init(file: name, status: status, message: message)) }
            return (nil, bothMissing)
        }
        if report && !isManifest { infoReports.append(.init(file: name, status: status, message: message)) }
        return (main.value, false)
    }

    // MARK: the run

    /// One object to re-read and who needs it.
    private struct Job {
        enum Kind { case backupFile, wal(archiveID: String, name: String, kind: WALFileKind) }
        var kind: Kind
        var file: FileJob.VerifyFile
        var path: StoragePath
        var backups: Set<BackupLabel>
    }

    /// One bundle object to re-read (§3.6): the whole object (when a verified manifest records it)
    /// and the frames entries need, by offset, with who needs each.
    private struct BundleJob {
        struct Frame {
            var file: FileJob.VerifyFile
            var names: Set<String>
            var backups: Set<BackupLabel>
        }
        var repoSize: UInt64?
        var repoChecksum: SHA256Digest?
        var owners: Set<BackupLabel> = []
        var frames: [UInt64: Frame] = [:]
    }

    public func run() throws -> VerifyReport {
        problems = []
        warnings = []
        infoReports = []
        damaged = []
        let pass = Pass(self)
        try pass.checkInfoFiles()
        try pass.selectBackups()
        try pass.collectBackupObjects()
        try pass.collectWrittenBundles()
        try pass.listArchive()
        try pass.checkWALBackupsNeed()
        pass.collectWALObjects()
        try pass.reread()
        pass.inferSegmentSizes()
        pass.judgeObjects()
        pass.judgeBundles()
        try pass.checkContinuity()
        pass.collectBackupResults()
        pass.recordState()
        return pass.report()
    }

    /// One run's working state and its steps, in the order `run()` takes them.
    private final class Pass {
        let run: VerifyRun
        init(_ run: VerifyRun) { self.run = run }

        var storage: Storage { run.storage }
        var layout: RepositoryLayout { run.layout }
        var options: VerifyOptions { run.options }
        var log: Log { run.log }
        var damaged: Set<BackupLabel> {
            get { run.damaged }
            set { run.damaged = newValue }
        }
        func problem(_ kind: String, _ path: String, wal: String? = nil, backups: [BackupLabel] = [], reason: String? = nil, _ message: String) {
            run.problem(kind, path, wal: wal, backups: backups, reason: reason, message)
        }
        func warning(_ kind: String, _ path: String, wal: String? = nil, backups: [BackupLabel] = [], reason: String? = nil, _ message: String) {
            run.warning(kind, path, wal: wal, backups: backups, reason: reason, message)
        }
        func checkSealed<T: Decodable>(_ type: T.Type, _ path: StoragePath, backups: [BackupLabel] = []) -> (value: T?, bothMissing: Bool) {
            run.checkSealed(type, path, backups: backups)
        }
        func readWhole(_ path: StoragePath, compression: CompressionType) throws -> [UInt8] {
            try run.readWhole(path, compression: compression)
        }

        let now = Clock.now()
        var state: VerifyState?
        /// What `--since-last` may skip: the state of the last run, when asked for.
        var proven: VerifyState?
        var archiveInfo: ArchiveInfo?
        var backupInfo: BackupInfo?
        var allBackups: [BackupSummary] = []
        var byLabel: [BackupLabel: BackupSummary] = [:]
        var selected: [BackupSummary] = []
        var identities: [DatabaseIdentity] = []
        var manifests: [BackupLabel: Manifest?] = [:]
        var entriesByHolder: [BackupLabel: [String: Manifest.FileEntry]] = [:]
        var jobs: [StoragePath: Job] = [:]
        var skippedBackupFiles = 0
        var backupFileCount: [BackupLabel: Int] = [:]
        /// Entries of each backup whose every stored object is checked (a block-incremental file
        /// has two objects, its map and its block object; a file another backup holds counts for
        /// each backup that lists it).
        var checkedPerBackup: [BackupLabel: Int] = [:]
        var bundleJobs: [StoragePath: BundleJob] = [:]
        var segmentSizes: [String: WALSegmentSize] = [:]   // archive id → size, from manifests
        var skippedBackups = Set<BackupLabel>()
        var listings: [String: ArchiveListing] = [:]
        var droppedRecords: [String: [DroppedWAL]] = [:]   // archive id → drop records (archive-push-queue-max)
        var segmentNeeders: [String: [String: Set<BackupLabel>]] = [:]   // archive id → segment name → backups
        var walStatus: [BackupLabel: String] = [:]
        var walSkipped = 0
        var ordered: [Job] = []
        var bundles: [(key: StoragePath, value: BundleJob)] = []
        var findings: [VerifyFinding?] = []
        var bundleFindings: [BundleVerifyFinding?] = []
        var bytesRead: UInt64 = 0
        var backupFilesChecked = 0
        var walFilesChecked = 0
        var failedObjects = Set<StoragePath>()
        var provenWAL: [String: (segments: [WALSegmentName], files: [String])] = [:]
        var historyObjects: [(archiveID: String, object: ArchiveListing.Object)] = []
        var archiveResults: [VerifyReport.ArchiveResult] = []
        var backupResults: [VerifyReport.BackupResult] = []

        func archiveID(ofDatabase id: Int) -> String? { identities.first { $0.id == id }?.archiveID }

            func manifest(_ label: BackupLabel, needer: BackupLabel) -> Manifest? {
                if let cached = manifests[label] { return cached }
                let path = try! layout.manifest(label: label)
                let loaded = checkSealed(Manifest.self, path, backups: [needer, label]).value
                var value = loaded
                if let m = loaded, m.backup.label != label {
                    problem("manifest-invalid", path.description, backups: [label], "the manifest describes backup \(m.backup.label), not \(label)")
                    value = nil
                }
                manifests[label] = value
                return value
            }

            // The holders' entries by name: a chain of incrs over a cluster of thousands of files would
            // otherwise scan a whole manifest per reference.
            func holderEntries(_ label: BackupLabel, _ holder: Manifest) -> [String: Manifest.FileEntry] {
                if let cached = entriesByHolder[label] { return cached }
                let index = Dictionary(holder.files.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
                entriesByHolder[label] = index
                return index
            }

        /// 1. archive.info, backup.info and their twins, each opened on its own; the two must agree.
        func checkInfoFiles() throws {
            state = options.sinceLast ? VerifyState.load(storage, layout, warn: log.warn) : VerifyState.load(storage, layout, warn: { _ in })
            proven = options.sinceLast ? state : nil
            if options.sinceLast && state == nil { log.info("no usable verify.state: verifying everything") }

            let archiveLoad = checkSealed(ArchiveInfo.self, layout.archiveInfo)
            let backupLoad = checkSealed(BackupInfo.self, layout.backupInfo)
            if archiveLoad.bothMissing && backupLoad.bothMissing {
                throw PGKeepError(.stanzaMissing, "stanza '\(layout.stanza)' has no archive.info or backup.info in '\(storage.describe(.root))'",
                                  hint: "check --repo1-path and --stanza; run stanza-create for a new stanza")
            }
            if archiveLoad.bothMissing { problem("info-invalid", layout.archiveInfo.description, "'\(layout.archiveInfo)' and its copy are missing" + VerifyRun.repairAdvice) }
            if backupLoad.bothMissing { problem("info-invalid", layout.backupInfo.description, "'\(layout.backupInfo)' and its copy are missing" + VerifyRun.repairAdvice) }
            archiveInfo = archiveLoad.value
            backupInfo = backupLoad.value
            if let archiveInfo, let backupInfo, archiveInfo.current != backupInfo.current || archiveInfo.history != backupInfo.history {
                problem("info-mismatch", layout.backupInfo.description,
                        "backup.info and archive.info describe different clusters (system identifier \(backupInfo.current.systemIdentifier) version \(backupInfo.current.version) id \(backupInfo.current.id) vs \(archiveInfo.current.systemIdentifier) version \(archiveInfo.current.version) id \(archiveInfo.current.id))")
            }
        }

        /// The backups to verify: all, or the one `--set` names.
        func selectBackups() throws {
            allBackups = (backupInfo?.backups ?? []).sorted { ($0.timestampStop, $0.label) < ($1.timestampStop, $1.label) }
            byLabel = Dictionary(allBackups.map { ($0.label, $0) }, uniquingKeysWith: { a, _ in a })
            selected = allBackups
            if let set = options.set {
                guard let backupInfo else {
                    throw PGKeepError(.verifyFailed, "cannot verify backup \(set): backup.info and its copy are unusable",
                                      hint: "restore backup.info from a copy of the repository")
                }
                guard let one = backupInfo.backups.first(where: { $0.label == set }) else {
                    throw PGKeepError(.backupMissing, "backup set \(set) does not exist in stanza '\(layout.stanza)'",
                                      hint: "run 'pgkeep --stanza=\(layout.stanza) info' to list the backups")
                }
                selected = [one]
            }
            identities = archiveInfo?.history ?? backupInfo?.history ?? []
        }

        /// 2. Each selected backup's manifest, the stored objects its entries need, and their references.
        func collectBackupObjects() throws {
            jobs = [:]
            skippedBackupFiles = 0
            backupFileCount = [:]
            /// Entries of each backup whose every stored object is checked (a block-incremental file
            /// has two objects, its map and its block object; a file another backup holds counts for
            /// each backup that lists it).
            checkedPerBackup = [:]
            bundleJobs = [:]
            segmentSizes = [:]   // archive id → size, from manifests
            skippedBackups = Set<BackupLabel>()

            for summary in selected {
                let label = summary.label
                // Proven by an earlier verify: nothing of it is read again, not even its manifest.
                if proven?.backup(label, timestampStop: summary.timestampStop) != nil {
                    skippedBackups.insert(label)
                    skippedBackupFiles += summary.fileCount
                    continue
                }
                guard let m = manifest(label, needer: label) else { continue }
                backupFileCount[label] = m.files.count
                if let size = WALSegmentSize(bytes: UInt64(m.database.walSegmentSize)), let id = archiveID(ofDatabase: m.database.id) {
                    segmentSizes[id] = segmentSizes[id] ?? size
                }
                for entry in m.files { collectObjects(of: entry, in: label) }
            }
        }

        /// The jobs for the stored objects one manifest entry of backup `label` needs; the entry
        /// counts as checked when every one of them is.
        func collectObjects(of entry: Manifest.FileEntry, in label: BackupLabel) {
            let requirements: [StoredObjectRequirement]
            do { requirements = try entry.storedObjects(layout: layout) } catch {
                problem("manifest-invalid", try! layout.manifest(label: label).description, backups: [label],
                        "entry '\(entry.name)': \((error as? PGKeepError)?.message ?? "\(error)")")
                return
            }
            var everyObjectChecked = true
            for requirement in requirements {
                guard requirement.holder == label || holderHolds(requirement, for: entry, in: label) else {
                    everyObjectChecked = false
                    continue
                }
                if let offset = requirement.bundleOffset {
                    addFrame(requirement, at: offset, for: entry, in: label)
                } else {
                    addJob(requirement, for: entry, in: label)
                }
            }
            if everyObjectChecked { checkedPerBackup[label, default: 0] += 1 }
        }

        /// Whether the earlier backup that holds `entry`'s object is listed, has a readable
        /// manifest and lists the same stored file; reports the problem when not.
        func holderHolds(_ requirement: StoredObjectRequirement, for entry: Manifest.FileEntry, in label: BackupLabel) -> Bool {
            guard byLabel[requirement.holder] != nil else {
                problem("reference-missing", requirement.object.description, backups: [label],
                        "'\(entry.name)' is stored in backup \(requirement.holder), which is not in backup.info")
                return false
            }
            guard let holder = manifest(requirement.holder, needer: label) else {
                // The holder's manifest problem is already reported; this backup needs it too.
                damaged.insert(label)
                return false
            }
            guard let held = holderEntries(requirement.holder, holder)[entry.name], entry.isSameStoredObject(as: held) else {
                problem("reference-invalid", requirement.object.description, backups: [label],
                        "'\(entry.name)' refers to backup \(requirement.holder), whose manifest has no such stored file")
                return false
            }
            return true
        }

        /// One frame of a bundle object; entries sharing it must expect the same checksums.
        func addFrame(_ requirement: StoredObjectRequirement, at offset: UInt64, for entry: Manifest.FileEntry, in label: BackupLabel) {
            var bundle = bundleJobs[requirement.object] ?? BundleJob()
            if var frame = bundle.frames[offset] {
                if frame.file != requirement.job {
                    problem("reference-invalid", requirement.object.description, backups: [label],
                            "'\(entry.name)' expects different checksums for the frame at offset \(offset) than another entry")
                }
                frame.names.insert(entry.name)
                frame.backups.insert(label)
                bundle.frames[offset] = frame
            } else {
                bundle.frames[offset] = .init(file: requirement.job, names: [entry.name], backups: [label])
            }
            bundleJobs[requirement.object] = bundle
        }

        /// One stored object; entries sharing it (backups referring to it) must expect the same checksums.
        func addJob(_ requirement: StoredObjectRequirement, for entry: Manifest.FileEntry, in label: BackupLabel) {
            if var existing = jobs[requirement.object] {
                if existing.file != requirement.job {
                    problem("reference-invalid", requirement.object.description, backups: [label],
                            "'\(entry.name)' expects different checksums for a stored object than another entry")
                }
                existing.backups.insert(label)
                jobs[requirement.object] = existing
            } else {
                jobs[requirement.object] = Job(kind: .backupFile, file: requirement.job, path: requirement.object, backups: [label])
            }
        }

        /// The bundles each verified backup wrote, each proven whole.
        func collectWrittenBundles() throws {
            // The bundles each verified backup wrote, each proven whole.
            for summary in selected where !skippedBackups.contains(summary.label) {
                guard let m = manifests[summary.label] ?? nil else { continue }
                do {
                    for (object, entry) in try m.bundleObjects(layout: layout) {
                        var bundle = bundleJobs[object] ?? BundleJob()
                        bundle.repoSize = entry.repoSize
                        bundle.repoChecksum = entry.repoChecksum
                        bundle.owners.insert(summary.label)
                        bundleJobs[object] = bundle
                    }
                } catch {
                    problem("manifest-invalid", try layout.manifest(label: summary.label).description, backups: [summary.label],
                            (error as? PGKeepError)?.message ?? "\(error)")
                }
            }
        }

        /// 3. The archive, per archive id: object names, duplicates, drop records.
        func listArchive() throws {
            listings = [:]
            droppedRecords = [:]   // archive id → drop records (archive-push-queue-max)
            for identity in identities {
                let listing = try ArchiveListing(storage: storage, layout: layout, archiveID: identity.archiveID)
                droppedRecords[identity.archiveID] = try DroppedWAL.loadAll(
                    storage: storage, layout: layout, archiveID: identity.archiveID,
                    warn: { message in self.warning("copy-used", try! DroppedWAL.directory(layout: self.layout, archiveID: identity.archiveID).description, message) },
                    unreadable: { path, message in
                        self.problem("drop-record-invalid", path.description,
                                     "the record of WAL dropped by archive-push-queue-max cannot be read: \(message); the gap it recorded is reported as plain missing WAL")
                    })
                for name in listing.unknown {
                    warning("unknown-file", name, "not a pgkeep archive object; ignored")
                }
                for (walName, objects) in listing.byName where objects.count > 1 {
                    let checksums = Set(objects.map(\.checksum))
                    if checksums.count > 1 {
                        problem("wal-duplicate", objects[0].path.parent.description, wal: walName,
                                "\(walName) is archived with different contents: \(objects.map(\.path.name).joined(separator: ", "))")
                    } else {
                        warning("wal-duplicate", objects[0].path.parent.description, wal: walName,
                                "\(walName) is archived more than once with the same content: \(objects.map(\.path.name).joined(separator: ", "))")
                    }
                }
                listings[identity.archiveID] = listing
                if segmentSizes[identity.archiveID] == nil, let size = state?.archive(identity.archiveID)?.walSegmentSize {
                    segmentSizes[identity.archiveID] = size
                }
            }
        }

        /// 4. The WAL each selected backup needs to reach consistency.
        func checkWALBackupsNeed() throws {
            segmentNeeders = [:]   // archive id → segment name → backups
            walStatus = [:]
            for summary in selected {
                let label = summary.label
                guard let id = archiveID(ofDatabase: summary.databaseID) else {
                    problem("wal-missing", layout.archiveRoot.description, backups: [label],
                            "backup \(label) belongs to database id \(summary.databaseID), which archive.info does not list")
                    walStatus[label] = "unknown"
                    continue
                }
                let size = (manifests[label] ?? nil).flatMap { WALSegmentSize(bytes: UInt64($0.database.walSegmentSize)) } ?? segmentSizes[id]
                guard let size, let first = WALSegmentName(summary.walStart, segmentSize: size),
                      let last = WALSegmentName(summary.walStop, segmentSize: size), let range = first.through(last) else {
                    problem("wal-missing", layout.archiveRoot.description, backups: [label],
                            "backup \(label) records an invalid WAL range \(summary.walStart) ... \(summary.walStop)")
                    walStatus[label] = "unknown"
                    continue
                }
                var missing: [String] = []
                for segment in range {
                    segmentNeeders[id, default: [:]][segment.name, default: []].insert(label)
                    if listings[id]?.byName[segment.name]?.isEmpty ?? true { missing.append(segment.name) }
                }
                for name in missing {
                    let parent = try layout.archiveParent(archiveID: id, walFile: name)
                    // A backup waits for its WAL to be stored, so this takes a drop after the backup
                    // completed or a repository edited by hand; the backup cannot be restored at all.
                    let drop = droppedRecords[id]?.record(covering: name)
                    problem("wal-missing", try parent.appending(name).description, wal: name, backups: [label], reason: drop.map { _ in "dropped" },
                            "WAL segment \(name), needed by backup \(label) to reach consistency, is not in the archive"
                                + (drop.map { " (archive-push dropped it at \(Clock.format(seconds: $0.droppedAt, style: .iso8601)): the archive-push queue exceeded archive-push-queue-max)" } ?? ""))
                }
                walStatus[label] = missing.isEmpty ? "ok" : "missing"
            }
        }

        /// WAL objects to re-read: all of them, or with `--set` only the selected backup's.
        func collectWALObjects() {
            // WAL objects to re-read: all of them, or with --set only the selected backup's.
            walSkipped = 0
            for (id, listing) in listings.sorted(by: { $0.key < $1.key }) {
                for object in listing.objects {
                    // Backups affected by damage to this object: those needing the segment for
                    // consistency, and for a history file those taken on its timeline (restoring
                    // them needs it).
                    var affected: Set<BackupLabel> = []
                    if object.kind == .segment { affected = segmentNeeders[id]?[object.walName] ?? [] }
                    if object.kind == .history, let timeline = WALFileName(object.walName)?.timeline {
                        affected.formUnion(selected.filter { $0.timeline == timeline.rawValue && archiveID(ofDatabase: $0.databaseID) == id }.map(\.label))
                    }
                    if options.set != nil && affected.isEmpty { continue }
                    let provenBefore: Bool
                    switch object.kind {
                    case .segment: provenBefore = proven?.isProven(segment: object.walName, archiveID: id) ?? false
                    default: provenBefore = proven?.isProven(file: object.path.name, archiveID: id) ?? false
                    }
                    if provenBefore { walSkipped += 1; continue }
                    var expectedSize: UInt64?
                    if object.kind == .segment || object.kind == .partial { expectedSize = segmentSizes[id]?.bytes }
                    jobs[object.path] = Job(kind: .wal(archiveID: id, name: object.walName, kind: object.kind),
                                            file: FileJob.VerifyFile(source: object.path, compression: object.compression, repoSize: nil,
                                                                     repoChecksum: nil, size: expectedSize, checksum: object.checksum),
                                            path: object.path, backups: affected)
                }
            }
        }

        /// 5. Every object re-read by `--process-max` workers.
        func reread() throws {
            ordered = jobs.values.sorted { $0.path < $1.path }
            var fileJobs: [FileJob] = []
            fileJobs.reserveCapacity(ordered.count)
            for (index, job) in ordered.enumerated() {
                fileJobs.append(FileJob(id: index, operation: .verify(job.file), size: job.file.repoSize ?? job.file.size ?? 0))
            }
            bundles = bundleJobs.sorted { $0.key < $1.key }
            for (index, (path, bundle)) in bundles.enumerated() {
                let frames = bundle.frames.keys.sorted().map { FileJob.VerifyBundle.Frame(offset: $0, file: bundle.frames[$0]!.file) }
                fileJobs.append(FileJob(id: ordered.count + index,
                                        operation: .verifyBundle(.init(source: path, repoSize: bundle.repoSize, repoChecksum: bundle.repoChecksum,
                                                                       frames: frames)),
                                        size: bundle.repoSize ?? frames.reduce(UInt64(0)) { $0 + ($1.file.repoSize ?? 0) }))
            }
            findings = [VerifyFinding?](repeating: nil, count: ordered.count)
            bundleFindings = [BundleVerifyFinding?](repeating: nil, count: bundles.count)
            log.info("verifying \(fileJobs.count) stored objects with \(options.processMax) workers")
            // Verify jobs read only the repository; the host is never asked for anything.
            try Mover(storage: storage, host: LocalHost(), processMax: options.processMax, bufferSize: options.bufferSize).run(fileJobs) { job, result in
                if case .verified(let finding) = result { self.findings[job.id] = finding }
                if case .verifiedBundle(let finding) = result { self.bundleFindings[job.id - self.ordered.count] = finding }
            }
        }

        /// The segment size where no manifest or state knew it: the size most segments have.
        func inferSegmentSizes() {
            // Segment size where no manifest or state knew it: the size most segments have.
            for (id, _) in listings where segmentSizes[id] == nil {
                var counts: [UInt64: Int] = [:]
                for (index, job) in ordered.enumerated() {
                    if case .wal(let jobID, _, let kind) = job.kind, jobID == id, kind == .segment, let finding = findings[index], finding.status == .ok {
                        counts[finding.size, default: 0] += 1
                    }
                }
                if let best = counts.max(by: { ($0.value, $0.key) < ($1.value, $1.key) }), let size = WALSegmentSize(bytes: best.key) {
                    segmentSizes[id] = size
                }
            }
        }

        /// The findings of single objects: problems named with the backups they affect.
        func judgeObjects() {
            bytesRead = 0
            backupFilesChecked = 0
            walFilesChecked = 0
            failedObjects = Set<StoragePath>()
            provenWAL = [:]
            historyObjects = []
            for (index, job) in ordered.enumerated() {
                guard var finding = findings[index] else { continue }
                bytesRead += finding.repoSize
                switch job.kind {
                case .backupFile: backupFilesChecked += 1
                case .wal(let id, let name, let kind):
                    walFilesChecked += 1
                    if finding.status == .ok, kind == .segment || kind == .partial, job.file.size == nil,
                       let size = segmentSizes[id], finding.size != size.bytes {
                        finding = VerifyFinding(status: .sizeMismatch, repoSize: finding.repoSize, size: finding.size,
                                                detail: "original size \(finding.size) bytes, expected the segment size \(size.bytes)")
                    }
                    if finding.status == .ok {
                        if kind == .segment, let size = segmentSizes[id], let segment = WALSegmentName(name, segmentSize: size) {
                            provenWAL[id, default: ([], [])].segments.append(segment)
                        } else if kind != .segment {
                            provenWAL[id, default: ([], [])].files.append(job.path.name)
                        }
                        if kind == .history, let object = listings[id]?.objects.first(where: { $0.path == job.path }) {
                            historyObjects.append((id, object))
                        }
                    }
                }
                guard finding.status != .ok else { continue }
                failedObjects.insert(job.path)
                var walName: String?
                if case .wal(_, let name, _) = job.kind { walName = name }
                let what: String
                switch finding.status {
                case .missing: what = "is missing"
                case .sizeMismatch, .checksumMismatch: what = "does not match: \(finding.detail)"
                case .unreadable: what = "cannot be read back: \(finding.detail)"
                case .ok: what = ""
                }
                problem(finding.status.rawValue, job.path.description, wal: walName, backups: Array(job.backups),
                        "stored file '\(storage.describe(job.path))' \(what)")
                if case .wal = job.kind {
                    for label in job.backups where walStatus[label] == "ok" { walStatus[label] = "damaged" }
                }
            }
        }

        /// Bundles: a damaged frame names its file and the backups needing it; a damaged whole names the backup that wrote it.
        func judgeBundles() {
            // Bundles: a damaged frame names its file and the backups needing it; a damaged whole names
            // the backup that wrote it (and those needing its damaged frames).
            func describe(_ finding: VerifyFinding) -> String {
                switch finding.status {
                case .missing: return "is missing"
                case .sizeMismatch, .checksumMismatch: return "does not match: \(finding.detail)"
                case .unreadable: return "cannot be read back: \(finding.detail)"
                case .ok: return "is ok"
                }
            }
            for (index, (path, bundle)) in bundles.enumerated() {
                guard let finding = bundleFindings[index] else { continue }
                bytesRead += finding.whole.repoSize
                backupFilesChecked += 1
                let offsets = bundle.frames.keys.sorted()
                let allBackups = bundle.owners.union(bundle.frames.values.flatMap(\.backups))
                let where_ = "stored bundle '\(storage.describe(path))'"
                if finding.whole.status == .missing {
                    let names = offsets.flatMap { bundle.frames[$0]!.names.sorted() }
                    problem("missing", path.description, backups: Array(allBackups),
                            "\(where_) is missing; it holds \(names.count) files the backups need: \(VerifyRun.abbreviated(names))")
                    failedObjects.insert(path)
                    continue
                }
                var damagedNames: [String] = []
                var affected = bundle.owners
                for (frameIndex, offset) in offsets.enumerated() where frameIndex < finding.frames.count && finding.frames[frameIndex].status != .ok {
                    let frame = bundle.frames[offset]!
                    let names = frame.names.sorted()
                    damagedNames += names
                    affected.formUnion(frame.backups)
                    problem(finding.frames[frameIndex].status.rawValue, path.description, backups: Array(frame.backups),
                            "file '\(names.joined(separator: "', '"))' at offset \(offset) of \(where_) \(describe(finding.frames[frameIndex]))")
                }
                if finding.whole.status != .ok {
                    problem(finding.whole.status.rawValue, path.description, backups: Array(affected),
                            "\(where_) \(describe(finding.whole))\(damagedNames.isEmpty ? "" : "; damaged files in it: \(VerifyRun.abbreviated(damagedNames))")")
                }
                if finding.whole.status != .ok || !damagedNames.isEmpty { failedObjects.insert(path) }
            }
        }

        /// 6. WAL continuity per timeline (ranges, gaps, history files, diverged timelines).
        func checkContinuity() throws {
            archiveResults = []
            for identity in identities { try checkContinuity(of: identity) }
        }

        /// One archive id's timelines: its history files parsed, ranges and gaps (dropped WAL
        /// split out), missing history files, and timelines that continue past a child's fork.
        func checkContinuity(of identity: DatabaseIdentity) throws {
            let id = identity.archiveID
            guard let listing = listings[id] else { return }
            let size = segmentSizes[id]
            let histories = readHistories(of: id)
            let historyNames = Set(listing.objects.filter { $0.kind == .history }.map(\.walName))
            var segmentsByTimeline: [UInt32: [WALSegmentName]] = [:]
            if let size {
                for object in listing.objects where object.kind == .segment {
                    if let segment = WALSegmentName(object.walName, segmentSize: size) {
                        segmentsByTimeline[segment.timeline.rawValue, default: []].append(segment)
                    }
                }
            }
            let droppedByTimeline = droppedSegments(of: id, listing: listing, size: size)
            for timeline in droppedByTimeline.keys where segmentsByTimeline[timeline] == nil { segmentsByTimeline[timeline] = [] }
            var timelines: [VerifyReport.Timeline] = []
            for (timeline, segments) in segmentsByTimeline.sorted(by: { $0.key < $1.key }) {
                timelines.append(try checkTimeline(timeline, of: id, segments: segments, history: histories[timeline],
                                                   dropped: droppedByTimeline[timeline], size: size, historyNames: historyNames))
            }
            if let size { try checkDivergences(of: id, listing: listing, histories: histories, size: size) }
            archiveResults.append(.init(archiveID: id, walSegmentSize: size?.bytes, timelines: timelines))
        }

        /// The archive id's history files, by timeline; one that cannot be read or parsed is a problem.
        func readHistories(of id: String) -> [UInt32: TimelineHistory] {
            var histories: [UInt32: TimelineHistory] = [:]
            for (historyID, object) in historyObjects where historyID == id {
                guard let timeline = WALFileName(object.walName)?.timeline else { continue }
                do {
                    let bytes = try readWhole(object.path, compression: object.compression)
                    histories[timeline.rawValue] = try TimelineHistory(timeline: timeline, text: String(decoding: bytes, as: UTF8.self),
                                                                       path: object.path.description)
                } catch {
                    problem("history-invalid", object.path.description, wal: object.walName,
                            backups: selected.filter { $0.timeline == timeline.rawValue }.map(\.label),
                            (error as? PGKeepError)?.message ?? "\(error)")
                }
            }
            return histories
        }

        /// Dropped segments that are not stored, per timeline and segment number: gaps the records explain.
        func droppedSegments(of id: String, listing: ArchiveListing, size: WALSegmentSize?) -> [UInt32: [UInt64: DroppedWAL]] {
            var droppedByTimeline: [UInt32: [UInt64: DroppedWAL]] = [:]
            for record in droppedRecords[id] ?? [] {
                guard let range = record.segments, size == nil || record.walSegmentSize == size else { continue }
                for segment in range where listing.byName[segment.name]?.isEmpty ?? true {
                    droppedByTimeline[segment.timeline.rawValue, default: [:]][segment.segmentNumber] = record
                }
            }
            return droppedByTimeline
        }

        /// One timeline's ranges and gaps, each gap a warning, and its missing history file.
        func checkTimeline(_ timeline: UInt32, of id: String, segments: [WALSegmentName], history: TimelineHistory?,
                           dropped: [UInt64: DroppedWAL]?, size: WALSegmentSize?, historyNames: Set<String>) throws -> VerifyReport.Timeline {
            let unique = Array(Set(segments)).sorted()
            let ranges = VerifyState.ranges(of: unique).map { VerifyReport.Range(start: $0.start, stop: $0.stop) }
            var gaps: [VerifyReport.Range] = []
            // A timeline after the first begins at its switch point: WAL missing between the
            // switch point and its first archived segment is a gap too.
            if let history, let size, let begin = history.beginning(of: TimelineID(rawValue: timeline)), let first = unique.first {
                let beginSegment = WALSegmentName.segment(containing: begin, timeline: TimelineID(rawValue: timeline), segmentSize: size)
                if beginSegment.segmentNumber < first.segmentNumber, let before = first.previous {
                    gaps.append(.init(start: beginSegment.name, stop: before.name))
                }
            }
            for (a, b) in zip(unique, unique.dropFirst()) where b.segmentNumber > a.segmentNumber + 1 {
                gaps.append(.init(start: a.next.name, stop: b.previous!.name))
            }
            if let size, let dropped {
                gaps = VerifyRun.splitGaps(gaps, dropped: dropped, timeline: TimelineID(rawValue: timeline), segmentSize: size)
            }
            for gap in gaps { try warnGap(gap, timeline: timeline, of: id) }
            if timeline > 1 && !unique.isEmpty && !historyNames.contains(TimelineHistory.fileName(for: TimelineID(rawValue: timeline))) {
                warning("history-missing", try layout.archiveDirectory(archiveID: id).description,
                        wal: TimelineHistory.fileName(for: TimelineID(rawValue: timeline)),
                        "timeline \(timeline) has WAL but no history file in the archive")
            }
            let parentEntry = history?.entries.last
            return .init(timeline: timeline, segments: unique.count, ranges: ranges, gaps: gaps,
                         parent: parentEntry?.parent.rawValue, switchPoint: parentEntry?.switchPoint.description)
        }

        /// The warning for one gap; a dropped one says when archive-push dropped it and what that costs.
        func warnGap(_ gap: VerifyReport.Range, timeline: UInt32, of id: String) throws {
            var message = "timeline \(timeline) has no WAL from \(gap.start) through \(gap.stop): point-in-time recovery cannot cross it"
            if gap.reason == "dropped", let at = gap.droppedAt {
                // A warning, as any gap: every backup is still restorable to consistency and
                // to any point before the gap (a backup needing the dropped WAL for
                // consistency is a wal-missing problem above); only recovery across it is lost.
                let before = selected.filter { $0.timeline == timeline && archiveID(ofDatabase: $0.databaseID) == id && $0.walStop < gap.start }
                let after = allBackups.contains { archiveID(ofDatabase: $0.databaseID) == id && $0.walStart > gap.stop && $0.timeline >= timeline }
                message = "timeline \(timeline) has no WAL from \(gap.start) through \(gap.stop): archive-push dropped it at \(Clock.format(seconds: at, style: .iso8601)) without archiving it (the queue exceeded archive-push-queue-max); point-in-time recovery across it is impossible until a new backup"
                    + (before.isEmpty ? "" : "; backup \(before.map(\.label.text).joined(separator: ", ")) recover only to before \(gap.start)")
                    + (after ? "" : "; no backup was taken after it: take one")
            }
            warning("wal-gap", try layout.archiveDirectory(archiveID: id).description, wal: gap.start, reason: gap.reason, message)
        }

        /// Timelines that continue past the point where a child timeline forked from them.
        func checkDivergences(of id: String, listing: ArchiveListing, histories: [UInt32: TimelineHistory], size: WALSegmentSize) throws {
            var stored: [String: Int64] = [:]
            for object in listing.objects where object.kind == .segment { stored[object.walName] = max(stored[object.walName] ?? 0, object.stored) }
            let born = historyObjects.filter { $0.archiveID == id }.map(\.object)
            let dated = histories.values.map { history in
                (history, born.filter { WALFileName($0.walName)?.timeline == history.timeline }.map(\.stored).min() ?? 0)
            }
            for divergence in TimelineDivergence.find(histories: dated, segments: stored, segmentSize: size) {
                warning("timeline-diverged", try layout.archiveDirectory(archiveID: id).description, wal: divergence.first,
                        divergence.message)
            }
        }

        /// Per-backup results.
        func collectBackupResults() {
            // Per-backup results.
            backupResults = []
            for summary in selected {
                let label = summary.label
                let status = damaged.contains(label) ? "error" : (skippedBackups.contains(label) ? "skipped" : "ok")
                backupResults.append(.init(label: label.text, status: status, fileCount: backupFileCount[label] ?? summary.fileCount,
                                           filesChecked: checkedPerBackup[label] ?? 0, walStart: summary.walStart,
                                           walStop: summary.walStop, walStatus: walStatus[label] ?? "unknown"))
            }
        }

        /// 7. Record what is proven: proven now, or proven before and not re-checked, and still present.
        func recordState() {
            var newState = VerifyState(updated: now)
            for summary in allBackups where !damaged.contains(summary.label) {
                let checkedNow = selected.contains { $0.label == summary.label } && !skippedBackups.contains(summary.label)
                if checkedNow {
                    newState.backups.append(.init(label: summary.label, timestampStop: summary.timestampStop, verifiedAt: now))
                } else if let old = state?.backup(summary.label, timestampStop: summary.timestampStop) {
                    newState.backups.append(old)
                }
            }
            for identity in identities {
                let id = identity.archiveID
                guard let listing = listings[id], let size = segmentSizes[id] else { continue }
                var segments = provenWAL[id]?.segments ?? []
                var files = provenWAL[id]?.files ?? []
                for object in listing.objects where jobs[object.path] == nil && !failedObjects.contains(object.path) {
                    if object.kind == .segment {
                        if state?.isProven(segment: object.walName, archiveID: id) == true,
                           let segment = WALSegmentName(object.walName, segmentSize: size) { segments.append(segment) }
                    } else if state?.isProven(file: object.path.name, archiveID: id) == true {
                        files.append(object.path.name)
                    }
                }
                newState.archive.append(.init(archiveID: id, walSegmentSize: size, segments: VerifyState.ranges(of: segments),
                                              files: Array(Set(files)).sorted()))
            }
            do {
                try newState.save(storage, layout)
            } catch {
                warning("state-unsaved", layout.verifyState.description,
                        "unable to record the verify state: \((error as? PGKeepError)?.message ?? "\(error)")")
            }
        }

        /// The report of the run.
        func report() -> VerifyReport {
            return VerifyReport(
                stanza: layout.stanza, status: run.problems.isEmpty ? "ok" : "error", set: options.set?.text, sinceLast: options.sinceLast,
                infoFiles: run.infoReports, backups: backupResults, archive: archiveResults,
                problems: run.problems.sorted { ($0.path, $0.kind) < ($1.path, $1.kind) },
                warnings: run.warnings.sorted { ($0.path, $0.kind) < ($1.path, $1.kind) },
                checked: .init(backupFiles: backupFilesChecked, walFiles: walFilesChecked,
                               skipped: skippedBackupFiles + walSkipped, bytes: bytesRead))
        }

    }

    /// `gaps` (holes between stored segments) with the dropped segments (not stored, numbers →
    /// their record) split out as gaps of reason `dropped`, and dropped segments outside every
    /// hole (after the last stored segment, where the archive alone shows no gap) added, in order.
    static func splitGaps(_ gaps: [VerifyReport.Range], dropped: [UInt64: DroppedWAL], timeline: TimelineID,
                          segmentSize: WALSegmentSize) -> [VerifyReport.Range] {
        func name(_ number: UInt64) -> String { WALSegmentName(timeline: timeline, segmentNumber: number, segmentSize: segmentSize).name }
        var intervals: [(first: UInt64, last: UInt64)] = gaps.compactMap { gap in
            guard let a = WALSegmentName(gap.start, segmentSize: segmentSize), let b = WALSegmentName(gap.stop, segmentSize: segmentSize) else { return nil }
            return (a.segmentNumber, b.segmentNumber)
        }
        // Dropped numbers in no hole form holes of their own (each one segment; runs merge below).
        for number in dropped.keys where !intervals.contains(where: { $0.first <= number && number <= $0.last }) {
            intervals.append((number, number))
        }
        intervals.sort { $0.first < $1.first }
        var result: [VerifyReport.Range] = []
        var run: (first: UInt64, last: UInt64, record: DroppedWAL?)?
        func close() {
            guard let current = run else { return }
            result.append(.init(start: name(current.first), stop: name(current.last), reason: current.record == nil ? nil : "dropped",
                                droppedAt: current.record?.droppedAt))
            run = nil
        }
        for interval in intervals {
            // Walk the interval by the dropped numbers in it: a hole is usually few runs, and the
            // numbers in between need not be enumerated (a hole may span millions of segments).
            var cursor = interval.first
            let inside = dropped.keys.filter { interval.first <= $0 && $0 <= interval.last }.sorted()
            for number in inside {
                if number > cursor { extend(cursor, number - 1, nil) }
                extend(number, number, dropped[number])
                cursor = number + 1
            }
            if cursor <= interval.last { extend(cursor, interval.last, nil) }
        }
        close()
        return result

        func extend(_ first: UInt64, _ last: UInt64, _ record: DroppedWAL?) {
            if let current = run, current.last + 1 == first, (current.record == nil) == (record == nil) {
                run = (current.first, last, current.record ?? record)
            } else {
                close()
                run = (first, last, record)
            }
        }
    }

    /// Up to 20 names, then how many more.
    static func abbreviated(_ names: [String]) -> String {
        let shown = names.prefix(20).map { "'\($0)'" }.joined(separator: ", ")
        return names.count > 20 ? shown + " and \(names.count - 20) more" : shown
    }

    /// Reads a small object whole, decompressed (history files).
    private func readWhole(_ path: StoragePath, compression: CompressionType) throws -> [UInt8] {
        guard let source = try storage.openRead(path) else {
            throw PGKeepError(.fileMissing, "'\(storage.describe(path))' vanished")
        }
        let sink = CollectSink(limit: 1 << 24)
        try ObjectCodec(bufferSize: options.bufferSize).readChain(ObjectEncoding(compression: compression), observing: [])
            .run(from: source, into: sink, buffer: IOBuffer(size: 1 << 16))
        return sink.bytes
    }
}

/// Collects a small stream in memory, failing past `limit` bytes.
final class CollectSink: ByteSink {
    private(set) var bytes: [UInt8] = []
    let limit: Int
    init(limit: Int) { self.limit = limit }
    func write(_ chunk: UnsafeRawBufferPointer) throws {
        bytes.append(contentsOf: chunk)
        if bytes.count > limit { throw PGKeepError(.formatInvalid, "file larger than \(limit) bytes where a small file was expected") }
    }
}

/// The objects stored under one archive id, parsed from their names.
struct ArchiveListing {
    struct Object {
        var path: StoragePath
        /// The WAL file name (`000000010000000000000005`, `00000002.history`, ...).
        var walName: String
        var kind: WALFileKind
        var checksum: SHA256Digest
        var compression: CompressionType
        var storedSize: UInt64
        /// When it was stored (`StorageEntry.modified`).
        var stored: Int64 = 0
    }

    var objects: [Object] = []
    var byName: [String: [Object]] = [:]
    /// Repository paths of files that are not archive objects.
    var unknown: [String] = []

    init(storage: Storage, layout: RepositoryLayout, archiveID: String) throws {
        let root = try layout.archiveDirectory(archiveID: archiveID)
        for entry in try storage.list(root) {
            let path = try root.appending(entry.name)
            if entry.kind == .directory {
                // Records of WAL archive-push dropped (DroppedWAL), read separately.
                if entry.name == "dropped" { continue }
                guard entry.name.count == 16, entry.name.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 70) }) else {
                    unknown.append(path.description)
                    continue
                }
                for file in try storage.list(path) {
                    add(try path.appending(file.name), entry: file, directoryPrefix: entry.name)
                }
            } else {
                add(path, entry: entry, directoryPrefix: nil)
            }
        }
        objects.sort { $0.path < $1.path }
    }

    private mutating func add(_ path: StoragePath, entry: StorageEntry, directoryPrefix: String?) {
        guard entry.kind == .file, let parsed = RepositoryLayout.parseArchiveObjectName(entry.name),
              let name = WALFileName(parsed.name),
              directoryPrefix == nil ? name.kind == .history : (name.kind != .history && parsed.name.hasPrefix(directoryPrefix!)) else {
            unknown.append(path.description)
            return
        }
        let object = Object(path: path, walName: parsed.name, kind: name.kind, checksum: parsed.checksum,
                            compression: parsed.compression, storedSize: entry.size, stored: entry.modified)
        objects.append(object)
        byName[parsed.name, default: []].append(object)
    }
}
