import FoundationEssentials
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// The planner's answer (see `RestorePlanner`): shown by `restore --plan` as text or JSON, and
/// checked by every restore before it writes anything.
public struct RestorePlan: Codable, Sendable {
    public struct Backup: Codable, Sendable {
        public var label: BackupLabel
        public var type: BackupType
        public var timeline: UInt32
        public var lsnStart: LSN
        public var lsnStop: LSN
        public var timestampStart: Int64
        public var timestampStop: Int64
        public var walStart: String
        public var walStop: String

        init(_ summary: BackupSummary) {
            label = summary.label
            type = summary.type
            timeline = summary.timeline
            lsnStart = summary.lsnStart
            lsnStop = summary.lsnStop
            timestampStart = summary.timestampStart
            timestampStop = summary.timestampStop
            walStart = summary.walStart
            walStop = summary.walStop
        }
    }

    public struct Target: Codable, Sendable {
        public var type: RecoveryTarget.Kind
        public var value: String?
        public var exclusive: Bool
        /// `--target-timeline` as given: latest, current or a number.
        public var timeline: String
        public var action: RecoveryTarget.Action?

        init(_ target: RecoveryTarget) {
            type = target.kind
            value = target.value?.setting
            exclusive = target.exclusive
            timeline = target.timeline.description
            action = target.kind == .default || target.kind == .standby ? nil : target.action
        }
    }

    public struct Step: Codable, Sendable, Equatable {
        public var timeline: UInt32
        public var begin: LSN
        public var end: LSN?
    }

    public struct WAL: Codable, Sendable {
        public var segmentSize: UInt64 = 0
        /// Every segment recovery reads, in order.
        public var segments: [String] = []
        /// Those the archive lacks.
        public var missing: [String] = []
        /// Those of `missing` that archive-push dropped (`--archive-push-queue-max`); absent when none.
        public var dropped: [String]? = nil
        /// History files recovery reads (the target timeline's).
        public var historyFiles: [String] = []
        /// Whether the WAL runs to the end of the archive (no known end position).
        public var toEndOfArchive = false
        /// Stored bytes of the present segments.
        public var repoBytes: UInt64 = 0
        /// Bytes of WAL to replay (segments times segment size).
        public var bytes: UInt64 = 0
    }

    public struct Read: Codable, Sendable {
        public var backupRepoBytes: UInt64 = 0
        public var walRepoBytes: UInt64 = 0
    }

    public struct Write: Codable, Sendable {
        public var dataDirectory: String?
        public var files = 0
        public var bytes: UInt64 = 0
    }

    public struct Setting: Codable, Sendable, Equatable {
        public var name: String
        public var value: String
    }

    public struct Recovery: Codable, Sendable {
        public var signalFile = "recovery.signal"
        /// Written into postgresql.auto.conf after restore_command.
        public var settings: [Setting] = []
    }

    /// Something that makes the target unreachable: the restore is refused with this code.
    public struct Problem: Codable, Sendable {
        public var code: Int32
        public var name: String
        public var message: String
        public var hint: String?

        init(code: ErrorCode, message: String, hint: String?) {
            self.code = code.rawValue
            self.name = code.name
            self.message = message
            self.hint = hint
        }

        init(_ error: PGKeepError) {
            self.init(code: error.code, message: error.message, hint: error.hint)
        }

        var error: PGKeepError {
            PGKeepError(ErrorCode(rawValue: code) ?? .internal, message, hint: hint)
        }
    }

    public var stanza: String
    public var backup: Backup
    /// Why this backup.
    public var reason: String
    /// Newer backups the automatic choice passed over.
    public var skipped: [RestorePlanner.Skipped]
    public var target: Target
    /// The resolved target timeline; nil when it could not be resolved.
    public var targetTimeline: UInt32?
    public var timelinePath: [Step] = []
    public var wal = WAL()
    public var read = Read()
    public var write = Write()
    public var recovery = Recovery()
    public var notes: [String] = []
    public var problems: [Problem] = []

    init(stanza: String, backup: Backup, reason: String, skipped: [RestorePlanner.Skipped], target: Target, dataDirectory: String?) {
        self.stanza = stanza
        self.backup = backup
        self.reason = reason
        self.skipped = skipped
        self.target = target
        self.write.dataDirectory = dataDirectory
    }

    /// The destination's problems (`RestoreDestination`): the restore would be refused with them
    /// too, after the repository's.
    mutating func add(destinationProblems: [PGKeepError]) {
        problems += destinationProblems.map(Problem.init)
    }

    /// A target the archived WAL does not reach: a problem (72), or with `--target-past-archive`
    /// a note, since recovery then depends on WAL the operator puts into pg_wal.
    mutating func pastTheArchive(_ message: String, hint: String, allowed: Bool) {
        let outcome = "recovery would replay all of it and stop with 'recovery ended before configured recovery target was reached'"
        if allowed {
            notes.append(message + "; restoring anyway (--target-past-archive): unless the missing WAL is put into pg_wal, " + outcome)
        } else {
            problems.append(.init(code: .walMissing, message: message + "; " + outcome,
                                  hint: "if the primary is running, run 'select pg_switch_wal()' on it and wait for archiving; otherwise "
                                      + hint + "; to put WAL the archive lacks (left in a lost primary's pg_wal) into the restored pg_wal yourself, restore with --target-past-archive"))
        }
    }

