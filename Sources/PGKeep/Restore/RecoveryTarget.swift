import PGKeepCore
import PGKeepPostgres

/// Where recovery of a restored cluster stops, as PostgreSQL defines it (docs/postgres-internals.md §6.2-§6.4):
/// the `--type`, `--target`, `--target-exclusive`, `--target-timeline` and `--target-action` of
/// `restore`, checked here so that a typo fails the restore before anything is written, rather than
/// the server at start-up after a long restore.
///
/// The values written into `postgresql.auto.conf` are the normalised forms checked here, never the
/// raw text: the server then reads exactly what pgkeep planned with.
public struct RecoveryTarget: Sendable, Equatable {
    /// `restore --type`.
    public enum Kind: String, Sendable, CaseIterable, Codable {
        /// Recover to the end of the archived WAL (no `recovery_target*`).
        case `default`
        /// Stop as soon as the backup is consistent (`recovery_target = 'immediate'`).
        case immediate
        /// `recovery_target_time`.
        case time
        /// `recovery_target_xid`.
        case xid
        /// `recovery_target_lsn`.
        case lsn
        /// `recovery_target_name` (a `pg_create_restore_point` name).
        case name
        /// Start as a standby (`standby.signal`), replaying the archive without end.
        case standby

        /// Whether the kind takes a `--target` value.
        public var takesValue: Bool {
            switch self {
            case .time, .xid, .lsn, .name: return true
            case .default, .immediate, .standby: return false
            }
        }
    }

    /// The parsed `--target`.
    public enum Value: Sendable, Equatable {
        case time(TargetTime)
        case xid(UInt32)
        case lsn(LSN)
        case name(String)

        /// The text written into `postgresql.auto.conf`.
        public var setting: String {
            switch self {
            case .time(let time): return time.text
            case .xid(let xid): return String(xid)
            case .lsn(let lsn): return lsn.description
            case .name(let name): return name
            }
        }
    }

    /// `--target-timeline`.
    public enum Timeline: Sendable, Equatable, CustomStringConvertible {
        /// The highest timeline in the archive that descends from the backup's after its
        /// consistency point.
        case latest
        /// The backup's own timeline.
        case current
        /// A given timeline.
        case id(TimelineID)

        /// Parses `latest`, `current` or a decimal timeline number (1 to 2^32-1).
        public static func parse(_ text: String) throws(PGKeepError) -> Timeline {
            switch text {
            case "latest": return .latest
            case "current": return .current
            default:
                guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let number = UInt32(text), number > 0 else {
                    throw PGKeepError(.targetInvalid, "--target-timeline '\(text)' is not latest, current or a timeline number",
                                      hint: "give a decimal timeline number as in history files and server messages (e.g. 2), latest or current")
                }
                return .id(TimelineID(rawValue: number))
            }
        }

        public var description: String {
            switch self {
            case .latest: return "latest"
            case .current: return "current"
            case .id(let tli): return tli.description
            }
        }
    }

    /// `--target-action`: what the server does at the target (`recovery_target_action`).
    public enum Action: String, Sendable, CaseIterable, Codable {
        case pause, promote, shutdown
    }

    public var kind: Kind
    public var value: Value?
    /// `--target-exclusive`: stop before the target record instead of after it.
    public var exclusive: Bool
    public var timeline: Timeline
    public var action: Action

    /// Recovery to the end of the archive along the latest timeline: what a restore without target
    /// options does.
    public static let endOfArchive = RecoveryTarget(kind: .default, value: nil, exclusive: false, timeline: .latest, action: .pause)

    public init(kind: Kind, value: Value?, exclusive: Bool, timeline: Timeline, action: Action) {
        self.kind = kind
        self.value = value
        self.exclusive = exclusive
        self.timeline = timeline
        self.action = action
    }

