import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// The restore planner: before a restore writes anything, it decides which backup to restore,
/// which timelines recovery will follow, and which WAL it will read, and proves that every piece
/// is in the repository. `restore --plan` shows the result without writing.
///
/// The rules (docs/postgres-internals.md §6.3, §6.5, §4.1, §4.3):
/// - **Backup.** With `--set`, that backup. Otherwise, for a time target the newest backup whose
///   stop time is before the target, for an LSN target the newest whose stop LSN is at or before
///   it, and for every other target the newest backup; in each case only backups from which the
///   target timeline descends. The backup's stop point is its consistency point: recovery cannot
///   stop before it.
/// - **Timeline.** `current` is the backup's timeline; a number must be that timeline or one whose
///   history lists it with a switch point at or after the backup's stop LSN (otherwise the
///   timeline forked away before the backup became consistent). `latest` is the highest such
///   timeline in the archive. Unlike PostgreSQL's own `latest`, a timeline that forked before the
///   backup is never followed.
/// - **WAL.** Every segment from the one holding the backup's start LSN to the target: to the
///   segment holding the stop LSN for `immediate`, to the segment holding the target LSN for
///   `lsn` (at least to the stop LSN), and to the last segment of the archive on the timeline path
///   otherwise (time, xid and name targets have no position known before replay). Each segment is
///   named with the timeline recovery reads it from: the newest timeline of the path that began at
///   or before it, so the segment holding a switch point comes from the child timeline.
/// - **End of the archive.** A target the archived WAL cannot reach is refused (72) unless
///   `--target-past-archive` says the operator will put the rest into pg_wal: an LSN past the last
///   archived segment, and a time after the newest segment of the path was stored. A segment is
///   archived only once complete, so every commit it holds is older than its object (by the
///   repository's clock), and PostgreSQL reaches a time target only at a commit or abort not
///   earlier than it (docs/postgres-internals.md §6.2, §6.4). An xid or name target cannot be
///   placed without reading the WAL: PostgreSQL finds it missing at the end of replay.
public enum RestorePlanner {
    /// What the caller asks for.
    public struct Request: Sendable {
        public var target: RecoveryTarget
        public var set: BackupLabel?
        /// `--target-past-archive`: a target past the end of the archive is a note, not a
        /// problem (the operator will put the missing WAL into pg_wal).
        public var pastArchive: Bool

        public init(target: RecoveryTarget, set: BackupLabel?, pastArchive: Bool = false) {
            self.target = target
            self.set = set
            self.pastArchive = pastArchive
        }
    }

    /// A backup passed over by the automatic choice, and why.
    public struct Skipped: Codable, Sendable, Equatable {
        public var label: BackupLabel
        public var reason: String
    }

    /// The chosen backup.
    public struct Choice: Sendable {
        public var backup: BackupSummary
        public var reason: String
        public var skipped: [Skipped]
        /// The timeline path, or why the target timeline cannot be reached from this backup (only
        /// with `--set`: the automatic choice skips such backups).
        public var path: Result<TimelinePath, PGKeepError>
    }

    // MARK: timelines

    /// The path from `backup`'s timeline to `target`, or why there is none.
    public static func path(from backup: BackupSummary, to target: TimelineID, catalog: ArchiveCatalog) -> Result<TimelinePath, PGKeepError> {
        let own = TimelineID(rawValue: backup.timeline)
        if target == own {
            let history = catalog.history(of: own) ?? TimelineHistory(timeline: own)
            return .success(TimelinePath(target: own, history: history,
                                         steps: [.init(timeline: own, begin: backup.lsnStart, end: nil)]))
        }
        guard let history = catalog.history(of: target) else {
            return .failure(PGKeepError(.timelineInvalid,
                                        "target timeline \(target) does not exist in the archive (no \(TimelineHistory.fileName(for: target)))",
                                        hint: "list the timelines with 'pgkeep restore --plan'; use --target-timeline=current or latest, or the number of an archived timeline"))
        }
        guard let index = history.ancestry.firstIndex(of: own) else {
            return .failure(PGKeepError(.timelineInvalid,
                                        "target timeline \(target) does not descend from timeline \(own) of backup \(backup.label) (its ancestry is \(history.ancestry.map(\.description).joined(separator: " -> ")))",
                                        hint: "restore a backup taken on one of those timelines (--set), or choose another --target-timeline"))
        }
        let fork = history.entries[index].switchPoint
        guard fork >= backup.lsnStop else {
            return .failure(PGKeepError(.timelineInvalid,
                                        "target timeline \(target) forked from timeline \(own) at \(fork), before backup \(backup.label) was consistent (stop LSN \(backup.lsnStop))",
                                        hint: "restore an older backup that ended before \(fork) (--set, or let the planner choose), or use --target-timeline=current to stay on timeline \(own)"))
        }
        var steps: [TimelinePath.Step] = []
        let ancestry = history.ancestry
        for position in index..<ancestry.count {
            let tli = ancestry[position]
            let begin = position == index ? backup.lsnStart : history.entries[position - 1].switchPoint
            let end = position < history.entries.count ? history.entries[position].switchPoint : nil
            steps.append(.init(timeline: tli, begin: begin, end: end))
        }
        return .success(TimelinePath(target: target, history: history, steps: steps))
    }

