import SystemPackage
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// What stanza-repair needs, resolved by the command front.
public struct StanzaRepairOptions: Sendable {
    /// The cluster's data directory (`--pg1-path`): its pg_control must be the cluster the
    /// repository records. Optional; the one source of the identity when nothing else records it.
    public var dataDirectory: String?
    /// Rebuild even when both twins of both files are valid and agree (`--force`).
    public var force: Bool
    /// Say what would be written, write nothing (`--dry-run`).
    public var dryRun: Bool
    public var lockPath: String
    /// The repository lease it holds, as backup and expire do (`StanzaBackupLock`).
    public var lease = LeaseSettings()

    public init(dataDirectory: String?, force: Bool, dryRun: Bool, lockPath: String) {
        self.dataDirectory = dataDirectory
        self.force = force
        self.dryRun = dryRun
        self.lockPath = lockPath
    }
}

/// `stanza-repair`: rebuilds `archive.info` and `backup.info` (with their copies) from what the
/// repository holds, when readers can no longer use them (repo-layout.md §3: no valid twin left,
/// twins that differ, two files that disagree).
///
/// 1. Take the stanza lock `backup` and `expire` take (this host's and the repository lease): no
///    backup directory changes meanwhile, on any host sharing the repository.
/// 2. Read each twin on its own. When all four are valid, the twins byte for byte alike and the
///    two files agree, there is nothing to repair: refused (`repairNotNeeded`) unless `--force`.
///    A file in a later format than this pgkeep reads is refused: it is not damage.
/// 3. Backups: every directory named like a label whose manifest (or its copy) verifies, names
///    that label and passes the restore checks, in label order; a backup is listed only when
///    the backups it builds on and references are listed. Interrupted backups (only a partial
///    manifest) are not backups.
/// 4. Identity: the manifests record the cluster each backup was taken from (`database`); they
///    win over the info files' claims, which only fill in database ids no backup records. With
///    `--pg1-path` pg_control must be that cluster, and it supplies the identity when nothing
///    else does. Every archive id directory must belong to the rebuilt history.
/// 5. The entries are what `backup` writes (`BackupSummary(manifest:...)`); what a diff or incr
///    copied of a block-incremental file is read from its block map.
/// 6. Nothing is deleted. A twin that is replaced and differs from the rebuilt bytes is first
///    written aside, `<name>.damaged-<time>` when it failed its checks, `<name>.replaced-<time>`
///    when it was valid (repo-layout.md §2); then archive.info and backup.info are written, each
///    sealed with its copy (stanza-create's order). A file whose twins already hold the rebuilt
///    bytes is not touched.
public struct StanzaRepair {
    let storage: Storage
    /// The database host, read for pg_control when `--pg1-path` is given (`PostgresHost`).
    let host: PostgresHost
    let layout: RepositoryLayout
    let options: StanzaRepairOptions
    let log: Log

    public init(storage: Storage, host: PostgresHost, layout: RepositoryLayout, options: StanzaRepairOptions, log: Log) {
        self.storage = storage
        self.host = host
        self.layout = layout
        self.options = options
        self.log = log
    }

