import FoundationEssentials
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import SystemPackage

/// `info`: what a repository holds, per stanza. The JSON form follows pgBackRest's `info --output=json`
/// wherever the concepts match (stanza `name`, `status{code,message}`, `db`, `archive[{id,min,max}]`,
/// `backup[{label,type,prior,reference,timestamp{start,stop},lsn{start,stop},archive{start,stop},
/// info{size,delta,repository{size,delta}}}]`), so tools written for pgBackRest read it; fields
/// pgkeep adds are additions.
public struct InfoReport {
    let storage: Storage
    let log: Log
    /// `--lock-path`: where a running backup's lock and progress record are (nil: not looked at).
    let lockPath: String?
    /// `--pg1-path`: the data directory whose archiving backlog is shown with the stanza named by
    /// `--stanza` (nil: not looked at).
    let pgPath: String?
    /// The database host `pgPath` is on.
    let host: PostgresHost
    /// `--set`: only this backup, with what its manifest says of it (databases, tablespaces,
    /// links), as pgBackRest's `info --set`.
    let set: BackupLabel?

    public init(storage: Storage, log: Log, lockPath: String? = nil, pgPath: String? = nil, host: PostgresHost = LocalHost(),
                set: BackupLabel? = nil) {
        self.storage = storage
        self.log = log
        self.lockPath = lockPath
        self.pgPath = pgPath
        self.host = host
        self.set = set
    }

