import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// Waiting for WAL to reach the archive.
public enum ArchiveWait {
    /// Polls the archive until every segment from `first` through `last` is stored, or fails after
    /// `timeout` seconds naming the first missing segment.
    public static func waitForSegments(from first: WALSegmentName, through last: WALSegmentName, archiveID: String,
                                       storage: Storage, layout: RepositoryLayout, timeout: Double) throws {
        let deadline = Clock.monotonic() + timeout
        var pending = Array(first.through(last) ?? WALSegmentRange(timeline: first.timeline, segmentSize: first.segmentSize, first: first.segmentNumber, last: first.segmentNumber))
        var delay = 0.05
        while true {
            pending = try pending.filter { segment in
                try ArchiveLookup.find(walFile: segment.name, archiveID: archiveID, storage: storage, layout: layout).isEmpty
            }
            if pending.isEmpty { return }
            if Clock.monotonic() >= deadline {
                throw PGKeepError(.archiveTimeout,
                                  "WAL segment \(pending[0].name) did not reach the archive '\(storage.describe(try layout.archiveDirectory(archiveID: archiveID)))' within \(timeout) seconds",
                                  hint: "check that archive_command is set to 'pgkeep --stanza=\(layout.stanza) archive-push %p' and that archiving succeeds (pg_stat_archiver, the PostgreSQL log); --archive-timeout sets how long to wait")
            }
            Clock.sleep(seconds: min(delay, max(0, deadline - Clock.monotonic())))
            delay = min(delay * 2, 1.0)
        }
    }
}

/// Finding stored objects for a WAL file name.
public enum ArchiveLookup {
    /// Every stored object for `walFile` under `archiveID`: usually zero or one.
    public static func find(walFile: String, archiveID: String, storage: Storage,
                            layout: RepositoryLayout) throws -> [(object: StoragePath, checksum: SHA256Digest, compression: CompressionType)] {
        let parent = try layout.archiveParent(archiveID: archiveID, walFile: walFile)
        var found: [(StoragePath, SHA256Digest, CompressionType)] = []
        for entry in try storage.list(parent) where entry.kind == .file && entry.name.hasPrefix(walFile + "-") {
            guard let parsed = RepositoryLayout.parseArchiveObjectName(entry.name), parsed.name == walFile else { continue }
            found.append((try parent.appending(entry.name), parsed.checksum, parsed.compression))
        }
        return found
    }
}