    public func run(now: Int64 = Clock.now()) throws -> StanzaRepairReport {
        let lock = try StanzaBackupLock(storage: storage, layout: layout, lockPath: options.lockPath, lease: options.lease,
                                        command: "stanza-repair", log: log)
        defer { withExtendedLifetime(lock) {} }

        let archiveTwins = try InfoTwins<ArchiveInfo>(layout.archiveInfo, in: storage)
        let backupTwins = try InfoTwins<BackupInfo>(layout.backupInfo, in: storage)
        try refuseMissingStanza(archiveTwins, backupTwins)
        if !options.force { try refuseHealthy(archiveTwins, backupTwins) }

        var report = StanzaRepairReport(stanza: layout.stanza, dryRun: options.dryRun)
        report.twins = [archiveTwins.summary(storage), backupTwins.summary(storage)]
        let found = try scanBackups(&report)
        let control = try options.dataDirectory.map { try PGControl.read(from: host, dataDirectory: FilePath($0)).control }
        var claims: [(String, [DatabaseIdentity])] = []
        if let archive = archiveTwins.value { claims.append(("archive.info", archive.history)) }
        if let backup = backupTwins.value { claims.append(("backup.info", backup.history)) }
        let history = try rebuiltHistory(manifests: found, claims: claims, control: control, report: &report)
        let current = history[history.count - 1]
        var archiveInfo = ArchiveInfo(current: current)
        archiveInfo.history = history
        var backupInfo = BackupInfo(current: current)
        backupInfo.history = history
        backupInfo.backups = listable(found, report: &report)
        if let before = backupTwins.value { report.noteListChanges(from: before.backups, to: backupInfo.backups) }

        let stamp = BackupLabel.timestamp(now)
        report.files = [try plan(archiveTwins, rebuilt: archiveInfo, stamp: stamp),
                        try plan(backupTwins, rebuilt: backupInfo, stamp: stamp)]
        if !options.dryRun {
            try lock.lease.confirm()
            try write(report.files)
        }
        for line in report.lines { log.fileOnly(.info, line) }
        return report
    }

    // MARK: step 2

    /// A stanza with no info file, backup or archive directory was never created (or --stanza is
    /// misspelt): repairing would create one, which is stanza-create's job.
    private func refuseMissingStanza(_ archive: InfoTwins<ArchiveInfo>, _ backup: InfoTwins<BackupInfo>) throws {
        guard archive.isMissing, backup.isMissing,
              try InfoFiles.contentsNeeding(layout.backupInfo, storage, layout) == nil,
              try InfoFiles.contentsNeeding(layout.archiveInfo, storage, layout) == nil else { return }
        throw PGKeepError(.stanzaMissing, "stanza '\(layout.stanza)' has nothing to repair in '\(storage.describe(.root))': no info file, backup or archive directory",
                          hint: "check --repo1-path and --stanza; a new stanza is made with 'pgkeep --stanza=\(layout.stanza) stanza-create'")
    }

    private func refuseHealthy(_ archive: InfoTwins<ArchiveInfo>, _ backup: InfoTwins<BackupInfo>) throws {
        guard let archiveInfo = archive.healthyValue, let backupInfo = backup.healthyValue,
              archiveInfo.current == backupInfo.current, archiveInfo.history == backupInfo.history else { return }
        throw PGKeepError(.repairNotNeeded,
                          "stanza '\(layout.stanza)' needs no repair: '\(storage.describe(archive.path))', '\(storage.describe(backup.path))' and their copies are valid, each alike its copy, and they agree",
                          hint: "run 'pgkeep --stanza=\(layout.stanza) verify' to check the backups and WAL; '--force' rebuilds both files from the backup manifests anyway (a file that changes is kept aside first)")
    }

    // MARK: step 3

    /// A backup whose manifest verified: its entry (all but what its references store) and the
    /// cluster it was taken from. The manifest itself is not kept: a cluster's file list each.
    struct FoundBackup {
        var summary: BackupSummary
        var identity: DatabaseIdentity
    }