    public struct Stanza: Encodable {
        public struct Status: Encodable {
            public var code: Int
            public var message: String
            /// pgBackRest's `status.lock`: whether a backup holds the stanza's lock, and its progress.
            public var lock = Lock()
        }
        public struct Lock: Encodable {
            public struct Backup: Encodable {
                public var held = false
                /// Bytes the running backup covers, and how many of them are done.
                public var size: UInt64?
                public var sizeComplete: UInt64?
                /// Who holds the stanza's repository lease (repo-layout.md §3.8), on whichever
                /// host: a backup, an expire or a stanza-repair.
                public var holder: Holder?
                /// pgBackRest's names: `size-cplt` is what pgbackrest_exporter reads.
                enum CodingKeys: String, CodingKey { case held, size, sizeComplete = "size-cplt", holder }
            }
            public struct Holder: Encodable {
                public var host: String
                public var pid: Int32
                public var command: String
                /// Seconds since the epoch.
                public var since: Int64
            }
            public var backup = Backup()
        }
        public struct DB: Encodable {
            public var id: Int
            public var systemID: UInt64
            public var version: String
            /// pgBackRest's repository number; pgkeep has one repository, 1.
            public var repoKey = 1
            enum CodingKeys: String, CodingKey { case id, systemID = "system-id", version, repoKey = "repo-key" }
        }
        /// pgBackRest's `repo[]`: one entry per repository holding the stanza; pgkeep has one.
        public struct Repo: Encodable {
            public struct Status: Encodable { public var code: Int; public var message: String }
            public var key = 1
            public var cipher = "none"
            public var status: Status
        }
        public struct Archive: Encodable {
            /// One timeline's WAL in this archive id: first and last segment, and whether every
            /// segment between them is present.
            public struct Timeline: Encodable {
                public var timeline: UInt32
                public var min: String
                public var max: String
                public var segments: Int
                public var continuous: Bool
            }
            public var id: String
            public var min: String?
            public var max: String?
            public var database: [String: Int]
            /// pgkeep addition: the range per timeline.
            public var timelines: [Timeline] = []
            /// pgkeep addition: bytes of archived WAL (as stored) under this archive id.
            public var size: UInt64 = 0
            /// pgkeep addition: timelines archived past a child's fork after the child began: two
            /// clusters archive into this stanza (`TimelineDivergence`). Absent when none.
            public var diverged: [TimelineDivergence]? = nil
            /// pgkeep addition: runs of segments archive-push acknowledged without storing them
            /// (`--archive-push-queue-max`) and that are still not stored; absent when none.
            public var dropped: [Dropped]? = nil
            public struct Dropped: Encodable, Equatable {
                public var start: String
                public var stop: String
                /// Unix seconds at the drop.
                public var at: Int64
            }
        }
        /// pgkeep addition: the stanza's bytes in the repository (backups as stored plus archived WAL).
        public struct Repository: Encodable { public var size: UInt64 }
        /// pgkeep addition: PostgreSQL's archiving backlog, the complete segments its
        /// `pg_wal/archive_status` marks `.ready` and not yet `.done` (`ArchivePushQueue`). It is
        /// what grows while the repository cannot take WAL, and what `--archive-push-queue-max`
        /// bounds. Shown when `--pg1-path` is set and readable here; `error` says why not otherwise.
        public struct ArchiveQueue: Encodable, Equatable {
            public var path: String
            public var segments: Int?
            public var size: UInt64?
            public var oldest: String?
            public var error: String?
        }
        public struct Backup: Encodable {
            public struct Range: Encodable { public var start: String; public var stop: String }
            public struct Times: Encodable { public var start: Int64; public var stop: Int64 }
            public struct Sizes: Encodable {
                public struct Repo: Encodable {
                    public var size: UInt64
                    public var delta: UInt64
                    /// pgBackRest's `size-map`, `delta-map`: bytes of the block maps of the
                    /// backup's block-incremental files (all it uses, those it stored); absent
                    /// when it has none.
                    public var sizeMap: UInt64? = nil
                    public var deltaMap: UInt64? = nil
                    enum CodingKeys: String, CodingKey { case size, delta, sizeMap = "size-map", deltaMap = "delta-map" }
                }
                public var size: UInt64
                public var delta: UInt64
                public var repository: Repo
            }
            /// pgBackRest's `backrest`: the repository format and the version of the tool that
            /// took the backup (null for backups of pgkeep before 0.5, which did not record it).
            public struct Writer: Encodable {
                public var format: Int
                public var version: String?
                public func encode(to encoder: Encoder) throws {
                    var c = encoder.container(keyedBy: CodingKeys.self)
                    try c.encode(format, forKey: .format)
                    try c.encode(version, forKey: .version)
                }
                enum CodingKeys: String, CodingKey { case format, version }
            }
            /// With `--set`: pgBackRest's `database-ref`, `link` and `tablespace` (null when none).
            public struct DatabaseRef: Encodable { public var name: String; public var oid: UInt32 }
            public struct Link: Encodable { public var name: String; public var destination: String }
            public struct Tablespace: Encodable { public var name: String; public var oid: UInt32; public var destination: String }
            public struct Detail {
                public var databases: [DatabaseRef]
                public var links: [Link]
                public var tablespaces: [Tablespace]
            }
            public var label: String
            public var type: String
            public var prior: String?
            public var reference: [String]?
            public var timestamp: Times
            public var lsn: Range
            public var archive: Range
            public var info: Sizes
            public var database: [String: Int]
            public var timeline: UInt32
            public var fileCount: Int
            public var compressType: String
            /// pgBackRest's `error`: pages with bad checksums were found while copying.
            public var error: Bool = false
            /// pgkeep addition: how many such pages.
            public var pageChecksumErrors: Int = 0
            /// pgBackRest's `annotation`: the operator's notes (`--annotation`, `annotate`); absent
            /// when there are none, as pgBackRest leaves it out.
            public var annotation: [String: String]? = nil
            public var backrest = Writer(format: RepositoryFormat.current, version: nil)
            /// Only with `--set`.
            public var detail: Detail? = nil
            enum CodingKeys: String, CodingKey {
                case label, type, prior, reference, timestamp, lsn, archive, info, database, timeline, error, annotation, backrest
                case databaseRef = "database-ref", link, tablespace
                case fileCount = "file-count", compressType = "compress-type", pageChecksumErrors = "page-checksum-errors"
            }
            public func encode(to encoder: Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(label, forKey: .label)
                try c.encode(type, forKey: .type)
                try c.encode(prior, forKey: .prior)          // null, as pgBackRest prints it
                try c.encode(reference, forKey: .reference)
                try c.encode(timestamp, forKey: .timestamp)
                try c.encode(lsn, forKey: .lsn)
                try c.encode(archive, forKey: .archive)
                try c.encode(info, forKey: .info)
                try c.encode(database, forKey: .database)
                try c.encode(timeline, forKey: .timeline)
                try c.encode(fileCount, forKey: .fileCount)
                try c.encode(compressType, forKey: .compressType)
                try c.encode(error, forKey: .error)
                try c.encode(pageChecksumErrors, forKey: .pageChecksumErrors)
                try c.encodeIfPresent(annotation, forKey: .annotation)
                try c.encode(backrest, forKey: .backrest)
                if let detail {
                    try c.encode(detail.databases, forKey: .databaseRef)
                    try c.encode(detail.links.isEmpty ? nil : detail.links, forKey: .link)
                    try c.encode(detail.tablespaces.isEmpty ? nil : detail.tablespaces, forKey: .tablespace)
                }
            }
        }
        public var name: String
        public var status: Status
        public var db: [DB]
        public var archive: [Archive]
        public var backup: [Backup]
        public var cipher = "none"
        public var repo: [Repo] = []
        public var repository = Repository(size: 0)
        public var archiveQueue: ArchiveQueue? = nil
        enum CodingKeys: String, CodingKey {
            case name, status, db, archive, backup, cipher, repo, repository, archiveQueue = "archive-queue"
        }
    }