    /// Resolves `--target-timeline` for `backup`.
    public static func resolve(_ requested: RecoveryTarget.Timeline, backup: BackupSummary, catalog: ArchiveCatalog) -> Result<TimelinePath, PGKeepError> {
        let own = TimelineID(rawValue: backup.timeline)
        switch requested {
        case .current:
            return path(from: backup, to: own, catalog: catalog)
        case .id(let tli):
            return path(from: backup, to: tli, catalog: catalog)
        case .latest:
            let candidates = Set(catalog.histories.keys).union([own]).filter { $0 >= own }.sorted(by: >)
            for candidate in candidates {
                if case .success(let found) = path(from: backup, to: candidate, catalog: catalog) { return .success(found) }
            }
            return path(from: backup, to: own, catalog: catalog)
        }
    }

    /// Timelines in the archive that `latest` did not follow from `backup`, with the reason: the
    /// operator may have meant one of them.
    static func timelinesNotFollowed(backup: BackupSummary, path: TimelinePath, catalog: ArchiveCatalog) -> [String] {
        var notes: [String] = []
        for tli in catalog.histories.keys.sorted() where tli > path.target && !path.steps.contains(where: { $0.timeline == tli }) {
            if case .failure(let why) = Self.path(from: backup, to: tli, catalog: catalog) {
                notes.append("timeline \(tli) is not followed: \(why.message)")
            }
        }
        return notes
    }

    // MARK: backup choice

    /// Picks the backup for `request` (see the type's documentation).
    public static func choose(backups: [BackupSummary], request: Request,
                              catalog: (BackupSummary) -> ArchiveCatalog) throws(PGKeepError) -> Choice {
        let target = request.target
        if let label = request.set {
            guard let backup = backups.first(where: { $0.label == label }) else {
                throw PGKeepError(.backupMissing, "backup set \(label) does not exist",
                                  hint: "run 'pgkeep info' to list the backups")
            }
            return Choice(backup: backup, reason: "chosen with --set", skipped: [],
                          path: resolve(target.timeline, backup: backup, catalog: catalog(backup)))
        }
        guard !backups.isEmpty else {
            throw PGKeepError(.backupMissing, "the stanza has no backup to restore", hint: "take one with 'pgkeep backup'")
        }
        let newestFirst = backups.sorted { ($0.timestampStop, $0.lsnStop, $0.label) > ($1.timestampStop, $1.lsnStop, $1.label) }
        var skipped: [Skipped] = []
        for backup in newestFirst {
            switch (target.kind, target.value) {
            case (.time, .time(let time)?):
                // Stop times are recorded in whole seconds, after pg_backup_stop returned: the
                // backup is certainly consistent before the target only if the whole second is.
                guard time.microseconds >= (backup.timestampStop + 1) * 1_000_000 else {
                    skipped.append(Skipped(label: backup.label,
                                           reason: "stopped at \(TargetTime(seconds: backup.timestampStop)), not before the target time \(time)"))
                    continue
                }
            case (.lsn, .lsn(let lsn)?):
                guard backup.lsnStop <= lsn else {
                    skipped.append(Skipped(label: backup.label, reason: "stop LSN \(backup.lsnStop) is after the target LSN \(lsn)"))
                    continue
                }
            default:
                break
            }
            let resolved = resolve(target.timeline, backup: backup, catalog: catalog(backup))
            if case .failure(let why) = resolved {
                skipped.append(Skipped(label: backup.label, reason: why.message))
                continue
            }
            let reason: String
            switch target.kind {
            case .time:
                reason = "the newest backup whose stop time (\(TargetTime(seconds: backup.timestampStop))) is before the target time"
            case .lsn:
                reason = "the newest backup whose stop LSN (\(backup.lsnStop)) is at or before the target LSN"
            case .xid, .name:
                reason = "the newest backup: the position of a \(target.kind.rawValue) target is only known during replay, so pgkeep cannot check it is after this backup; if it is earlier, restore an older backup with --set"
            case .default, .immediate, .standby:
                reason = "the newest backup"
            }
            return Choice(backup: backup, reason: skipped.isEmpty ? reason : reason + " (newer backups skipped)",
                          skipped: skipped, path: resolved)
        }
        let detail = skipped.prefix(3).map { "\($0.label): \($0.reason)" }.joined(separator: "; ")
        throw PGKeepError(.targetUnreachable,
                          "no backup can reach the target (\(target.kind.rawValue) \(target.value?.setting ?? "")): \(detail)\(skipped.count > 3 ? "; ..." : "")",
                          hint: target.kind == .time || target.kind == .lsn
                            ? "every backup ends after the target; a target before the oldest backup's end cannot be restored"
                            : "check --target-timeline; 'pgkeep restore --plan --set=<label>' explains one backup")
    }

