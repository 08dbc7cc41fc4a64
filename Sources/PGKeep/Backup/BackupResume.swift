import Synchronization
import PGKeepCore
import PGKeepRepository
import PGKeepMover
/// Resuming an interrupted backup (repo-layout.md §4.2), as pgBackRest does.
///
/// While a backup copies, it keeps `backup.manifest.partial` in its directory: a sealed manifest
/// listing the files already stored, each with the SHA-256 of its stored object. A backup killed
/// or failed mid-way leaves that directory without a `backup.info` entry, so no reader takes it
/// for a backup. The next backup looks at such directories before it starts:
///
/// - the newest one is **resumed** when it can be: same type, same prior, same compression, same
///   cluster identity, its label still sorts after every completed backup, and its partial
///   manifest is intact. The backup keeps its label and directory;
/// - every other one is **removed**, with the reason.
///
/// A file of a resumed backup is reused only when (1) the interrupted run stored it itself,
/// (2) its size, mtime and mode in the new listing equal the partial entry's, (3) its mtime is not
/// later than the interrupted run's copy start (a second whose mtime step ended before that run
/// listed, `BackupRun.copyStart`, so a later write would have changed the mtime; a file with a
/// later mtime may have been written again after it was read), (4) it is stored the way this backup would
/// store it (compression, block size), (5) timestamps are trusted (not `--delta`, no checksum
/// mode), and (6) its stored object (block object and map) still has the size and SHA-256 the
/// partial manifest recorded. Everything else is copied again, and every other object in the
/// directory is deleted first.
struct BackupResume {
    enum Decision: Equatable {
        case resume
        case remove(reason: String)
    }

    /// What the backup about to start will be.
    struct Intent {
        var type: BackupType
        var prior: BackupLabel?
        var compression: CompressionType
        var systemIdentifier: UInt64
        var version: Int
        var databaseID: Int
        /// The newest label in backup.info: a resumed label must still sort after it.
        var newestLabel: BackupLabel?
        /// `--resume` (the default); `--no-resume` removes instead.
        var enabled = true
    }

    /// Whether the interrupted backup `label`, whose partial manifest loaded as `partial` (nil:
    /// missing; `problem`: unreadable), can be resumed by the backup `intent` describes.
    static func decide(label: BackupLabel, partial: Manifest?, problem: String? = nil, intent: Intent) -> Decision {
        if let problem { return .remove(reason: "its partial manifest is unusable: \(problem)") }
        guard let partial else { return .remove(reason: "it has no partial manifest (backup.manifest.partial)") }
        guard intent.enabled else { return .remove(reason: "--no-resume was given") }
        guard partial.format == RepositoryFormat.current else {
            return .remove(reason: "its partial manifest has format \(partial.format), not \(RepositoryFormat.current)")
        }
        guard partial.backup.label == label else {
            return .remove(reason: "its partial manifest describes backup \(partial.backup.label)")
        }
        if let newest = intent.newestLabel, newest >= label {
            return .remove(reason: "backup \(newest) completed after it")
        }
        guard partial.backup.type == intent.type else {
            return .remove(reason: "it is a \(partial.backup.type.rawValue) backup and this one is \(intent.type.rawValue)")
        }
        guard partial.backup.prior == intent.prior else {
            return .remove(reason: "its prior is \(partial.backup.prior?.text ?? "none") and this backup's is \(intent.prior?.text ?? "none")")
        }
        guard partial.options.compressType == intent.compression else {
            return .remove(reason: "it was compressed with \(partial.options.compressType.rawValue) and this backup uses \(intent.compression.rawValue)")
        }
        guard partial.database.systemIdentifier == intent.systemIdentifier, partial.database.version == intent.version,
              partial.database.id == intent.databaseID else {
            return .remove(reason: "it was taken from another cluster identity (system identifier \(partial.database.systemIdentifier), PostgreSQL \(partial.database.version), database id \(partial.database.id))")
        }
        return .resume
    }