    /// Collects the stanzas (`only`, or every stanza in the repository).
    public func collect(only: String?) throws -> [Stanza] {
        let names: [String]
        if let only {
            names = [only]
        } else {
            names = try storage.list(try StoragePath("backup")).filter { $0.kind == .directory }.map(\.name)
        }
        var stanzas = try names.map(stanza)
        if let only, let pgPath, let index = stanzas.firstIndex(where: { $0.name == only }) {
            stanzas[index].archiveQueue = Self.archiveQueue(dataDirectory: FilePath(pgPath), on: host)
        }
        return stanzas
    }

    /// PostgreSQL's archiving backlog in `dataDirectory` on `host`; a description of why it
    /// cannot be read instead of a failure: info reports on the repository first.
    static func archiveQueue(dataDirectory: FilePath, on host: PostgresHost) -> Stanza.ArchiveQueue {
        let statusDirectory = dataDirectory.joined("pg_wal/archive_status")
        do {
            let segmentSize = try PGControl.read(from: host, dataDirectory: dataDirectory).control.walSegmentSize
            let queue = try ArchivePushQueue.read(statusDirectory: statusDirectory, on: host, segmentSize: segmentSize.bytes) { name, entries in
                entries.contains(name + ".done")
            }
            return .init(path: statusDirectory.string, segments: queue.segments.count, size: queue.bytes, oldest: queue.segments.first)
        } catch {
            return .init(path: statusDirectory.string, error: (error as? PGKeepError)?.message ?? "\(error)")
        }
    }

    /// pgBackRest's stanza status codes, so monitoring written for it reads ours. Its 4 (mixed)
    /// and 5 (database mismatch) compare several repositories; within one repository, info files
    /// that disagree are an error loading the stanza, which pgBackRest reports as 99 (other).
    enum StatusCode {
        static let ok = 0, missingStanzaPath = 1, noValidBackups = 2, missingStanzaData = 3, backupNotFound = 6, other = 99
    }

    func stanza(_ name: String) throws -> Stanza {
        var result = try contents(name)
        result.status.lock = backupLock(stanza: name)
        result.repo = [.init(status: .init(code: result.status.code, message: result.status.message))]
        return result
    }

