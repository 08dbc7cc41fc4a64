import FoundationEssentials

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

    public init(storage: Storage, log: Log, lockPath: String? = nil) {
        self.storage = storage
        self.log = log
        self.lockPath = lockPath
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
            }
            public var backup = Backup()
        }
        public struct DB: Encodable {
            public var id: Int
            public var systemID: UInt64
            public var version: String
            enum CodingKeys: String, CodingKey { case id, systemID = "system-id", version }
        }
        public struct Archive: Encodable {
            public var id: String
            public var min: String?
            public var max: String?
            public var database: [String: Int]
        }
        public struct Backup: Encodable {
            public struct Range: Encodable { public var start: String; public var stop: String }
            public struct Times: Encodable { public var start: Int64; public var stop: Int64 }
            public struct Sizes: Encodable {
                public struct Repo: Encodable { public var size: UInt64; public var delta: UInt64 }
                public var size: UInt64
                public var delta: UInt64
                public var repository: Repo
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
            enum CodingKeys: String, CodingKey {
                case label, type, prior, reference, timestamp, lsn, archive, info, database, timeline
                case fileCount = "file-count", compressType = "compress-type"
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
            }
        }
        public var name: String
        public var status: Status
        public var db: [DB]
        public var archive: [Archive]
        public var backup: [Backup]
        public var cipher = "none"
    }

    /// Collects the stanzas (`only`, or every stanza in the repository).
    public func collect(only: String?) throws -> [Stanza] {
        let names: [String]
        if let only {
            names = [only]
        } else {
            names = try storage.list(try StoragePath("backup")).filter { $0.kind == .directory }.map(\.name)
        }
        return try names.map(stanza)
    }

    func stanza(_ name: String) throws -> Stanza {
        var result = try contents(name)
        result.status.lock = backupLock(stanza: name)
        return result
    }

    func contents(_ name: String) throws -> Stanza {
        let layout = try RepositoryLayout(stanza: name)
        var result = Stanza(name: name, status: .init(code: 0, message: "ok"), db: [], archive: [], backup: [])
        let backupInfo: BackupInfo?
        let archiveInfo: ArchiveInfo?
        do {
            backupInfo = try SealedFile.load(BackupInfo.self, from: layout.backupInfo, in: storage, warn: log.warn)
            archiveInfo = try SealedFile.load(ArchiveInfo.self, from: layout.archiveInfo, in: storage, warn: log.warn)
        } catch let error as PGKeepError {
            result.status = .init(code: 99, message: "other: \(error.message)")
            return result
        }
        guard let backupInfo, let archiveInfo else {
            // pgBackRest's code 1: missing stanza path / data.
            result.status = .init(code: 1, message: "missing stanza path")
            return result
        }
        result.db = backupInfo.history.map { .init(id: $0.id, systemID: $0.systemIdentifier, version: String($0.version)) }
        for identity in archiveInfo.history {
            let range = try archiveRange(layout: layout, archiveID: identity.archiveID)
            result.archive.append(.init(id: identity.archiveID, min: range?.min, max: range?.max, database: ["id": identity.id]))
        }
        for summary in backupInfo.backups.sorted(by: { ($0.timestampStop, $0.label) < ($1.timestampStop, $1.label) }) {
            result.backup.append(.init(
                label: summary.label.text, type: summary.type.rawValue, prior: summary.prior?.text,
                reference: summary.references.isEmpty ? nil : summary.references.map(\.text),
                timestamp: .init(start: summary.timestampStart, stop: summary.timestampStop),
                lsn: .init(start: summary.lsnStart.description, stop: summary.lsnStop.description),
                archive: .init(start: summary.walStart, stop: summary.walStop),
                info: .init(size: summary.size, delta: summary.sizeDelta ?? summary.size,
                            repository: .init(size: summary.repoSizeTotal ?? summary.repoSize, delta: summary.repoSize)),
                database: ["id": summary.databaseID], timeline: summary.timeline, fileCount: summary.fileCount,
                compressType: summary.compressType.rawValue))
        }
        if result.backup.isEmpty { result.status = .init(code: 2, message: "no valid backups") }
        return result
    }

    /// Whether a backup of `stanza` runs (its lock is held), with the progress it records.
    func backupLock(stanza: String) -> Stanza.Lock {
        var lock = Stanza.Lock()
        guard let lockPath, !StanzaLock.isFree(lockPath: lockPath, stanza: stanza, kind: .backup) else { return lock }
        lock.backup.held = true
        if let record = BackupProgressRecord.read(from: BackupProgressRecord.path(lockPath: lockPath, stanza: stanza)) {
            lock.backup.size = record.size
            lock.backup.sizeComplete = record.sizeComplete
        }
        return lock
    }

    /// The first and last archived WAL segment (by name) under an archive id.
    func archiveRange(layout: RepositoryLayout, archiveID: String) throws -> (min: String, max: String)? {
        let directory = try layout.archiveDirectory(archiveID: archiveID)
        var lowest: String?
        var highest: String?
        for sub in try storage.list(directory) where sub.kind == .directory && sub.name.count == 16 {
            for entry in try storage.list(try directory.appending(sub.name)) {
                guard let parsed = RepositoryLayout.parseArchiveObjectName(entry.name),
                      WALFileName(parsed.name)?.kind == .segment else { continue }
                if lowest == nil || parsed.name < lowest! { lowest = parsed.name }
                if highest == nil || parsed.name > highest! { highest = parsed.name }
            }
        }
        guard let lowest, let highest else { return nil }
        return (lowest, highest)
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
            let running = stanza.status.lock.backup
            if running.held {
                if let size = running.size, let done = running.sizeComplete {
                    let percent = ProgressSnapshot(bytesDone: done, bytesTotal: size, filesDone: 0, filesTotal: 0, elapsed: 0).percent
                    out += "    backup running: \(percent)% (\(ProgressFormat.bytes(done)) of \(ProgressFormat.bytes(size)))\n"
                } else {
                    out += "    backup running\n"
                }
            }
            for archive in stanza.archive {
                let db = stanza.db.first { $0.id == archive.database["id"] }
                out += "\n    db (current)\n" .replacingOccurrences(of: "(current)", with: archive.id == stanza.archive.last?.id ? "(current)" : "(prior)")
                if let db { out += "        system id: \(db.systemID), version: \(db.version)\n" }
                out += "        wal archive min/max (\(archive.id)): \(archive.min.map { "\($0)/\(archive.max ?? "")" } ?? "none present")\n"
            }
            for backup in stanza.backup {
                out += "\n        \(backup.type) backup: \(backup.label)\n"
                if let prior = backup.prior { out += "            prior: \(prior)\n" }
                if let reference = backup.reference, !reference.isEmpty {
                    out += "            backup reference list: \(reference.joined(separator: ", "))\n"
                }
                out += "            timestamp start/stop: \(Clock.format(seconds: backup.timestamp.start, style: .iso8601)) / \(Clock.format(seconds: backup.timestamp.stop, style: .iso8601))\n"
                out += "            wal start/stop: \(backup.archive.start) / \(backup.archive.stop)\n"
                out += "            lsn start/stop: \(backup.lsn.start) / \(backup.lsn.stop)\n"
                out += "            database size: \(formatBytes(backup.info.size)), database backup size: \(formatBytes(backup.info.delta))\n"
                out += "            repo1: backup set size: \(formatBytes(backup.info.repository.size)), backup size: \(formatBytes(backup.info.repository.delta)), \(backup.fileCount) files, \(backup.compressType)\n"
            }
        }
        return out
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