    /// The backups the repository holds, in label order; every directory named like a label is
    /// reported, found or skipped with the reason.
    private func scanBackups(_ report: inout StanzaRepairReport) throws -> [FoundBackup] {
        let labels = try storage.list(layout.backupRoot).filter { $0.kind == .directory }.compactMap { BackupLabel($0.name) }.sorted()
        var found: [FoundBackup] = []
        for label in labels {
            var copyUsed: String?
            let manifest: Manifest
            do {
                guard let loaded = try SealedFile.load(Manifest.self, from: try layout.manifest(label: label), in: storage,
                                                       warn: { copyUsed = $0 }) else {
                    report.backups[label] = .skipped(reason: try storage.info(try layout.partialManifest(label: label)) != nil
                        ? "an interrupted backup (only backup.manifest.partial): the next backup resumes or removes it"
                        : "no backup.manifest or backup.manifest.copy")
                    continue
                }
                guard loaded.backup.label == label else {
                    report.backups[label] = .skipped(reason: "its manifest describes backup \(loaded.backup.label)")
                    continue
                }
                try loaded.validateForRestore()
                manifest = loaded
            } catch let error as PGKeepError where Self.isDamage(error) {
                report.backups[label] = .skipped(reason: error.message)
                continue
            }
            report.backups[label] = .found(note: copyUsed)
            let summary = BackupSummary(manifest: manifest, files: manifest.files, sizeDelta: try copiedBytes(manifest, report: &report),
                                        referencedRepoSize: 0)
            found.append(FoundBackup(summary: summary, identity: manifest.database.identity))
        }
        return found
    }

    /// Errors that say a stored file is damaged or unusable (as opposed to the repository being
    /// unreachable, which must stop the repair rather than drop a backup from the list).
    static func isDamage(_ error: PGKeepError) -> Bool {
        [.checksumMismatch, .formatInvalid, .repositoryInvalid, .fileMissing].contains(error.code)
    }

    // MARK: step 4

    /// The identity history, oldest id first: what the manifests record, then the info files'
    /// claims for ids no manifest records, then pg_control when nothing records anything.
    private func rebuiltHistory(manifests: [FoundBackup], claims: [(source: String, history: [DatabaseIdentity])],
                                control: PGControl?, report: inout StanzaRepairReport) throws -> [DatabaseIdentity] {
        var byID: [Int: (identity: DatabaseIdentity, source: String)] = [:]
        for manifest in manifests {
            let identity = manifest.identity
            let source = "the manifest of backup \(manifest.summary.label)"
            if let known = byID[identity.id], known.identity != identity {
                throw PGKeepError(.repositoryInvalid,
                                  "\(known.source) and \(source) record different clusters for database id \(identity.id): \(Self.describe(known.identity)) and \(Self.describe(identity))",
                                  hint: "backups of two clusters are mixed in stanza '\(layout.stanza)': move the directory of the foreign backup out of the repository, then run stanza-repair again")
            }
            byID[identity.id] = byID[identity.id] ?? (identity, source)
        }
        let recordedByBackups = Set(byID.keys)
        for (source, history) in claims {
            for identity in history {
                if recordedByBackups.contains(identity.id) {
                    if byID[identity.id]!.identity != identity {
                        report.note("\(source) records \(Self.describe(identity)) for database id \(identity.id), the backups \(Self.describe(byID[identity.id]!.identity)): the backups' record is used")
                    }
                    continue
                }
                if let known = byID[identity.id], known.identity != identity {
                    throw PGKeepError(.repositoryInvalid,
                                      "\(known.source) and \(source) disagree about database id \(identity.id) (\(Self.describe(known.identity)) and \(Self.describe(identity))), and no backup records it",
                                      hint: "put back the right file from a copy of the repository, or move the wrong one out of the repository, then run stanza-repair again")
                }
                byID[identity.id] = byID[identity.id] ?? (identity, source)
            }
        }
        let archiveDirectories = try storage.list(layout.archiveRoot).filter { $0.kind == .directory }.compactMap { ArchiveDirectory($0.name) }
        if byID.isEmpty, let control, let dataDirectory = options.dataDirectory {
            // Nothing but the cluster itself: its archive id is the one its WAL went to, if any.
            let id = archiveDirectories.filter { $0.version == control.version.major }.map(\.id).max() ?? 1
            byID[id] = (DatabaseIdentity(control: control, id: id), "pg_control in '\(dataDirectory)'")
        }
        guard !byID.isEmpty else {
            throw PGKeepError(.repositoryInvalid,
                              "no backup manifest, valid info file or --pg1-path tells which cluster stanza '\(layout.stanza)' serves",
                              hint: "pass --pg1-path=<data directory of the cluster> to stanza-repair")
        }
        let history = byID.keys.sorted().map { byID[$0]!.identity }
        let current = history[history.count - 1]
        report.identity = current
        report.identitySource = byID[current.id]!.source
        if let control, let dataDirectory = options.dataDirectory,
           !current.matches(systemIdentifier: control.systemIdentifier, version: control.version.major) {
            throw PGKeepError(.stanzaMismatch,
                              "the cluster in '\(dataDirectory)' (system identifier \(control.systemIdentifier), PostgreSQL \(control.version.major)) is not the one stanza '\(layout.stanza)' serves according to \(byID[current.id]!.source) (\(Self.describe(current)))",
                              hint: "check --pg1-path and --stanza; nothing was written")
        }
        if control != nil, let dataDirectory = options.dataDirectory, byID[current.id]!.source != "pg_control in '\(dataDirectory)'" {
            report.note("pg_control in '\(dataDirectory)' is the same cluster")
        }
        let known = Set(history.map(\.archiveID))
        if let stray = archiveDirectories.first(where: { !known.contains("\($0.version)-\($0.id)") }) {
            let path = try layout.archiveDirectory(archiveID: "\(stray.version)-\(stray.id)")
            throw PGKeepError(.repositoryInvalid,
                              "archive directory '\(storage.describe(path))' belongs to no database id a manifest or info file records (\(history.map(\.archiveID).joined(separator: ", ")))",
                              hint: "put back archive.info from a copy of the repository, or move the directory out of the repository, then run stanza-repair again; nothing was written")
        }
        return history
    }