    /// Checks the options together. `explicit*` say whether the option was given at all (its
    /// default does not count), so a `--target-exclusive` that would be ignored is refused rather
    /// than silently dropped.
    public static func parse(type: String, target: String?, exclusive: Bool, explicitExclusive: Bool,
                             timeline: String, action: String, explicitAction: Bool) throws(PGKeepError) -> RecoveryTarget {
        guard let kind = Kind(rawValue: type) else {
            throw PGKeepError(.targetInvalid, "restore --type '\(type)' is not a recovery type",
                              hint: "use one of \(Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var value: Value?
        if kind.takesValue {
            guard let target, !target.isEmpty else {
                throw PGKeepError(.targetInvalid, "restore --type=\(kind.rawValue) needs --target", hint: exampleHint(kind))
            }
            value = try parseValue(kind: kind, text: target)
        } else if let target {
            throw PGKeepError(.targetInvalid, "--target '\(target)' is not used with --type=\(kind.rawValue)",
                              hint: "use --type=time, xid, lsn or name with --target, or drop --target")
        }
        if explicitExclusive && exclusive && ![.time, .xid, .lsn].contains(kind) {
            throw PGKeepError(.targetInvalid, "--target-exclusive applies to --type=time, xid and lsn, not \(kind.rawValue)",
                              hint: kind == .name ? "recovery always stops at the restore point itself" : "drop --target-exclusive")
        }
        guard let parsedAction = Action(rawValue: action) else {
            throw PGKeepError(.targetInvalid, "--target-action '\(action)' is not pause, promote or shutdown")
        }
        if explicitAction && (kind == .default || kind == .standby) {
            throw PGKeepError(.targetInvalid, "--target-action applies when recovery has a target; --type=\(kind.rawValue) has none",
                              hint: "use --type=immediate, time, xid, lsn or name, or drop --target-action")
        }
        return RecoveryTarget(kind: kind, value: value, exclusive: exclusive, timeline: try Timeline.parse(timeline), action: parsedAction)
    }

    /// Parses the `--target` of `kind`, which takes a value.
    public static func parseValue(kind: Kind, text: String) throws(PGKeepError) -> Value {
        switch kind {
        case .time:
            return .time(try TargetTime.parse(text))
        case .xid:
            // PostgreSQL reads the xid with strtoul base 0 (a leading 0 is octal) and truncates a
            // 64-bit value to 32 bits (docs/postgres-internals.md §6.2): only plain decimal 32-bit values are
            // accepted, so the server stops where the operator meant.
            guard text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), !(text.count > 1 && text.hasPrefix("0")),
                  let wide = UInt64(text) else {
                throw PGKeepError(.targetInvalid, "--target '\(text)' is not a transaction ID", hint: exampleHint(.xid))
            }
            guard wide <= UInt64(UInt32.max) else {
                throw PGKeepError(.targetInvalid, "--target \(text) is larger than a 32-bit transaction ID",
                                  hint: "txid_current() includes the epoch in its high 32 bits; pass the low 32 bits (\(wide & 0xFFFF_FFFF) here)")
            }
            guard wide >= 3 else {
                throw PGKeepError(.targetInvalid, "--target \(text) is a reserved transaction ID, never committed",
                                  hint: "normal transaction IDs start at 3; take the xid from txid_current() in the transaction")
            }
            return .xid(UInt32(wide))
        case .lsn:
            guard let lsn = LSN(text), lsn.isValid else {
                throw PGKeepError(.targetInvalid, "--target '\(text)' is not an LSN", hint: exampleHint(.lsn))
            }
            return .lsn(lsn)
        case .name:
            // pg_create_restore_point names are below MAXFNAMELEN (64) bytes.
            guard text.utf8.count < 64 else {
                throw PGKeepError(.targetInvalid, "--target restore point name is \(text.utf8.count) bytes; PostgreSQL allows at most 63",
                                  hint: exampleHint(.name))
            }
            return .name(text)
        case .default, .immediate, .standby:
            throw PGKeepError(.targetInvalid, "--type=\(kind.rawValue) takes no --target")
        }
    }

    static func exampleHint(_ kind: Kind) -> String {
        switch kind {
        case .time: return "give a time with its zone, e.g. --target='2026-11-27 14:03:27+00' or '2026-11-27 14:03:27.25+01:00'"
        case .xid: return "give a decimal transaction ID, e.g. --target=731 (txid_current() in the transaction)"
        case .lsn: return "give an LSN as PostgreSQL prints it, e.g. --target=0/5014668 (pg_current_wal_lsn())"
        case .name: return "give the name passed to pg_create_restore_point(), e.g. --target=before-upgrade"
        case .default, .immediate, .standby: return "--type=\(kind.rawValue) takes no --target"
        }
    }

    /// The signal file the restored cluster needs (docs/postgres-internals.md §6.1).
    public var signalFile: String { kind == .standby ? "standby.signal" : "recovery.signal" }

    /// The recovery settings for `postgresql.auto.conf`, in order, without `restore_command`.
    ///
    /// `timeline` is the planner's resolved target timeline, written as `current` when it is the
    /// backup's own and as a number otherwise, never as PostgreSQL's `latest`: that follows the
    /// highest timeline in the archive even when it forked before the backup (docs/postgres-internals.md §6.3,
    /// §11.1). A standby asked for `latest` keeps it, to follow future promotions of its primary.
    public func settings(timeline resolved: TimelineID, backupTimeline: TimelineID) -> [(name: String, value: String)] {
        var settings: [(name: String, value: String)] = []
        switch (kind, value) {
        case (.immediate, _): settings.append(("recovery_target", "immediate"))
        case (.time, .some(let value)): settings.append(("recovery_target_time", value.setting))
        case (.xid, .some(let value)): settings.append(("recovery_target_xid", value.setting))
        case (.lsn, .some(let value)): settings.append(("recovery_target_lsn", value.setting))
        case (.name, .some(let value)): settings.append(("recovery_target_name", value.setting))
        default: break
        }
        if exclusive && [.time, .xid, .lsn].contains(kind) { settings.append(("recovery_target_inclusive", "off")) }
        if kind == .standby && timeline == .latest {
            settings.append(("recovery_target_timeline", "latest"))
        } else {
            settings.append(("recovery_target_timeline", resolved == backupTimeline ? "current" : resolved.description))
        }
        if kind != .default && kind != .standby { settings.append(("recovery_target_action", action.rawValue)) }
        return settings
    }
}

/// A `recovery_target_time`: a PostgreSQL timestamp with an explicit zone.
///
/// Accepted: `YYYY-MM-DD HH:MM[:SS[.ffffff]]` (or `T` between date and time), then a zone: `Z`,
/// `UTC`, `GMT`, or a numeric offset `+HH`, `+HHMM`, `+HH:MM` (or `-`). PostgreSQL would read a
/// time without zone in the server's `timezone`, which pgkeep cannot know when it plans, and it
/// refuses zone abbreviations in this setting (docs/postgres-internals.md §6.2), so both are refused here with
/// a hint. The stored text is normalised to `YYYY-MM-DD HH:MM:SS[.f]+HH:MM`, which PostgreSQL reads
/// back as the same instant.
public struct TargetTime: Sendable, Equatable, Comparable, CustomStringConvertible {
    /// Microseconds since the Unix epoch (UTC).
    public let microseconds: Int64
    /// The normalised text written into `recovery_target_time`.
    public let text: String

