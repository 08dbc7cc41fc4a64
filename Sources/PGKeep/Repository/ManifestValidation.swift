import PGKeepCore

/// The checks a manifest passes before a restore writes a single byte.
///
/// A sealed manifest proves it was not damaged, not that whoever sealed it meant well: a
/// repository is often writable by more hosts than the database server, and restore runs as root.
/// So every name must stay inside its target (`pg_data` or a tablespace `pg_tblspc/<oid>`), be
/// unique, and never pass through a symbolic link the restore itself creates: `pg_data/x -> /etc`
/// followed by a file `pg_data/x/cron.d/job` would otherwise write outside the data directory.
extension Manifest {
    public func validateForRestore() throws {
        let (tablespaceTargets, linkTargets) = try validateTargets()
        var seen = Set<String>()
        for path in paths { try checkName(path.name, kind: "directory", tablespaceTargets: tablespaceTargets, seen: &seen) }
        for file in files { try checkName(file.name, kind: "file", tablespaceTargets: tablespaceTargets, seen: &seen) }
        let (linkNames, tablespaceLinks) = try validateLinks(tablespaceTargets: tablespaceTargets, linkTargets: linkTargets, seen: &seen)
        try validateNothingBelowLinks(linkNames: linkNames, tablespaceLinks: tablespaceLinks)
    }

    private func refusal(_ what: String) -> PGKeepError {
        PGKeepError(.repositoryInvalid, "backup \(backup.label) has an unsafe manifest: \(what)",
                    hint: "nothing was written; the repository may have been tampered with: restore another backup with --set and run verify")
    }

