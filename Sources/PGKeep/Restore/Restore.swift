#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepMover

/// What a restore needs, resolved by the command front.
public struct RestoreOptions: Sendable {
    public var dataDirectory: String
    public var set: BackupLabel?
    public var bufferSize: Int
    public var processMax: Int
    /// The `restore_command` written into postgresql.auto.conf.
    public var restoreCommand: String
    /// Restore over an existing data directory, keeping files whose size and SHA-256 match.
    public var delta = false
    /// With `--delta`: restore over a directory pgkeep cannot prove is this cluster's
    /// (`RestoreDestination`). Never over a running server.
    public var force = false
    /// `--link-all`: make every link the backup recorded again, at its recorded location.
    public var linkAll = false
    /// `--tablespace-map`, `--tablespace-map-all`, `--link-map`: where tablespaces and links go
    /// instead of their recorded locations.
    public var relocation = Relocation()
    /// Where recovery stops (`--type`, `--target*`); recovery to the end of the archive by default.
    public var target: RecoveryTarget
    /// `--archive-mode`: `preserve` keeps the backup's archiving settings; `off` writes
    /// `archive_mode = 'off'`, so a restored clone never archives into the stanza it came from.
    public var archiveMode: ArchiveModeOption = .preserve
    /// `--target-past-archive`: a target the archived WAL does not reach is noted, not refused.
    public var targetPastArchive = false
    /// `--recovery-option=KEY=VALUE`: further settings for the recovery block of
    /// postgresql.auto.conf (`primary_conninfo`, `recovery_min_apply_delay`...), written after
    /// pgkeep's own, in key order. Keys pgkeep derives from its own options are refused.
    public var recoveryOptions: [String: String] = [:]
    /// `--db-include`, `--db-exclude`: the databases restored as zero-filled files (`DatabaseSelection`).
    public var databases = DatabaseSelection.Request()

    public enum ArchiveModeOption: String, Sendable { case preserve, off }

    /// New locations for what the backup recorded outside the data directory.
    public struct Relocation: Sendable, Equatable {
        /// Tablespace name or oid → its new location (`--tablespace-map`).
        public var tablespaces: [String: String] = [:]
        /// Every other tablespace goes to `<this>/<tablespace name>` (`--tablespace-map-all`).
        public var tablespacesUnder: String?
        /// Link path in the data directory (`pg_wal`) → where it points now (`--link-map`); a
        /// mapped link is made again even without `--link-all`.
        public var links: [String: String] = [:]

        public init(tablespaces: [String: String] = [:], tablespacesUnder: String? = nil, links: [String: String] = [:]) {
            self.tablespaces = tablespaces
            self.tablespacesUnder = tablespacesUnder
            self.links = links
        }
    }

    public init(dataDirectory: String, set: BackupLabel?, bufferSize: Int, processMax: Int, restoreCommand: String,
                target: RecoveryTarget = .endOfArchive) {
        self.dataDirectory = dataDirectory
        self.set = set
        self.bufferSize = bufferSize
        self.processMax = processMax
        self.restoreCommand = restoreCommand
        self.target = target
    }
}

/// What a restore did, for the operator (delta restores keep and remove files).
public struct RestoreReport: Sendable {
    public var label: BackupLabel
    /// Files written from the repository (global/pg_control not counted).
    public var rewritten = 0
    /// Files already identical, kept (delta restore).
    public var kept = 0
    /// Files of excluded databases written as sparse zero-filled files (selective restore).
    public var zeroFilled = 0
    /// Files, links and directories removed because the backup does not have them (delta restore).
    public var removed = 0
    public var bytesWritten: UInt64 = 0
}

/// Restores a backup (any backup of a chain: files of diff/incr backups are read from the
/// backups that hold them) and sets it up to recover from the archive.
///
/// 1. Plan (`RestorePlanner`): pick the backup for the target (or `--set`), prove the timeline path
///    and the WAL up to the target are in the archive, and refuse before writing anything if not;
///    then check the manifest is safe to write (`validateForRestore`).
/// 2. Refuse a running server and, without `--delta`, a non-empty target or tablespace location,
///    before writing. With `--delta`, refuse only when `postmaster.pid` names a live process; then
///    remove `global/pg_control` first (so an interrupted restore cannot be started), and remove
///    everything the backup does not have (`DeltaClean`).
/// 3. Recreate the directory skeleton and the links (tablespace links always; other links of the
///    data directory with `--link-all`, or where a delta restore finds them in place, else as
///    plain directories and files, `TargetMap`) with the recorded modes (and owners,
///    when running as root: never leave root-owned files for PostgreSQL).
/// 4. Restore every file with `--process-max` workers, verifying both checksums of each; files
///    stored in blocks are reassembled from their block map and verified as a whole; bundled
///    small files by one job per bundle object, which reads it once, front to back, and checks
///    each file's frame. With `--delta`, a file whose size and SHA-256 already match (for a file
///    stored in blocks with an XXH3 map: whose size and every block's hash match the map) is
///    kept. Every written file is fsynced (attributes set first) before the mover returns;
///    workers batch those fsyncs (`DeferredSyncs`) instead of waiting for each file. Kept files
///    are made durable by one syncfs(2) per file system before pg_control goes in place.
/// 5. With a tablespace moved (`--tablespace-map`), write `tablespace_map` for the new locations;
///    write the signal file and the planned recovery settings into `postgresql.auto.conf`.
/// 6. Sync every directory, then put `global/pg_control` in place last (written under a temporary
///    name and renamed): an interrupted restore has no pg_control and cannot be started by mistake.
public final class RestoreRun {
    let storage: Storage
    /// The database host the cluster is restored onto (`PostgresHost`).
    let host: PostgresHost
    let layout: RepositoryLayout
    let options: RestoreOptions
    let log: Log
    /// What the last `run()` did.
    public private(set) var report: RestoreReport?