    func contents(_ name: String) throws -> Stanza {
        let layout = try RepositoryLayout(stanza: name)
        var result = Stanza(name: name, status: .init(code: StatusCode.ok, message: "ok"), db: [], archive: [], backup: [])
        let backupInfo: BackupInfo?
        let archiveInfo: ArchiveInfo?
        do {
            backupInfo = try InfoFiles.loadValid(BackupInfo.self, from: layout.backupInfo, storage, layout, warn: log.warn)
            archiveInfo = try InfoFiles.loadValid(ArchiveInfo.self, from: layout.archiveInfo, storage, layout, warn: log.warn)
        } catch let error as PGKeepError {
            // The hint, when there is one, says how to get the stanza back (stanza-repair).
            result.status = .init(code: StatusCode.other, message: "other: \(error.message)" + (error.hint.map { "; \($0)" } ?? ""))
            return result
        }
        guard let backupInfo, let archiveInfo else {
            let backupEntries = try storage.list(layout.backupRoot)
            let archiveEntries = try storage.list(layout.archiveRoot)
            let anyPath = !backupEntries.isEmpty || !archiveEntries.isEmpty
            if anyPath {
                let missing = [backupInfo == nil ? "backup.info" : nil, archiveInfo == nil ? "archive.info" : nil].compactMap { $0 }
                result.status = .init(code: StatusCode.missingStanzaData,
                                      message: "missing stanza data (\(missing.joined(separator: " and ")))")
            } else {
                result.status = .init(code: StatusCode.missingStanzaPath, message: "missing stanza path")
            }
            return result
        }
        if !backupInfo.current.matches(systemIdentifier: archiveInfo.current.systemIdentifier, version: archiveInfo.current.version) {
            result.status = .init(code: StatusCode.other,
                                  message: "other: backup and archive info files disagree: backup.info has system id \(backupInfo.current.systemIdentifier) PostgreSQL \(backupInfo.current.version), archive.info has \(archiveInfo.current.systemIdentifier) PostgreSQL \(archiveInfo.current.version)")
        }
        result.db = backupInfo.history.map { .init(id: $0.id, systemID: $0.systemIdentifier, version: String($0.version)) }
        // The segment size (for continuity across log ids) is recorded in each manifest; without a
        // backup, PostgreSQL's default.
        var segmentSize: UInt64 = 16 << 20
        if let newest = backupInfo.backups.max(by: { $0.timestampStop < $1.timestampStop }),
           let manifest = try? SealedFile.load(Manifest.self, from: try layout.manifest(label: newest.label), in: storage, warn: log.warn) {
            segmentSize = UInt64(manifest.database.walSegmentSize)
        }
        for identity in archiveInfo.history {
            // One listing of the archive id serves the ranges, the sizes, divergence and drops.
            let catalog = try ArchiveCatalog.load(storage: storage, layout: layout, archiveID: identity.archiveID, bufferSize: 1 << 16)
            let timelines = Self.timelines(of: catalog, segmentSize: segmentSize)
            result.archive.append(.init(id: identity.archiveID, min: timelines.first?.min, max: timelines.last?.max,
                                        database: ["id": identity.id, "repo-key": 1], timelines: timelines, size: catalog.storedBytes))
            if let size = WALSegmentSize(bytes: segmentSize) {
                let diverged = catalog.divergences(segmentSize: size)
                if !diverged.isEmpty { result.archive[result.archive.count - 1].diverged = diverged }
                let dropped = Self.droppedRuns(catalog, relevantFrom: Self.oldestRelevantWAL(for: identity.id, backups: backupInfo.backups,
                                                                                            order: archiveInfo.history.map(\.id)))
                if !dropped.isEmpty { result.archive[result.archive.count - 1].dropped = dropped }
            }
            result.repository.size += catalog.storedBytes
        }
        result.backup = backupInfo.backups.sorted(by: { ($0.timestampStop, $0.label) < ($1.timestampStop, $1.label) })
            .map { Self.row($0, format: backupInfo.format) }
        if let set {
            result.backup = result.backup.filter { $0.label == set.text }
            if result.backup.isEmpty {
                if result.status.code == StatusCode.ok {
                    result.status = .init(code: StatusCode.backupNotFound, message: "requested backup not found")
                }
            } else {
                result.backup[0].detail = try detail(of: set, layout: layout)
            }
        }
        result.repository.size += backupInfo.backups.reduce(UInt64(0)) { $0 + $1.repoSize }
        if result.backup.isEmpty, result.status.code == StatusCode.ok {
            result.status = .init(code: StatusCode.noValidBackups, message: "no valid backups")
        }
        return result
    }