    // MARK: WAL

    /// How far the WAL must reach.
    public enum WALEnd: Sendable, Equatable {
        /// To the backup's stop LSN (`immediate`).
        case consistency
        /// To the segment holding this LSN (and at least to the stop LSN).
        case lsn(LSN)
        /// To the last segment of the archive on the timeline path.
        case endOfArchive
    }

    /// The WAL a restore reads.
    public struct WALListing: Sendable, Equatable {
        /// Every needed segment, in replay order, named with the timeline it is read from.
        public var segments: [WALSegmentName]
        /// The needed segments the archive does not have.
        public var missing: [WALSegmentName]
        /// Needed segments stored twice with different content.
        public var conflicting: [WALSegmentName]
        /// Stored bytes of the present segments.
        public var repoBytes: UInt64
        /// The last segment needed to make the backup consistent.
        public var consistencySegment: WALSegmentName
    }

    /// Lists the WAL from `backup`'s start along `path` to `end`.
    public static func listWAL(backup: BackupSummary, path: TimelinePath, end: WALEnd, segmentSize: WALSegmentSize,
                               catalog: ArchiveCatalog) -> WALListing {
        let first = backup.lsnStart.value / segmentSize.bytes
        let stopSegment = backup.lsnStop.value > 0 ? (backup.lsnStop.value - 1) / segmentSize.bytes : first
        var last = max(first, stopSegment)
        switch end {
        case .consistency:
            break
        case .lsn(let lsn):
            last = max(last, lsn.value / segmentSize.bytes)
        case .endOfArchive:
            for name in catalog.segments.keys {
                guard let segment = WALSegmentName(name, segmentSize: segmentSize), segment.segmentNumber > last,
                      path.timeline(forSegmentNumber: segment.segmentNumber, segmentSize: segmentSize) == segment.timeline
                else { continue }
                last = segment.segmentNumber
            }
        }
        var listing = WALListing(segments: [], missing: [], conflicting: [], repoBytes: 0,
                                 consistencySegment: WALSegmentName(timeline: path.timeline(forSegmentNumber: max(first, stopSegment), segmentSize: segmentSize),
                                                                    segmentNumber: max(first, stopSegment), segmentSize: segmentSize))
        for number in first...last {
            let segment = WALSegmentName(timeline: path.timeline(forSegmentNumber: number, segmentSize: segmentSize),
                                         segmentNumber: number, segmentSize: segmentSize)
            listing.segments.append(segment)
            if let size = catalog.segments[segment.name] {
                listing.repoBytes += size
                if catalog.conflicting.contains(segment.name) { listing.conflicting.append(segment) }
            } else {
                listing.missing.append(segment)
            }
        }
        return listing
    }

    /// How much later than a segment's stored time a time target must be to be past it: file
    /// systems stamp with a clock that may lag the precise one by a tick, and the primary's and the
    /// repository's clocks agree only so far.
    static let storedTimeSlack: Int64 = 1_000_000