    /// Whether the restore may go ahead.
    public var isRestorable: Bool { problems.isEmpty }

    /// Throws the first problem, the one a restore is refused with.
    public func check() throws(PGKeepError) {
        if let first = problems.first {
            var error = first.error
            error.message = "restore refused, nothing was written: " + error.message
            throw error
        }
    }

    /// The plan as pretty-printed JSON with sorted keys.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// The plan for a person.
    public func text() -> String {
        var lines = ["restore plan for stanza '\(stanza)'"]
        func row(_ key: String, _ value: String) { lines.append("  " + (key + ":").padding(15) + value) }
        row("backup", "\(backup.label) (\(backup.type.rawValue), timeline \(backup.timeline), LSN \(backup.lsnStart) to \(backup.lsnStop), "
            + "stopped \(Clock.format(seconds: backup.timestampStop, style: .iso8601)))")
        row("chosen as", reason)
        for skip in skipped { row("skipped", "\(skip.label): \(skip.reason)") }
        var targetText = target.type.rawValue
        if let value = target.value { targetText += " '\(value)'" + (target.exclusive ? " (exclusive)" : " (inclusive)") }
        if let action = target.action { targetText += ", then \(action.rawValue)" }
        row("target", targetText)
        row("timeline", target.timeline + (targetTimeline.map { " -> \($0)" } ?? ": unresolved"))
        if !timelinePath.isEmpty {
            row("path", timelinePath.map { step in
                "\(step.timeline) from \(step.begin)" + (step.end.map { " to \($0)" } ?? "")
            }.joined(separator: ", then "))
        }
        if !wal.segments.isEmpty {
            let extent = wal.toEndOfArchive ? ", to the end of the archive" : ""
            row("WAL", "\(wal.segments.count) segment\(wal.segments.count == 1 ? "" : "s") (\(formatBytes(wal.bytes)))\(extent)")
            for range in Self.ranges(wal.segments) { lines.append("  " + "".padding(15) + "  " + range) }
            for history in wal.historyFiles { lines.append("  " + "".padding(15) + "  history file " + history) }
        }
        if let directory = write.dataDirectory {
            row("read", "\(formatBytes(read.backupRepoBytes)) of backup and \(formatBytes(read.walRepoBytes)) of WAL from the repository")
            row("write", "\(write.files) files, \(formatBytes(write.bytes)), into '\(directory)'")
        }
        if !recovery.settings.isEmpty {
            row("recovery", recovery.signalFile + "; " + recovery.settings.map { "\($0.name) = '\($0.value)'" }.joined(separator: ", "))
        }
        for note in notes { row("note", note) }
        if problems.isEmpty {
            row("result", "restorable")
        } else {
            for problem in problems {
                row("PROBLEM", "[\(problem.code)] \(problem.name): \(problem.message)")
                if let hint = problem.hint { lines.append("  " + "".padding(15) + "HINT: " + hint) }
            }
            if !wal.missing.isEmpty {
                row("missing", "")
                let dropped = Set(wal.dropped ?? [])
                for range in Self.ranges(wal.missing.filter { !dropped.contains($0) }) { lines.append("  " + "".padding(15) + "  " + range) }
                for range in Self.ranges(wal.missing.filter { dropped.contains($0) }) {
                    lines.append("  " + "".padding(15) + "  " + range + ", dropped by archive-push-queue-max")
                }
            }
            row("result", "refused: a restore would write nothing")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Consecutive segment names on one timeline folded into `first .. last (n)`.
    static func ranges(_ names: [String]) -> [String] {
        var result: [String] = []
        var start: String?
        var previous: String?
        var count = 0
        func flush() {
            guard let start, let previous else { return }
            result.append(count == 1 ? start : "\(start) .. \(previous) (\(count))")
        }
        for name in names {
            if let previous, name.prefix(8) == previous.prefix(8), let a = Hex.parse(previous.dropFirst(8)), let b = Hex.parse(name.dropFirst(8)),
               b == a + 1 || (a & 0xFFFF_FFFF == 0xFF && b == (a & ~0xFFFF_FFFF) + 0x1_0000_0000) {
                count += 1
            } else {
                flush()
                start = name
                count = 1
            }
            previous = name
        }
        flush()
        return result
    }

    private func formatBytes(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        if unit == 0 { return "\(bytes) B" }
        return String(Int((value * 10).rounded()) / 10) + "." + String(Int((value * 10).rounded()) % 10) + " " + units[unit]
    }
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        self + String(repeating: " ", count: max(0, width - count))
    }
}

/// Planning against a repository: loads what `RestorePlanner` needs and runs it.
public struct RestorePlanning {
    let storage: Storage
    let layout: RepositoryLayout
    let bufferSize: Int
    let log: Log