    /// One backup as the JSON and text forms show it.
    static func row(_ summary: BackupSummary, format: Int) -> Stanza.Backup {
        Stanza.Backup(
            label: summary.label.text, type: summary.type.rawValue, prior: summary.prior?.text,
            reference: summary.references.isEmpty ? nil : summary.references.map(\.text),
            timestamp: .init(start: summary.timestampStart, stop: summary.timestampStop),
            lsn: .init(start: summary.lsnStart.description, stop: summary.lsnStop.description),
            archive: .init(start: summary.walStart, stop: summary.walStop),
            info: .init(size: summary.size, delta: summary.sizeDelta ?? summary.size,
                        repository: .init(size: summary.repoSizeTotal ?? summary.repoSize, delta: summary.repoSize,
                                          sizeMap: summary.repoSizeMap, deltaMap: summary.repoDeltaMap)),
            database: ["id": summary.databaseID, "repo-key": 1], timeline: summary.timeline, fileCount: summary.fileCount,
            compressType: summary.compressType.rawValue, error: (summary.pageChecksumErrors ?? 0) > 0,
            pageChecksumErrors: summary.pageChecksumErrors ?? 0, annotation: summary.annotation,
            backrest: .init(format: format, version: summary.pgkeepVersion))
    }

    /// What `--set` adds from the backup's manifest: its databases, tablespaces and links.
    func detail(of label: BackupLabel, layout: RepositoryLayout) throws -> Stanza.Backup.Detail {
        let manifest = try Manifest.load(label: label, layout: layout, storage: storage, warn: log.warn)
        let tablespaces = manifest.targets.filter { $0.kind == .tablespace }.map { target in
            Stanza.Backup.Tablespace(name: target.tablespaceName ?? target.name, oid: target.tablespaceOID ?? 0, destination: target.path)
        }
        // Tablespace links are shown as tablespaces; the others (a linked pg_wal) as links.
        let links = manifest.targets.filter { $0.kind == .link }.map { Stanza.Backup.Link(name: $0.name, destination: $0.path) }
        return .init(databases: manifest.databases.sorted { $0.oid < $1.oid }.map { .init(name: $0.name, oid: $0.oid) },
                     links: links, tablespaces: tablespaces)
    }

    /// Where dropped WAL of database `databaseID` starts to matter to some backup: nil when all of
    /// it does (no backup, or one of an older identity, whose recovery may run into it); the
    /// oldest start of its backups; "~" (after every name) when only backups of newer identities
    /// exist. WAL before every backup's start is needed by no restore, and expire removes it (and
    /// the drop records within it) as soon as retention allows: a gap there is no warning.
    static func oldestRelevantWAL(for databaseID: Int, backups: [BackupSummary], order: [Int]) -> String? {
        let here = order.firstIndex(of: databaseID) ?? Int.max
        let positions = backups.map { order.firstIndex(of: $0.databaseID) ?? Int.max }
        if backups.isEmpty || positions.contains(where: { $0 < here }) { return nil }
        return backups.filter { $0.databaseID == databaseID }.map(\.walStart).min() ?? "~"
    }

    /// The dropped segments of `catalog` that are not stored, from segment `relevantFrom` on (all
    /// when nil), as runs, each with its drop's time.
    static func droppedRuns(_ catalog: ArchiveCatalog, relevantFrom: String? = nil) -> [Stanza.Archive.Dropped] {
        var runs: [Stanza.Archive.Dropped] = []
        for record in catalog.dropped {
            guard let range = record.segments else { continue }
            let missing = range.filter { segment in
                catalog.segments[segment.name] == nil && relevantFrom.map { segment.name >= $0 } ?? true
            }
            runs += VerifyState.ranges(of: missing).map { .init(start: $0.start, stop: $0.stop, at: record.droppedAt) }
        }
        // Overlapping records (a pusher that decided again after a crash) are shown once.
        var seen = Set<String>()
        return runs.sorted { ($0.start, $0.at) < ($1.start, $1.at) }.filter { seen.insert($0.start + $0.stop).inserted }
    }