    /// The newest of the present `segments` by stored time (nanoseconds, the repository's clock),
    /// with that time; nil when the storage could not tell one of them. The newest of all, not the
    /// last: a segment pushed late (asynchronously, or again) holds no later commit than the last.
    static func newestStored(_ segments: [WALSegmentName], catalog: ArchiveCatalog) -> (segment: WALSegmentName, stored: Int64)? {
        var newest: (segment: WALSegmentName, stored: Int64)?
        for segment in segments where catalog.segments[segment.name] != nil {
            guard let stored = catalog.segmentsStored[segment.name], stored > 0 else { return nil }
            if stored > newest?.stored ?? 0 { newest = (segment, stored) }
        }
        return newest
    }

    /// How far WAL is needed for `target`.
    static func walEnd(for target: RecoveryTarget) -> WALEnd {
        switch (target.kind, target.value) {
        case (.immediate, _): return .consistency
        case (.lsn, .lsn(let lsn)?): return .lsn(lsn)
        default: return .endOfArchive
        }
    }

    // MARK: the plan

    /// What the chosen backup's manifest says about the restore's size.
    public struct BackupContents: Sendable {
        public var segmentSize: WALSegmentSize
        public var fileCount: Int
        public var bytes: UInt64
        public var repoBytes: UInt64

        public init(segmentSize: WALSegmentSize, fileCount: Int, bytes: UInt64, repoBytes: UInt64) {
            self.segmentSize = segmentSize
            self.fileCount = fileCount
            self.bytes = bytes
            self.repoBytes = repoBytes
        }
    }

    /// Builds the plan for a chosen backup.
    public static func plan(stanza: String, choice: Choice, request: Request, contents: BackupContents,
                            catalog: ArchiveCatalog, dataDirectory: String?) -> RestorePlan {
        let backup = choice.backup
        let target = request.target
        var plan = RestorePlan(stanza: stanza, backup: .init(backup), reason: choice.reason, skipped: choice.skipped,
                               target: .init(target), dataDirectory: dataDirectory)
        plan.read.backupRepoBytes = contents.repoBytes
        // The manifest's files, plus the signal file.
        plan.write.files = contents.fileCount + 1
        plan.write.bytes = contents.bytes

        let path: TimelinePath
        switch choice.path {
        case .failure(let why):
            plan.problems.append(.init(why))
            return plan
        case .success(let found):
            path = found
        }
        addTimelines(to: &plan, backup: backup, path: path, target: target, segmentSize: contents.segmentSize, catalog: catalog)
        checkTarget(target, against: backup, in: &plan)
        addWAL(to: &plan, backup: backup, path: path, request: request, segmentSize: contents.segmentSize, catalog: catalog)
        return plan
    }

    /// The timeline path, the timelines it does not follow, the divergences it crosses, and the
    /// recovery settings that follow it.
    private static func addTimelines(to plan: inout RestorePlan, backup: BackupSummary, path: TimelinePath, target: RecoveryTarget,
                                     segmentSize: WALSegmentSize, catalog: ArchiveCatalog) {
        plan.targetTimeline = path.target.rawValue
        plan.timelinePath = path.steps.map { .init(timeline: $0.timeline.rawValue, begin: $0.begin, end: $0.end) }
        if target.timeline == .latest {
            plan.notes += timelinesNotFollowed(backup: backup, path: path, catalog: catalog)
        }
        for divergence in catalog.divergences(segmentSize: segmentSize) {
            let crossed = zip(path.steps, path.steps.dropFirst()).contains {
                $0.timeline.rawValue == divergence.timeline && $1.timeline.rawValue == divergence.child
            }
            if crossed && target.timeline == .latest {
                plan.problems.append(.init(code: .timelineDiverged,
                                           message: divergence.message + "; latest would follow timeline \(divergence.child)",
                                           hint: divergence.hint))
            } else {
                plan.notes.append(divergence.message)
            }
        }
        plan.recovery.signalFile = target.signalFile
        plan.recovery.settings = target.settings(timeline: path.target, backupTimeline: TimelineID(rawValue: backup.timeline))
            .map { .init(name: $0.name, value: $0.value) }
    }

