import Foundation

/// A small file system mounted on a directory, for tests that fill it up (ENOSPC) or need coarse
/// modification times.
///
/// A tmpfs is tried first (no image, no mkfs); where that is refused, an ext4 image in a sparse
/// file, loop-mounted. Both need mount(2), which containers without CAP_SYS_ADMIN refuse: tests
/// that need one check `SmallFileSystem.isAvailable` in an `.enabled(if:)` trait, so on such a
/// machine they are reported as skipped, with the reason, instead of passing without running.
/// The kinds with coarse timestamps are mounted only as themselves (`mount(_:at:bytes:imageDirectory:)`),
/// and `refusal(_:)` says why one cannot be mounted here.
public final class SmallFileSystem: @unchecked Sendable {
    public enum Kind: String, Sendable {
        case tmpfs
        case loopExt4 = "ext4 on a loop device"
        /// 128-byte inodes have no room for sub-second times: every mtime is a whole second.
        case loopExt4WholeSeconds = "ext4 with 128-byte inodes (whole-second mtimes) on a loop device"
        /// FAT stores mtimes in 2-second steps; owner and modes come from the mount options
        /// (postgres, 0700 directories, 0600 files), and `quiet` makes chmod and chown succeed silently.
        case loopVFAT = "vfat (mtimes in 2-second steps) on a loop device"

        /// The mtime step, in seconds, of the coarse kinds.
        public var timestampStep: Int64? {
            switch self {
            case .tmpfs, .loopExt4: return nil
            case .loopExt4WholeSeconds: return 1
            case .loopVFAT: return 2
            }
        }
    }

    public let mountPoint: String
    public let kind: Kind
    private var mounted = true

    private init(mountPoint: String, kind: Kind) {
        self.mountPoint = mountPoint
        self.kind = kind
    }

    /// Why tests needing a small file system are skipped where `isAvailable` is false.
    public static let unavailableReason =
        "mounting a small file system (tmpfs or loop-mounted ext4) is refused here: it needs root with CAP_SYS_ADMIN"

    /// Whether this process can mount one: probed once, with a 1 MiB tmpfs or a 2 MiB ext4 image.
    public static let isAvailable: Bool = {
        guard geteuid() == 0, let probe = try? TemporaryProbe() else { return false }
        defer { probe.remove() }
        guard let fs = try? mount(at: probe.directory, bytes: 2 << 20, imageDirectory: probe.root) else { return false }
        fs.unmount()
        return true
    }()

    /// Mounts `bytes` of file system on `directory` (which must exist and be empty), owned by
    /// postgres with mode 0750 and without ext4's lost+found, so it looks like a fresh directory.
    /// `preferring` is tried first, the other kind when it is refused. The ext4 image is a file in
    /// `imageDirectory`, which must lie outside `directory`.
    /// Call `unmount()` in a `defer`, so the mount goes away when the test fails, too.
    public static func mount(at directory: String, bytes: UInt64, imageDirectory: String,
                             preferring: Kind = .tmpfs) throws -> SmallFileSystem {
        var refusals: [String] = []
        for kind in preferring == .tmpfs ? [Kind.tmpfs, .loopExt4] : [.loopExt4, .tmpfs] {
            do {
                return try mount(kind, at: directory, bytes: bytes, imageDirectory: imageDirectory)
            } catch {
                refusals.append("\(error)")
            }
        }
        throw HarnessError("neither a tmpfs nor a loop-mounted ext4 could be mounted on \(directory):\n" + refusals.joined(separator: "\n"))
    }

    /// Mounts `bytes` of a file system of exactly `kind` on `directory`, as `mount(at:...)` does.
    public static func mount(_ kind: Kind, at directory: String, bytes: UInt64, imageDirectory: String) throws -> SmallFileSystem {
        let result: ShellResult
        switch kind {
        case .tmpfs:
            result = try Shell.run("mount", ["-t", "tmpfs", "-o", "size=\(bytes),mode=0750", "tmpfs", directory])
        case .loopExt4, .loopExt4WholeSeconds, .loopVFAT:
            let image = imageDirectory + "/small-fs-\(UUID().uuidString).img"
            try Shell.run("truncate", ["-s", String(bytes), image]).check()
            var options = "loop"
            switch kind {
            case .loopVFAT:
                try Shell.run("mkfs.vfat", ["-F", "32", image]).check()
                guard let ids = PostgresUser.ids else { throw HarnessError("vfat needs the '\(PostgresUser.name)' user for its owner") }
                options += ",uid=\(ids.uid),gid=\(ids.gid),fmask=0177,dmask=0077,quiet"
            default:
                // -m 0: no blocks reserved for root, so "full" means full for the postgres user too.
                try Shell.run("mkfs.ext4", ["-q", "-F", "-m", "0"] + (kind == .loopExt4WholeSeconds ? ["-I", "128"] : []) + [image]).check()
            }
            result = try Shell.run("mount", ["-o", options, image, directory])
            // The loop device keeps the image open; once it is unmounted, the blocks go too.
            try? FileManager.default.removeItem(atPath: image)
            if result.succeeded { try? FileManager.default.removeItem(atPath: directory + "/lost+found") }
        }
        guard result.succeeded else { throw HarnessError("\(kind.rawValue) could not be mounted on \(directory): \(result)") }
        let fs = SmallFileSystem(mountPoint: directory, kind: kind)
        do {
            try Shell.run("chmod", [kind == .loopVFAT ? "0700" : "0750", directory]).check()
            try PostgresUser.takeOwnership(of: directory)
        } catch {
            fs.unmount()
            throw error
        }
        return fs
    }

