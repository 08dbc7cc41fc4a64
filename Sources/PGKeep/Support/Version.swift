/// The pgkeep release.
public enum PGKeepVersion {
    public static let current = "0.1.0"
}