    public init(storage: Storage, host: PostgresHost, layout: RepositoryLayout, options: RestoreOptions, log: Log) {
        self.storage = storage
        self.host = host
        self.layout = layout
        self.options = options
        self.log = log
    }

    /// The plan (`restore --plan`): the planner's answer for the repository, with the
    /// destination's problems (`RestoreDestination`) added, so it refuses what the restore would.
    public func plan() throws -> RestorePlan {
        try planned().plan
    }

    private func planned() throws -> (plan: RestorePlan, summary: BackupSummary, manifest: Manifest, targets: TargetMap, selection: DatabaseSelection) {
        let info = try InfoFiles.loadBackupInfo(storage, layout, warn: log.warn)
        var (plan, summary, manifest) = try RestorePlanning(storage: storage, layout: layout, bufferSize: options.bufferSize, log: log)
            .plan(info: info, request: .init(target: options.target, set: options.set, pastArchive: options.targetPastArchive), dataDirectory: options.dataDirectory)
        try manifest.validateForRestore()
        let targets = try TargetMap(manifest: manifest, dataDirectory: options.dataDirectory, linkAll: options.linkAll, delta: options.delta,
                                    relocation: options.relocation, host: host)
        let destination = try RestoreDestination(host: host, dataDirectory: options.dataDirectory, delta: options.delta, force: options.force,
                                             manifest: manifest, targets: targets)
        plan.add(destinationProblems: try destination.problems())
        if options.archiveMode == .off { plan.recovery.settings.append(.init(name: "archive_mode", value: "off")) }
        for (name, value) in try Self.checkedRecoveryOptions(options.recoveryOptions) {
            plan.recovery.settings.append(.init(name: name, value: value))
        }
        let selection = options.databases.isEmpty ? .everything : try DatabaseSelection(options.databases, manifest: manifest)
        if !selection.excluded.isEmpty {
            plan.notes.append("database(s) \(selection.excludedText) come back as zero-filled files (--db-include/--db-exclude): recovery replays into them; drop them once it is done")
        }
        return (plan, summary, manifest, targets, selection)
    }

    /// Settings restore writes from its own options: `--recovery-option` may not set them, or the
    /// recovery block would say two things (the later one would win, silently).
    static let derivedRecoverySettings: [String: String] = [
        "restore_command": "pgkeep writes it to run archive-get for this stanza",
        "recovery_target": "use --type=immediate", "recovery_target_time": "use --type=time --target=...",
        "recovery_target_xid": "use --type=xid --target=...", "recovery_target_lsn": "use --type=lsn --target=...",
        "recovery_target_name": "use --type=name --target=...", "recovery_target_inclusive": "use --target-exclusive",
        "recovery_target_timeline": "use --target-timeline", "recovery_target_action": "use --target-action",
        "archive_mode": "use --archive-mode",
    ]

