#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A backup's name: `YYYYMMDD-HHMMSSF` for a full backup (local time of its start, as pgBackRest
/// does, so operators recognise it); differential and incremental labels are
/// `<full>_YYYYMMDD-HHMMSS{D|I}`. Labels sort by text, but
/// ordering decisions (latest, expire) use recorded stop times, never label text.
public struct BackupLabel: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public let text: String

    public init?(_ text: String) {
        guard BackupLabel.isValid(text) else { return nil }
        self.text = text
    }

    /// The full-backup label for a Unix time.
    public static func full(at time: Int64) -> BackupLabel {
        BackupLabel(unchecked: timestamp(time) + "F")
    }

    /// The label of a differential or incremental backup of the set started by `full`:
    /// `<full label>_YYYYMMDD-HHMMSS{D|I}` (local time of its start), as pgBackRest names them.
    public static func dependent(of full: BackupLabel, type: BackupType, at time: Int64) -> BackupLabel {
        precondition(type != .full, "a full backup has no parent set")
        return BackupLabel(unchecked: full.fullLabel.text + "_" + timestamp(time) + (type == .diff ? "D" : "I"))
    }

    /// The full backup whose set this label belongs to (itself for a full backup).
    public var fullLabel: BackupLabel { BackupLabel(unchecked: String(text.prefix(16))) }

    private init(unchecked text: String) { self.text = text }

    package static func timestamp(_ time: Int64) -> String {
        var t = time_t(time)
        var parts = tm()
        localtime_r(&t, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let s = String(value)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return pad(parts.tm_year + 1900, 4) + pad(parts.tm_mon + 1, 2) + pad(parts.tm_mday, 2) + "-"
            + pad(parts.tm_hour, 2) + pad(parts.tm_min, 2) + pad(parts.tm_sec, 2)
    }

    static func isValid(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        func isStamp(_ s: ArraySlice<UInt8>) -> Bool {
            guard s.count == 15 else { return false }
            for (i, b) in s.enumerated() {
                if i == 8 { if b != UInt8(ascii: "-") { return false } } else if !(b >= 48 && b <= 57) { return false }
            }
            return true
        }
        if bytes.count == 16 { return isStamp(bytes[0..<15]) && bytes[15] == UInt8(ascii: "F") }
        if bytes.count == 33 {
            return isStamp(bytes[0..<15]) && bytes[15] == UInt8(ascii: "F") && bytes[16] == UInt8(ascii: "_")
                && isStamp(bytes[17..<32]) && (bytes[32] == UInt8(ascii: "D") || bytes[32] == UInt8(ascii: "I"))
        }
        return false
    }

    public var description: String { text }
    public static func < (a: BackupLabel, b: BackupLabel) -> Bool { a.text < b.text }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard BackupLabel.isValid(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "invalid backup label '\(text)'"))
        }
        self.text = text
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}