    static func describe(_ identity: DatabaseIdentity) -> String {
        "system identifier \(identity.systemIdentifier), PostgreSQL \(identity.version)"
    }

    // MARK: step 5

    /// backup.info's entries, in label order (the order backups complete in: a new label sorts
    /// after every listed one, a resumed backup's too). A backup is listed only with every
    /// backup it builds on or references, which also gives it the stored size of those.
    private func listable(_ found: [FoundBackup], report: inout StanzaRepairReport) -> [BackupSummary] {
        var listed: [BackupLabel: BackupSummary] = [:]
        var summaries: [BackupSummary] = []
        for backup in found {
            var summary = backup.summary
            if let missing = ([summary.prior].compactMap { $0 } + summary.references).first(where: { listed[$0] == nil }) {
                report.backups[summary.label] = .skipped(reason: "it needs backup \(missing), which is not listed")
                continue
            }
            summary.repoSizeTotal = summary.repoSize + summary.references.reduce(UInt64(0)) { $0 + listed[$1]!.repoSize }
            listed[summary.label] = summary
            summaries.append(summary)
        }
        return summaries
    }

    /// The original bytes the backup copied, as `backup` counts them: every file it stored
    /// whole, and of each block-incremental file of a diff or incr the blocks it stored itself
    /// (its block map says which). An unreadable map counts the whole file, with a note.
    private func copiedBytes(_ manifest: Manifest, report: inout StanzaRepairReport) throws -> UInt64 {
        let label = manifest.backup.label
        var total: UInt64 = 0
        for entry in manifest.files where entry.reference == label {
            guard manifest.backup.type != .full, let mapSize = entry.blockMapSize, let mapChecksum = entry.blockMapChecksum else {
                total += entry.size
                continue
            }
            do {
                let map = try BlockMap.load(try layout.blockMap(label: label, name: entry.name), size: mapSize, checksum: mapChecksum,
                                            from: storage)
                total += map.originalBytes(storedBy: label)
            } catch let error as PGKeepError where Self.isDamage(error) {
                report.note("backup \(label): \(error.message); its copied size counts the whole file (verify reports the damage)")
                total += entry.size
            }
        }
        return total
    }