    /// `--recovery-option` pairs in key order, each key a PostgreSQL setting name pgkeep does not
    /// derive itself.
    static func checkedRecoveryOptions(_ options: [String: String]) throws -> [(String, String)] {
        try options.keys.sorted().map { key in
            let valid = !key.isEmpty && key.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "_" || $0 == "." }
                && !(key.first?.isNumber ?? true)
            guard valid else {
                throw PGKeepError(.optionInvalid, "--recovery-option key '\(key)' is not a PostgreSQL setting name",
                                  hint: "write --recovery-option=<setting>=<value>, e.g. --recovery-option=primary_conninfo='host=db1 user=replicator'")
            }
            if let instead = derivedRecoverySettings[key] {
                throw PGKeepError(.optionInvalid, "--recovery-option cannot set '\(key)': restore writes it from its own options",
                                  hint: instead)
            }
            return (key, options[key]!)
        }
    }

    @discardableResult
    public func run() throws -> BackupLabel {
        let (plan, summary, manifest, targets, selection) = try planned()
        try plan.check()
        for note in plan.notes { log.info(note) }
        log.info("restoring backup \(summary.label) (\(plan.reason)) into '\(options.dataDirectory)'\(options.delta ? " with --delta" : "")\(options.force ? " --force" : ""); recovery reads \(plan.wal.segments.count) WAL segments along timeline(s) \(plan.timelinePath.map { String($0.timeline) }.joined(separator: ", "))")

        let steps = try Steps(run: self, summary: summary, manifest: manifest, targets: targets, selection: selection)
        let jobs = try RestoreJobs(steps)  // reads only the manifest: a damaged entry stops the restore before it writes
        var report = RestoreReport(label: summary.label)
        report.removed = try steps.claimDestination()
        let directories = try steps.makeSkeleton()
        try steps.restoreFiles(jobs, into: &report)
        try steps.writeTablespaceMap(into: &report)
        try RecoveryConfig.write(on: host, dataDirectory: options.dataDirectory, restoreCommand: options.restoreCommand,
                                 settings: plan.recovery.settings.map { ($0.name, $0.value) }, signalFile: plan.recovery.signalFile,
                                 owner: steps.dataDirectoryOwner, log: log)
        warnIfArchivingIntoThisStanza()
        try steps.putControlFileInPlace(directories: directories, keptFiles: report.kept)
        log.info("restore of backup \(summary.label) complete; start PostgreSQL to recover from the archive")
        if !selection.excluded.isEmpty {
            log.warn("database(s) \(selection.excludedText) were restored as zero-filled files and cannot be used: once recovery is done, drop them (DROP DATABASE)")
        }
        self.report = report
        return summary.label
    }

    /// The steps of `run()`, sharing what the plan decided.
    struct Steps {
        let run: RestoreRun
        let summary: BackupSummary
        let manifest: Manifest
        let targets: TargetMap
        /// The databases whose files are zero-filled (`--db-include`, `--db-exclude`).
        let selection: DatabaseSelection
        let ownership: Ownership
        /// Who owns the data directory (and the files pgkeep writes itself).
        let dataDirectoryOwner: (uid: UInt32, gid: UInt32)?
        var options: RestoreOptions { run.options }
        /// Where every write of the restore goes.
        var host: PostgresHost { run.host }

        static let controlName = "pg_data/global/pg_control"
        static let tablespaceMapName = "pg_data/tablespace_map"
        /// pg_control is restored under this name and renamed at the very end.
        let controlTemporary: String
        /// Recovery re-creates the tablespace links from tablespace_map (docs/postgres-internals.md
        /// §1.4): with a tablespace moved, the stored one would point them back at the recorded
        /// locations, so it is written anew instead of restored.
        let rewritesTablespaceMap: Bool

        init(run: RestoreRun, summary: BackupSummary, manifest: Manifest, targets: TargetMap, selection: DatabaseSelection = .everything) throws {
            self.run = run
            self.summary = summary
            self.manifest = manifest
            self.targets = targets
            self.selection = selection
            ownership = try Ownership(manifest: manifest, accounts: .of(run.host), warn: run.log.warn)
            let entry = manifest.paths.first { $0.name == "pg_data" }
            dataDirectoryOwner = ownership.ids(user: entry?.user, group: entry?.group)
            controlTemporary = try targets.absolute(Self.controlName) + ".pgkeep-tmp"
            rewritesTablespaceMap = targets.relocated && manifest.files.contains { $0.name == Self.tablespaceMapName }
            guard manifest.files.contains(where: { $0.name == Self.controlName }) else {
                throw PGKeepError(.repositoryInvalid, "backup \(summary.label) has no global/pg_control", hint: "restore another backup with --set")
            }
        }

        /// Marks the directory as this cluster's restore before anything is removed or written;
        /// with `--delta`, removes pg_control first (until it comes back last the directory
        /// cannot start) and then everything the backup does not have. Returns the entries removed.
        func claimDestination() throws -> Int {
            try host.makeDirectories(FilePath(options.dataDirectory), mode: 0o700)
            try RestoreMarker(stanza: run.layout.stanza, label: summary.label, systemIdentifier: manifest.database.systemIdentifier,
                              version: manifest.database.version).write(on: host, dataDirectory: options.dataDirectory, owner: dataDirectoryOwner)
            guard options.delta else { return 0 }
            let control = FilePath(try targets.absolute(Self.controlName))
            if try host.remove(control) { try host.syncDirectory(control.removingLastComponent()) }
            var clean = try DeltaClean(host: host, manifest: manifest, targets: targets, keep: [Posix.join(options.dataDirectory, RestoreMarker.fileName)],
                                       log: run.log)
            try clean.run(dataDirectory: options.dataDirectory, tablespaceLocations: targets.tablespaceLocations,
                          linkedDirectories: targets.linkTargets.filter { !$0.isFile }.map(\.location))
            return clean.removed
        }

        /// The directory skeleton, parents before children, then the links. Returns the
        /// directories, to be synced before pg_control goes in place.
        func makeSkeleton() throws -> [String] {
            var directories: [String] = []
            for path in manifest.paths.sorted(by: { $0.name.count < $1.name.count }) {
                let absolute = try targets.absolute(path.name)
                // A delta restore over a directory whose linked pg_wal is a plain directory now (or
                // the other way round) had DeltaClean remove it; here it is made as the backup has it.
                try host.makeDirectories(FilePath(absolute), mode: 0o700)
                try host.setMode(FilePath(absolute), mode: RestoreRun.permissions(path.mode))  // follows a kept symlinked pg_wal, as intended
                try ownership.apply(on: host, FilePath(absolute), user: path.user, group: path.group)
                directories.append(absolute)
            }
            for target in targets.plainLinks {
                run.log.info("'\(target.name)' was a link to '\(target.path)' in the backup; restored as a plain \(manifest.files.contains { $0.name == target.name } ? "file" : "directory") in the data directory (--link-all makes the links again)")
            }
            for link in manifest.links.sorted(by: { $0.name.count < $1.name.count }) where targets.makes(link) {
                let absolute = FilePath(try targets.linkPath(link.name))
                // A delta restore kept the links that already point where the backup says.
                if options.delta, (try host.status(absolute))?.kind == .link { continue }
                try host.makeLink(absolute, destination: try targets.linkDestination(link))
                try ownership.apply(on: host, absolute, user: link.user, group: link.group)
            }
            return directories
        }

        /// Runs the jobs with `--process-max` workers, counting what was written and kept. A full
        /// file system is explained: which one, and how much room the backup's files take there;
        /// any other failure's hint says the directory cannot start and --delta finishes it.
        func restoreFiles(_ jobs: RestoreJobs, into report: inout RestoreReport) throws {
            let progress = ProgressReporter(operation: "restore", bytesTotal: jobs.list.reduce(0) { $0 + $1.size },
                                            filesTotal: jobs.list.reduce(0) { $0 + jobs.fileCount($1) }, log: run.log)
            var restored = false
            defer { if !restored { progress.finish(success: false) } }
            var counts = report
            do {
                try Mover(storage: run.storage, host: run.host, processMax: options.processMax, bufferSize: options.bufferSize)
                    .run(jobs.list, prepare: jobs.prepare) { job, result in
                        progress.advance(bytes: job.size, files: jobs.fileCount(job))
                        switch result {
                        case .restored(let size):
                            counts.count(written: size, name: manifest.files[job.id].name)
                        case .kept:
                            counts.kept += 1
                        case .zeroFilled:
                            counts.zeroFilled += 1
                        case .restoredBundle(let outcomes):
                            for outcome in outcomes {
                                if outcome.kept { counts.kept += 1 } else { counts.count(written: outcome.size, name: manifest.files[outcome.id].name) }
                            }
                        default:
                            break
                        }
                    }
            } catch {
                let explained = RestoreSpace.explain(error, label: summary.label, roots: [options.dataDirectory] + targets.tablespaceLocations,
                                                     host: host) { root in
                    manifest.files.reduce(0) { total, file in
                        let path = (try? targets.absolute(file.name)) ?? ""
                        return path.hasPrefix(root + "/") ? total + file.size : total
                    }
                }
                throw RestoreRun.unfinished(explained, dataDirectory: options.dataDirectory)
            }
            restored = true
            progress.finish(success: true)
            report = counts
            if options.delta {
                run.log.info("delta restore: \(report.kept) files kept, \(report.rewritten) rewritten, \(report.removed) entries removed")
            }
            run.log.info("restored \(report.rewritten + 1) files, \(report.bytesWritten) bytes"
                         + (report.zeroFilled > 0 ? "; \(report.zeroFilled) files of excluded databases zero-filled" : ""))
        }

        /// The tablespace_map for the locations this restore used, when a tablespace moved.
        func writeTablespaceMap(into report: inout RestoreReport) throws {
            guard rewritesTablespaceMap, let entry = manifest.files.first(where: { $0.name == Self.tablespaceMapName }) else { return }
            try RecoveryConfig.writeFile(on: host, try targets.absolute(Self.tablespaceMapName), Array(targets.tablespaceMapText.utf8),
                                         mode: RestoreRun.permissions(entry.mode), owner: ownership.ids(user: entry.user, group: entry.group))
            report.rewritten += 1
            run.log.info("wrote tablespace_map for the new tablespace locations: \(targets.tablespaceTargets.map { "\(Posix.basename($0.name)) -> '\($0.location)'" }.joined(separator: ", "))")
        }

        /// Makes everything durable, then puts pg_control in place (rename) and removes the
        /// restore marker: only now can the directory be started.
        func putControlFileInPlace(directories: [String], keptFiles: Int) throws {
            // Kept files were not written by this restore, so nothing synced them; an earlier,
            // interrupted restore may have left them in the page cache only.
            if options.delta, keptFiles > 0 {
                for root in [options.dataDirectory] + targets.tablespaceLocations { try host.syncFileSystem(containing: FilePath(root)) }
            }
            for directory in directories { try host.syncDirectory(FilePath(directory)) }
            let controlFinal = FilePath(try targets.absolute(Self.controlName))
            try host.rename(FilePath(controlTemporary), to: controlFinal)
            try host.syncDirectory(controlFinal.removingLastComponent())
            try RestoreMarker.remove(on: host, dataDirectory: options.dataDirectory)
        }
    }

    /// The restore's jobs: one per file stored on its own or in blocks, one per bundle object.
    /// Bundled files (§3.6) are restored by one job per bundle object, which reads it once; the
    /// jobs start empty and get their members (in offset order) when a worker takes them
    /// (`prepare`), so a restore of many small files holds their details one bundle at a time.
    final class RestoreJobs {
        private(set) var list: [FileJob] = []
        private var bundleMembers: [[(offset: UInt64, id: Int)]] = []
        /// Members per bundle job, kept when `prepare` hands them to a worker.
        private var bundleSizes: [Int] = []
        private let steps: Steps

        init(_ steps: Steps) throws {
            self.steps = steps
            let manifest = steps.manifest
            var bundled: [StoragePath: [(offset: UInt64, id: Int)]] = [:]
            for (index, file) in manifest.files.enumerated() where !(steps.rewritesTablespaceMap && file.name == Steps.tablespaceMapName) {
                if steps.selection.zeroFills(file.name) {
                    list.append(FileJob(id: index, operation: .zeroFill(try zeroFill(index)), size: file.size))
                } else if let bundle = file.bundle, file.blockSize == nil {
                    guard let offset = file.bundleOffset else {
                        throw PGKeepError(.repositoryInvalid, "manifest entry '\(file.name)' of backup \(steps.summary.label) is in bundle \(bundle) without an offset",
                                          hint: "the backup is damaged; restore another backup with --set")
                    }
                    _ = try steps.targets.absolute(file.name)  // a name outside every target fails here, before writing
                    bundled[try steps.run.layout.bundle(label: file.reference, id: bundle), default: []].append((offset, index))
                } else if file.blockSize != nil {
                    list.append(FileJob(id: index, operation: .restoreBlocks(try blocks(index)), size: file.size))
                } else {
                    list.append(FileJob(id: index, operation: .restore(try restoreFile(index)), size: file.size))
                }
            }
            for (offset, (source, files)) in bundled.sorted(by: { $0.key < $1.key }).enumerated() {
                bundleMembers.append(files.sorted { $0.offset < $1.offset })
                bundleSizes.append(files.count)
                list.append(FileJob(id: manifest.files.count + offset, operation: .restoreBundle(.init(source: source, files: [])),
                                    size: files.reduce(UInt64(0)) { $0 + manifest.files[$1.id].size }))
            }
        }

        /// The cluster files `job` restores: a bundle job's members (known before `prepare` fills
        /// them in), otherwise one. Progress counts files, so that it agrees with the summary.
        func fileCount(_ job: FileJob) -> Int {
            guard case .restoreBundle = job.operation else { return job.fileCount }
            return bundleSizes[job.id - steps.manifest.files.count]
        }

        /// Fills a bundle job with its members as a worker takes it.
        func prepare(_ job: FileJob) throws -> FileJob {
            guard case .restoreBundle(var bundle) = job.operation, bundle.files.isEmpty else { return job }
            let number = job.id - steps.manifest.files.count
            bundle.files = try bundleMembers[number].map { .init(id: $0.id, offset: $0.offset, file: try restoreFile($0.id)) }
            bundleMembers[number] = []
            return FileJob(id: job.id, operation: .restoreBundle(bundle), size: job.size)
        }

        /// Where manifest entry `index` lands; pg_control under its temporary name.
        private func destination(_ file: Manifest.FileEntry) throws -> String {
            file.name == Steps.controlName ? steps.controlTemporary : try steps.targets.absolute(file.name)
        }

        /// A delta restore keeps matching files, except pg_control, which it removed first.
        private func keepsMatching(_ file: Manifest.FileEntry) -> Bool {
            steps.options.delta && file.name != Steps.controlName
        }

        /// What a worker needs to restore manifest entry `index` (stored on its own or bundled).
        private func restoreFile(_ index: Int) throws -> FileJob.RestoreFile {
            let file = steps.manifest.files[index]
            let layout = steps.run.layout
            var restore = FileJob.RestoreFile(
                source: try layout.backupFile(label: file.reference, name: file.name, compression: file.compression),
                destination: try destination(file), compression: file.compression, size: file.size, checksum: file.checksum,
                repoSize: file.repoSize, repoChecksum: file.repoChecksum, mode: RestoreRun.permissions(file.mode), mtime: file.mtime)
            restore.owner = steps.ownership.ids(user: file.user, group: file.group)
            restore.keepMatching = keepsMatching(file)
            if let bundle = file.bundle { restore.source = try layout.bundle(label: file.reference, id: bundle) }
            return restore
        }

        /// A file of an excluded database: zeros of its recorded size, nothing read.
        private func zeroFill(_ index: Int) throws -> FileJob.ZeroFill {
            let file = steps.manifest.files[index]
            var zeros = FileJob.ZeroFill(destination: try destination(file), size: file.size, mode: RestoreRun.permissions(file.mode), mtime: file.mtime)
            let owner = steps.ownership.ids(user: file.user, group: file.group)
            zeros.ownerUID = owner?.uid
            zeros.ownerGID = owner?.gid
            return zeros
        }

        /// A file stored in blocks: reassembled from its block map.
        private func blocks(_ index: Int) throws -> FileJob.RestoreBlocks {
            let file = steps.manifest.files[index]
            guard let blockSize = file.blockSize, let mapSize = file.blockMapSize, let mapChecksum = file.blockMapChecksum, blockSize > 0 else {
                throw PGKeepError(.repositoryInvalid, "manifest entry '\(file.name)' of backup \(steps.summary.label) is block-incremental without a block map",
                                  hint: "the backup is damaged; restore another backup with --set")
            }
            var blocks = FileJob.RestoreBlocks(
                stanza: steps.run.layout.stanza, name: file.name, map: try steps.run.layout.blockMap(label: file.reference, name: file.name),
                mapSize: mapSize, mapChecksum: mapChecksum, destination: try destination(file), size: file.size,
                checksum: file.checksum, mode: RestoreRun.permissions(file.mode), mtime: file.mtime)
            let owner = steps.ownership.ids(user: file.user, group: file.group)
            blocks.ownerUID = owner?.uid
            blocks.ownerGID = owner?.gid
            blocks.keepMatching = keepsMatching(file)
            return blocks
        }
    }
}

