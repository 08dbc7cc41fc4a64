/// The on-disk format version this build writes and reads. It is `format` in every info file and
/// manifest and is specified by `repo-layout.md`; any change to what is written bumps it there and
/// here in the same commit.
public enum RepositoryFormat {
    /// What info files, and manifests without data-directory links, are written in.
    public static let current = 1
    /// A manifest that records a link in the data directory other than a tablespace's (a target
    /// of kind `link`, repo-layout.md §3.3) is written in format 2: a reader that does not know
    /// link targets refuses it instead of restoring a plain directory where a link was.
    public static let linkTargets = 2
    /// The highest manifest format this build reads (info files: `current`).
    public static let highestReadable = 2
}

/// A sealed repository file that records the format it was written in. `SealedFile.open` is the
/// one place that judges it: a file whose format is outside 1 through the highest this build
/// reads for its kind is refused (`repository-invalid`) before anything uses it, since it could
/// hold keys whose meaning this version would silently drop (repo-layout.md §3). Every sealed
/// kind conforms; no reader checks `format` itself.
public protocol FormatVersioned {
    var format: Int { get }
    /// The highest format of this kind of file this build reads.
    static var highestReadableFormat: Int { get }
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
