#if canImport(Glibc)
import Glibc
import CLinux
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Direct I/O for the large files a writer streams into the repository.
///
/// Buffered writes copy every byte into the page cache, and the kernel must find a free page for
/// each 4 KiB first. On this project's machines (virtual, with free memory handed back to the
/// host) that costs as much as 1-2 s of system CPU per GB, charged to the writing worker: a full
/// backup spent 10% of its CPU in `copy_folio_from_iter_atomic`. The repository copy is not read
/// again soon, so the page cache gains nothing from it.
///
/// Bytes are gathered into one of two aligned 1 MiB stages. A full stage is handed to a companion
/// thread that writes it with O_DIRECT at its (aligned) offset, straight to the device, while the
/// worker fills the other stage: the worker never waits for the disk unless the disk is slower
/// than the worker (strace of a full lz4 backup: 979 direct writes, 0.52 s spent in them). Files
/// smaller than one stage never switch to O_DIRECT and never start a thread. The tail (less than
/// a stage) is written through the page cache at the end; `fsync` still follows, as for any file.
///
/// `PosixStorage` uses stages only on local block-device file systems (`suits`). One that still
/// refuses O_DIRECT (EINVAL from fcntl or from a write) makes the stage write through the page
/// cache from then on, on the worker's thread: same bytes at the same offsets.
final class DirectStage {
    /// Size of a stage and of each direct write: large I/Os, few system calls.
    static let size = 1 << 20
    /// Alignment of the stages' addresses: the page size covers every logical block size Linux
    /// file systems use for O_DIRECT. File offsets are aligned when the file starts empty.
    static let alignment = 4096

    private let stages: (UnsafeMutableRawBufferPointer, UnsafeMutableRawBufferPointer)
    /// Which stage is being filled (0 or 1), and how far.
    private var current = 0
    private var filled = 0
    /// File offset of the current stage's first byte (nil until the first write asks the file).
    private var offset: Int64?
    /// Whether O_DIRECT is on for the file.
    private var directOn = false
    /// Set once the file system refused O_DIRECT: the rest goes through the page cache.
    private var refused = false
    /// The thread writing full stages, started by the first one.
    private var companion: Companion?
    /// The write the companion is doing or did last, not yet collected by `collect`.
    private var inFlight: (stage: Int, offset: Int64, count: Int)?

    private init(_ stages: (UnsafeMutableRawBufferPointer, UnsafeMutableRawBufferPointer)) { self.stages = stages }

    /// Stages from the pool (a file being written holds two).
    static func take() -> DirectStage { DirectStage((pool.take(), pool.take())) }

    deinit {
        // The companion may still be writing from a stage: stop it before the memory goes back.
        companion?.stop()
        DirectStage.pool.give(stages.0)
        DirectStage.pool.give(stages.1)
    }

    private func stage(_ index: Int) -> UnsafeMutableRawBufferPointer { index == 0 ? stages.0 : stages.1 }

    /// Copies `source` into the stages, handing each full one to the companion thread.
    func write(_ source: UnsafeRawBufferPointer, to fd: Int32, path: String) throws {
        if offset == nil { offset = try Self.position(fd, path: path) }
        var consumed = 0
        while consumed < source.count {
            let target = stage(current)
            let n = min(source.count - consumed, target.count - filled)
            UnsafeMutableRawBufferPointer(rebasing: target[filled..<filled + n])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[consumed..<consumed + n]))
            filled += n
            consumed += n
            if filled == target.count { try writeFullStage(to: fd, path: path) }
        }
    }

    /// Waits for the companion, then writes what the current stage holds through the page cache
    /// (O_DIRECT off) and leaves the file position after the last byte; before `fsync`/close.
    func drain(to fd: Int32, path: String) throws {
        try collect(fd: fd, path: path)
        companion?.stop()
        companion = nil
        guard var position = offset else { return }
        if filled > 0 {
            if directOn { try setDirect(false, fd: fd, path: path) }
            try Self.writeAll(UnsafeRawBufferPointer(rebasing: stage(current)[0..<filled]), to: fd, at: position, path: path)
            position += Int64(filled)
            filled = 0
            offset = position
        }
        if lseek(fd, off_t(position), SEEK_SET) < 0 {
            throw PGKeepError.system(.fileWrite, "unable to seek", path: path, errno: errno)
        }
    }

    private func writeFullStage(to fd: Int32, path: String) throws {
        // The other stage is free again only once its write is done.
        try collect(fd: fd, path: path)
        if !directOn, !refused { try setDirect(true, fd: fd, path: path) }
        let position = offset!
        if directOn {
            if companion == nil { companion = try Companion() }
            companion!.start(fd: fd, bytes: UnsafeRawBufferPointer(stage(current)), offset: position)
            inFlight = (current, position, stage(current).count)
        } else {
            try Self.writeAll(UnsafeRawBufferPointer(stage(current)), to: fd, at: position, path: path)
        }
        offset = position + Int64(filled)
        current ^= 1
        filled = 0
    }

    /// Waits for the write in flight, if any, and deals with its outcome.
    private func collect(fd: Int32, path: String) throws {
        guard let write = inFlight, let companion else { return }
        inFlight = nil
        let (written, error) = companion.wait()
        if written == write.count { return }
        if written < 0, error == EINVAL {
            // This file system takes O_DIRECT at open but not for these writes: nothing was
            // written; write the stage (still intact) through the page cache.
            try setDirect(false, fd: fd, path: path)
            refused = true
            try Self.writeAll(UnsafeRawBufferPointer(stage(write.stage)), to: fd, at: write.offset, path: path)
            return
        }
        // A short direct write (disk full) or an I/O error: report it as any write would.
        throw PGKeepError.system(.fileWrite, "unable to write", path: path, errno: error != 0 ? error : ENOSPC)
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

    private static func position(_ fd: Int32, path: String) throws -> Int64 {
        let position = lseek(fd, 0, SEEK_CUR)
        if position < 0 { throw PGKeepError.system(.fileWrite, "unable to seek", path: path, errno: errno) }
        return Int64(position)
    }

    private static func writeAll(_ bytes: UnsafeRawBufferPointer, to fd: Int32, at offset: Int64, path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + Int64(done)))
            if n < 0 {
                if errno == EINTR { continue }
                throw PGKeepError.system(.fileWrite, "unable to write", path: path, errno: errno)
            }
            done += n
        }
    }

    /// Stages are allocated once and reused: two per file being written at a time.
    private static let pool = Pool()

    /// The buffers it holds belong to no one while in it.
    private final class Pool: Sendable {
        /// A buffer in the pool. `@unchecked Sendable`: the pool hands each buffer to one stage at
        /// a time and no one touches it while it is pooled.
        private struct Free: @unchecked Sendable { let bytes: UnsafeMutableRawBufferPointer }
        private let free = Mutex<[Free]>([])

        func take() -> UnsafeMutableRawBufferPointer {
            if let pooled = free.withLock({ $0.popLast() }) { return pooled.bytes }
            return UnsafeMutableRawBufferPointer.allocate(byteCount: DirectStage.size, alignment: DirectStage.alignment)
        }

        func give(_ bytes: UnsafeMutableRawBufferPointer) { free.withLock { $0.append(Free(bytes: bytes)) } }
    }
}

