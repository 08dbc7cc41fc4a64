import PGKeepCore
import PGKeepPostgres

/// `backup/<stanza>/verify.state`: what `verify` has proven, so `verify --since-last` re-reads only
/// what is new (repo-layout.md §3.5). Sealed with a `.copy` like the info files.
///
/// An entry is a claim "these stored bytes were read back and matched their checksums at
/// `verifiedAt`". Backups and archive objects are immutable once written (a push never overwrites,
/// a backup is listed only when complete), so a proven object stays proven until it is removed;
/// each run keeps only entries whose object still exists, and drops anything it found damaged.
public struct VerifyState: Codable, Sendable, Equatable, FormatVersioned {
    public var format: Int
    /// Unix seconds of the run that wrote this state.
    public var updated: Int64
    public var backups: [Backup]
    public var archive: [Archive]
    /// Features a reader, and besides them a writer, must know (repo-layout.md §3.9); none yet, so
    /// never written, but read so that a file of a later pgkeep naming one is refused.
    public var readerFeatures: [String]? = nil
    public var writerFeatures: [String]? = nil

    public init(updated: Int64, backups: [Backup] = [], archive: [Archive] = []) {
        format = RepositoryFormat.current
        self.updated = updated
        self.backups = backups
        self.archive = archive
    }

    /// A backup whose every stored object, reference and WAL segment was proven.
    public struct Backup: Codable, Sendable, Equatable {
        public var label: BackupLabel
        /// Identifies the backup beyond its label: a different backup under a reused label is not proven.
        public var timestampStop: Int64
        public var verifiedAt: Int64

        public init(label: BackupLabel, timestampStop: Int64, verifiedAt: Int64) {
            self.label = label
            self.timestampStop = timestampStop
            self.verifiedAt = verifiedAt
        }
    }

    /// Proven WAL of one archive id: runs of consecutive segments per timeline, and the other
    /// files (history, partial, backup history) by object name.
    public struct Archive: Codable, Sendable, Equatable {
        public var archiveID: String
        public var walSegmentSize: WALSegmentSize
        public var segments: [SegmentRange]
        public var files: [String]

        public init(archiveID: String, walSegmentSize: WALSegmentSize, segments: [SegmentRange], files: [String]) {
            self.archiveID = archiveID
            self.walSegmentSize = walSegmentSize
            self.segments = segments
            self.files = files
        }
    }

    /// Segments `start` through `stop` (file names, inclusive) on one timeline, all proven.
    public struct SegmentRange: Codable, Sendable, Equatable {
        public var start: String
        public var stop: String

        public init(start: String, stop: String) {
            self.start = start
            self.stop = stop
        }
    }

    public func backup(_ label: BackupLabel, timestampStop: Int64) -> Backup? {
        backups.first { $0.label == label && $0.timestampStop == timestampStop }
    }

    public func archive(_ archiveID: String) -> Archive? {
        archive.first { $0.archiveID == archiveID }
    }

    /// Whether the segment (named with the archive's segment size) lies in a proven range.
    public func isProven(segment name: String, archiveID: String) -> Bool {
        guard let entry = archive(archiveID) else { return false }
        // Names of one timeline and segment size order like their segment numbers.
        return entry.segments.contains { $0.start.prefix(8) == name.prefix(8) && $0.start <= name && name <= $0.stop }
    }

    public func isProven(file objectName: String, archiveID: String) -> Bool {
        archive(archiveID)?.files.contains(objectName) ?? false
    }

    /// Runs of consecutive segments (same timeline, adjacent numbers) from a set of proven ones.
    public static func ranges(of segments: [WALSegmentName]) -> [SegmentRange] {
        var result: [SegmentRange] = []
        var run: (first: WALSegmentName, last: WALSegmentName)?
        for segment in segments.sorted() {
            if let current = run, current.last.timeline == segment.timeline, current.last.segmentNumber + 1 == segment.segmentNumber {
                run = (current.first, segment)
            } else {
                if let current = run { result.append(SegmentRange(start: current.first.name, stop: current.last.name)) }
                run = (segment, segment)
            }
        }
        if let current = run { result.append(SegmentRange(start: current.first.name, stop: current.last.name)) }
        return result
    }

    // MARK: storage

    public static func load(_ storage: Storage, _ layout: RepositoryLayout, warn: (String) -> Void) -> VerifyState? {
        // A damaged state only costs a full re-read: warn and carry on without it.
        do {
            guard let state = try SealedFile.load(VerifyState.self, from: layout.verifyState, in: storage, warn: warn) else { return nil }
            return state
        } catch {
            warn("\((error as? PGKeepError)?.message ?? "\(error)"); ignoring it, everything is verified")
            return nil
        }
    }

    public func save(_ storage: Storage, _ layout: RepositoryLayout) throws {
        try SealedFile.save(self, to: layout.verifyState, in: storage)
    }
}