    /// Rules (1) to (5) of the type comment: whether `entry` of the partial manifest may stand for
    /// the listed `file`, before its stored object is checked.
    static func mayReuse(_ file: ClusterWalker.ListedFile, entry: Manifest.FileEntry, partial: Manifest,
                         compression: CompressionType, trustTimestamps: Bool) -> Bool {
        guard trustTimestamps, entry.name == file.name, entry.reference == partial.backup.label,
              entry.size == file.size, entry.mtime == file.mtime, entry.mode == file.mode,
              entry.compression == compression,
              let copyStart = partial.backup.timestampCopyStart, entry.mtime <= copyStart else { return false }
        // Bundled files are copied again with their bundle: the resumed run numbers its bundles
        // afresh, and a bundle's few small files are cheap to redo.
        guard entry.bundle == nil else { return false }
        if file.size >= BlockIncremental.minimumFileSize {
            return entry.blockSize == BlockIncremental.blockSize && entry.blockMapSize != nil && entry.blockMapChecksum != nil
        }
        return entry.blockSize == nil
    }

    /// The objects (relative to the backup directory) that hold `entry`.
    static func objects(of entry: Manifest.FileEntry, layout: RepositoryLayout) throws -> [StoragePath] {
        if entry.isBlockIncremental {
            return [try layout.blockObject(label: entry.reference, name: entry.name),
                    try layout.blockMap(label: entry.reference, name: entry.name)]
        }
        return [try layout.backupFile(label: entry.reference, name: entry.name, compression: entry.compression)]
    }

    /// Rule (6): whether the stored object(s) of `entry` still have the recorded sizes and SHA-256s.
    static func storedIntact(_ entry: Manifest.FileEntry, layout: RepositoryLayout, storage: Storage,
                             buffer: IOBuffer, hasher: SHA256Hasher) throws -> Bool {
        var checks: [(StoragePath, UInt64, SHA256Digest)] = []
        if entry.isBlockIncremental {
            guard let mapSize = entry.blockMapSize, let mapChecksum = entry.blockMapChecksum else { return false }
            checks.append((try layout.blockObject(label: entry.reference, name: entry.name), entry.repoSize, entry.repoChecksum))
            checks.append((try layout.blockMap(label: entry.reference, name: entry.name), mapSize, mapChecksum))
        } else {
            checks.append((try layout.backupFile(label: entry.reference, name: entry.name, compression: entry.compression),
                           entry.repoSize, entry.repoChecksum))
        }
        for (path, size, checksum) in checks {
            guard let reader = try storage.openRead(path) else { return false }
            try hasher.reset()
            var total: UInt64 = 0
            while true {
                let n = try reader.read(into: buffer.bytes)
                if n == 0 { break }
                total += UInt64(n)
                if total > size { return false }
                try hasher.update(UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<n]))
            }
            guard total == size, try hasher.finalize() == checksum else { return false }
        }
        return true
    }

    /// Checks rule (6) for many entries with `processMax` threads; returns which passed (by index
    /// into `entries`). A read error counts as "not intact": the file is simply copied again.
    static func verifyStored(_ entries: [Manifest.FileEntry], layout: RepositoryLayout, storage: Storage,
                             processMax: Int, bufferSize: Int) throws -> [Bool] {
        guard !entries.isEmpty else { return [] }
        final class State: Sendable {
            struct Progress {
                var next = 0
                var results: [Bool]
            }
            let progress: Mutex<Progress>
            init(count: Int) { progress = Mutex(Progress(results: [Bool](repeating: false, count: count))) }
        }
        let state = State(count: entries.count)
        let body: (Int) -> Void = { _ in
            guard let hasher = try? SHA256Hasher() else { return }
            let buffer = IOBuffer(size: bufferSize)
            while true {
                let index: Int? = state.progress.withLock { progress in
                    guard progress.next < entries.count else { return nil }
                    defer { progress.next += 1 }
                    return progress.next
                }
                guard let index else { return }
                let intact = (try? storedIntact(entries[index], layout: layout, storage: storage, buffer: buffer, hasher: hasher)) ?? false
                state.progress.withLock { $0.results[index] = intact }
            }
        }
        let threads = min(max(1, processMax), entries.count)
        if threads == 1 { body(0) } else { try WorkerThreads.run(count: threads, body) }
        return state.progress.withLock { $0.results }
    }

    /// Deletes everything under `directory` that is not in `keep` (paths relative to the storage
    /// root), and temporary files of interrupted writes. Returns the number of files removed.
    static func clean(directory: StoragePath, keep: Set<StoragePath>, storage: Storage) throws -> Int {
        var removed = try storage.removeTemporaryFiles(under: directory)
        for entry in try storage.list(directory) {
            let path = try directory.appending(entry.name)
            if entry.kind == .directory {
                removed += try clean(directory: path, keep: keep, storage: storage)
            } else if !keep.contains(path) {
                try storage.remove(path)
                removed += 1
            }
        }
        return removed
    }
}
