/// What a base backup does with one entry of the data directory.
public enum PGDataEntryRule: Hashable, Sendable {
    /// Copy the file, or record the directory and descend into it.
    case copy
    /// Leave the entry (and, for a directory, everything below it) out of the backup.
    case skip
    /// Record the directory with its mode but none of its contents, and do not descend. Also create
    /// `PGDataRules.synthesizedDirectories(inside:)` below it.
    case keepEmptyDirectory
    /// `global/pg_control`: leave it out of the walk and copy it after every other file, so that a
    /// standby backup's `minRecoveryPoint` covers all the data copied before it (docs/postgres-internals.md §1.3).
    case copyLast
}

/// The base-backup exclusion rules, as pure functions over paths relative to the data directory.
///
/// The caller walks the tree (and the tablespaces, under `pg_tblspc/<oid>/...`), lists each
/// directory, and asks `rule(forRelativePath:isDirectory:siblingNames:)` for every entry. No
/// function here touches the file system. Paths use `/`, have no leading `./` (one is tolerated)
/// and no trailing `/`.
///
/// The rules are pg_basebackup's in PG15 (`sendDir`, `excludeDirContents`, `excludeFiles` in
/// `src/backend/backup/basebackup.c`; docs/postgres-internals.md §2.1) plus pgBackRest's extra root-level
/// exclusions (`src/info/manifest/build.c.inc`; §2.2), checked in this order:
/// 1. Names starting with `pgsql_tmp` (`PG_TEMP_FILE_PREFIX`), at any depth, files or directories.
/// 2. `.DS_Store`.
/// 3. Exact names `excludedNames` at any depth (`excludeFiles` with `match_prefix = false`, so
///    `backup_label.old` is not matched by `backup_label`).
/// 4. Names starting with `pg_internal.init` at any depth (relcache init files and their temps).
/// 5. Root-only extras from pgBackRest: `rootOnlyExcludedNames`.
/// 6. In a database directory, every fork of an unlogged relation except its `_init` fork.
/// 7. In a database directory, temporary relations `t<backend>_<relfilenode>[_fork][.seg]`.
/// 8. `global/pg_control`: copied last.
/// 9. `pg_wal`, `pg_wal/archive_status` and the directories in `emptiedDirectories`: kept, empty.
/// 10. Inside a tablespace, only the version directory of this major (`PG_15_202209061`): other
///     versions' directories are left by `pg_upgrade` and belong to another cluster
///     (pg_basebackup's `sendTablespace` sends only `TABLESPACE_VERSION_DIRECTORY`).
///
/// Not decided here (the walker's job, §2.1 items 11-15): symlink handling, special files, files
/// that vanish or change size while being read.
public struct PGDataRules: Hashable, Sendable {
    /// The version of the cluster being backed up: it names the tablespace version directory.
    public let version: PGVersion

    /// Rules for a cluster of `version`.
    public init(version: PGVersion) {
        self.version = version
    }

    /// `PG_TEMP_FILE_PREFIX` (`src/include/storage/fd.h`): temporary files and directories.
    public static let temporaryFilePrefix = "pgsql_tmp"
    /// `RELCACHE_INIT_FILENAME` (`src/include/utils/relcache.h`), also the prefix of its temp files.
    public static let relcacheInitPrefix = "pg_internal.init"

    /// `excludeFiles` (basebackup.c, PG15): excluded by exact name in any directory.
    public static let excludedNames: Set<String> = [
        "postgresql.auto.conf.tmp",   // PG_AUTOCONF_FILENAME ".tmp", being written by ALTER SYSTEM
        "current_logfiles.tmp",       // LOG_METAINFO_DATAFILE_TMP, being written by the logger
        "backup_label",               // BACKUP_LABEL_FILE: the backup writes its own
        "tablespace_map",             // TABLESPACE_MAP: likewise
        "backup_manifest",            // PG13+: a previous pg_basebackup's output
        "postmaster.pid",             // a running server's lock file must not be restored
        "postmaster.opts",
    ]

    /// pgBackRest's extra exclusions in the data directory root only (docs/postgres-internals.md §2.2):
    /// recovery signal and configuration files that would put the restored cluster into an
    /// unintended mode (restore writes its own), and leftovers of earlier backups.
    public static let rootOnlyExcludedNames: Set<String> = [
        "recovery.signal", "standby.signal",  // PG12+
        "recovery.conf", "recovery.done",     // PG11 and older
        "backup_label.old",
        "backup_manifest.tmp",
        "pgkeep.restore-in-progress",  // RestoreMarker: a restore's own, never part of the cluster
    ]

    /// `excludeDirContents` (basebackup.c, PG15): directories whose contents the server recreates
    /// or discards at startup. Each is kept as an empty directory, because several are fatal when
    /// missing (docs/postgres-internals.md §2.3).
    public static let emptiedDirectories: Set<String> = [
        "pg_stat_tmp",   // PG_STAT_TMP_DIR
        "pg_replslot",   // replication slots are not valid on a restored cluster
        "pg_dynshmem",   // PG_DYNSHMEM_DIR
        "pg_notify",     // LISTEN/NOTIFY queue, reset at startup
        "pg_serial",     // serializable transaction summaries, reset at startup
        "pg_snapshots",  // exported snapshots
        "pg_subtrans",   // rebuilt from WAL
    ]