extension RestoreReport {
    /// A file written from the repository; pg_control is not counted among the rewritten.
    mutating func count(written size: UInt64, name: String) {
        bytesWritten += size
        if name != RestoreRun.Steps.controlName { rewritten += 1 }
    }
}

extension RestoreRun {
    /// The permission bits a restored entry gets: the recorded ones without setuid, setgid and
    /// sticky. PostgreSQL never sets them in a data directory, and a manifest that asks for them
    /// (a tampered one, restored by root) would leave a setuid file owned by the database user.
    static func permissions(_ recorded: UInt32) -> UInt32 { recorded & 0o777 }

    /// A restore that failed while writing files: the error as it was, its hint extended with
    /// what the operator has now and how to finish (disk-full errors already say so).
    static func unfinished(_ error: any Error, dataDirectory: String) -> any Error {
        guard var error = error as? PGKeepError, error.code != .diskFull else { return error }
        let state = "'\(dataDirectory)' is left half-restored without global/pg_control, so PostgreSQL refuses to start it; "
            + "once the cause is fixed, run the restore again with --delta: it keeps the files already restored"
        error.hint = [error.hint, state].compactMap { $0 }.joined(separator: "; ")
        return error
    }

    /// A restored cluster that keeps production's archiving writes its own timeline into the
    /// stanza once promoted, and a later `latest` restore may follow it: say so while it can
    /// still be changed.
    func warnIfArchivingIntoThisStanza() {
        guard options.archiveMode == .preserve,
              let settings = try? ArchiveSettings.read(on: host, dataDirectory: options.dataDirectory),
              settings.archives(into: layout.stanza) else { return }
        log.warn("the restored cluster keeps archive_mode = '\(settings.mode)' and archive_command = '\(settings.command)', which archives into stanza '\(layout.stanza)', the stanza it was restored from: once promoted it will write its own timeline there, next to the cluster it came from. For a test or clone, restore with --archive-mode=off (or change archive_command before starting it)")
    }
}

