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
    ///
    /// Fixing one threshold also stops glibc from raising the other, so the mmap threshold is set
    /// too, to the same 1 MiB. Left at its 128 KiB default, every allocation above it was a fresh
    /// mapping: liblz4 frees and callocs its 192 KiB block buffer at every `LZ4F_compressBegin`,
    /// once per 128 KiB block of a block-incremental file, and a full lz4 backup of bench dataset
    /// M spent ~20% of its CPU in mmap, page faults, munmap and the TLB shootdowns munmap sends to
    /// the other cores (perf; strace counted 8,490 munmaps of 200,704 bytes).
    public static func apply() {
        #if canImport(Glibc)
        _ = pgkeep_set_malloc_trim_threshold(threshold)
        _ = pgkeep_set_malloc_mmap_threshold(threshold)
        #endif
    }

    static let threshold: Int32 = 1 << 20
}
