/// The pgkeep release. repo-layout.md's "Changes" name the release that introduced each addition,
/// so this moves with them: 0.2 diff/incr, block maps, bundles; 0.3 resumable backups; 0.4 XXH3
/// block maps, frames without codec checksums, the copy start without a wait.
public enum PGKeepVersion {
    public static let current = "0.5.0"

    /// `version --output=num`: major x 1 000 000 + minor x 1 000 + patch (0.5.0 is 5000), the
    /// form pgBackRest prints, for scripts that compare versions.
    public static var number: Int {
        let parts = current.split(separator: ".").map { Int($0) ?? 0 } + [0, 0, 0]
        return parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2]
    }
}
