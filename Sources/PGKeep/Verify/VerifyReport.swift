import FoundationEssentials

/// What `verify` found, for the text and `--output=json` forms (README "verify": the JSON is
/// documented there field by field).
public struct VerifyReport: Encodable, Sendable {
    public var stanza: String
    /// `ok` or `error` (some problem found).
    public var status: String
    public var set: String?
    public var sinceLast: Bool
    public var infoFiles: [InfoFile]
    public var backups: [BackupResult]
    public var archive: [ArchiveResult]
    /// Damage: every entry makes the exit code non-zero.
    public var problems: [Finding]
    /// Worth knowing, not damage (a twin took over, a WAL gap outside any backup's needs).
    public var warnings: [Finding]
    public var checked: Totals

    /// One info file and its twin.
    public struct InfoFile: Encodable, Sendable, Equatable {
        /// Repository-relative path of the main file, e.g. `backup/main/backup.info`.
        public var file: String
        /// `ok`, `copy-used` (main damaged or missing, the `.copy` took over), `copy-damaged`
        /// (main good, twin damaged or missing), `damaged` (both unusable).
        public var status: String
        public var message: String?
    }

    public struct BackupResult: Encodable, Sendable {
        public var label: String
        /// `ok`, `error`, or `skipped` (proven by an earlier verify, `--since-last`).
        public var status: String
        public var fileCount: Int
        /// Files of the manifest whose every stored object this run re-read (a block-incremental
        /// file has two: its map and its block object); 0 when skipped.
        public var filesChecked: Int
        public var walStart: String
        public var walStop: String
        /// `ok` when every segment from walStart to walStop is archived and sound.
        public var walStatus: String
    }

    public struct ArchiveResult: Encodable, Sendable {
        public var archiveID: String
        public var walSegmentSize: UInt64?
        public var timelines: [Timeline]
        enum CodingKeys: String, CodingKey { case archiveID = "archiveId", walSegmentSize, timelines }
    }

    public struct Timeline: Encodable, Sendable {
        public var timeline: UInt32
        public var segments: Int
        /// Continuous runs of archived segments, first and last name.
        public var ranges: [Range]
        /// Missing runs between them (and between the timeline's switch point and its first segment).
        public var gaps: [Range]
        /// From the timeline's history file: the parent timeline and the LSN where this one began.
        public var parent: UInt32?
        public var switchPoint: String?
    }

    public struct Range: Encodable, Sendable, Equatable {
        public var start: String
        public var stop: String
        /// For a gap: `dropped` when archive-push dropped these segments (`--archive-push-queue-max`,
        /// a record in the archive says so), absent for WAL that is simply not there.
        public var reason: String? = nil
        /// For a dropped gap: when the drop was decided (Unix seconds).
        public var droppedAt: Int64? = nil

        public init(start: String, stop: String, reason: String? = nil, droppedAt: Int64? = nil) {
            self.start = start
            self.stop = stop
            self.reason = reason
            self.droppedAt = droppedAt
        }
    }

    /// One problem or warning.
    public struct Finding: Encodable, Sendable, Equatable {
        /// Stable kind: `checksum-mismatch`, `size-mismatch`, `missing`, `unreadable`,
        /// `wal-missing`, `wal-duplicate`, `reference-missing`, `reference-invalid`,
        /// `manifest-invalid`, `info-invalid`, `info-mismatch`, `history-invalid`, `copy-used`,
        /// `copy-damaged`, `wal-gap`, `history-missing`, `unknown-file`, `drop-record-invalid`.
        public var kind: String
        /// Repository-relative path of the object or file concerned.
        public var path: String
        /// The WAL file name, for WAL findings.
        public var walFile: String?
        /// Labels of the backups it affects (that cannot be restored, or not to consistency).
        public var backups: [String]
        public var message: String
        /// `dropped` for a `wal-missing` problem or `wal-gap` warning whose segments archive-push
        /// dropped (`--archive-push-queue-max`); absent otherwise.
        public var reason: String? = nil
    }

    public struct Totals: Encodable, Sendable {
        public var backupFiles: Int
        public var walFiles: Int
        /// Objects not re-read because an earlier verify proved them (`--since-last`).
        public var skipped: Int
        /// Stored bytes read.
        public var bytes: UInt64
    }

    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
    }

    public func text() -> String {
        var out = "stanza: \(stanza)\n    status: \(status)\(sinceLast ? " (since last verify)" : "")\n"
        for info in infoFiles {
            out += "    \(info.file): \(info.status)\(info.message.map { " (\($0))" } ?? "")\n"
        }
        for backup in backups {
            out += "    backup \(backup.label): \(backup.status), \(backup.filesChecked) of \(backup.fileCount) files checked, "
                + "WAL \(backup.walStart) ... \(backup.walStop) \(backup.walStatus)\n"
        }
        for archive in archive {
            for timeline in archive.timelines {
                let ranges = timeline.ranges.map { "\($0.start) ... \($0.stop)" }.joined(separator: ", ")
                out += "    archive \(archive.archiveID) timeline \(timeline.timeline): \(timeline.segments) segments"
                    + (ranges.isEmpty ? "" : ": \(ranges)")
                if let parent = timeline.parent, let point = timeline.switchPoint { out += " (from timeline \(parent) at \(point))" }
                out += timeline.gaps.isEmpty ? "\n" : "; gaps: " + timeline.gaps.map { "\($0.start) ... \($0.stop)\($0.reason.map { " (\($0))" } ?? "")" }.joined(separator: ", ") + "\n"
            }
        }
        for finding in problems { out += "    PROBLEM " + line(finding) }
        for finding in warnings { out += "    WARNING " + line(finding) }
        out += "    checked \(checked.backupFiles) backup files, \(checked.walFiles) WAL files, \(checked.bytes) bytes"
            + (checked.skipped > 0 ? "; \(checked.skipped) proven earlier, skipped" : "") + "\n"
        return out
    }

    private func line(_ finding: Finding) -> String {
        "\(finding.kind): \(finding.path): \(finding.message)"
            + (finding.backups.isEmpty ? "" : " (affects backup \(finding.backups.joined(separator: ", ")))") + "\n"
    }
}