/// Where manifest names land on this host.
struct TargetMap {
    let dataDirectory: String
    private var tablespaces: [String: String] = [:]   // "pg_tblspc/<oid>" → location
    /// Links in the data directory (`link` targets) this restore makes: "pg_data/<link>" → where
    /// it points.
    private var links: [String: String] = [:]
    /// The link targets that are files (a linked postgresql.conf), not directories.
    private var fileLinks: Set<String> = []
    /// Link targets restored as a plain directory or file in the data directory instead.
    private(set) var plainLinks: [Manifest.Target] = []

    /// Which links are made again, as pgBackRest decides: tablespace links always; other links
    /// with `linkAll` (`--link-all`) or a `--link-map` entry, or when a delta restore finds the
    /// very link in place already (a cluster's own `initdb --waldir` pg_wal). Otherwise a linked
    /// directory or file is restored as a plain one in the data directory: its recorded location
    /// may be another cluster's on this host, or not exist on it.
    ///
    /// `relocation` moves tablespaces and links; only the locations the manifest recorded or the
    /// operator named are ever written. Every key must name something the backup has, and no
    /// two locations (nor a location and the data directory) may overlap.
    /// `host` is where a delta restore looks for the links already in place.
    init(manifest: Manifest, dataDirectory: String, linkAll: Bool = false, delta: Bool = false,
         relocation: RestoreOptions.Relocation = .init(), host: PostgresHost = LocalHost()) throws {
        self.dataDirectory = dataDirectory
        let spaces = manifest.targets.filter { $0.kind == .tablespace }
        for key in relocation.tablespaces.keys.sorted()
        where !spaces.contains(where: { $0.tablespaceName == key || $0.tablespaceOID.map(String.init) == key }) {
            let known = spaces.map { "\($0.tablespaceName ?? "?") (oid \($0.tablespaceOID.map(String.init) ?? Posix.basename($0.name)))" }
            throw PGKeepError(.optionInvalid, "--tablespace-map names tablespace '\(key)', which backup \(manifest.backup.label) does not have",
                              hint: known.isEmpty ? "the backup has no tablespaces; remove --tablespace-map"
                                                  : "map one of its tablespaces by name or oid: \(known.joined(separator: ", "))")
        }
        for target in spaces {
            let byName = target.tablespaceName.flatMap { relocation.tablespaces[$0] }
            let byOID = target.tablespaceOID.flatMap { relocation.tablespaces[String($0)] }
            if let byName, let byOID, byName != byOID {
                throw PGKeepError(.optionInvalid, "--tablespace-map maps tablespace '\(target.tablespaceName!)' (oid \(target.tablespaceOID!)) twice, to '\(byName)' and to '\(byOID)'",
                                  hint: "map each tablespace once, by name or by oid")
            }
            var location = byName ?? byOID ?? target.path
            if byName == nil, byOID == nil, let under = relocation.tablespacesUnder {
                guard let name = target.tablespaceName, !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
                    throw PGKeepError(.optionInvalid, "--tablespace-map-all cannot place tablespace \(target.name): the backup records no usable name for it",
                                      hint: "map it with --tablespace-map=\(target.tablespaceOID.map(String.init) ?? Posix.basename(target.name))=<path>")
                }
                location = Posix.join(under, name)
            }
            tablespaces[target.name] = location
        }
        let fileNames = Set(manifest.files.map(\.name))
        let linked = manifest.targets.filter { $0.kind == .link }
        for key in relocation.links.keys.sorted() where !linked.contains(where: { $0.name == "pg_data/" + key }) {
            let known = linked.map { String($0.name.dropFirst("pg_data/".count)) }
            throw PGKeepError(.optionInvalid, "--link-map names link '\(key)', which backup \(manifest.backup.label) does not have",
                              hint: known.isEmpty ? "the backup recorded no links in the data directory; remove --link-map"
                                                  : "name a link by its path in the data directory: \(known.joined(separator: ", "))")
        }
        for target in linked {
            let mapped = relocation.links[String(target.name.dropFirst("pg_data/".count))]
            let location = mapped ?? target.path
            var keep = linkAll || mapped != nil
            if !keep, delta, let link = try? linkPath(target.name), (try host.status(FilePath(link)))?.kind == .link {
                let destination = try host.readLink(FilePath(link))
                let pointsTo = destination.hasPrefix("/") ? destination : Posix.join(Posix.dirname(link), destination)
                keep = host.resolve(FilePath(pointsTo)) == host.resolve(FilePath(target.path))
            }
            guard keep else { plainLinks.append(target); continue }
            links[target.name] = location
            if fileNames.contains(target.name) { fileLinks.insert(target.name) }
        }
        relocated = spaces.contains { tablespaces[$0.name] != $0.path }
        try refuseOverlaps()
    }

    /// Whether a tablespace goes elsewhere than the backup recorded: then the `tablespace_map`
    /// the backup stored, which recovery would follow, is written anew (`tablespaceMapText`).
    private(set) var relocated = false

    /// Each place this restore writes must be its own: a location inside the data directory,
    /// inside another location, or the same as another would mix two targets' files, and a
    /// delta restore would remove one's files as strangers to the other.
    private func refuseOverlaps() throws {
        var places: [(what: String, path: String)] = [("the data directory", dataDirectory)]
        places += tablespaceTargets.map { ("tablespace \($0.name)", $0.location) }
        places += linkTargets.map { ("link '\($0.name.dropFirst("pg_data/".count))'", $0.location) }
        for place in places where place.path.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) {
            throw PGKeepError(.optionInvalid, "\(place.what) would be restored to '\(place.path)', which is not a clean absolute path ('.' or '..' in it)",
                              hint: "name the location without '.' and '..' components")
        }
        for (index, place) in places.enumerated() {
            for other in places[(index + 1)...] {
                let inside = other.path == place.path || other.path.hasPrefix(place.path + "/") || place.path.hasPrefix(other.path + "/")
                guard inside else { continue }
                throw PGKeepError(.optionInvalid, "\(other.what) would be restored to '\(other.path)', which overlaps \(place.what) at '\(place.path)'",
                                  hint: "give each tablespace and link a location of its own, outside the data directory (--tablespace-map, --tablespace-map-all, --link-map)")
            }
        }
    }

    /// The `tablespace_map` recovery reads, for the locations this restore uses: one
    /// `<oid> <location>` line per tablespace, with `\`, newline and carriage return in the
    /// location escaped by a backslash (docs/postgres-internals.md §1.4).
    var tablespaceMapText: String {
        tablespaceTargets.map { target in
            var escaped = String.UnicodeScalarView()
            for scalar in target.location.unicodeScalars {
                if scalar == "\\" || scalar == "\n" || scalar == "\r" { escaped.append("\\") }
                escaped.append(scalar)
            }
            return "\(Posix.basename(target.name)) \(String(escaped))\n"
        }.joined()
    }

    /// Whether this restore makes `link` (a tablespace link, or a link target it keeps).
    func makes(_ link: Manifest.LinkEntry) -> Bool {
        links[link.name] != nil || !plainLinks.contains { $0.name == link.name }
    }

    /// Each link target: its name, where the link points, and whether it is a linked file.
    var linkTargets: [(name: String, location: String, isFile: Bool)] {
        links.sorted { $0.key < $1.key }.map { ($0.key, $0.value, fileLinks.contains($0.key)) }
    }

    /// Where a link entry itself is made: in the data directory, never through another link.
    func linkPath(_ name: String) throws -> String {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "pg_data", !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw PGKeepError(.repositoryInvalid, "link '\(name)' is not a safe path in the data directory")
        }
        return Posix.join(dataDirectory, parts.dropFirst().joined(separator: "/"))
    }

    var tablespaceLocations: [String] { tablespaces.values.sorted() }
    /// Each tablespace's name in the data directory (`pg_tblspc/<oid>`) and its location.
    var tablespaceTargets: [(name: String, location: String)] { tablespaces.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }

    /// Maps `pg_data/x` and `pg_tblspc/<oid>/x` to absolute paths; anything else is refused, as are
    /// names that would climb out of their target.
    func absolute(_ name: String) throws -> String {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw PGKeepError(.repositoryInvalid, "manifest entry '\(name)' is not a safe path")
        }
        if parts.first == "pg_data" {
            // Entries at or below a data-directory link go straight to where it points: nothing
            // is ever written through a link.
            for end in stride(from: parts.count, through: 2, by: -1) {
                let prefix = parts[0..<end].joined(separator: "/")
                if let location = links[prefix] {
                    return end == parts.count ? location : Posix.join(location, parts[end...].joined(separator: "/"))
                }
            }
            return parts.count == 1 ? dataDirectory : Posix.join(dataDirectory, parts.dropFirst().joined(separator: "/"))
        }
        if parts.first == "pg_tblspc", parts.count >= 2, let location = tablespaces["pg_tblspc/\(parts[1])"] {
            return parts.count == 2 ? location : Posix.join(location, parts.dropFirst(2).joined(separator: "/"))
        }
        throw PGKeepError(.repositoryInvalid, "manifest entry '\(name)' belongs to no target")
    }

    func linkDestination(_ link: Manifest.LinkEntry) throws -> String {
        if let location = links[link.name] { return location }
        let oid = Posix.basename(link.name)
        return tablespaces["pg_tblspc/\(oid)"] ?? link.destination
    }
}

