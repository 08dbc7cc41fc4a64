import PGKeepCore
import PGKeepRepository

/// Selective restore (`--db-include`, `--db-exclude`): which of the backup's databases come back
/// with their contents, and which only as sparse, zero-filled files of their recorded sizes.
///
/// A physical restore is always of the whole cluster, because recovery replays the WAL of every
/// database. A database left out entirely would make replay fail on the first record touching
/// its files ("WAL contains references to invalid pages"); zero-filled files of the right sizes
/// take the replay (an all-zero page is a valid new page, and the first change of each page
/// after the backup's checkpoint carries a full-page image). After recovery such a database is
/// unusable (its `pg_filenode.map` is zeros, so a connection is refused) and the DBA drops it
/// (docs/postgres-internals.md §6.6).
///
/// The system databases (oid below 16384: template0, template1 and postgres) are always
/// restored: `--db-include` adds them, and `--db-exclude` naming one is refused. `PG_VERSION` of
/// an excluded database is restored as stored, so the directory stays recognisably a database.
public struct DatabaseSelection: Sendable, Equatable {
    /// What the operator asked for: database names or oids.
    public struct Request: Sendable, Equatable {
        public var include: [String]
        public var exclude: [String]

        public init(include: [String] = [], exclude: [String] = []) {
            self.include = include
            self.exclude = exclude
        }

        public var isEmpty: Bool { include.isEmpty && exclude.isEmpty }
    }

    /// The databases restored as zero-filled files, by oid.
    public let excluded: [Manifest.DatabaseEntry]
    private let excludedOIDs: Set<String>

    /// Oids below this are assigned by initdb (PostgreSQL's `FirstNormalObjectId`).
    static let firstNormalOID: UInt32 = 16384

    /// Resolves `request` against the databases `manifest` recorded; refuses names the backup does
    /// not have, a database both included and excluded, and excluding a system database, before
    /// anything is written.
    public init(_ request: Request, manifest: Manifest) throws {
        let label = manifest.backup.label
        let databases = manifest.databases
        func find(_ word: String, option: String) throws -> Manifest.DatabaseEntry {
            if let byName = databases.first(where: { $0.name == word }) { return byName }
            if let oid = UInt32(word), let byOID = databases.first(where: { $0.oid == oid }) { return byOID }
            let known = databases.sorted { $0.oid < $1.oid }.map { "\($0.name) (\($0.oid))" }.joined(separator: ", ")
            throw PGKeepError(.optionInvalid, "--\(option) names database '\(word)', which backup \(label) does not have",
                              hint: "name a database the backup has, by name or oid: \(known)")
        }
        let included = try request.include.map { try find($0, option: "db-include") }
        let excludedByName = try request.exclude.map { try find($0, option: "db-exclude") }
        for database in excludedByName {
            if database.oid < Self.firstNormalOID {
                throw PGKeepError(.optionInvalid, "--db-exclude names '\(database.name)' (oid \(database.oid)), a system database, which a restore always brings back",
                                  hint: "template0, template1 and postgres are always restored; drop postgres after the restore if you do not want it")
            }
            if included.contains(database) {
                throw PGKeepError(.optionInvalid, "database '\(database.name)' (oid \(database.oid)) is named by both --db-include and --db-exclude",
                                  hint: "name it in one of the two options")
            }
        }
        var left = Set(excludedByName)
        if !included.isEmpty {
            for database in databases where database.oid >= Self.firstNormalOID && !included.contains(database) { left.insert(database) }
        }
        excluded = left.sorted { $0.oid < $1.oid }
        excludedOIDs = Set(excluded.map { String($0.oid) })
    }

    /// Everything restored: no option given.
    public static let everything = DatabaseSelection()

    private init() {
        excluded = []
        excludedOIDs = []
    }

    /// Whether the manifest entry is a file of an excluded database that is restored as zeros:
    /// anything in `pg_data/base/<oid>/` or `pg_tblspc/<ts>/PG_*/<oid>/` but `PG_VERSION`.
    public func zeroFills(_ name: String) -> Bool {
        guard !excludedOIDs.isEmpty else { return false }
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard let last = parts.last, last != "PG_VERSION" else { return false }
        if parts.count >= 4, parts[0] == "pg_data", parts[1] == "base" { return excludedOIDs.contains(String(parts[2])) }
        if parts.count >= 5, parts[0] == "pg_tblspc", parts[2].hasPrefix("PG_") { return excludedOIDs.contains(String(parts[3])) }
        return false
    }

    /// For the log and the plan: `app (16390), scratch (16391)`.
    public var excludedText: String {
        excluded.map { "\($0.name) (\($0.oid))" }.joined(separator: ", ")
    }
}
