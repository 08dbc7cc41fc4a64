/// Bundling of small files (repo-layout.md §3.6, pgBackRest's `repo-bundle`): what is bundled and
/// how the bundled files are grouped into jobs.
///
/// A cluster holds thousands of small files (catalogs, `pg_xact`, free space and visibility maps,
/// empty relations). Stored one object each, every one costs an open, an fsync, a rename and a
/// directory fsync, which dominates the backup of a cluster of many small tables and leaves the
/// repository with as many objects as the cluster has files. Bundled, they cost one atomic write per
/// `--bundle-size` bytes.
public struct BundleOptions: Sendable, Hashable {
    /// `--bundle`: on by default.
    public var enabled: Bool
    /// `--bundle-limit`: files smaller than this are bundled. Block-incremental files (at least
    /// `BlockIncremental.minimumFileSize`) never are, whatever the limit.
    public var limit: UInt64
    /// `--bundle-size`: the original bytes a bundle is filled with before the next one starts.
    public var size: UInt64

    /// pgBackRest's defaults (bundle-limit 2 MiB, bundle-size 20 MiB). With block-incremental storage
    /// from 1 MiB up, the default bundles every file that is not block-incremental: below 1 MiB the
    /// per-object cost (open, fsync, rename, directory fsync: milliseconds on real disks) is larger
    /// than the cost of copying the file, so a smaller limit would only add objects.
    public static let defaultLimit: UInt64 = 2 << 20
    public static let defaultSize: UInt64 = 20 << 20

    public init(enabled: Bool = true, limit: UInt64 = BundleOptions.defaultLimit, size: UInt64 = BundleOptions.defaultSize) {
        self.enabled = enabled
        self.limit = limit
        self.size = size
    }

    /// Whether a file of `size` bytes (as listed) goes into a bundle.
    public func bundles(size: UInt64) -> Bool {
        enabled && size < limit && size < BlockIncremental.minimumFileSize
    }
}

enum BundlePlan {
    static let perFileWeight: UInt64 = 16 << 10

    /// Groups the files to bundle (listing index and listed size, in name order) into bundles:
    /// consecutive runs by name (a restore then writes neighbouring files together), each of about
    /// `bundleSize` original bytes. Small totals are still split into `processMax` bundles (when
    /// there are that many files), so every worker fills a bundle of its own.
    static func group(_ files: [(id: Int, size: UInt64)], bundleSize: UInt64, processMax: Int) -> [[Int]] {
        guard !files.isEmpty else { return [] }
        let total = files.reduce(UInt64(0)) { $0 + $1.size }
        let bySize = Int((total + bundleSize - 1) / max(bundleSize, 1))
        let count = max(1, min(files.count, max(bySize, processMax)))
        // Fill each bundle to an even share of the work: bytes plus a per-file cost (opening and
        // reading a file costs about as much as copying a page or two, even when it is empty).
        func weight(_ size: UInt64) -> UInt64 { size + perFileWeight }
        let totalWeight = files.reduce(UInt64(0)) { $0 + weight($1.size) }
        let target = max(1, (totalWeight + UInt64(count) - 1) / UInt64(count))
        var groups: [[Int]] = []
        var current: [Int] = []
        var filled: UInt64 = 0
        var remainingFiles = files.count
        for file in files {
            // Start a new bundle when this one is full, or when only as many files are left as
            // bundles still to fill (so none ends up empty).
            let bundlesLeft = count - groups.count
            if !current.isEmpty && (filled + weight(file.size) > target || remainingFiles < bundlesLeft) && groups.count + 1 < count {
                groups.append(current)
                current = []
                filled = 0
            }
            current.append(file.id)
            filled += weight(file.size)
            remainingFiles -= 1
        }
        if !current.isEmpty { groups.append(current) }
        return groups
    }
}
