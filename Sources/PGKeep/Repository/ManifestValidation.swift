/// The checks a manifest passes before a restore writes a single byte.
///
/// A sealed manifest proves it was not damaged, not that whoever sealed it meant well: a
/// repository is often writable by more hosts than the database server, and restore runs as root.
/// So every name must stay inside its target (`pg_data` or a tablespace `pg_tblspc/<oid>`), be
/// unique, and never pass through a symbolic link the restore itself creates: `pg_data/x -> /etc`
/// followed by a file `pg_data/x/cron.d/job` would otherwise write outside the data directory.
extension Manifest {
    public func validateForRestore() throws {
        func refuse(_ what: String) -> PGKeepError {
            PGKeepError(.repositoryInvalid, "backup \(backup.label) has an unsafe manifest: \(what)",
                        hint: "nothing was written; the repository may have been tampered with: restore another backup with --set and run verify")
        }
        // Targets: one data directory, tablespaces named by their oid, absolute clean locations.
        let dataTargets = targets.filter { $0.kind == .dataDirectory }
        guard dataTargets.count == 1, dataTargets[0].name == "pg_data" else {
            throw refuse("it must have exactly one data directory target named 'pg_data'")
        }
        var tablespaceTargets = Set<String>()
        for target in targets where target.kind == .tablespace {
            let parts = target.name.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == "pg_tblspc", UInt32(parts[1]) != nil,
                  tablespaceTargets.insert(target.name).inserted else {
                throw refuse("tablespace target '\(target.name)' is not 'pg_tblspc/<oid>' or is listed twice")
            }
            guard Self.isSafeAbsolute(target.path), target.path != "/" else {
                throw refuse("tablespace target '\(target.name)' has location '\(target.path)', which is not a clean absolute path")
            }
        }
        // Link targets (format 2): one per link in the data directory, at a clean absolute path.
        var linkTargets = Set<String>()
        for target in targets where target.kind == .link {
            let parts = target.name.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count >= 2, parts[0] == "pg_data", parts[1] != "pg_tblspc",
                  !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }),
                  linkTargets.insert(target.name).inserted else {
                throw refuse("link target '\(target.name)' is not a safe 'pg_data/<path>' outside pg_tblspc, or is listed twice")
            }
            guard Self.isSafeAbsolute(target.path), target.path != "/" else {
                throw refuse("link target '\(target.name)' has location '\(target.path)', which is not a clean absolute path")
            }
        }
        // Tablespace and link locations never nest: one inside another would let one target's
        // files land in another's. (A location inside the data directory is legal, if
        // discouraged, in PostgreSQL, so the data directory is not compared.)
        let locations = targets.filter { $0.kind != .dataDirectory }.map { ($0.name, Self.normalized($0.path)) }
        for (i, a) in locations.enumerated() {
            for b in locations[(i + 1)...] where a.1 == b.1 || a.1.hasPrefix(b.1 + "/") || b.1.hasPrefix(a.1 + "/") {
                throw refuse("targets '\(a.0)' ('\(a.1)') and '\(b.0)' ('\(b.1)') overlap")
            }
        }

        // Names: safe components under a known target, each listed once.
        var seen = Set<String>()
        func check(_ name: String, kind: String) throws {
            let parts = name.split(separator: "/", omittingEmptySubsequences: false)
            guard !name.utf8.contains(0),
                  !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
                throw refuse("\(kind) '\(name)' is not a safe relative path")
            }
            let underTarget = parts[0] == "pg_data"
                || (parts[0] == "pg_tblspc" && parts.count >= 2 && tablespaceTargets.contains("pg_tblspc/\(parts[1])"))
            guard underTarget else { throw refuse("\(kind) '\(name)' belongs to no target") }
            guard seen.insert(name).inserted else { throw refuse("'\(name)' is listed more than once") }
        }
        for path in paths { try check(path.name, kind: "directory") }
        for file in files { try check(file.name, kind: "file") }

        // Links: the tablespace links PostgreSQL makes, each to its own target, and one link per
        // link target, named like it (whose directory or file entry of the same name says what
        // it links to).
        var linkNames = Set<String>()
        var tablespaceLinks = Set<String>()
        for link in links {
            guard !link.name.utf8.contains(0), linkNames.insert(link.name).inserted else {
                throw refuse("link '\(link.name)' is listed more than once")
            }
            let parts = link.name.split(separator: "/", omittingEmptySubsequences: false)
            if linkTargets.contains(link.name) {
                guard seen.contains(link.name) else {
                    throw refuse("link '\(link.name)' has no directory or file entry of its name")
                }
                continue
            }
            try check(link.name, kind: "link")
            guard parts.count == 3, parts[0] == "pg_data", parts[1] == "pg_tblspc",
                  tablespaceTargets.contains("pg_tblspc/\(parts[2])") else {
                throw refuse("link '\(link.name)' is neither a tablespace link pg_data/pg_tblspc/<oid> with a tablespace target nor a link target's link")
            }
            let location = targets.first { $0.name == "pg_tblspc/\(parts[2])" }?.path
            guard link.destination == location else {
                throw refuse("link '\(link.name)' points to '\(link.destination)', not to its tablespace target's location '\(location ?? "")'")
            }
            tablespaceLinks.insert(link.name)
        }
        for target in linkTargets where !linkNames.contains(target) {
            throw refuse("link target '\(target)' has no link entry")
        }
        // Nothing is written through a tablespace link, and no link lies below another link: a
        // directory or file below a link name would land wherever the link points. (Entries
        // below a link target's link are restored at its location, not through it.)
        for name in paths.map(\.name) + files.map(\.name) {
            var prefix = ""
            for component in name.split(separator: "/").dropLast() {
                prefix = prefix.isEmpty ? String(component) : prefix + "/" + component
                if tablespaceLinks.contains(prefix) { throw refuse("'\(name)' lies below the link '\(prefix)'") }
            }
        }
        for name in linkNames {
            var prefix = ""
            for component in name.split(separator: "/").dropLast() {
                prefix = prefix.isEmpty ? String(component) : prefix + "/" + component
                if linkNames.contains(prefix) { throw refuse("link '\(name)' lies below the link '\(prefix)'") }
            }
        }
    }

    static func normalized(_ path: String) -> String {
        "/" + path.split(separator: "/").joined(separator: "/")
    }

    static func isSafeAbsolute(_ path: String) -> Bool {
        guard path.hasPrefix("/"), !path.utf8.contains(0) else { return false }
        return !path.split(separator: "/").contains { $0 == "." || $0 == ".." }
    }
}