    /// Whether a backup of `stanza` runs (its lock is held), with the progress it records.
    func backupLock(stanza: String) -> Stanza.Lock {
        var lock = Stanza.Lock()
        // The lease tells of a command on any host sharing the repository; the flock and the
        // progress record only of this host's.
        if let layout = try? RepositoryLayout(stanza: stanza), let holder = RepositoryLease.liveHolder(storage: storage, path: layout.backupLease) {
            lock.backup.holder = .init(host: holder.host, pid: holder.pid, command: holder.command, since: holder.since)
            lock.backup.held = holder.command == "backup"
        }
        guard let lockPath, !StanzaLock.isFree(lockPath: lockPath, stanza: stanza, kind: .backup) else { return lock }
        lock.backup.held = lock.backup.holder.map { $0.command == "backup" } ?? true
        if let record = BackupProgressRecord.read(from: BackupProgressRecord.path(lockPath: lockPath, stanza: stanza)) {
            lock.backup.size = record.size
            lock.backup.sizeComplete = record.sizeComplete
        }
        return lock
    }

    /// The archived segments of `catalog` as ranges per timeline. A timeline is continuous when
    /// every segment number from its first to its last is present.
    static func timelines(of catalog: ArchiveCatalog, segmentSize: UInt64) -> [Stanza.Archive.Timeline] {
        var numbers: [UInt32: Set<UInt64>] = [:]
        var names: [UInt32: (min: String, max: String)] = [:]
        let segmentsPerLog = 0x1_0000_0000 / max(segmentSize, 1)
        for name in catalog.segments.keys {
            guard let timeline = UInt32(name.prefix(8), radix: 16),
                  let log = UInt64(name.dropFirst(8).prefix(8), radix: 16),
                  let segment = UInt64(name.suffix(8), radix: 16) else { continue }
            numbers[timeline, default: []].insert(log * segmentsPerLog + segment)
            let current = names[timeline]
            names[timeline] = (min: min(current?.min ?? name, name), max: max(current?.max ?? name, name))
        }
        return numbers.keys.sorted().map { timeline -> Stanza.Archive.Timeline in
            let set = numbers[timeline]!
            let span = set.max()! - set.min()! + 1
            return .init(timeline: timeline, min: names[timeline]!.min, max: names[timeline]!.max,
                         segments: set.count, continuous: UInt64(set.count) == span)
        }
    }

