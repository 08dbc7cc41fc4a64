import PGKeepCore
import PGKeepRepository

/// Retention settings, pgBackRest's semantics (`repo1-retention-*`).
public struct RetentionPolicy: Sendable, Equatable {
    public enum FullType: String, Sendable { case count, time }

    /// Full backups to keep: a count, or days with `fullType == .time`.
    public var full: Int?
    public var fullType: FullType
    /// Differential backups to keep; full backups count as differentials.
    public var diff: Int?
    /// How many backups (of `archiveType`) keep continuous WAL; nil: derived from `full`/`diff`.
    public var archive: Int?
    public var archiveType: BackupType

    public init(full: Int? = nil, fullType: FullType = .count, diff: Int? = nil, archive: Int? = nil, archiveType: BackupType = .full) {
        self.full = full
        self.fullType = fullType
        self.diff = diff
        self.archive = archive
        self.archiveType = archiveType
    }

    /// Whether any retention is configured (an automatic expire after a backup runs only then).
    public var isSet: Bool { full != nil || diff != nil || archive != nil }
}

/// What expire will remove and keep. Pure data, computed from backup.info alone.
public struct ExpirePlan: Sendable, Equatable {
    public struct Expired: Sendable, Equatable {
        public var label: BackupLabel
        public var reason: String
    }

    /// Backups to remove, dependents before what they depend on (newest first), so an interrupted
    /// expire never leaves a backup whose parent is gone.
    public var expired: [Expired]
    /// Backups that stay, oldest first by stop time.
    public var retained: [BackupSummary]
    /// WAL retention; nil when no WAL is to be removed.
    public var archive: ArchiveRetention?
    /// Why WAL is kept entirely, for the log (when `archive` is nil).
    public var archiveNote: String?

    public var expiredLabels: [BackupLabel] { expired.map(\.label) }
}

/// Which archived WAL stays: every segment from `boundary`'s start onward (PITR across the retained
/// window), and the consistency range (walStart ... walStop) of every retained backup.
public struct ArchiveRetention: Sendable, Equatable {
    public struct Range: Sendable, Equatable {
        public var databaseID: Int
        public var start: String
        public var stop: String
    }

    /// The oldest backup whose WAL stays continuous from its start onward.
    public var boundaryLabel: BackupLabel
    public var boundaryDatabaseID: Int
    public var boundaryStart: String
    /// Consistency ranges of retained backups.
    public var ranges: [Range]

    /// Whether WAL file `name` (a segment, partial or backup history name; history files always
    /// stay) archived for database `databaseID` stays. `order` is the database ids in history order,
    /// so WAL of identities newer than the boundary's stays whole.
    ///
    /// Names compare as text: 8 hex digits of timeline then 16 of segment, so text order is
    /// (timeline, segment number) order, whatever the segment size.
    public func keeps(walFile name: String, databaseID: Int, order: [Int]) -> Bool {
        if name.hasSuffix(".history") { return true }
        let segment = String(name.prefix(24))
        for range in ranges where range.databaseID == databaseID && range.start <= segment && segment <= range.stop { return true }
        let here = order.firstIndex(of: databaseID) ?? Int.max
        let boundary = order.firstIndex(of: boundaryDatabaseID) ?? Int.max
        if here > boundary { return true }
        if here < boundary { return false }
        return segment >= boundaryStart
    }

    /// Whether a record of WAL dropped by archive-push (`DroppedWAL`) for database `databaseID`
    /// ending at segment `stop` explains nothing any more: its whole range lies before the oldest
    /// WAL this retention keeps for that database, so no restore can ever reach it. A record
    /// reaching into kept WAL (or past a retained backup's consistency range that is kept) stays:
    /// its part inside still explains a gap. Same order as `keeps`.
    public func releases(dropRecordEndingAt stop: String, databaseID: Int, order: [Int]) -> Bool {
        let here = order.firstIndex(of: databaseID) ?? Int.max
        let boundary = order.firstIndex(of: boundaryDatabaseID) ?? Int.max
        if here > boundary { return false }
        var kept = ranges.filter { $0.databaseID == databaseID }.map(\.start)
        if here == boundary { kept.append(boundaryStart) }
        // An identity older than the boundary with no retained backup keeps no WAL at all.
        guard let oldest = kept.min() else { return true }
        return String(stop.prefix(24)) < oldest
    }
}

/// The retention decisions (with pgBackRest's meaning of each option), ordering by recorded stop time,
/// never by label text.
public enum Retention {
    static func byStop(_ a: BackupSummary, _ b: BackupSummary) -> Bool {
        (a.timestampStop, a.timestampStart, a.label) < (b.timestampStop, b.timestampStart, b.label)
    }

    /// Every backup that depends on `label`, directly or through others: it builds on it (`prior`)
    /// or holds references to its files.
    public static func dependents(of label: BackupLabel, in backups: [BackupSummary]) -> [BackupSummary] {
        var found = Set<BackupLabel>()
        var frontier: Set<BackupLabel> = [label]
        while !frontier.isEmpty {
            var next = Set<BackupLabel>()
            for backup in backups where !found.contains(backup.label) && backup.label != label {
                if let prior = backup.prior, frontier.contains(prior) { next.insert(backup.label) }
                if backup.references.contains(where: frontier.contains) { next.insert(backup.label) }
            }
            found.formUnion(next)
            frontier = next
        }
        return backups.filter { found.contains($0.label) }.sorted(by: byStop)
    }