    /// The target against the backup's consistency point.
    private static func checkTarget(_ target: RecoveryTarget, against backup: BackupSummary, in plan: inout RestorePlan) {
        switch (target.kind, target.value) {
        case (.time, .time(let time)?):
            if time.seconds < backup.timestampStop {
                plan.problems.append(.init(code: .targetUnreachable,
                                           message: "target time \(time) is before backup \(backup.label) was consistent (it stopped at \(TargetTime(seconds: backup.timestampStop)))",
                                           hint: "recovery cannot stop before the end of the backup; restore an older backup (drop --set to let the planner choose)"))
            } else if time.seconds == backup.timestampStop {
                plan.notes.append("the target time is in the second backup \(backup.label) stopped (stop times are recorded to the second): if the backup ended after the target, PostgreSQL stops with 'requested recovery stop point is before consistent recovery point'")
            }
            plan.notes.append("PostgreSQL checks a time target only at transaction commits and aborts: recovery reaches it at the first one after the target, and never if no transaction ends after it")
        case (.lsn, .lsn(let lsn)?):
            if lsn < backup.lsnStop {
                plan.problems.append(.init(code: .targetUnreachable,
                                           message: "target LSN \(lsn) is before backup \(backup.label) was consistent (stop LSN \(backup.lsnStop))",
                                           hint: "recovery cannot stop before the end of the backup; restore an older backup (drop --set to let the planner choose)"))
            }
        case (.xid, _), (.name, _):
            plan.notes.append("a \(target.kind.rawValue) target is found during replay: the plan covers the WAL to the end of the archive on the timeline path; if the target is before the backup's stop LSN \(backup.lsnStop) or not in the WAL, PostgreSQL stops with 'recovery ended before configured recovery target was reached'")
        default:
            break
        }
    }

    /// The WAL recovery reads from the archive, and what is wrong with it.
    private static func addWAL(to plan: inout RestorePlan, backup: BackupSummary, path: TimelinePath, request: Request,
                               segmentSize: WALSegmentSize, catalog: ArchiveCatalog) {
        let target = request.target
        let end = walEnd(for: target)
        let wal = listWAL(backup: backup, path: path, end: end, segmentSize: segmentSize, catalog: catalog)
        plan.wal.segmentSize = segmentSize.bytes
        plan.wal.segments = wal.segments.map(\.name)
        plan.wal.missing = wal.missing.map(\.name)
        plan.wal.toEndOfArchive = end == .endOfArchive
        plan.wal.repoBytes = wal.repoBytes
        plan.wal.bytes = UInt64(wal.segments.count) * segmentSize.bytes
        plan.read.walRepoBytes = wal.repoBytes
        if path.target != TimelineID(rawValue: backup.timeline) {
            plan.wal.historyFiles = [TimelineHistory.fileName(for: path.target)]
        }
        checkMissingWAL(wal, in: &plan, backup: backup, path: path, request: request, end: end, segmentSize: segmentSize, catalog: catalog)
        if case (.time, .time(let time)?) = (target.kind, target.value), wal.missing.isEmpty,
           let newest = newestStored(wal.segments, catalog: catalog) {
            // In the target's own form (UTC), so the two read side by side.
            let stored = TargetTime(seconds: newest.stored / 1_000_000_000).text
            if time.microseconds >= newest.stored / 1000 + storedTimeSlack {
                plan.pastTheArchive("target time \(time) is past the end of the archive: the newest WAL segment of the timeline path, \(newest.segment.name), was stored at \(stored) by the repository's clock, and every commit in the archive is older",
                                    hint: "choose a target before \(stored), or --type=default to recover all the archived WAL", allowed: request.pastArchive)
            } else {
                plan.notes.append("the newest WAL segment of the timeline path, \(newest.segment.name), was stored at \(stored): the archive holds no commit after that")
            }
        }
        if !wal.conflicting.isEmpty {
            plan.problems.append(.init(code: .archiveDuplicate,
                                       message: "the archive holds different copies of needed WAL segment(s): \(wal.conflicting.prefix(5).map(\.name).joined(separator: ", "))",
                                       hint: "archive-get refuses them; find out which copy belongs to this cluster's history before restoring"))
        }
    }

