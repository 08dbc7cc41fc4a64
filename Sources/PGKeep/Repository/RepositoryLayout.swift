import PGKeepCore

/// Maps repository objects to paths: the one place that knows the directory tree of
/// `repo-layout.md` §2. Everything else asks it instead of building path strings.
public struct RepositoryLayout: Sendable {
    public let stanza: String

    public init(stanza: String) throws {
        // A stanza becomes a directory name: keep it to a safe, portable alphabet.
        guard !stanza.isEmpty, stanza.count <= 64,
              stanza.utf8.allSatisfy({ isalnum(Int32($0)) != 0 || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }),
              stanza != ".", stanza != ".." else {
            throw PGKeepError(.optionInvalid, "stanza name '\(stanza)' is invalid",
                              hint: "use 1 to 64 characters from a-z, A-Z, 0-9, '-', '_' and '.'")
        }
        self.stanza = stanza
    }

    // MARK: archive

    public var archiveRoot: StoragePath { try! StoragePath("archive/\(stanza)") }
    public var archiveInfo: StoragePath { try! archiveRoot.appending("archive.info") }

    /// `archive/<stanza>/<archive id>`: one directory per (PostgreSQL version, database history id).
    public func archiveDirectory(archiveID: String) throws -> StoragePath {
        try archiveRoot.appending(archiveID)
    }

    /// Where files named like `name` live: segments, partial segments and backup history files in
    /// a sub-directory named by the first 16 hex digits (timeline + log id), so no directory grows
    /// beyond 256 segments per log id; timeline history files at the archive id root.
    public func archiveParent(archiveID: String, walFile name: String) throws -> StoragePath {
        let base = try archiveDirectory(archiveID: archiveID)
        if name.hasSuffix(".history") { return base }
        return try base.appending(String(name.prefix(16)))
    }

    /// The stored name of an archived file: `<name>-<sha256 of the original bytes>[.<ext>]`.
    /// Carrying the checksum in the name lets a duplicate push be judged from a listing.
    public static func archiveObjectName(walFile name: String, checksum: SHA256Digest, compression: CompressionType) -> String {
        var object = "\(name)-\(checksum.hex)"
        if let ext = compression.fileExtension { object += "." + ext }
        return object
    }

    /// Parses a stored archive object name back into (WAL file name, checksum, compression).
    public static func parseArchiveObjectName(_ object: String) -> (name: String, checksum: SHA256Digest, compression: CompressionType)? {
        var rest = Substring(object)
        var compression = CompressionType.none
        for type in CompressionType.allCases {
            if let ext = type.fileExtension, rest.hasSuffix("." + ext) {
                compression = type
                rest = rest.dropLast(ext.count + 1)
                break
            }
        }
        guard rest.count > 65, let dash = rest.index(rest.endIndex, offsetBy: -65, limitedBy: rest.startIndex),
              rest[dash] == "-", let digest = SHA256Digest(hex: String(rest[rest.index(after: dash)...])) else { return nil }
        return (String(rest[..<dash]), digest, compression)
    }

    // MARK: lock

    /// The stanza's repository lease (§3.8), held by `backup`, `expire` and `stanza-repair` on
    /// whichever host runs them. Outside `archive/` and `backup/`, so no reader of those trees
    /// ever meets it.
    /// The stanzas a repository holds: the directories under `backup/` and `archive/`.
    public static func stanzas(in storage: Storage) throws -> Set<String> {
        var names = Set<String>()
        for root in ["backup", "archive"] {
            for entry in try storage.list(try StoragePath(root)) where entry.kind == .directory { names.insert(entry.name) }
        }
        return names
    }

    public var backupLease: StoragePath { try! StoragePath("lock/\(stanza)/backup.lease") }

    // MARK: backup

    public var backupRoot: StoragePath { try! StoragePath("backup/\(stanza)") }
    public var backupInfo: StoragePath { try! backupRoot.appending("backup.info") }
    /// What the last runs of `verify` proved (repo-layout.md §3.5), sealed like the info files.
    public var verifyState: StoragePath { try! backupRoot.appending("verify.state") }

    public func backupDirectory(label: BackupLabel) throws -> StoragePath {
        try backupRoot.appending(label.text)
    }

    public func manifest(label: BackupLabel) throws -> StoragePath {
        try backupDirectory(label: label).appending("backup.manifest")
    }

    /// The resumable manifest of a backup in progress (§4.2): the files stored so far. Never read
    /// as a backup; only the next backup reads it, to resume.
    public func partialManifest(label: BackupLabel) throws -> StoragePath {
        try backupDirectory(label: label).appending("backup.manifest.partial")
    }

    /// The stored object of one manifest file: `<label>/<manifest name>[.<ext>]`.
    public func backupFile(label: BackupLabel, name: String, compression: CompressionType) throws -> StoragePath {
        var object = name
        if let ext = compression.fileExtension { object += "." + ext }
        return try backupDirectory(label: label).appending(path: object)
    }

    /// The block object of a block-incremental file: `<label>/<manifest name>.pgkb`, the blocks
    /// this backup stored, each an independent frame of the compression its map names.
    public func blockObject(label: BackupLabel, name: String) throws -> StoragePath {
        try backupDirectory(label: label).appending(path: name + ".pgkb")
    }

    /// A bundle object: `<label>/bundle/<id>`, small files' stored frames one after another (§3.6).
    public func bundle(label: BackupLabel, id: Int) throws -> StoragePath {
        try backupDirectory(label: label).appending(path: "bundle/\(id)")
    }

    /// The block map of a block-incremental file: `<label>/<manifest name>.pgkm` (§3.4).
    public func blockMap(label: BackupLabel, name: String) throws -> StoragePath {
        try backupDirectory(label: label).appending(path: name + ".pgkm")
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
