import SystemPackage
import PGKeepCore
import PGKeepPostgres

/// Recovery settings for a restored cluster (PostgreSQL 12+: `postgresql.auto.conf` plus a
/// signal file; docs/postgres-internals.md §6.1). Earlier recovery settings in postgresql.auto.conf are
/// commented out, so the block pgkeep appends is the only one in force.
public enum RecoveryConfig {
    static let recoverySettings: Set<String> = [
        "restore_command", "recovery_target", "recovery_target_lsn", "recovery_target_name", "recovery_target_time",
        "recovery_target_xid", "recovery_target_inclusive", "recovery_target_timeline", "recovery_target_action",
        "recovery_end_command", "archive_cleanup_command", "primary_conninfo", "primary_slot_name",
    ]

    static func write(on host: PostgresHost, dataDirectory: String, restoreCommand: String, settings: [(name: String, value: String)] = [],
                      signalFile: String = "recovery.signal", owner: (uid: UInt32, gid: UInt32)?, log: Log) throws {
        let autoConf = Posix.join(dataDirectory, "postgresql.auto.conf")
        var lines: [String] = []
        if let text = try RestoreDestination.readText(on: host, autoConf) {
            lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if lines.last == "" { lines.removeLast() }
        }
        lines = lines.map { line in
            let key = line.split(separator: "=", maxSplits: 1).first.map { $0.trimmingCharacters(in: " \t") } ?? ""
            return recoverySettings.contains(key) ? "# removed by pgkeep restore: " + line : line
        }
        lines.append("")
        lines.append("# Recovery settings written by pgkeep restore on \(Clock.format(seconds: Clock.now(), style: .iso8601))")
        lines.append("restore_command = '\(quote(restoreCommand))'")
        for (name, value) in settings { lines.append("\(name) = '\(quote(value))'") }
        let text = lines.joined(separator: "\n") + "\n"
        try writeFile(on: host, autoConf, Array(text.utf8), mode: 0o600, owner: owner)
        try writeFile(on: host, Posix.join(dataDirectory, signalFile), [], mode: 0o600, owner: owner)
        log.info("wrote \(signalFile) and the recovery settings (restore_command\(settings.map { ", " + $0.name }.joined())) to '\(autoConf)'")
    }

    /// A PostgreSQL configuration string literal body. The file's lexer reads a backslash as an
    /// escape inside quotes, so backslashes are doubled before single quotes are: a
    /// `restore_command` holding a shell-quoted `'\''` (a path with a quote) must survive as is.
    static func quote(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "''")
    }

    /// Writes a small file whole under a temporary name and renames it over `path`, so a crash
    /// leaves the old file or the new one; the caller syncs the directory when the name matters.
    static func writeFile(on host: PostgresHostWriting, _ path: String, _ bytes: [UInt8], mode: UInt32,
                          owner: (uid: UInt32, gid: UInt32)?) throws {
        let final = FilePath(path)
        let temporary = FilePath(path + ".pgkeep-tmp")
        let sink = try host.createFile(temporary, mode: mode, temporaryFor: final)
        do {
            try bytes.withUnsafeBytes { try sink.write($0) }
            try sink.sync()
            try sink.close()
            try host.setMode(temporary, mode: mode)
            if let owner { try host.setOwner(temporary, uid: owner.uid, gid: owner.gid) }
            try host.rename(temporary, to: final)
        } catch {
            try? sink.close()
            _ = try? host.remove(temporary)
            throw error
        }
    }
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}

/// What a restored cluster will do about archiving, read from its `postgresql.conf` and then
/// `postgresql.auto.conf` (later settings win, as in PostgreSQL). `include` directives are not
/// followed: a setting only an included file makes is not seen, and no warning is given for it.
package struct ArchiveSettings: Equatable {
    var mode = "off"
    var command = ""

    /// Whether a cluster with these settings would push WAL into `stanza` with pgkeep.
    func archives(into stanza: String) -> Bool {
        guard mode == "on" || mode == "always", command.contains("archive-push") else { return false }
        return command.split(whereSeparator: { $0 == " " || $0 == "'" || $0 == "\"" })
            .contains { $0 == "--stanza=\(stanza)" || $0 == stanza }
    }

    static func read(on host: PostgresHost, dataDirectory: String) throws -> ArchiveSettings {
        var settings = ArchiveSettings()
        for file in ["postgresql.conf", "postgresql.auto.conf"] {
            guard let text = try RestoreDestination.readText(on: host, Posix.join(dataDirectory, file)) else { continue }
            for line in text.split(separator: "\n") {
                guard let (name, value) = parse(line) else { continue }
                if name == "archive_mode" { settings.mode = value.lowercased() }
                if name == "archive_command" { settings.command = value }
            }
        }
        return settings
    }

    /// One `name = value` line of a PostgreSQL configuration file (the `=` is optional); a quoted
    /// value has its `''` and backslash escapes undone. nil for comments, blank and odd lines.
    package static func parse(_ line: Substring) -> (String, String)? {
        var rest = line.drop { $0 == " " || $0 == "\t" }
        let name = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }
        guard !name.isEmpty else { return nil }
        rest = rest.dropFirst(name.count).drop { $0 == " " || $0 == "\t" }
        if rest.first == "=" { rest = rest.dropFirst().drop { $0 == " " || $0 == "\t" } }
        var value = ""
        if rest.first == "'" {
            var characters = rest.dropFirst().makeIterator()
            var closed = false
            while let c = characters.next() {
                if c == "\\" {
                    if let escaped = characters.next() { value.append(escaped) }
                } else if c == "'" {
                    var lookahead = characters
                    if lookahead.next() == "'" { value.append("'"); characters = lookahead } else { closed = true; break }
                } else {
                    value.append(c)
                }
            }
            guard closed else { return nil }
        } else {
            value = String(rest.prefix { $0 != "#" && $0 != " " && $0 != "\t" })
        }
        return (name.lowercased(), value)
    }
}