    /// The plan for the configured retention at time `now` (Unix seconds).
    ///
    /// - Full, count N: the N newest full backups stay; older ones go with their dependents.
    /// - Full, time N days: a full backup goes only when a newer full backup stopped at least N
    ///   days ago (so the window N days back stays restorable); the newest full always stays.
    /// - Diff, count N: the N newest of full+diff backups count; differentials beyond go with their
    ///   incrementals. Full backups never go by this rule; incrementals only with their parent.
    /// - WAL: see `archiveRetention`.
    public static func plan(backups: [BackupSummary], policy: RetentionPolicy, now: Int64) -> ExpirePlan {
        let sorted = backups.sorted(by: byStop)
        var expired: [BackupLabel: String] = [:]
        func expire(_ backup: BackupSummary, _ reason: String) {
            guard expired[backup.label] == nil else { return }
            expired[backup.label] = reason
            for dependent in dependents(of: backup.label, in: sorted) where expired[dependent.label] == nil {
                expired[dependent.label] = "depends on expired backup \(backup.label)"
            }
        }

        let fulls = sorted.filter { $0.type == .full }
        if let keep = policy.full {
            switch policy.fullType {
            case .count:
                if fulls.count > keep {
                    for full in fulls.prefix(fulls.count - keep) {
                        expire(full, "retention-full=\(keep): \(keep) newer full backup\(keep == 1 ? "" : "s") kept")
                    }
                }
            case .time:
                let cutoff = now - Int64(keep) * 86_400
                // The newest full that stopped before the cutoff covers the start of the window.
                if let anchor = fulls.lastIndex(where: { $0.timestampStop <= cutoff }) {
                    for full in fulls.prefix(anchor) {
                        expire(full, "retention-full=\(keep) days: newer full backup \(fulls[anchor].label) already covers the window")
                    }
                }
            }
        }
        if let keep = policy.diff {
            let counted = sorted.filter { ($0.type == .full || $0.type == .diff) && expired[$0.label] == nil }
            for backup in counted.reversed().dropFirst(keep) where backup.type == .diff {
                expire(backup, "retention-diff=\(keep): \(keep) newer full or differential backups kept")
            }
        }

        let retained = sorted.filter { expired[$0.label] == nil }
        let (archive, note) = archiveRetention(retained: retained, policy: policy)
        let order = sorted.reversed().filter { expired[$0.label] != nil }.map { ExpirePlan.Expired(label: $0.label, reason: expired[$0.label]!) }
        return ExpirePlan(expired: order, retained: retained, archive: archive, archiveNote: note)
    }

    /// WAL retention over the retained backups.
    ///
    /// The count is `archive`, else `full` (type full, count retention), else `diff` (type diff).
    /// The boundary is the oldest of the newest `count` backups of the type (full: fulls; diff:
    /// fulls and diffs; incr: all); with fewer such backups nothing is removed. With time-based full
    /// retention and no `archive`, the boundary is the oldest retained full backup.
    public static func archiveRetention(retained: [BackupSummary], policy: RetentionPolicy) -> (ArchiveRetention?, String?) {
        let types: Set<BackupType>
        switch policy.archiveType {
        case .full: types = [.full]
        case .diff: types = [.full, .diff]
        case .incr: types = [.full, .diff, .incr]
        }
        let candidates = retained.filter { types.contains($0.type) }
        let boundary: BackupSummary
        if let count = policy.archive ?? (policy.archiveType == .full && policy.fullType == .count ? policy.full : nil)
            ?? (policy.archiveType == .diff ? policy.diff : nil) {
            guard candidates.count >= count, count > 0 else {
                return (nil, "WAL kept: fewer than \(count) \(policy.archiveType.rawValue) backups")
            }
            boundary = candidates[candidates.count - count]
        } else if policy.full != nil, policy.fullType == .time, policy.archiveType == .full, let oldest = candidates.first {
            boundary = oldest
        } else {
            return (nil, "WAL kept: repo1-retention-archive is not set")
        }
        let ranges = retained.map { ArchiveRetention.Range(databaseID: $0.databaseID, start: $0.walStart, stop: $0.walStop) }
        return (ArchiveRetention(boundaryLabel: boundary.label, boundaryDatabaseID: boundary.databaseID,
                                 boundaryStart: boundary.walStart, ranges: ranges), nil)
    }

    /// The plan for `expire --set=LABEL`: that backup alone. Refused when other backups depend on
    /// it (they would lose files or their base) or when it is the only full backup.
    public static func planAdhoc(backups: [BackupSummary], set: BackupLabel, policy: RetentionPolicy) throws -> ExpirePlan {
        let sorted = backups.sorted(by: byStop)
        guard let target = sorted.first(where: { $0.label == set }) else {
            throw PGKeepError(.backupMissing, "backup set \(set) does not exist",
                              hint: "run 'pgkeep info' to list the backups")
        }
        let dependents = dependents(of: set, in: sorted)
        guard dependents.isEmpty else {
            throw PGKeepError(.expireRefused,
                              "backup \(set) cannot be expired: backup\(dependents.count == 1 ? "" : "s") \(dependents.map(\.label.text).joined(separator: ", ")) depend\(dependents.count == 1 ? "s" : "") on it",
                              hint: "expire the dependent backups first (newest first), or expire by retention")
        }
        if target.type == .full && sorted.filter({ $0.type == .full }).count == 1 {
            throw PGKeepError(.expireRefused, "backup \(set) cannot be expired: it is the only full backup",
                              hint: "take another full backup first")
        }
        let retained = sorted.filter { $0.label != set }
        // WAL: what the configured retention keeps over what remains.
        let (archive, note) = archiveRetention(retained: retained, policy: policy)
        return ExpirePlan(expired: [.init(label: set, reason: "--set=\(set)")], retained: retained, archive: archive, archiveNote: note)
    }
}
