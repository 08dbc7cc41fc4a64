import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// What one archive id directory holds, as far as restore planning needs: the parsed timeline
/// history files and the names (and stored sizes) of the complete WAL segments.
///
/// Partial segments and backup history files are left out: recovery never asks for them
/// (docs/postgres-internals.md §4.4, §5.2).
public struct ArchiveCatalog: Sendable {
    /// Parsed history files by timeline. Timeline 1 never has one.
    public var histories: [TimelineID: TimelineHistory]
    /// Complete segments by file name, with the bytes their stored object takes.
    public var segments: [String: UInt64]
    /// Segments stored more than once with different content: archive-get refuses them.
    public var conflicting: Set<String>
    /// When each segment's (latest) object and each history file's object was stored
    /// (`StorageEntry.modified`), for `divergences`.
    public var segmentsStored: [String: Int64] = [:]
    public var historiesStored: [TimelineID: Int64] = [:]
    /// Records of segments archive-push acknowledged without storing (`--archive-push-queue-max`).
    /// They explain absences only: `segments` alone says what is there.
    public var dropped: [DroppedWAL] = []
    /// Bytes of every object listed (segments, partial segments, history and backup history
    /// files, each copy), as stored.
    public var storedBytes: UInt64 = 0

    /// The drop record explaining why `name` is not archived; nil when it is stored or no record
    /// covers it.
    public func dropRecord(for name: String) -> DroppedWAL? {
        segments[name] == nil ? dropped.record(covering: name) : nil
    }

    public init(histories: [TimelineHistory] = [], segments: [String: UInt64] = [:], conflicting: Set<String> = []) {
        self.histories = Dictionary(histories.map { ($0.timeline, $0) }, uniquingKeysWith: { first, _ in first })
        self.segments = segments
        self.conflicting = conflicting
    }

    /// Timelines archived past a child's fork after the child began (`TimelineDivergence`).
    public func divergences(segmentSize: WALSegmentSize) -> [TimelineDivergence] {
        TimelineDivergence.find(histories: histories.values.map { ($0, historiesStored[$0.timeline] ?? 0) },
                                segments: segmentsStored, segmentSize: segmentSize)
    }

    /// This catalog with the WAL segments `manifest`'s backup stores itself (`--archive-copy`:
    /// `pg_data/pg_wal/<segment>` entries), which a restore writes into pg_wal where recovery
    /// finds them: present whether or not the archive has them. A segment the archive has keeps
    /// its archived size; one it lacks counts the backup's stored size.
    public func adding(walStoredIn manifest: Manifest) -> ArchiveCatalog {
        var catalog = self
        for file in manifest.files where file.name.hasPrefix(Self.backupWALPrefix) {
            let name = String(file.name.dropFirst(Self.backupWALPrefix.count))
            guard WALFileName(name)?.kind == .segment, catalog.segments[name] == nil else { continue }
            catalog.segments[name] = file.repoSize
        }
        return catalog
    }

    static let backupWALPrefix = "pg_data/pg_wal/"

    /// The history of `timeline`: the empty one for timeline 1, nil when its file is not archived.
    public func history(of timeline: TimelineID) -> TimelineHistory? {
        if let history = histories[timeline] { return history }
        return timeline == .initial ? TimelineHistory(timeline: .initial) : nil
    }

    /// Every timeline the archive knows of: 1, those with a history file, those with segments.
    public func timelines(segmentSize: WALSegmentSize) -> [TimelineID] {
        var all: Set<TimelineID> = [.initial]
        all.formUnion(histories.keys)
        for name in segments.keys {
            if let segment = WALSegmentName(name, segmentSize: segmentSize) { all.insert(segment.timeline) }
        }
        return all.sorted()
    }