    public func json(_ stanzas: [Stanza]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(stanzas), as: UTF8.self)
    }

    public func text(_ stanzas: [Stanza]) -> String {
        var out = ""
        for stanza in stanzas {
            out += "stanza: \(stanza.name)\n"
            out += "    status: \(stanza.status.code == 0 ? "ok" : "error (\(stanza.status.message))")\n"
            out += "    repository size: \(formatBytes(stanza.repository.size))\n"
            if let queue = stanza.archiveQueue {
                if let segments = queue.segments, let size = queue.size {
                    out += "    PostgreSQL archive queue: \(segments) segment\(segments == 1 ? "" : "s") (\(formatBytes(size))) waiting in '\(queue.path)'\(queue.oldest.map { ", oldest \($0)" } ?? "")\n"
                } else {
                    out += "    PostgreSQL archive queue: unknown (\(queue.error ?? "unreadable"))\n"
                }
            }
            let running = stanza.status.lock.backup
            let by = running.holder.map { " on host '\($0.host)' (pid \($0.pid)) since \(Clock.format(seconds: $0.since, style: .iso8601))" } ?? ""
            if running.held {
                if let size = running.size, let done = running.sizeComplete {
                    let percent = ProgressSnapshot(bytesDone: done, bytesTotal: size, filesDone: 0, filesTotal: 0, elapsed: 0).percent
                    out += "    backup running: \(percent)% (\(ProgressFormat.bytes(done)) of \(ProgressFormat.bytes(size)))\(by)\n"
                } else {
                    out += "    backup running\(by)\n"
                }
            } else if let holder = running.holder {
                out += "    \(holder.command) running\(by)\n"
            }
            for archive in stanza.archive {
                let db = stanza.db.first { $0.id == archive.database["id"] }
                out += "\n    db (current)\n" .replacingOccurrences(of: "(current)", with: archive.id == stanza.archive.last?.id ? "(current)" : "(prior)")
                if let db { out += "        system id: \(db.systemID), version: \(db.version)\n" }
                out += "        wal archive min/max (\(archive.id)): \(archive.min.map { "\($0)/\(archive.max ?? "")" } ?? "none present")\n"
                for timeline in archive.timelines where archive.timelines.count > 1 || !timeline.continuous {
                    out += "            timeline \(timeline.timeline): \(timeline.min)/\(timeline.max), \(timeline.segments) segments\(timeline.continuous ? "" : ", WITH GAPS (run verify)")\n"
                }
                for divergence in archive.diverged ?? [] {
                    out += "            WARNING: \(divergence.message)\n"
                }
                for run in archive.dropped ?? [] {
                    let after = stanza.backup.contains { $0.database["id"] == archive.database["id"] && $0.archive.start > run.stop }
                    out += "            WARNING: WAL \(run.start)...\(run.stop) was dropped by archive-push-queue-max at \(Clock.format(seconds: run.at, style: .iso8601)) without being archived: point-in-time recovery across it is impossible\(after ? " (a later backup restores past it)" : " until a new backup")\n"
                }
            }
            for backup in stanza.backup {
                out += "\n        \(backup.type) backup: \(backup.label)\n"
                if let prior = backup.prior { out += "            prior: \(prior)\n" }
                if let reference = backup.reference, !reference.isEmpty {
                    out += "            backup reference list: \(reference.joined(separator: ", "))\n"
                }
                out += "            timestamp start/stop: \(Clock.format(seconds: backup.timestamp.start, style: .iso8601)) / \(Clock.format(seconds: backup.timestamp.stop, style: .iso8601)), duration \(formatDuration(backup.timestamp.stop - backup.timestamp.start))\n"
                out += "            wal start/stop: \(backup.archive.start) / \(backup.archive.stop)\n"
                if backup.error {
                    out += "            error: \(backup.pageChecksumErrors) data pages with invalid checksums (see the backup log and manifest)\n"
                }
                out += "            lsn start/stop: \(backup.lsn.start) / \(backup.lsn.stop)\n"
                out += "            database size: \(formatBytes(backup.info.size)), database backup size: \(formatBytes(backup.info.delta))\n"
                out += "            repo1: backup set size: \(formatBytes(backup.info.repository.size)), backup size: \(formatBytes(backup.info.repository.delta)), \(backup.fileCount) files, \(backup.compressType)\n"
                if let detail = backup.detail {
                    out += "            database list: \(detail.databases.map { "\($0.name) (\($0.oid))" }.joined(separator: ", "))\n"
                    if !detail.tablespaces.isEmpty {
                        out += "            tablespaces:\n"
                        for tablespace in detail.tablespaces { out += "                \(tablespace.name) (\(tablespace.oid)) => \(tablespace.destination)\n" }
                    }
                    if !detail.links.isEmpty {
                        out += "            symlinks:\n"
                        for link in detail.links { out += "                \(link.name) => \(link.destination)\n" }
                    }
                }
                if let annotation = backup.annotation {
                    out += "            annotation(s)\n"
                    for key in annotation.keys.sorted() { out += "                \(key): \(annotation[key]!)\n" }
                }
            }
        }
        return out
    }

    func formatDuration(_ seconds: Int64) -> String {
        let s = max(0, seconds)
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(s % 60)s" }
        return "\(s / 3600)h\((s % 3600) / 60)m"
    }

    func formatBytes(_ bytes: UInt64) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        if unit == 0 { return "\(bytes)B" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)\(units[unit])"
    }
}