    public var description: String { text }

    public static func < (lhs: TargetTime, rhs: TargetTime) -> Bool { lhs.microseconds < rhs.microseconds }

    /// Whole seconds since the epoch, rounded down.
    public var seconds: Int64 {
        microseconds >= 0 ? microseconds / 1_000_000 : (microseconds - 999_999) / 1_000_000
    }

    public static func parse(_ input: String) throws(PGKeepError) -> TargetTime {
        var scanner = Scanner(Array(input.utf8))
        func fail(_ reason: String) -> PGKeepError {
            PGKeepError(.targetInvalid, "--target '\(input)' is not a time PostgreSQL would read as intended: \(reason)",
                        hint: RecoveryTarget.exampleHint(.time))
        }
        scanner.skipSpaces()
        guard let year = scanner.digits(exactly: 4), scanner.take("-"),
              let month = scanner.digits(exactly: 2), scanner.take("-"),
              let day = scanner.digits(exactly: 2) else { throw fail("expected a date YYYY-MM-DD") }
        guard scanner.take(" ") || scanner.take("T") else { throw fail("expected a time of day after the date") }
        scanner.skipSpaces()
        guard let hour = scanner.digits(exactly: 2), scanner.take(":"), let minute = scanner.digits(exactly: 2) else {
            throw fail("expected a time HH:MM[:SS[.ffffff]]")
        }
        var second = 0
        var fraction = ""
        if scanner.take(":") {
            guard let s = scanner.digits(exactly: 2) else { throw fail("expected seconds as two digits") }
            second = s
            if scanner.take(".") {
                fraction = scanner.digitString()
                guard (1...6).contains(fraction.count) else { throw fail("fractions of a second have 1 to 6 digits (PostgreSQL keeps microseconds)") }
            }
        }
        guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day) else { throw fail("no such date") }
        guard hour < 24, minute < 60, second < 60 else { throw fail("no such time of day") }
        scanner.skipSpaces()
        var offsetSeconds = 0
        if scanner.take("Z") || scanner.take("UTC") || scanner.take("GMT") {
            offsetSeconds = 0
        } else if let sign = scanner.takeSign() {
            let zone = scanner.digitString()
            var oh = 0, om = 0
            switch zone.count {
            case 2:
                oh = Int(zone)!
                if scanner.take(":") {
                    guard let m = scanner.digits(exactly: 2) else { throw fail("expected minutes in the zone offset") }
                    om = m
                }
            case 4:
                oh = Int(zone.prefix(2))!
                om = Int(zone.suffix(2))!
            default:
                throw fail("expected a zone offset +HH, +HHMM or +HH:MM")
            }
            guard oh <= 15, om < 60 else { throw fail("zone offset out of range") }
            offsetSeconds = sign * (oh * 3600 + om * 60)
        } else if scanner.atEnd {
            throw PGKeepError(.targetInvalid, "--target '\(input)' has no time zone",
                              hint: "PostgreSQL would read it in the server's time zone; add the offset, e.g. '\(input.trimmingTrailingSpaces())+00'")
        } else {
            throw fail("the zone must be numeric (+HH[:MM]), Z or UTC; PostgreSQL refuses zone abbreviations in recovery_target_time")
        }
        scanner.skipSpaces()
        guard scanner.atEnd else { throw fail("unexpected text after the zone") }