    /// Why a file system of `kind` cannot be mounted here; nil when it can. Probed once per kind
    /// (a 64 MiB image: FAT32's smallest is about 33 MiB).
    public static func refusal(_ kind: Kind) -> String? {
        probeLock.lock()
        defer { probeLock.unlock() }
        if let known = probed[kind] { return known }
        let reason = probe(kind)
        probed[kind] = .some(reason)
        return reason
    }

    /// `uname -r`, where the kernel's modules live.
    private static var kernelRelease: String {
        var name = utsname()
        uname(&name)
        return withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    private static let probeLock = NSLock()
    nonisolated(unsafe) private static var probed: [Kind: String?] = [:]

    private static func probe(_ kind: Kind) -> String? {
        guard geteuid() == 0 else { return "mounting \(kind.rawValue) needs root with CAP_SYS_ADMIN" }
        if kind == .loopVFAT {
            // A module the kernel has not loaded may still come when mounting: then the mount below decides.
            let known = (try? String(contentsOfFile: "/proc/filesystems", encoding: .utf8)) ?? ""
            let modules = FileManager.default.fileExists(atPath: "/lib/modules/" + Self.kernelRelease)
            if !known.split(separator: "\n").contains(where: { $0.hasSuffix("\tvfat") }) && !modules {
                return "this kernel has no vfat file system (not in /proc/filesystems, and no modules to load it from)"
            }
            if Shell.resolveExecutable("mkfs.vfat") == "mkfs.vfat" { return "mkfs.vfat is not installed (dosfstools; make deps installs it)" }
        }
        do {
            let probe = try TemporaryProbe()
            defer { probe.remove() }
            try mount(kind, at: probe.directory, bytes: 64 << 20, imageDirectory: probe.root).unmount()
            return nil
        } catch {
            return "mounting \(kind.rawValue) is refused here (it needs root with CAP_SYS_ADMIN and loop devices): \(error)"
        }
    }

    /// Bytes the postgres user can still write.
    public var availableBytes: UInt64 {
        get throws {
            var stats = statvfs()
            guard statvfs(mountPoint, &stats) == 0 else { throw HarnessError("statvfs(\(mountPoint)) failed: errno \(errno)") }
            return UInt64(stats.f_bavail) * UInt64(stats.f_frsize)
        }
    }

    /// Takes all but `free` bytes with ballast files (`ballast-*` in the mount point); with `free`
    /// 0, writes until the file system refuses, so not one block is left.
    public func fill(leaving free: UInt64) throws {
        let ballast = mountPoint + "/ballast-\(UUID().uuidString)"
        if free == 0 {
            _ = try Shell.run("sh", ["-c", "cat /dev/zero > \"$1\" 2>/dev/null; true", "sh", ballast])
            return
        }
        let available = try availableBytes
        guard available > free else { return }
        try Shell.run("fallocate", ["-l", String(available - free), ballast]).check()
    }

    /// Removes every ballast file `fill` wrote.
    public func removeBallast() throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: mountPoint) where name.hasPrefix("ballast-") {
            try FileManager.default.removeItem(atPath: mountPoint + "/" + name)
        }
    }

    /// Unmounts (lazily, so a process still holding a file there cannot keep the mount alive).
    /// Idempotent; never throws, because it runs in `defer`.
    public func unmount() {
        guard mounted else { return }
        mounted = false
        _ = try? Shell.run("umount", ["-l", mountPoint])
    }

    deinit { unmount() }
}

/// A root-owned temporary directory with an empty sub-directory, for the mount probe.
private struct TemporaryProbe {
    let root: String
    var directory: String { root + "/mnt" }

    init() throws {
        root = NSTemporaryDirectory() + "pgkeep-mount-probe-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root + "/mnt", withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
}