    /// Reads the catalog of `archiveID` from the repository: one listing of the archive id
    /// directory and one of each of its segment directories; history files are read and their
    /// checksums verified.
    public static func load(storage: Storage, layout: RepositoryLayout, archiveID: String, bufferSize: Int) throws -> ArchiveCatalog {
        let root = try layout.archiveDirectory(archiveID: archiveID)
        var histories: [TimelineHistory] = []
        var historyObjects: [String: [(StoragePath, SHA256Digest, CompressionType)]] = [:]
        var segments: [String: UInt64] = [:]
        var segmentChecksums: [String: SHA256Digest] = [:]
        var conflicting: Set<String> = []
        var segmentsStored: [String: Int64] = [:]
        var historiesStored: [TimelineID: Int64] = [:]
        var storedBytes: UInt64 = 0
        for entry in try storage.list(root) {
            switch entry.kind {
            case .file:
                storedBytes += entry.size
                guard let parsed = RepositoryLayout.parseArchiveObjectName(entry.name),
                      WALFileName(parsed.name)?.kind == .history else { continue }
                historyObjects[parsed.name, default: []].append((try root.appending(entry.name), parsed.checksum, parsed.compression))
                if let timeline = WALFileName(parsed.name)?.timeline {
                    // The first copy stored is when the timeline began.
                    historiesStored[timeline] = min(historiesStored[timeline] ?? .max, entry.modified)
                }
            case .directory:
                // Segment directories are named by 16 upper-case hex digits (timeline + log id).
                guard entry.name.utf8.count == 16, Hex.parse(utf8: entry.name.utf8) != nil else { continue }
                for object in try storage.list(try root.appending(entry.name)) where object.kind == .file {
                    storedBytes += object.size
                    guard let parsed = RepositoryLayout.parseArchiveObjectName(object.name),
                          WALFileName(parsed.name)?.kind == .segment else { continue }
                    if let earlier = segmentChecksums[parsed.name], earlier != parsed.checksum { conflicting.insert(parsed.name) }
                    segmentChecksums[parsed.name] = parsed.checksum
                    segments[parsed.name] = max(segments[parsed.name] ?? 0, object.size)
                    segmentsStored[parsed.name] = max(segmentsStored[parsed.name] ?? 0, object.modified)
                }
            }
        }
        for (name, objects) in historyObjects.sorted(by: { $0.key < $1.key }) {
            if Set(objects.map(\.1)).count > 1 {
                throw PGKeepError(.archiveDuplicate,
                                  "the archive holds several different copies of '\(name)': \(objects.map { storage.describe($0.0) }.joined(separator: ", "))",
                                  hint: "the archive is inconsistent; find out which history belongs to this cluster before restoring")
            }
            let (object, checksum, compression) = objects[0]
            let bytes = try readVerified(storage: storage, object: object, checksum: checksum, compression: compression, bufferSize: bufferSize)
            let timeline = WALFileName(name)!.timeline
            histories.append(try bytes.withUnsafeBytes { raw throws(PGKeepError) in
                try TimelineHistory(timeline: timeline, bytes: raw, path: storage.describe(object))
            })
        }
        var catalog = ArchiveCatalog(histories: histories, segments: segments, conflicting: conflicting)
        catalog.segmentsStored = segmentsStored
        catalog.historiesStored = historiesStored
        catalog.storedBytes = storedBytes
        // An unreadable record is left out: it could only have explained a gap the missing
        // segments show anyway (verify reports the damaged record).
        catalog.dropped = try DroppedWAL.loadAll(storage: storage, layout: layout, archiveID: archiveID)
        return catalog
    }

    /// A small archived object, decompressed, with its SHA-256 checked against its name.
    static func readVerified(storage: Storage, object: StoragePath, checksum: SHA256Digest, compression: CompressionType,
                             bufferSize: Int) throws -> [UInt8] {
        guard let source = try storage.openRead(object) else {
            throw PGKeepError(.archiveFileMissing, "'\(storage.describe(object))' disappeared from the archive while being read")
        }
        let codec = try ObjectCodec(bufferSize: bufferSize)
        let sink = CollectingSink(limit: 1 << 20, what: "an archived history file")
        do {
            try codec.readChain(ObjectEncoding(compression: compression), observing: .originalSHA256)
                .run(from: source, into: sink, buffer: IOBuffer(size: min(bufferSize, 1 << 16)))
        } catch {
            if let error = error as? PGKeepError, error.code == .compression {
                throw PGKeepError(.checksumMismatch, "archived '\(storage.describe(object))' is damaged: \(error.message)")
            }
            throw error
        }
        guard try codec.original.digest() == checksum else {
            throw PGKeepError(.checksumMismatch, "archived '\(storage.describe(object))' is damaged: its content does not match the checksum in its name",
                              hint: "restore the file from another copy of the archive")
        }
        return sink.bytes
    }
}

