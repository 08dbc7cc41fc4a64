import PGKeepCore
import PGKeepRepository

/// What `annotate` changes.
public struct AnnotateOptions: Sendable {
    public var label: BackupLabel
    /// Key → new value; an empty value removes the key (`--annotation=key=`).
    public var changes: [String: String]
    public var lockPath: String
    /// The repository lease it holds: it rewrites backup.info, as backup and expire do.
    public var lease = LeaseSettings()

    public init(label: BackupLabel, changes: [String: String], lockPath: String) {
        self.label = label
        self.changes = changes
        self.lockPath = lockPath
    }
}

/// `annotate`: changes the notes of a completed backup (`--annotation`, pgBackRest's).
///
/// The notes live in the backup's manifest and are repeated in its `backup.info` entry, which
/// `info` reads (repo-layout.md §3.2, §3.3). Under the stanza's backup lock, the manifest is
/// rewritten first (both copies, each atomically), then the entry, only while the lease still
/// holds: an interruption between the two leaves `info` showing the old notes until `annotate`
/// runs again; never a damaged file. Nothing else in either file changes.
public struct BackupAnnotation {
    let storage: Storage
    let layout: RepositoryLayout
    let options: AnnotateOptions
    let log: Log

    public init(storage: Storage, layout: RepositoryLayout, options: AnnotateOptions, log: Log) {
        self.storage = storage
        self.layout = layout
        self.options = options
        self.log = log
    }

    /// Returns the backup's notes after the change.
    @discardableResult
    public func run() throws -> [String: String] {
        let lock = try StanzaBackupLock(storage: storage, layout: layout, lockPath: options.lockPath, lease: options.lease,
                                        command: "annotate", log: log)
        defer { withExtendedLifetime(lock) {} }
        let label = options.label
        guard try InfoFiles.loadBackupInfo(storage, layout, warn: log.warn).backups.contains(where: { $0.label == label }) else {
            throw PGKeepError(.backupMissing, "backup set \(label) does not exist in stanza '\(layout.stanza)'",
                              hint: "run 'pgkeep --stanza=\(layout.stanza) info' to list the backups")
        }
        let path = try layout.manifest(label: label)
        var manifest = try Manifest.load(label: label, layout: layout, storage: storage, warn: log.warn)
        let notes = Self.applying(options.changes, to: manifest.annotation ?? [:])
        manifest.annotation = notes.isEmpty ? nil : notes
        try lock.lease.confirm()
        try manifest.save(files: manifest.files, to: path, in: storage)
        // Re-read under the lease, so nothing another command wrote meanwhile is lost.
        try lock.lease.confirm()
        var info = try InfoFiles.loadBackupInfo(storage, layout, warn: log.warn)
        for index in info.backups.indices where info.backups[index].label == label {
            info.backups[index].annotation = manifest.annotation
        }
        try SealedFile.save(info, to: layout.backupInfo, in: storage)
        log.info("backup \(label) annotated: \(notes.isEmpty ? "no notes" : Self.describe(notes))")
        return notes
    }

    /// `notes` with `changes` applied: an empty value removes its key.
    static func applying(_ changes: [String: String], to notes: [String: String]) -> [String: String] {
        var result = notes
        for (key, value) in changes { result[key] = value.isEmpty ? nil : value }
        return result
    }

    /// `key=value, key=value`, by key.
    public static func describe(_ notes: [String: String]) -> String {
        notes.keys.sorted().map { "\($0)=\(notes[$0]!)" }.joined(separator: ", ")
    }
}