    /// Missing segments (dropped ones say why), or a note when archive-push dropped WAL right
    /// after the end of the archive recovery stops at.
    private static func checkMissingWAL(_ wal: WALListing, in plan: inout RestorePlan, backup: BackupSummary, path: TimelinePath,
                                        request: Request, end: WALEnd, segmentSize: WALSegmentSize, catalog: ArchiveCatalog) {
        // Segments archive-push dropped are missing like any other; their record says why, and
        // that no copy exists anywhere to put back.
        let dropped = wal.missing.filter { catalog.dropRecord(for: $0.name) != nil }
        if !dropped.isEmpty { plan.wal.dropped = dropped.map(\.name) }
        let dropNote = dropped.isEmpty ? "" : "; " + droppedDescription(dropped, catalog: catalog)
        let dropHint = dropped.isEmpty ? "" : "; dropped segments exist nowhere: only a backup taken after them restores past them"
        if !wal.missing.isEmpty {
            let beforeConsistency = wal.missing.filter { $0.segmentNumber <= wal.consistencySegment.segmentNumber }
            let names = wal.missing.prefix(5).map(\.name).joined(separator: ", ") + (wal.missing.count > 5 ? ", ..." : "")
            if !beforeConsistency.isEmpty {
                plan.problems.append(.init(code: .walMissing,
                                           message: "\(wal.missing.count) WAL segment(s) needed by backup \(backup.label) are missing from the archive: \(names); the backup cannot become consistent without the WAL from \(wal.segments.first!.name) through \(wal.consistencySegment.name)" + dropNote,
                                           hint: "restore another backup (--set), or put the missing segments back into the archive" + dropHint))
            } else if let lastPresent = wal.segments.last(where: { !wal.missing.contains($0) }),
                      wal.missing.allSatisfy({ $0.segmentNumber > lastPresent.segmentNumber }) {
                let message = "the archive ends at \(lastPresent.name), before the target: \(wal.missing.count) segment(s) up to \(wal.missing.last!.name) are not archived"
                if dropped.isEmpty {
                    plan.pastTheArchive(message, hint: "choose an earlier target", allowed: request.pastArchive)
                } else {
                    plan.problems.append(.init(code: .walMissing, message: message + dropNote,
                                               hint: "choose a target before \(dropped[0].startLSN) (e.g. --type=lsn), or a backup taken after the dropped WAL (--set)"))
                }
            } else {
                plan.problems.append(.init(code: .walMissing,
                                           message: "the WAL from backup \(backup.label) to the target has a gap: \(wal.missing.count) segment(s) missing from the archive: \(names)" + dropNote,
                                           hint: "recovery would stop at the gap, short of the target; choose a target before \(wal.missing[0].startLSN) (e.g. --type=lsn), a later backup (--set), or put the missing segments back into the archive" + dropHint))
            }
        } else if end == .endOfArchive, let last = wal.segments.last {
            // Recovery to the end of the archive stops at its last segment; when archive-push
            // dropped WAL right after it, the archive does not show that more WAL existed.
            let after = catalog.dropped.filter { record in
                guard let range = record.segments, range.last > last.segmentNumber else { return false }
                return path.timeline(forSegmentNumber: max(range.first, last.segmentNumber + 1), segmentSize: segmentSize) == range.timeline
            }
            if !after.isEmpty {
                let names = after.compactMap(\.segments).flatMap { range in range.map { $0 } }.filter { $0.segmentNumber > last.segmentNumber }
                plan.notes.append("recovery ends at \(last.name), the end of the archive; the WAL after it " + droppedDescription(names, catalog: catalog))
            }
        }
    }
}

extension RestorePlanner {
    /// "3 of them were dropped by archive-push-queue-max (X...Y at <time>)": the runs of `segments`
    /// with the time of the drop that covers them.
    static func droppedDescription(_ segments: [WALSegmentName], catalog: ArchiveCatalog) -> String {
        let runs = VerifyState.ranges(of: segments).map { run -> String in
            let when = catalog.dropped.record(covering: run.start).map { " at \(Clock.format(seconds: $0.droppedAt, style: .iso8601))" } ?? ""
            return "\(run.start)...\(run.stop)\(when)"
        }
        return "\(segments.count) segment(s) were dropped by archive-push-queue-max without being archived (\(runs.joined(separator: ", "))): point-in-time recovery across them is impossible until a new backup"
    }
}

/// The timelines recovery follows from a backup to the target timeline.
public struct TimelinePath: Sendable, Equatable {
    /// One timeline of the path.
    public struct Step: Sendable, Equatable {
        public var timeline: TimelineID
        /// Where replay enters the timeline: the backup's start LSN on the first one, else the
        /// switch point from its parent.
        public var begin: LSN
        /// The switch point to the next timeline; nil on the target timeline.
        public var end: LSN?
    }

    /// The target timeline.
    public let target: TimelineID
    /// Its history (empty for a timeline without ancestors).
    public let history: TimelineHistory
    /// From the backup's timeline to the target.
    public let steps: [Step]

    /// The timeline whose file recovery reads for segment `number`.
    public func timeline(forSegmentNumber number: UInt64, segmentSize: WALSegmentSize) -> TimelineID {
        history.timeline(forSegmentNumber: number, segmentSize: segmentSize)
    }
}
