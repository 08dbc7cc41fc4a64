import PGKeepCore

/// The on-disk format version this build writes and reads. It is `format` in every sealed file and
/// is specified by `repo-layout.md`; a change that a reader knowing only `format` would get wrong
/// bumps it there and here in the same commit. Every other change a reader or writer could get
/// wrong is a feature (`RepositoryFeature`), named in the file that uses it.
public enum RepositoryFormat {
    /// What info files, and manifests without data-directory links, are written in.
    public static let current = 1
    /// A manifest that records a link in the data directory other than a tablespace's (a target
    /// of kind `link`, repo-layout.md §3.3) is written in format 2: a reader older than features
    /// (pgkeep 0.5) refuses it by its number instead of restoring a plain directory where a link was.
    public static let linkTargets = 2
    /// The highest manifest format this build reads (info files: `current`).
    public static let highestReadable = 2

    /// Whether this process writes the repository: set by the command (`CommandName.repositoryAccess`
    /// in `Config/Command.swift`). A file whose `writerFeatures` this build does not know is refused
    /// only to writers. Unset, it is `.write`: code that does not say it only reads is judged the
    /// stricter way.
    @TaskLocal public static var access: RepositoryAccess = .write
}

/// Whether a command only reads the repository or also writes it (repo-layout.md §3.9).
public enum RepositoryAccess: Sendable {
    case read, write
}

/// A feature of the repository format a sealed file can require (repo-layout.md §3.9): readers must
/// know every one in its `readerFeatures`, writers also every one in its `writerFeatures`. The raw
/// values are what the files record; this build knows exactly these.
public enum RepositoryFeature: String, CaseIterable, Sendable {
    /// Block-incremental file entries (`blockSize`, `.pgkb`/`.pgkm` objects, §3.4), either map kind.
    case blockIncremental = "block-incremental"
    /// Bundled file entries (`bundle`, `bundleOffset`, `bundle/<id>` objects, §3.6).
    case bundles
    /// `link` targets (§3.3); such a manifest is also format 2.
    case linkTargets = "link-targets"
    /// Writers of the stanza's backups take `lock/<stanza>/backup.lease` (§3.8).
    case repositoryLease = "repository-lease"

    /// The features `backup.info` requires of every writer of the stanza's backups.
    static let backupInfoWriterFeatures: [RepositoryFeature] = [.repositoryLease]

    /// `names` sorted, without repeats.
    static func sorted(_ names: some Sequence<String>) -> [String] { Set(names).sorted() }

    /// How every file records a list: sorted, without repeats, absent (nil) when empty.
    static func recorded(_ names: some Sequence<String>) -> [String]? {
        let list = sorted(names)
        return list.isEmpty ? nil : list
    }
}

/// A sealed repository file that records the format it was written in, and the features a reader
/// (`readerFeatures`) and a writer (`writerFeatures`, besides those) must know. `SealedFile.open`
/// is the one place that judges them: a file whose format is outside 1 through the highest this
/// build reads for its kind, or that requires a feature this build does not know, is refused
/// (`repository-invalid`) before anything uses it, since it could hold keys whose meaning this
/// version would silently drop (repo-layout.md §3, §3.9). Every sealed kind conforms; no reader
/// checks `format` or features itself.
public protocol FormatVersioned {
    var format: Int { get }
    /// Features every reader must know; nil when the file names none (every file written before
    /// features existed: what its content uses is known to every reader that reads the list).
    var readerFeatures: [String]? { get }
    /// Features a writer must know besides `readerFeatures` before it writes what this file governs.
    var writerFeatures: [String]? { get }
    /// The highest format of this kind of file this build reads.
    static var highestReadableFormat: Int { get }
}

extension FormatVersioned {
    /// Refuses the file named `name` when this build cannot read it correctly, or, for `access`
    /// `.write`, cannot write correctly what it governs.
    func judge(name: String, access: RepositoryAccess) throws {
        let highest = Self.highestReadableFormat
        guard (1...highest).contains(format) else {
            throw PGKeepError(.repositoryInvalid,
                              "'\(name)' is in repository format \(format); this pgkeep reads formats 1 to \(highest)",
                              hint: "use the pgkeep version that wrote the repository, or a newer one")
        }
        let known = Set(RepositoryFeature.allCases.map(\.rawValue))
        let unknownToReaders = RepositoryFeature.sorted((readerFeatures ?? []).filter { !known.contains($0) })
        let unknownToWriters = access == .write
            ? RepositoryFeature.sorted((writerFeatures ?? []).filter { !known.contains($0) && !unknownToReaders.contains($0) }) : []
        if !unknownToReaders.isEmpty {
            throw PGKeepError(.repositoryInvalid,
                              "'\(name)' requires repository \(Self.features(unknownToReaders)), unknown to this pgkeep \(PGKeepVersion.current)",
                              hint: "upgrade pgkeep to a version that knows \(unknownToReaders.map { "'\($0)'" }.joined(separator: ", "))")
        }
        if !unknownToWriters.isEmpty {
            throw PGKeepError(.repositoryInvalid,
                              "'\(name)' requires every writer to know repository \(Self.features(unknownToWriters)), unknown to this pgkeep \(PGKeepVersion.current)",
                              hint: "upgrade pgkeep to a version that knows \(unknownToWriters.map { "'\($0)'" }.joined(separator: ", ")) before writing to this stanza; commands that only read (info, restore, archive-get, verify) work with this one")
        }
    }

    private static func features(_ names: [String]) -> String {
        (names.count == 1 ? "feature " : "features ") + names.map { "'\($0)'" }.joined(separator: ", ")
    }
}

extension Manifest: FormatVersioned {
    public static var highestReadableFormat: Int { RepositoryFormat.highestReadable }
}
extension ArchiveInfo: FormatVersioned {
    public static var highestReadableFormat: Int { RepositoryFormat.current }
}
extension BackupInfo: FormatVersioned {
    public static var highestReadableFormat: Int { RepositoryFormat.current }
}
extension VerifyState {
    public static var highestReadableFormat: Int { RepositoryFormat.current }
}