    public init(storage: Storage, layout: RepositoryLayout, bufferSize: Int, log: Log) {
        self.storage = storage
        self.layout = layout
        self.bufferSize = bufferSize
        self.log = log
    }

    /// The plan, with the chosen backup's summary and manifest for the restore that follows.
    public func plan(info: BackupInfo, request: RestorePlanner.Request,
                     dataDirectory: String?) throws -> (plan: RestorePlan, backup: BackupSummary, manifest: Manifest) {
        let stanza = layout.stanza
        if let label = request.set, !info.backups.contains(where: { $0.label == label }) {
            throw PGKeepError(.backupMissing, "backup set \(label) does not exist in stanza '\(stanza)'",
                              hint: "run 'pgkeep --stanza=\(stanza) info' to list the backups")
        }
        guard !info.backups.isEmpty else {
            throw PGKeepError(.backupMissing, "stanza '\(stanza)' has no backup to restore",
                              hint: "take one with 'pgkeep --stanza=\(stanza) backup'")
        }
        // Each info file's seal only proves it is whole. A backup.info and an archive.info that
        // describe different clusters (a file copied in from another stanza or repository) would
        // give a restore of one cluster replaying WAL archived for another: refuse before writing.
        let archiveInfo = try InfoFiles.loadArchiveInfo(storage, layout, warn: log.warn)
        guard archiveInfo.current == info.current else {
            throw PGKeepError(.repositoryInvalid,
                              "'\(storage.describe(layout.backupInfo))' (system identifier \(info.current.systemIdentifier), PostgreSQL \(info.current.version), id \(info.current.id)) and '\(storage.describe(layout.archiveInfo))' (system identifier \(archiveInfo.current.systemIdentifier), PostgreSQL \(archiveInfo.current.version), id \(archiveInfo.current.id)) describe different clusters",
                              hint: "run 'pgkeep --stanza=\(stanza) verify' to see which one is wrong, and put back the info files from a copy of the repository; do not edit metadata files by hand")
        }
        // One catalog per archive id the backups use (a stanza's identity changes only on upgrade).
        var catalogs: [String: ArchiveCatalog] = [:]
        func archiveID(_ backup: BackupSummary) -> String {
            (info.history.first { $0.id == backup.databaseID } ?? info.current).archiveID
        }
        for id in Set(info.backups.map(archiveID)) {
            catalogs[id] = try ArchiveCatalog.load(storage: storage, layout: layout, archiveID: id, bufferSize: bufferSize)
        }
        let empty = ArchiveCatalog()
        let choice = try RestorePlanner.choose(backups: info.backups, request: request) { catalogs[archiveID($0)] ?? empty }
        let label = choice.backup.label
        let manifest = try Manifest.load(label: label, layout: layout, storage: storage, warn: log.warn,
                                         hint: "the backup is damaged (see 'pgkeep --stanza=\(stanza) verify'); restore another backup with --set"
                                            + (info.backups.filter { $0.label != label }.max { ($0.timestampStop, $0.label) < ($1.timestampStop, $1.label) }
                                                .map { ", e.g. --set=\($0.label)" } ?? ""))
        guard manifest.backup.label == label else {
            throw PGKeepError(.repositoryInvalid, "the manifest in backup \(label) describes backup \(manifest.backup.label)")
        }
        let identity = info.history.first { $0.id == choice.backup.databaseID } ?? info.current
        guard identity.matches(systemIdentifier: manifest.database.systemIdentifier, version: manifest.database.version) else {
            throw PGKeepError(.repositoryInvalid,
                              "the manifest of backup \(label) is of cluster \(manifest.database.systemIdentifier) (PostgreSQL \(manifest.database.version)), but '\(storage.describe(layout.backupInfo))' lists it for cluster \(identity.systemIdentifier) (PostgreSQL \(identity.version))",
                              hint: "the backup directory or backup.info comes from another stanza; run 'pgkeep --stanza=\(stanza) verify', or restore another backup with --set")
        }
        guard let segmentSize = WALSegmentSize(bytes: UInt64(manifest.database.walSegmentSize)) else {
            throw PGKeepError(.repositoryInvalid, "the manifest of backup \(label) records an invalid WAL segment size \(manifest.database.walSegmentSize)")
        }
        let contents = RestorePlanner.BackupContents(segmentSize: segmentSize, fileCount: manifest.files.count,
                                                     bytes: manifest.files.reduce(0) { $0 + $1.size },
                                                     repoBytes: manifest.files.reduce(0) { $0 + $1.repoSize })
        let plan = RestorePlanner.plan(stanza: layout.stanza, choice: choice, request: request, contents: contents,
                                       catalog: (catalogs[archiveID(choice.backup)] ?? empty).adding(walStoredIn: manifest), dataDirectory: dataDirectory)
        return (plan, choice.backup, manifest)
    }
}
