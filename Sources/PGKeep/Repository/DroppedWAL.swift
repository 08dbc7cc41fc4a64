import PGKeepCore
import PGKeepPostgres

/// The record of WAL segments that asynchronous `archive-push` acknowledged to PostgreSQL without
/// storing them, because the archive queue exceeded `--archive-push-queue-max` (repo-layout.md
/// §3.7). One sealed file (with its `.copy`) per run of consecutive segments of one timeline:
///
///     archive/<stanza>/<archive id>/dropped/<start>-<stop>
///
/// The record only explains an absence; it never stands in for a segment. Readers judge WAL by
/// the stored objects alone (a dropped segment is missing to `archive-get`, the planner and
/// verify like any other missing segment), and use the record to say *why* it is missing and to
/// report gaps an archive that simply ends cannot show. A segment that is stored despite a record
/// (PostgreSQL asked for it again after a crash and the repository took it) is not dropped: the
/// gap is the recorded range minus the stored segments.
public struct DroppedWAL: Codable, Sendable, Equatable {
    public var format: Int
    /// First and last dropped segment, inclusive, on one timeline.
    public var start: String
    public var stop: String
    public var walSegmentSize: WALSegmentSize
    /// Unix seconds at the decision.
    public var droppedAt: Int64
    /// The queue (segments PostgreSQL had marked ready and pgkeep had not acknowledged, times the
    /// segment size) when the decision was made, and the limit it exceeded.
    public var queueSize: UInt64
    public var queueMax: UInt64
    /// Features a reader, and besides them a writer, must know (repo-layout.md §3.9); none yet, so
    /// never written, but read so that a file of a later pgkeep naming one is refused.
    public var readerFeatures: [String]? = nil
    public var writerFeatures: [String]? = nil

    public init(start: String, stop: String, walSegmentSize: WALSegmentSize, droppedAt: Int64, queueSize: UInt64, queueMax: UInt64) {
        format = RepositoryFormat.current
        self.start = start
        self.stop = stop
        self.walSegmentSize = walSegmentSize
        self.droppedAt = droppedAt
        self.queueSize = queueSize
        self.queueMax = queueMax
    }

    /// The file name of the record: `<start>-<stop>`.
    public var fileName: String { "\(start)-\(stop)" }

    /// The recorded segments, or nil when the record does not describe a run of one timeline.
    public var segments: WALSegmentRange? {
        guard let first = WALSegmentName(start, segmentSize: walSegmentSize),
              let last = WALSegmentName(stop, segmentSize: walSegmentSize) else { return nil }
        return first.through(last)
    }

    /// Whether `name` lies in the recorded range.
    public func covers(_ name: String) -> Bool {
        guard let range = segments, let segment = WALSegmentName(name, segmentSize: walSegmentSize) else { return false }
        return segment.timeline == range.timeline && range.first <= segment.segmentNumber && segment.segmentNumber <= range.last
    }

    /// Records for `segments` (any order): one per run of consecutive segments of one timeline.
    public static func records(for segments: [WALSegmentName], droppedAt: Int64, queueSize: UInt64, queueMax: UInt64) -> [DroppedWAL] {
        guard let size = segments.first?.segmentSize else { return [] }
        return VerifyState.ranges(of: segments).map {
            DroppedWAL(start: $0.start, stop: $0.stop, walSegmentSize: size, droppedAt: droppedAt, queueSize: queueSize, queueMax: queueMax)
        }
    }

    /// Whether `name` is a record's file name (not its `.copy`, not a temporary file).
    package static func isRecordName(_ name: String) -> Bool {
        let parts = name.split(separator: "-", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { part in
            part.utf8.count == 24 && part.utf8.allSatisfy { (48...57).contains($0) || (65...70).contains($0) }
        }
    }

    // MARK: repository

    public static func directory(layout: RepositoryLayout, archiveID: String) throws -> StoragePath {
        try layout.archiveDirectory(archiveID: archiveID).appending("dropped")
    }

    /// Writes the record (and its `.copy`) under `archiveID`. Rewriting the same range is harmless:
    /// a pusher that crashed after recording decides again and records what it drops then.
    public func save(storage: Storage, layout: RepositoryLayout, archiveID: String) throws {
        try SealedFile.save(self, to: try Self.directory(layout: layout, archiveID: archiveID).appending(fileName), in: storage)
    }

    /// Every record under `archiveID`, sorted by start. A record that cannot be read (both twins
    /// damaged) is passed to `unreadable` with its path and the reason, and left out: it can only
    /// ever have explained an absence, so nothing a reader decides depends on it being there.
    public static func loadAll(storage: Storage, layout: RepositoryLayout, archiveID: String, warn: (String) -> Void = { _ in },
                               unreadable: (StoragePath, String) -> Void = { _, _ in }) throws -> [DroppedWAL] {
        let directory = try directory(layout: layout, archiveID: archiveID)
        var records: [DroppedWAL] = []
        for entry in try storage.list(directory) where entry.kind == .file {
            let name = entry.name.hasSuffix(".copy") ? String(entry.name.dropLast(5)) : entry.name
            guard isRecordName(name) else { continue }
            // A main file and its copy list twice; load each record once, through the main name.
            if entry.name != name, try storage.info(try directory.appending(name)) != nil { continue }
            let path = try directory.appending(name)
            do {
                guard let record = try SealedFile.load(DroppedWAL.self, from: path, in: storage, warn: warn) else { continue }
                records.append(record)
            } catch {
                unreadable(path, (error as? PGKeepError)?.message ?? "\(error)")
            }
        }
        return records.sorted { ($0.start, $0.stop) < ($1.start, $1.stop) }
    }
}

extension DroppedWAL: FormatVersioned {
    public static var highestReadableFormat: Int { RepositoryFormat.current }
}

extension Array where Element == DroppedWAL {
    /// The record covering `name`, if any (the earliest decision when several do).
    public func record(covering name: String) -> DroppedWAL? {
        filter { $0.covers(name) }.min { $0.droppedAt < $1.droppedAt }
    }
}
