#if canImport(Glibc)
import CLinux
#endif

/// Process-wide allocator settings, applied once at start by the `pgkeep` executable.
public enum MallocTuning {
    /// glibc raises its trim threshold to twice the size of any large block freed (and its mmap
    /// threshold to that size). A backup frees multi-megabyte arrays early (the prior manifest's
    /// table grows by doubling), after which up to tens of megabytes freed later stay with the
    /// process: the bundle planning's temporary arrays, the worker threads' per-bundle file lists
    /// and results. `backup --type=incr --delta` of 100k files peaked 12 MB higher for it. A fixed
    /// threshold returns free memory at the top of a heap beyond 1 MiB; a lower one costs time
    /// (per-file codec memory is then returned and faulted in again: a full backup ran 2x slower
    /// with 128 KiB).
    public static func apply() {
        #if canImport(Glibc)
        _ = pgkeep_set_malloc_trim_threshold(1 << 20)
        #endif
    }
}
