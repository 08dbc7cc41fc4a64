import PGKeepRepository

/// Change detection for differential and incremental backups: what to do with each listed file
/// given the prior backup's manifest.
///
/// By default a file is unchanged when its size, mtime and mode equal the prior entry's, and the
/// prior entry's mtime is not later than the prior backup's copy start. (Every backup records as
/// its copy start at least two seconds before the one its listing begins in (`BackupRun.copyStart`), so a
/// file last written in or before that second gets a later mtime when it is written again, even
/// where mtimes come in 2-second steps; a file written after it may have been written again within
/// the same step after it was read, and is compared by checksum instead.)
///
/// Timestamps are not trusted at all, and every file whose size equals the prior's is compared by
/// checksum (checksum mode, pgBackRest's delta), when:
/// - `--delta` is given;
/// - the timeline changed since the prior backup (a restore may have put older files back);
/// - a file's mtime is later than the time the listing ended (a clock or a file from the future);
/// - a file's mtime is earlier than in the prior backup (time went backwards: restored or copied);
/// - a file changed size without changing mtime.
struct IncrementalPlan {
    enum Action: Equatable {
        /// Not in the prior backup: store it.
        case copy
        /// Unchanged by size, mtime and mode: the new manifest reuses the prior entry.
        case reference(Manifest.FileEntry)
        /// Possibly unchanged: compare checksums (whole file, or blocks) and reuse when equal.
        case verify(Manifest.FileEntry)
        /// Changed: store it (a block-incremental file still reuses the blocks that match).
        case changed(Manifest.FileEntry)

        var prior: Manifest.FileEntry? {
            switch self {
            case .copy: return nil
            case .reference(let entry), .verify(let entry), .changed(let entry): return entry
            }
        }
    }

    /// One action per listed file, in listing order.
    var actions: Actions
    /// Why checksum mode is on; empty when timestamps are trusted.
    var checksumReasons: [String]
    var checksumMode: Bool { !checksumReasons.isEmpty }

    /// - Parameters:
    ///   - listedAt: the time the listing ended; a later mtime is in the future. (Files written
    ///     while the backup runs have mtimes after its copy start, which is normal: WAL replay
    ///     repairs them, and the next backup does not trust their times, see above.)
    static func make<Files: Collection<ClusterWalker.ListedFile>>(files: Files, prior: PriorManifest, listedAt: Int64, delta: Bool,
                     timeline: UInt32) -> IncrementalPlan {
        var reasons: [String] = []
        if delta { reasons.append("--delta was given") }
        if prior.backup.timeline != timeline {
            reasons.append("the timeline changed from \(prior.backup.timeline) to \(timeline) since backup \(prior.backup.label)")
        }
        for file in files {
            if file.mtime > listedAt {
                reasons.append("'\(file.name)' has a modification time in the future (\(file.mtime) > \(listedAt))")
                break
            }
        }
        // Each listed file's entry in the prior manifest, looked up once.
        var priorIndexes: [Int32] = []
        priorIndexes.reserveCapacity(files.count)
        for file in files { priorIndexes.append(prior.files.index(of: file.name).map(Int32.init) ?? -1) }

        for (file, index) in zip(files, priorIndexes) where index >= 0 {
            let index = Int(index)
            if file.mtime < prior.files.mtime(index) {
                reasons.append("'\(file.name)' has an older modification time than in backup \(prior.backup.label)")
                break
            }
            if file.mtime == prior.files.mtime(index) && file.size != prior.files.size(index) {
                reasons.append("'\(file.name)' changed size without changing its modification time")
                break
            }
        }

        // Manifests from before copy start was recorded: the copy began after timestampStart.
        let trustedUntil = prior.backup.timestampCopyStart ?? (prior.backup.timestampStart - 1)
        let checksumMode = !reasons.isEmpty
        var actions = Actions(prior: prior.files)
        actions.reserveCapacity(files.count)
        for (file, index) in zip(files, priorIndexes) {
            guard index >= 0 else { actions.append(.copy, prior: 0); continue }
            let index = Int(index)
            let mtime = prior.files.mtime(index)
            let kind: Actions.Kind
            if file.size != prior.files.size(index) { kind = .changed }
            else if checksumMode { kind = .verify }
            else if file.mtime != mtime { kind = .changed }
            else if file.mode != prior.files.mode(index) || mtime > trustedUntil { kind = .verify }
            else { kind = .reference }
            actions.append(kind, prior: index)
        }
        return IncrementalPlan(actions: actions, checksumReasons: reasons)
    }
}

extension IncrementalPlan {
    /// The actions, packed: a kind and an index into the prior manifest's files per listed file
    /// (a `FileEntry` copy per file would cost more than the compact prior table). Subscripting
    /// builds the `Action` with its prior entry.
    struct Actions: RandomAccessCollection {
        enum Kind: UInt8 { case copy, reference, verify, changed }

        private let prior: PriorFileTable
        private var kinds: [Kind] = []
        private var indexes: [Int32] = []

        init(prior: PriorFileTable) { self.prior = prior }

        var startIndex: Int { 0 }
        var endIndex: Int { kinds.count }

        subscript(position: Int) -> Action {
            let entry = { prior[Int(indexes[position])] }
            switch kinds[position] {
            case .copy: return .copy
            case .reference: return .reference(entry())
            case .verify: return .verify(entry())
            case .changed: return .changed(entry())
            }
        }

        mutating func reserveCapacity(_ count: Int) {
            kinds.reserveCapacity(count)
            indexes.reserveCapacity(count)
        }

        mutating func append(_ kind: Kind, prior index: Int) {
            kinds.append(kind)
            indexes.append(Int32(index))  // traps beyond 2^31 entries, which no manifest in memory reaches
        }
    }
}

/// Block-incremental storage parameters (repo-layout.md §3.4).
public enum BlockIncremental {
    /// Files of at least this size are stored in blocks.
    public static let minimumFileSize: UInt64 = 1 << 20
    /// The block size: 16 PostgreSQL pages. A 1 GiB segment has 8192 blocks and a 368 KiB map.
    public static let blockSize = 128 << 10
}
