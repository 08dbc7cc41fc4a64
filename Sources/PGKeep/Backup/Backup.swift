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

/// An online full backup of a running cluster (repo-layout.md §4 for the write order).
///
/// 1. Take the stanza's backup lock; check the cluster (pg_control on disk, the server's version,
///    archiving configured) matches the stanza.
/// 2. `pg_backup_start(label, fast)` in one session that stays open to the end: if it dies, the
///    server silently abandons the backup (postgres-facts §11.4).
/// 3. List the data directory and tablespaces with PostgreSQL's exclusions; copy every file with
///    `--process-max` workers, largest first, each through SHA-256 and compression.
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

    public init(storage: Storage, layout: RepositoryLayout, options: BackupOptions, log: Log) {
        self.storage = storage
        self.layout = layout
        self.options = options
        self.log = log
    }

    public func run() throws -> BackupSummary {
        let lock = try StanzaLock(lockPath: options.lockPath, stanza: layout.stanza, kind: .backup)
        defer { withExtendedLifetime(lock) {} }

        guard options.type == .full else {
            throw PGKeepError(.optionInvalid, "backup type '\(options.type.rawValue)' is not available yet",
                              hint: "use --type=full")
        }
        let archiveInfo = try InfoFiles.loadArchiveInfo(storage, layout, warn: log.warn)
        var backupInfo = try InfoFiles.loadBackupInfo(storage, layout, warn: log.warn)
        let control = try PGControl.read(dataDirectory: options.dataDirectory)
        try StanzaCheck.verify(control: control, dataDirectory: options.dataDirectory,
                               archiveInfo: archiveInfo, backupInfo: backupInfo, stanza: layout.stanza)

        let session = try PGSession(options.connection, applicationName: "pgkeep backup")
        try ServerCheck.verifyForBackup(session, dataDirectory: options.dataDirectory, log: log)

        let label = try nextLabel(after: backupInfo)
        log.info("backup \(label) (\(options.type.rawValue)) of stanza '\(layout.stanza)' starting")
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
            return try copyAndFinish(session: session, label: label, startLSN: startLSN, startTime: startTime,
                                     archiveInfo: archiveInfo, backupInfo: &backupInfo)
        } catch {
            // End the backup in the server if the session still works; the partial directory has
            // no backup.info entry, so no reader takes it for a backup.
            _ = try? session.query("SELECT pg_backup_stop(false)")
            throw error
        }
    }

    private func copyAndFinish(session: PGSession, label: BackupLabel, startLSN: LSN, startTime: Int64,
                               archiveInfo: ArchiveInfo, backupInfo: inout BackupInfo) throws -> BackupSummary {
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

        var walker = ClusterWalker(dataDirectory: options.dataDirectory, version: control.version, tablespaces: tablespaces)
        let listing = try walker.walk()
        for path in listing.skippedSpecial { log.warn("skipping special file '\(path)'") }

        var manifest = Manifest(
            backup: .init(label: label, type: .full, prior: nil, timestampStart: startTime, timestampStop: startTime,
                          lsnStart: startLSN, lsnStop: startLSN, walStart: "", walStop: "", timeline: timeline.rawValue),
            database: .init(id: backupInfo.current.id, systemIdentifier: control.systemIdentifier, version: control.version.major,
                            controlVersion: control.controlVersion, catalogVersion: control.catalogVersion,
                            walSegmentSize: UInt32(segmentSize.bytes), pageChecksums: control.dataChecksumVersion != 0),
            options: .init(compressType: options.compression, compressLevel: options.compressLevel,
                           bufferSize: options.bufferSize, processMax: options.processMax, startFast: options.startFast))
        manifest.databases = databases
        manifest.targets = listing.targets
        manifest.paths = listing.paths
        manifest.links = listing.links

        // Copy every listed file.
        let mover = Mover(storage: storage, processMax: options.processMax, bufferSize: options.bufferSize)
        var jobs: [FileJob] = []
        jobs.reserveCapacity(listing.files.count)
        for (index, file) in listing.files.enumerated() {
            jobs.append(FileJob(id: index, operation: .store(.init(
                source: file.path,
                destination: try layout.backupFile(label: label, name: file.name, compression: options.compression),
                limit: file.size, compression: options.compression, compressLevel: options.compressLevel)), size: file.size))
        }
        var entries = [Manifest.FileEntry?](repeating: nil, count: listing.files.count)
        var vanished = 0
        try mover.run(jobs) { job, result in
            let file = listing.files[job.id]
            switch result {
            case .stored(let size, let checksum, let repoSize, let repoChecksum):
                entries[job.id] = Manifest.FileEntry(name: file.name, size: size, mtime: file.mtime, mode: file.mode,
                                                     user: file.user, group: file.group, checksum: checksum,
                                                     repoSize: repoSize, repoChecksum: repoChecksum,
                                                     compression: self.options.compression, reference: label)
            case .vanished:
                vanished += 1
                self.log.detail("skip file removed by database '\(file.path)'")
            case .restored, .verified:
                break
            }
        }
        manifest.files = entries.compactMap { $0 }
        log.info("copied \(manifest.files.count) files\(vanished > 0 ? " (\(vanished) removed by the database meanwhile)" : "")")

        // pg_control last, from a CRC-checked read.
        let controlPath = Posix.join(options.dataDirectory, "global/pg_control")
        let controlBytes = try PGControl.readWithBytes(path: controlPath).bytes
        guard let controlStatus = try Posix.lstat(controlPath) else {
            throw PGKeepError(.fileMissing, "'\(controlPath)' vanished during the backup")
        }
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
        manifest.files.append(try storeInline(Array(labelFile.utf8), name: "pg_data/backup_label", label: label,
                                              mode: 0o600, mtime: stopTime, user: ownerUser, group: ownerGroup, mover: mover))
        if let map = stopRows[0][2], !map.isEmpty {
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

        try SealedFile.save(manifest, to: try layout.manifest(label: label), in: storage)
        let summary = BackupSummary(label: label, type: .full, prior: nil, references: [], databaseID: backupInfo.current.id,
                                    timestampStart: startTime, timestampStop: stopTime, lsnStart: startLSN, lsnStop: stopLSN,
                                    walStart: walStart.name, walStop: walStop.name, timeline: timeline.rawValue,
                                    size: manifest.totalSize, repoSize: manifest.totalRepoSize,
                                    fileCount: manifest.files.count, compressType: options.compression)
        // Re-read under the lock we hold, so nothing another command wrote meanwhile is lost.
        backupInfo = try InfoFiles.loadBackupInfo(storage, layout, warn: log.warn)
        backupInfo.backups.append(summary)
        try SealedFile.save(backupInfo, to: layout.backupInfo, in: storage)
        log.info("backup \(label) complete: \(summary.fileCount) files, \(summary.size) bytes, \(summary.repoSize) bytes in the repository")
        return summary
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

    /// A label later than every existing one. Labels have one-second resolution, so a backup
    /// started in the same second as the previous one waits for the next second.
    private func nextLabel(after info: BackupInfo) throws -> BackupLabel {
        let newest = info.backups.map(\.label).max()
        for _ in 0..<3 {
            let label = BackupLabel.full(at: Clock.now())
            if newest.map({ label > $0 }) ?? true { return label }
            Clock.sleep(seconds: 1.0 - (Clock.nowPrecise() - Double(Clock.now())))
        }
        throw PGKeepError(.internal, "unable to make a backup label later than '\(newest?.text ?? "")'",
                          hint: "the system clock may have gone backwards; check it")
    }
}