/// Owners of restored files. As root, files get the owners recorded in the manifest; a name this
/// host does not know (or an entry recorded without one: its uid had no name on the source host)
/// falls back to the user `postgres` and the group `postgres` (else that user's primary group),
/// never root, since PostgreSQL refuses a data directory it does not own. Each fallback is a
/// warning naming the recorded name, once. When a fallback is needed and this host has no
/// `postgres` user either, the restore is refused before anything is written. As any other user,
/// files belong to that user and nothing is looked up.
final class Ownership {
    /// The account lookups, replaceable in tests.
    struct Accounts {
        var isRoot: Bool
        var userID: (String) -> UInt32?
        var groupID: (String) -> UInt32?
        var primaryGroup: (String) -> UInt32?

        static var system: Accounts { of(LocalHost()) }

        /// The accounts of the host the files are restored onto, and whether they are written
        /// there as root.
        static func of(_ host: PostgresHostWriting) -> Accounts {
            Accounts(isRoot: host.runsAsRoot, userID: host.userID(name:), groupID: host.groupID(name:),
                     primaryGroup: host.primaryGroupID(name:))
        }
    }

    static let fallbackName = "postgres"

    private var users: [String: UInt32] = [:]
    private var groups: [String: UInt32] = [:]
    private var fallback: (uid: UInt32, gid: UInt32)?
    private let isRoot: Bool

