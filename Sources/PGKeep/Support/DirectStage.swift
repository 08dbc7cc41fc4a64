#if canImport(Glibc)
import Glibc
import CLinux
#elseif canImport(Darwin)
import Darwin
#endif

/// Direct I/O for the large files a writer streams into the repository.
///
/// Buffered writes copy every byte into the page cache, and the kernel must find a free page for
/// each 4 KiB first. On this project's machines (virtual, with free memory handed back to the
/// host) that costs as much as 1-2 s of system CPU per GB, charged to the writing worker: a full
/// backup spent 10% of its CPU in `copy_folio_from_iter_atomic`. The repository copy is not read
/// again soon, so the page cache gains nothing from it. Bytes are gathered into an aligned
/// stage; each full stage is written with O_DIRECT at an aligned offset, straight from it to the
/// device. Files smaller than one stage never switch to O_DIRECT. The tail (less than a stage)
/// is written through the page cache at the end; `fsync` still follows, as for any file.
///
/// A file system that refuses O_DIRECT (EINVAL from fcntl or from a write) makes the stage write
/// through the page cache from then on: same bytes, same order.
final class DirectStage {
    /// Size of a stage and of each direct write: large I/Os, few system calls.
    static let size = 1 << 20
    /// Alignment of the stage's address (offsets are multiples of `size`): the page size covers
    /// every logical block size Linux file systems use for O_DIRECT.
    static let alignment = 4096

    private let bytes: UnsafeMutableRawBufferPointer
    private var filled = 0
    /// Whether O_DIRECT is on for the file.
    private var directOn = false
    /// Set once the file system refused O_DIRECT: the rest goes through the page cache.
    private var refused = false

    private init(bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }

    /// A stage from the pool (a worker's file at a time holds one).
    static func take() -> DirectStage { DirectStage(bytes: pool.take()) }

    deinit { DirectStage.pool.give(bytes) }

    /// Copies `source` into the stage, writing each full stage to `fd`.
    func write(_ source: UnsafeRawBufferPointer, to fd: Int32, path: String) throws {
        var offset = 0
        while offset < source.count {
            let n = min(source.count - offset, bytes.count - filled)
            UnsafeMutableRawBufferPointer(rebasing: bytes[filled..<filled + n])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<offset + n]))
            filled += n
            offset += n
            if filled == bytes.count { try writeStage(to: fd, path: path) }
        }
    }

    /// Writes what the stage holds through the page cache (O_DIRECT off); before `fsync`/close.
    func drain(to fd: Int32, path: String) throws {
        guard filled > 0 else { return }
        if directOn { try setDirect(false, fd: fd, path: path) }
        try Self.writeAll(UnsafeRawBufferPointer(rebasing: bytes[0..<filled]), to: fd, path: path)
        filled = 0
    }

    private func writeStage(to fd: Int32, path: String) throws {
        if !directOn, !refused { try setDirect(true, fd: fd, path: path) }
        let stage = UnsafeRawBufferPointer(rebasing: bytes[0..<filled])
        if directOn {
            let n = Self.retrying { Glibc.write(fd, stage.baseAddress, stage.count) }
            if n == stage.count { filled = 0; return }
            if n >= 0 || errno != EINVAL {
                // A short direct write (disk full) or an I/O error: report it as any write would.
                throw PGKeepError.system(.fileWrite, "unable to write", path: path, errno: n >= 0 ? ENOSPC : errno)
            }
            // EINVAL: this file system takes O_DIRECT at open but not for these writes.
            try setDirect(false, fd: fd, path: path)
            refused = true
        }
        try Self.writeAll(stage, to: fd, path: path)
        filled = 0
    }

    private func setDirect(_ on: Bool, fd: Int32, path: String) throws {
        #if os(Linux)
        if pgkeep_set_direct(fd, on ? 1 : 0) == 0 { directOn = on; return }
        if on, errno == EINVAL { refused = true; return }
        throw PGKeepError.system(.fileWrite, "unable to \(on ? "enable" : "disable") direct I/O for", path: path, errno: errno)
        #else
        refused = true
        #endif
    }

    private static func writeAll(_ bytes: UnsafeRawBufferPointer, to fd: Int32, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let n = retrying { Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset) }
            if n < 0 { throw PGKeepError.system(.fileWrite, "unable to write", path: path, errno: errno) }
            offset += n
        }
    }

    private static func retrying(_ call: () -> Int) -> Int {
        while true {
            let n = call()
            if n >= 0 || errno != EINTR { return n }
        }
    }

    /// Stages are allocated once and reused: at most one per file being written at a time.
    private static let pool = Pool()

    private final class Pool: @unchecked Sendable {
        private let lock = Mutex()
        private var free: [UnsafeMutableRawBufferPointer] = []

        func take() -> UnsafeMutableRawBufferPointer {
            if let bytes = lock.withLock({ free.popLast() }) { return bytes }
            return UnsafeMutableRawBufferPointer.allocate(byteCount: DirectStage.size, alignment: DirectStage.alignment)
        }

        func give(_ bytes: UnsafeMutableRawBufferPointer) { lock.withLock { free.append(bytes) } }
    }
}