    /// `XLOGDIR`: sent as an empty directory (basebackup.c); WAL comes from the archive.
    public static let walDirectory = "pg_wal"
    /// `XLOGDIR "/archive_status"`: always sent, empty, with `pg_wal`.
    public static let archiveStatusDirectory = "pg_wal/archive_status"
    /// PG17+ `XLOGDIR "/summaries"`: sent empty like `archive_status`.
    public static let summariesDirectory = "pg_wal/summaries"

    /// The decision for one entry.
    ///
    /// - Parameters:
    ///   - relativePath: the entry's path relative to the data directory, e.g. `base/5/16390`,
    ///     `pg_tblspc/16384/PG_15_202209061/5/16385`.
    ///   - isDirectory: whether the entry is a directory (a tablespace symlink counts as one).
    ///   - siblingNames: the names of all entries in the same directory, used to find `_init` forks
    ///     of unlogged relations; only consulted inside database directories.
    public func rule(forRelativePath relativePath: String, isDirectory: Bool, siblingNames: Set<String>) -> PGDataEntryRule {
        let components = Self.components(of: relativePath)
        guard let name = components.last else { return .copy }  // the data directory itself

        // 1.-4. Name rules that apply at any depth (basebackup.c sendDir, in its order). The
        // pgsql_tmp test covers every component, so a deep path is skipped even if asked directly.
        if components.contains(where: { $0.hasPrefix(Self.temporaryFilePrefix) }) { return .skip }
        if name == ".DS_Store" { return .skip }
        if Self.excludedNames.contains(String(name)) { return .skip }
        if name.hasPrefix(Self.relcacheInitPrefix) { return .skip }

        // 5. pgBackRest's root-level extras.
        if components.count == 1, Self.rootOnlyExcludedNames.contains(String(name)) { return .skip }

        let parent = components.dropLast()
        // 6.-7. Relation-file rules in database directories.
        if !isDirectory, isDatabaseDirectory(components: parent) {
            if Self.isUnloggedFork(fileName: String(name), siblingNames: siblingNames) { return .skip }
            if Self.isTemporaryRelation(fileName: String(name)) { return .skip }
        }

        // 8. basebackup.c: "Skip pg_control here to back up it last".
        if components.count == 2, components[0] == "global", name == "pg_control" { return .copyLast }

        // 9. Directories kept without contents, and anything inside them.
        if let first = components.first {
            if Self.emptiedDirectories.contains(String(first)) {
                return components.count == 1 && isDirectory ? .keepEmptyDirectory : .skip
            }
            if first == Self.walDirectory {
                if components.count == 1 { return isDirectory ? .keepEmptyDirectory : .skip }
                let path = components.prefix(2).joined(separator: "/")
                let isKeptSubdirectory = path == Self.archiveStatusDirectory || (path == Self.summariesDirectory && version.major >= 17)
                return components.count == 2 && isDirectory && isKeptSubdirectory ? .keepEmptyDirectory : .skip
            }
        }

        // 10. Tablespaces: pg_tblspc/<oid>/<version dir>/...
        if components.count >= 3, components[0] == "pg_tblspc", Self.isDigits(components[1]),
           components[2] != Substring(version.tablespaceDirectoryName) {
            return .skip
        }
        return .copy
    }

    /// Directories a backup records below `relativeDirectory` although it does not copy them from
    /// disk: `pg_wal/archive_status` (and `pg_wal/summaries` from PG17) below `pg_wal`, created with
    /// `pg_wal`'s mode, as pg_basebackup does ("hackishly reusing statbuf" in basebackup.c). They
    /// may be missing on disk; the restored cluster needs them.
    public func synthesizedDirectories(inside relativeDirectory: String) -> [String] {
        guard Self.components(of: relativeDirectory) == [Substring(Self.walDirectory)] else { return [] }
        return version.major >= 17 ? [Self.archiveStatusDirectory, Self.summariesDirectory] : [Self.archiveStatusDirectory]
    }

    /// Whether `relativeDirectory` is a database directory, which holds relation files: `base/<digits>`
    /// or `pg_tblspc/<oid>/PG_<major>_<catversion>/<digits>` for this version (basebackup.c `isDbDir`).
    /// `global` is not one: it holds no unlogged or temporary relations.
    public func isDatabaseDirectory(_ relativeDirectory: String) -> Bool {
        isDatabaseDirectory(components: Self.components(of: relativeDirectory)[...])
    }

    private func isDatabaseDirectory(components: ArraySlice<Substring>) -> Bool {
        guard let last = components.last, Self.isDigits(last) else { return false }
        if components.count == 2 { return components.first == "base" }
        if components.count == 4 {
            let c = Array(components)
            return c[0] == "pg_tblspc" && Self.isDigits(c[1]) && c[2] == Substring(version.tablespaceDirectoryName)
        }
        return false
    }