    /// Resolves every owner name the manifest records (all lookups happen here, on one thread, so
    /// `ids` is a plain read from the workers).
    init(manifest: Manifest, accounts: Accounts = .system, warn: (String) -> Void) throws {
        isRoot = accounts.isRoot
        guard isRoot else { return }
        let owners = manifest.paths.map { ($0.name, $0.user, $0.group) } + manifest.links.map { ($0.name, $0.user, $0.group) }
            + manifest.files.map { ($0.name, $0.user, $0.group) }
        var unknown: [String] = []   // "user 'x'", "group 'y'", in the order met
        var unnamed: String?         // the first entry recorded without a user or group name
        for (entry, user, group) in owners {
            if let user {
                if users[user] == nil, !unknown.contains("user '\(user)'") {
                    if let uid = accounts.userID(user) { users[user] = uid } else { unknown.append("user '\(user)'") }
                }
            } else {
                unnamed = unnamed ?? entry
            }
            if let group {
                if groups[group] == nil, !unknown.contains("group '\(group)'") {
                    if let gid = accounts.groupID(group) { groups[group] = gid } else { unknown.append("group '\(group)'") }
                }
            } else {
                unnamed = unnamed ?? entry
            }
        }
        guard !unknown.isEmpty || unnamed != nil else { return }
        guard let uid = accounts.userID(Self.fallbackName) else {
            let missing = unknown + (unnamed.map { ["owner of '\($0)' (recorded without a name)"] } ?? [])
            throw PGKeepError(.runAsRoot,
                              "restore as root: the backup's \(missing.joined(separator: ", ")) cannot be found on this host, and neither can the fallback user '\(Self.fallbackName)': the restored files would belong to root, and PostgreSQL refuses to run on such a data directory",
                              hint: "create the missing user or group (or '\(Self.fallbackName)') on this host, or run the restore as the OS user that will run PostgreSQL; nothing was written")
        }
        let gid = accounts.groupID(Self.fallbackName) ?? accounts.primaryGroup(Self.fallbackName) ?? 0
        fallback = (uid, gid)
        for name in unknown {
            let instead = name.hasPrefix("user") ? "user '\(Self.fallbackName)' (uid \(uid))" : "group \(gid) ('\(Self.fallbackName)' or that user's primary group)"
            warn("the backup records owner \(name), which does not exist on this host: files it owns are given to \(instead) instead")
        }
        if let unnamed {
            warn("the backup records '\(unnamed)' (and perhaps more) without an owner user or group name (its id had none on the source host): such files are given to user '\(Self.fallbackName)' (uid \(uid)), group \(gid) instead")
        }
    }

    /// The owner to give an entry recorded with `user` and `group`; nil when not root (nothing to change).
    func ids(user: String?, group: String?) -> (uid: UInt32, gid: UInt32)? {
        guard isRoot else { return nil }
        guard let uid = user.flatMap({ users[$0] }) ?? fallback?.uid, let gid = group.flatMap({ groups[$0] }) ?? fallback?.gid else {
            preconditionFailure("Ownership.init sets a fallback whenever an entry needs one")
        }
        return (uid, gid)
    }

    func apply(on host: PostgresHostWriting, _ path: FilePath, user: String?, group: String?) throws {
        guard let ids = ids(user: user, group: group) else { return }
        try host.setOwner(path, uid: ids.uid, gid: ids.gid)
    }
}
