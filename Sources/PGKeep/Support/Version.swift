/// The pgkeep release. repo-layout.md's "Changes" name the release that introduced each addition,
/// so this moves with them: 0.2 diff/incr, block maps, bundles; 0.3 resumable backups; 0.4 XXH3
/// block maps, frames without codec checksums, the copy start without a wait.
public enum PGKeepVersion {
    public static let current = "0.5.0"
}