    /// A relation file name split into its parts: `<relfilenode>[_<fork>][.<segment>]`.
    public struct RelationFileName: Hashable, Sendable {
        /// The relation forks (`ForkNumber`, `forkNames` in `src/common/relpath.c`).
        public enum Fork: String, Hashable, Sendable {
            /// The main data, no suffix.
            case main
            /// `_fsm`, free space map.
            case fsm
            /// `_vm`, visibility map.
            case vm
            /// `_init`, the init fork of an unlogged relation.
            case `init`
        }

        /// The relfilenode digits.
        public let relfilenode: String
        /// The fork.
        public let fork: Fork
        /// The segment number after `.`, nil for the first segment.
        public let segment: UInt32?

        /// Parses `name` as a non-temporary relation file (`parse_filename_for_nontemp_relation` in
        /// `src/backend/storage/file/reinit.c`): 1 to 10 digits (`OIDCHARS`), an optional `_fsm`,
        /// `_vm` or `_init`, an optional `.` and digits, and nothing else.
        public init?(_ name: String) {
            let utf8 = Array(name.utf8)
            var position = 0
            while position < utf8.count, Self.isDigit(utf8[position]) { position += 1 }
            guard position >= 1, position <= 10 else { return nil }
            relfilenode = String(decoding: utf8[0..<position], as: UTF8.self)
            var fork = Fork.main
            if position < utf8.count, utf8[position] == UInt8(ascii: "_") {
                guard let (parsed, length) = Self.forkName(utf8, position + 1) else { return nil }
                fork = parsed
                position += 1 + length
            }
            self.fork = fork
            var segment: UInt32?
            if position < utf8.count, utf8[position] == UInt8(ascii: ".") {
                let start = position + 1
                position = start
                while position < utf8.count, Self.isDigit(utf8[position]) { position += 1 }
                guard position > start, let value = UInt32(String(decoding: utf8[start..<position], as: UTF8.self)) else { return nil }
                segment = value
            }
            self.segment = segment
            guard position == utf8.count else { return nil }
        }

        /// `forkname_chars` (`relpath.c`): the fork name starting at `start` and its length. Only
        /// the non-main forks have names in file names.
        static func forkName(_ utf8: [UInt8], _ start: Int) -> (Fork, Int)? {
            for fork in [Fork.fsm, .vm, .`init`] {
                let text = Array(fork.rawValue.utf8)
                if start + text.count <= utf8.count, Array(utf8[start..<start + text.count]) == text {
                    return (fork, text.count)
                }
            }
            return nil
        }

        /// Whether `byte` is an ASCII digit (`isdigit` in the C locale).
        static func isDigit(_ byte: UInt8) -> Bool {
            byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
        }
    }

    /// Whether `fileName`, in a database directory whose entries are `siblingNames`, is a fork of
    /// an unlogged relation that a backup leaves out: it parses as `<relfilenode>[_fsm|_vm][.<seg>]`
    /// and `<relfilenode>_init` exists beside it. The `_init` fork itself is always kept: at the end
    /// of recovery the server copies it over the main fork (`ResetUnloggedRelations`, reinit.c).
    public static func isUnloggedFork(fileName: String, siblingNames: Set<String>) -> Bool {
        guard let relation = RelationFileName(fileName), relation.fork != .`init` else { return false }
        return siblingNames.contains(relation.relfilenode + "_init")
    }

    /// Whether `fileName` names a temporary relation file, `t<backendid>_<relfilenode>[_<fork>][.<seg>]`
    /// (`looks_like_temp_rel_name` in `src/backend/storage/file/fd.c`). Temporary relations belong to
    /// sessions and are never restored.
    public static func isTemporaryRelation(fileName: String) -> Bool {
        let utf8 = Array(fileName.utf8)
        guard utf8.first == UInt8(ascii: "t") else { return false }
        var position = 1
        while position < utf8.count, RelationFileName.isDigit(utf8[position]) { position += 1 }
        guard position > 1, position < utf8.count, utf8[position] == UInt8(ascii: "_") else { return false }
        position += 1
        let nodeStart = position
        while position < utf8.count, RelationFileName.isDigit(utf8[position]) { position += 1 }
        guard position > nodeStart else { return false }
        if position < utf8.count, utf8[position] == UInt8(ascii: "_") {
            guard let (_, length) = RelationFileName.forkName(utf8, position + 1) else { return false }
            position += 1 + length
        }
        if position < utf8.count, utf8[position] == UInt8(ascii: ".") {
            let segmentStart = position + 1
            position = segmentStart
            while position < utf8.count, RelationFileName.isDigit(utf8[position]) { position += 1 }
            guard position > segmentStart else { return false }
        }
        return position == utf8.count
    }

    private static func components(of relativePath: String) -> [Substring] {
        var path = Substring(relativePath)
        if path.hasPrefix("./") { path = path.dropFirst(2) } else if path == "." { path = "" }
        return path.split(separator: "/")
    }

    private static func isDigits(_ text: Substring) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy(RelationFileName.isDigit)
    }
}
