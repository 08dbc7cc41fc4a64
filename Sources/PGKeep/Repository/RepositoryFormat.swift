/// The on-disk format version this build writes and reads. It is `format` in every info file and
/// manifest and is specified by `repo-layout.md`; any change to what is written bumps it there and
/// here in the same commit.
public enum RepositoryFormat {
    public static let current = 1
}