    // MARK: step 6

    private func plan<T>(_ twins: InfoTwins<T>, rebuilt: some Encodable, stamp: String) throws -> InfoFileRepair {
        let bytes = try SealedFile.seal(rebuilt)
        var repair = InfoFileRepair(path: storage.describe(twins.path), storagePath: twins.path, bytes: bytes)
        for (path, state) in [(twins.path, twins.main), (twins.copy, twins.twin)] {
            switch state {
            case .missing: repair.write = true
            case .valid(let existing, _) where existing == bytes: break
            case .valid(let existing, _): repair.asides.append(try aside(path, existing, kind: "replaced", stamp: stamp))
            case .damaged(let existing, _): repair.asides.append(try aside(path, existing, kind: "damaged", stamp: stamp))
            }
        }
        repair.write = repair.write || !repair.asides.isEmpty
        return repair
    }

    /// `<name>.<kind>-<time>`, numbered on when a repair in the same second left one already.
    private func aside(_ path: StoragePath, _ bytes: [UInt8], kind: String, stamp: String) throws -> InfoFileRepair.Aside {
        var name = "\(path.name).\(kind)-\(stamp)"
        var number = 1
        while try storage.info(try path.parent.appending(name)) != nil {
            number += 1
            name = "\(path.name).\(kind)-\(stamp)-\(number)"
        }
        let target = try path.parent.appending(name)
        return .init(from: storage.describe(path), to: storage.describe(target), target: target, bytes: bytes)
    }

    /// Everything aside first (each durable), then the files, archive.info before backup.info.
    private func write(_ files: [InfoFileRepair]) throws {
        for aside in files.flatMap(\.asides) { try storage.writeSmallFile(aside.target, aside.bytes) }
        for file in files where file.write {
            try storage.writeSmallFile(file.storagePath, file.bytes)
            try storage.writeSmallFile(try SealedFile.copyPath(of: file.storagePath), file.bytes)
        }
    }
}

/// An info file and its `.copy` as stanza-repair finds them, each read on its own.
struct InfoTwins<T: Decodable> {
    enum State {
        case missing
        case damaged(bytes: [UInt8], problem: String)
        case valid(bytes: [UInt8], value: T)
    }

    let path: StoragePath
    let copy: StoragePath
    let main: State
    let twin: State

    init(_ path: StoragePath, in storage: Storage) throws {
        self.path = path
        copy = try SealedFile.copyPath(of: path)
        main = try Self.read(path, storage)
        twin = try Self.read(copy, storage)
    }

    /// A file in a later format than this pgkeep reads fails `open` with `repositoryInvalid`,
    /// which is passed on: it is not damage, and stanza-repair never rewrites what it cannot read.
    private static func read(_ path: StoragePath, _ storage: Storage) throws -> State {
        guard let bytes = try storage.readSmallFile(path) else { return .missing }
        do {
            return .valid(bytes: bytes, value: try SealedFile.open(T.self, from: bytes, name: storage.describe(path)))
        } catch let error as PGKeepError where error.code == .checksumMismatch || error.code == .formatInvalid {
            return .damaged(bytes: bytes, problem: error.message)
        }
    }

    var isMissing: Bool {
        if case .missing = main, case .missing = twin { return true }
        return false
    }

    /// What a reader uses: the main file when valid, else the copy.
    var value: T? {
        if case .valid(_, let value) = main { return value }
        if case .valid(_, let value) = twin { return value }
        return nil
    }

    /// The value when both twins are valid and alike, byte for byte.
    var healthyValue: T? {
        guard case .valid(let a, let value) = main, case .valid(let b, _) = twin, a == b else { return nil }
        return value
    }

