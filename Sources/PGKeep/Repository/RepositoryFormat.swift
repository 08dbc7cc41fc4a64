/// The on-disk format version this build writes and reads. It is `format` in every info file and
/// manifest and is specified by `repo-layout.md`; any change to what is written bumps it there and
/// here in the same commit.
public enum RepositoryFormat {
    public static let current = 1
}

/// A sealed repository file that records the format it was written in. `SealedFile.open` refuses
/// one written in a later format than this build knows: it could hold keys whose meaning this
/// version would silently drop (repo-layout.md §3).
public protocol FormatVersioned {
    var format: Int { get }
}

extension Manifest: FormatVersioned {}
extension ArchiveInfo: FormatVersioned {}
extension BackupInfo: FormatVersioned {}