    /// Targets: one data directory, tablespaces named by their oid, link targets (format 2) one
    /// per link in the data directory, all at clean absolute locations that never nest. Returns
    /// the names of the tablespace and of the link targets.
    private func validateTargets() throws -> (tablespaces: Set<String>, links: Set<String>) {
        let dataTargets = targets.filter { $0.kind == .dataDirectory }
        guard dataTargets.count == 1, dataTargets[0].name == "pg_data" else {
            throw refusal("it must have exactly one data directory target named 'pg_data'")
        }
        var tablespaceTargets = Set<String>()
        for target in targets where target.kind == .tablespace {
            let parts = target.name.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == "pg_tblspc", UInt32(parts[1]) != nil,
                  tablespaceTargets.insert(target.name).inserted else {
                throw refusal("tablespace target '\(target.name)' is not 'pg_tblspc/<oid>' or is listed twice")
            }
            guard Self.isSafeAbsolute(target.path), target.path != "/" else {
                throw refusal("tablespace target '\(target.name)' has location '\(target.path)', which is not a clean absolute path")
            }
        }
        var linkTargets = Set<String>()
        for target in targets where target.kind == .link {
            let parts = target.name.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count >= 2, parts[0] == "pg_data", parts[1] != "pg_tblspc",
                  !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }),
                  linkTargets.insert(target.name).inserted else {
                throw refusal("link target '\(target.name)' is not a safe 'pg_data/<path>' outside pg_tblspc, or is listed twice")
            }
            guard Self.isSafeAbsolute(target.path), target.path != "/" else {
                throw refusal("link target '\(target.name)' has location '\(target.path)', which is not a clean absolute path")
            }
        }
        // Tablespace and link locations never nest: one inside another would let one target's
        // files land in another's. (A location inside the data directory is legal, if
        // discouraged, in PostgreSQL, so the data directory is not compared.)
        let locations = targets.filter { $0.kind != .dataDirectory }.map { ($0.name, Self.normalized($0.path)) }
        for (i, a) in locations.enumerated() {
            for b in locations[(i + 1)...] where a.1 == b.1 || a.1.hasPrefix(b.1 + "/") || b.1.hasPrefix(a.1 + "/") {
                throw refusal("targets '\(a.0)' ('\(a.1)') and '\(b.0)' ('\(b.1)') overlap")
            }
        }
        return (tablespaceTargets, linkTargets)
    }

    /// A name: safe components under a known target, listed once (`seen` holds the names so far).
    private func checkName(_ name: String, kind: String, tablespaceTargets: Set<String>, seen: inout Set<String>) throws {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !name.utf8.contains(0),
              !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw refusal("\(kind) '\(name)' is not a safe relative path")
        }
        let underTarget = parts[0] == "pg_data"
            || (parts[0] == "pg_tblspc" && parts.count >= 2 && tablespaceTargets.contains("pg_tblspc/\(parts[1])"))
        guard underTarget else { throw refusal("\(kind) '\(name)' belongs to no target") }
        guard seen.insert(name).inserted else { throw refusal("'\(name)' is listed more than once") }
    }

    /// Links: the tablespace links PostgreSQL makes, each to its own target, and one link per
    /// link target, named like it (whose directory or file entry of the same name says what it
    /// links to). Returns every link name and the tablespace links'.
    private func validateLinks(tablespaceTargets: Set<String>, linkTargets: Set<String>,
                               seen: inout Set<String>) throws -> (names: Set<String>, tablespaceLinks: Set<String>) {
        var linkNames = Set<String>()
        var tablespaceLinks = Set<String>()
        for link in links {
            guard !link.name.utf8.contains(0), linkNames.insert(link.name).inserted else {
                throw refusal("link '\(link.name)' is listed more than once")
            }
            let parts = link.name.split(separator: "/", omittingEmptySubsequences: false)
            if linkTargets.contains(link.name) {
                guard seen.contains(link.name) else {
                    throw refusal("link '\(link.name)' has no directory or file entry of its name")
                }
                continue
            }
            try checkName(link.name, kind: "link", tablespaceTargets: tablespaceTargets, seen: &seen)
            guard parts.count == 3, parts[0] == "pg_data", parts[1] == "pg_tblspc",
                  tablespaceTargets.contains("pg_tblspc/\(parts[2])") else {
                throw refusal("link '\(link.name)' is neither a tablespace link pg_data/pg_tblspc/<oid> with a tablespace target nor a link target's link")
            }
            let location = targets.first { $0.name == "pg_tblspc/\(parts[2])" }?.path
            guard link.destination == location else {
                throw refusal("link '\(link.name)' points to '\(link.destination)', not to its tablespace target's location '\(location ?? "")'")
            }
            tablespaceLinks.insert(link.name)
        }
        for target in linkTargets where !linkNames.contains(target) {
            throw refusal("link target '\(target)' has no link entry")
        }
        return (linkNames, tablespaceLinks)
    }

    /// Nothing is written through a tablespace link, and no link lies below another link: a
    /// directory or file below a link name would land wherever the link points. (Entries below a
    /// link target's link are restored at its location, not through it.)
    private func validateNothingBelowLinks(linkNames: Set<String>, tablespaceLinks: Set<String>) throws {
        for name in paths.map(\.name) + files.map(\.name) {
            if let link = Self.firstAncestor(of: name, in: tablespaceLinks) { throw refusal("'\(name)' lies below the link '\(link)'") }
        }
        for name in linkNames {
            if let link = Self.firstAncestor(of: name, in: linkNames) { throw refusal("link '\(name)' lies below the link '\(link)'") }
        }
    }

    /// The shortest proper ancestor of `name` (a `/`-separated path) that is in `set`.
    private static func firstAncestor(of name: String, in set: Set<String>) -> String? {
        var prefix = ""
        for component in name.split(separator: "/").dropLast() {
            prefix = prefix.isEmpty ? String(component) : prefix + "/" + component
            if set.contains(prefix) { return prefix }
        }
        return nil
    }

    static func normalized(_ path: String) -> String {
        "/" + path.split(separator: "/").joined(separator: "/")
    }

    static func isSafeAbsolute(_ path: String) -> Bool {
        guard path.hasPrefix("/"), !path.utf8.contains(0) else { return false }
        return !path.split(separator: "/").contains { $0 == "." || $0 == ".." }
    }
}