        let days = daysFromCivil(year: year, month: month, day: day)
        let local = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
        var micros = Int64(fraction.isEmpty ? 0 : Int(fraction)!)
        for _ in fraction.count..<6 { micros *= 10 }
        let utc = (local - Int64(offsetSeconds)) * 1_000_000 + micros

        var text = pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2) + " " + pad(hour, 2) + ":" + pad(minute, 2) + ":" + pad(second, 2)
        if !fraction.isEmpty { text += "." + fraction }
        let absOffset = abs(offsetSeconds)
        text += (offsetSeconds < 0 ? "-" : "+") + pad(absOffset / 3600, 2) + ":" + pad(absOffset % 3600 / 60, 2)
        return TargetTime(microseconds: utc, text: text)
    }

    /// A time from Unix seconds, in UTC, for tests and messages.
    public init(seconds: Int64) {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let rest = Int(seconds - days * 86_400)
        let (y, m, d) = Self.civilFromDays(Int(days))
        microseconds = seconds * 1_000_000
        text = Self.pad(y, 4) + "-" + Self.pad(m, 2) + "-" + Self.pad(d, 2) + " " + Self.pad(rest / 3600, 2) + ":"
            + Self.pad(rest % 3600 / 60, 2) + ":" + Self.pad(rest % 60, 2) + "+00:00"
    }

    private init(microseconds: Int64, text: String) {
        self.microseconds = microseconds
        self.text = text
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// A cursor over ASCII bytes.
    private struct Scanner {
        let bytes: [UInt8]
        var index = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { index == bytes.count }

        mutating func skipSpaces() {
            while index < bytes.count, bytes[index] == UInt8(ascii: " ") { index += 1 }
        }

        mutating func take(_ literal: String) -> Bool {
            let utf8 = Array(literal.utf8)
            guard index + utf8.count <= bytes.count, Array(bytes[index..<index + utf8.count]) == utf8 else { return false }
            index += utf8.count
            return true
        }

        mutating func takeSign() -> Int? {
            if take("+") { return 1 }
            if take("-") { return -1 }
            return nil
        }

        mutating func digits(exactly count: Int) -> Int? {
            guard index + count <= bytes.count, bytes[index..<index + count].allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
            if index + count < bytes.count, bytes[index + count] >= 48, bytes[index + count] <= 57 { return nil }
            let value = bytes[index..<index + count].reduce(0) { $0 * 10 + Int($1 - 48) }
            index += count
            return value
        }

        mutating func digitString() -> String {
            let start = index
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 { index += 1 }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = Substring(self)
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