extension DirectStage {
    /// Whether files written under `path` should go through a stage: only on the file systems of
    /// local block devices (ext2/3/4, XFS, btrfs, F2FS), where O_DIRECT skips the page cache and
    /// the kernel's copy. Elsewhere buffered writes are kept: on NFS or SMB each direct write is
    /// a synchronous round trip to the server, tmpfs is the page cache itself, and FUSE, overlay
    /// and ZFS each treat O_DIRECT their own way. `path` need not exist yet: its nearest existing
    /// ancestor tells the file system.
    static func suits(_ path: String) -> Bool {
        #if os(Linux)
        var candidate = path
        while true {
            let type = pgkeep_file_system_type(candidate)
            if type >= 0 { return suits(fileSystemType: type) }
            let parent = Posix.dirname(candidate)
            if parent == candidate || (errno != ENOENT && errno != ENOTDIR) { return false }
            candidate = parent
        }
        #else
        return false
        #endif
    }

    /// The magic numbers (statfs f_type) of the file systems `suits` accepts.
    static func suits(fileSystemType type: Int64) -> Bool {
        switch UInt32(truncatingIfNeeded: type) {
        case 0xEF53,      // ext2, ext3, ext4
             0x5846_5342, // XFS
             0x9123_683E, // btrfs
             0xF2F5_2010: // F2FS
            return true
        default:
            return false
        }
    }
}

/// A thread that does one `pwrite` at a time for a `DirectStage`: `start` hands it a write,
/// `wait` returns its result (bytes written or -1, and errno). The stage never starts a write
/// before it collected the previous one, and the bytes stay untouched until then.
// @unchecked: `request` and the result are handed over only under the pthread mutex and condition.
private final class Companion: @unchecked Sendable {
    // Allocated: a pthread object must not move, and a class's stored properties promise no
    // fixed address to `&`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var thread = pthread_t()
    private var request: (fd: Int32, bytes: UnsafeRawBufferPointer, offset: Int64)?
    private var result: (written: Int, error: Int32)?
    private var stopping = false

    init() throws {
        mutex.initialize(to: pthread_mutex_t())
        condition.initialize(to: pthread_cond_t())
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        thread = try OSThread.start { self.loop() }
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func start(fd: Int32, bytes: UnsafeRawBufferPointer, offset: Int64) {
        pthread_mutex_lock(mutex)
        precondition(request == nil && result == nil, "a DirectStage write started before the last one was collected")
        request = (fd, bytes, offset)
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    func wait() -> (written: Int, error: Int32) {
        pthread_mutex_lock(mutex)
        while result == nil { pthread_cond_wait(condition, mutex) }
        let done = result!
        result = nil
        pthread_mutex_unlock(mutex)
        return done
    }

    /// Lets a write in flight finish, ends the thread and joins it.
    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
        pthread_join(thread, nil)
    }

    private func loop() {
        pthread_mutex_lock(mutex)
        while true {
            while request == nil && !stopping { pthread_cond_wait(condition, mutex) }
            guard let work = request else { break }  // stopping, nothing left to write
            pthread_mutex_unlock(mutex)
            var written = 0
            var error: Int32 = 0
            while written < work.bytes.count {
                let n = pwrite(work.fd, work.bytes.baseAddress! + written, work.bytes.count - written, off_t(work.offset + Int64(written)))
                if n < 0 {
                    if errno == EINTR { continue }
                    error = errno
                    if written == 0 { written = -1 }
                    break
                }
                if n == 0 { break }
                written += n
            }
            pthread_mutex_lock(mutex)
            request = nil
            result = (written, error)
            pthread_cond_broadcast(condition)
        }
        pthread_mutex_unlock(mutex)
    }
}