    func summary(_ storage: Storage) -> String {
        func describe(_ state: State) -> String {
            switch state {
            case .missing: return "missing"
            case .damaged(_, let problem): return "damaged (\(problem))"
            case .valid: return "valid"
            }
        }
        var text = "\(path.name): '\(storage.describe(path))' \(describe(main)), its copy \(describe(twin))"
        if case .valid(let a, _) = main, case .valid(let b, _) = twin, a != b { text += ", and the two differ" }
        return text
    }
}

/// One info file as stanza-repair rebuilds it.
public struct InfoFileRepair: Sendable {
    /// An existing twin written aside before the file is replaced.
    public struct Aside: Sendable {
        public var from: String
        public var to: String
        var target: StoragePath
        var bytes: [UInt8]
    }

    public var path: String
    var storagePath: StoragePath
    /// The sealed file (and copy) to write.
    public var bytes: [UInt8]
    public var asides: [Aside] = []
    /// False when both twins already hold exactly these bytes.
    public var write = false
}

/// What stanza-repair found and wrote (or, with `--dry-run`, would write).
public struct StanzaRepairReport: Sendable {
    public enum Finding: Sendable, Equatable {
        /// Listed; the note says when the manifest's copy had to be used.
        case found(note: String?)
        case skipped(reason: String)
    }

    public var stanza: String
    public var dryRun: Bool
    public var twins: [String] = []
    /// Every directory under backup/<stanza>/ named like a label.
    public var backups: [BackupLabel: Finding] = [:]
    public var notes: [String] = []
    public var identity: DatabaseIdentity?
    public var identitySource: String?
    public var files: [InfoFileRepair] = []

    init(stanza: String, dryRun: Bool) {
        self.stanza = stanza
        self.dryRun = dryRun
    }

    /// The labels backup.info lists after the repair, and those it leaves out.
    public var listed: [BackupLabel] { backups.filter { if case .found = $0.value { true } else { false } }.keys.sorted() }
    public var skipped: [BackupLabel] { backups.filter { if case .skipped = $0.value { true } else { false } }.keys.sorted() }

    mutating func note(_ text: String) { notes.append(text) }

    /// Says which backups the file readers used listed and the rebuilt one does not, and back.
    mutating func noteListChanges(from before: [BackupSummary], to after: [BackupSummary]) {
        let old = Set(before.map(\.label)), new = Set(after.map(\.label))
        let added = new.subtracting(old).sorted(), dropped = old.subtracting(new).sorted()
        if !added.isEmpty { note("listed now and not before: \(added.map(\.text).joined(separator: ", "))") }
        if !dropped.isEmpty { note("listed before and not now: \(dropped.map(\.text).joined(separator: ", "))") }
    }

    public var lines: [String] {
        var out = twins.map { "stanza '\(stanza)': \($0)" }
        for (label, finding) in backups.sorted(by: { $0.key < $1.key }) {
            switch finding {
            case .found(let note): out.append("backup \(label): found" + (note.map { " (\($0))" } ?? ""))
            case .skipped(let reason): out.append("backup \(label): skipped, \(reason)")
            }
        }
        if !skipped.isEmpty {
            out.append("the directories of skipped backups stay as they are; the next backup or expire removes a directory backup.info does not list (repo-layout.md §4): move one out of the repository first to keep it")
        }
        if let identity, let identitySource {
            out.append("cluster: \(StanzaRepair.describe(identity)), database id \(identity.id) (from \(identitySource))")
        }
        out += notes
        for file in files {
            guard file.write else {
                out.append("'\(file.path)' and its copy already hold the rebuilt file: unchanged")
                continue
            }
            for aside in file.asides { out.append("\(dryRun ? "would keep" : "kept") '\(aside.from)' aside as '\(aside.to)'") }
            if dryRun {
                out.append("would write '\(file.path)' and its copy:")
                out.append(String(decoding: file.bytes, as: UTF8.self).trimmingSuffix("\n"))
            } else {
                out.append("wrote '\(file.path)' and its copy")
            }
        }
        if dryRun { out.append("dry run: nothing was written") }
        return out
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}
