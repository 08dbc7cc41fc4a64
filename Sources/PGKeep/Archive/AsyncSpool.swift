#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PGKeepCore
import PGKeepRepository

/// The local spool of asynchronous archiving (`--spool-path`), per stanza:
///
///     <spool-path>/archive/<stanza>/out/<wal>.ok      archive-push: <wal> is durable in the repository
///                                                      (empty), or was dropped by --archive-push-queue-max
///                                                      (holds "dropped", the message and the hint)
///     <spool-path>/archive/<stanza>/out/<start>-<stop>.dropped  archive-push: a drop record (DroppedWAL)
///                                                      not yet written to the repository
///     <spool-path>/archive/<stanza>/out/<wal>.error   archive-push: the background push failed (code, message, hint)
///     <spool-path>/archive/<stanza>/in/<wal>-<sha256>  archive-get: prefetched, checksum-verified, ready to hand over
///     <spool-path>/archive/<stanza>/in/<wal>.partial   archive-get: being prefetched
///
/// The spool only ever holds acknowledgements and copies: the repository stays the single source
/// of truth, so losing the spool loses nothing (the next call pushes or fetches again). A `.ok` is
/// created only after the segment's own commit to the repository returned (fsync, rename, fsync
/// directory), so any `.ok` anyone sees, before or after a crash, means the segment is durable.
/// `.error` files carry a message and are written atomically and durably.
public struct AsyncSpool: Sendable {
    public let outDirectory: String
    public let inDirectory: String

    public init(spoolPath: String, stanza: String) {
        let base = Posix.join(spoolPath, "archive/\(stanza)")
        outDirectory = Posix.join(base, "out")
        inDirectory = Posix.join(base, "in")
    }

    func okFile(_ wal: String) -> String { Posix.join(outDirectory, wal + ".ok") }
    func errorFile(_ wal: String) -> String { Posix.join(outDirectory, wal + ".error") }
    /// A prefetched file is named with the SHA-256 the fetch verified, so the hand-over can prove it
    /// is still those bytes: the spool is a local disk no checksum elsewhere covers.
    func prefetched(_ wal: String, checksum: SHA256Digest) -> String { Posix.join(inDirectory, wal + "-" + checksum.hex) }
    func prefetching(_ wal: String) -> String { Posix.join(inDirectory, wal + ".partial") }

    /// The WAL name and checksum of a prefetched file's name; nil for anything else in the spool.
    static func parsePrefetched(_ entry: String) -> (wal: String, checksum: SHA256Digest)? {
        guard let dash = entry.lastIndex(of: "-"), let checksum = SHA256Digest(hex: String(entry[entry.index(after: dash)...])) else {
            return nil
        }
        return (String(entry[..<dash]), checksum)
    }

    /// The prefetched copy of `wal`, if there is one.
    func findPrefetched(_ wal: String) throws -> (path: String, checksum: SHA256Digest)? {
        for entry in try Posix.listDirectory(inDirectory) ?? [] {
            if let parsed = Self.parsePrefetched(entry), parsed.wal == wal { return (Posix.join(inDirectory, entry), parsed.checksum) }
        }
        return nil
    }

    /// What the background pusher recorded for `wal`, if anything.
    enum PushStatus {
        case ok
        /// Acknowledged without being stored (`--archive-push-queue-max`): PostgreSQL hears success,
        /// its server log hears the error.
        case dropped(message: String, hint: String?)
        case failed(PGKeepError)
    }

    func pushStatus(_ wal: String) throws -> PushStatus? {
        if let status = try Posix.lstat(okFile(wal)) {
            // The common case is an empty `.ok`: one lstat, no read.
            guard status.size > 0, let bytes = try? out.readSmallFile(try StoragePath(wal + ".ok"), limit: 64 << 10) else { return .ok }
            let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard lines.first == Self.droppedTag else { return .ok }
            return .dropped(message: lines.count > 1 ? lines[1] : "\(wal) was dropped without being archived",
                            hint: lines.count > 2 && !lines[2].isEmpty ? lines[2] : nil)
        }
        guard let bytes = try? out.readSmallFile(try StoragePath(wal + ".error"), limit: 64 << 10) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        // "<code>\n<message>\n<hint>": written by `recordFailure`.
        let lines = text.split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        let code = lines.first.flatMap { Int32($0) }.flatMap { ErrorCode(rawValue: $0) } ?? .internal
        let message = lines.count > 1 ? lines[1] : "background archive-push failed"
        let hint = lines.count > 2 && !lines[2].isEmpty ? lines[2] : nil
        return .failed(PGKeepError(code, "asynchronous archive-push of \(wal) failed: \(message)", hint: hint))
    }

    /// Records that `wal` is durable in the repository; call only after its push returned.
    ///
    /// The `.ok` is an empty file created in place, not synced: its durability would buy nothing.
    /// It can only exist once the segment is durable, and empty it cannot be torn; if a crash loses
    /// it, PostgreSQL, which has not marked the segment done, asks again and the next pusher finds
    /// an identical duplicate. This spares every segment a temporary file, a rename and two fsyncs.
    func recordSuccess(_ wal: String) throws {
        do {
            try Posix.createEmptyFile(okFile(wal), mode: 0o640)
        } catch {
            // The first status ever written: the directory may not exist yet.
            guard try Posix.lstat(outDirectory) == nil else { throw error }
            try Posix.mkdirs(outDirectory)
            try Posix.createEmptyFile(okFile(wal), mode: 0o640)
        }
        _ = try Posix.unlink(errorFile(wal))
    }

    static let droppedTag = "dropped"

    /// Acknowledges `wal` as done without it being stored: a `.ok` holding "dropped", the message
    /// and the hint, which the call PostgreSQL makes logs. Written atomically, unlike an empty
    /// `.ok`: a torn one must never read as an empty, "stored" acknowledgement.
    func recordDropped(_ wal: String, message: String, hint: String) throws {
        let oneLine = { (text: String) in text.split(separator: "\n").joined(separator: " ") }
        let text = "\(Self.droppedTag)\n\(oneLine(message))\n\(oneLine(hint))"
        try ensureOutDirectory()
        try out.writeSmallFile(try StoragePath(wal + ".ok"), Array(text.utf8))
        _ = try Posix.unlink(errorFile(wal))
    }

    /// Keeps a drop record until the repository has it: the decision to drop cannot wait for a
    /// repository that is the reason the queue grew.
    func savePendingDrop(_ record: DroppedWAL) throws {
        try ensureOutDirectory()
        try out.writeSmallFile(try StoragePath(record.fileName + ".dropped"), try SealedFile.seal(record))
    }

    /// The drop records not yet in the repository, with their spool file names. A damaged one
    /// (the spool is a local disk no checksum elsewhere covers) is returned as nil record.
    func pendingDrops() throws -> [(file: String, record: DroppedWAL?)] {
        var result: [(String, DroppedWAL?)] = []
        for entry in try Posix.listDirectory(outDirectory) ?? [] where entry.hasSuffix(".dropped") {
            let bytes = try out.readSmallFile(try StoragePath(entry), limit: 64 << 10)
            result.append((entry, bytes.flatMap { try? SealedFile.open(DroppedWAL.self, from: $0, name: Posix.join(outDirectory, entry)) }))
        }
        return result.sorted { $0.0 < $1.0 }
    }

    func removePendingDrop(_ file: String) throws {
        _ = try Posix.unlink(Posix.join(outDirectory, file))
    }

    /// Writes the pending drop records into `push`'s repository, each removed from the spool once
    /// the repository has it. Throws the repository's error; what was not written stays pending.
    /// Costs one listing of the spool when nothing is pending.
    func flushPendingDrops(into push: ArchivePush) throws {
        let pending = try pendingDrops()
        guard !pending.isEmpty else { return }
        let archiveID = try InfoFiles.loadArchiveInfo(push.storage, push.layout, warn: push.log.warn).current.archiveID
        for (file, record) in pending {
            guard let record else {
                push.log.error("the pending drop record '\(Posix.join(outDirectory, file))' is damaged; removed (the segments it named were dropped, and the repository has no object for them)")
                try removePendingDrop(file)
                continue
            }
            try record.save(storage: push.storage, layout: push.layout, archiveID: archiveID)
            try removePendingDrop(file)
            push.log.info("recorded the drop of \(record.start)...\(record.stop) in '\(push.storage.describe(try DroppedWAL.directory(layout: push.layout, archiveID: archiveID)))'")
        }
    }

    private func ensureOutDirectory() throws {
        if try Posix.lstat(outDirectory) == nil { try Posix.mkdirs(outDirectory) }
    }

    func recordFailure(_ wal: String, _ error: Error) throws {
        let failure = (error as? PGKeepError) ?? PGKeepError(.internal, "\(error)")
        let oneLine = { (text: String) in text.split(separator: "\n").joined(separator: " ") }
        let text = "\(failure.code.rawValue)\n\(oneLine(failure.message))\n\(oneLine(failure.hint ?? ""))"
        try out.writeSmallFile(try StoragePath(wal + ".error"), Array(text.utf8))
    }

    /// The acknowledgements directory as storage: its atomic write (temp, fsync, rename, fsync the
    /// directory) is exactly what a durable `.ok` needs. Always POSIX: the spool is a local directory
    /// on the database host, never the repository, whatever driver the repository uses.
    private var out: PosixStorage { PosixStorage(root: outDirectory) }
}

/// Runs `body` in a detached child process (fork, new session, standard streams on /dev/null) and
/// returns in the parent at once. Called only while the process is single-threaded, which keeps
/// fork without exec safe; the child never returns into the caller.
enum Detached {
    static func spawn(_ body: () -> Int32) throws {
        let pid = fork()
        if pid < 0 {
            throw PGKeepError.system(.internal, "unable to fork the background process", path: "", errno: errno)
        }
        if pid > 0 {
            // Reap the intermediate child at once; the grandchild is adopted by init.
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            return
        }
        // Child: a second fork so the worker is not our child (no zombie if we exit first).
        _ = setsid()
        let grandchild = fork()
        if grandchild != 0 { _exit(0) }
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            _ = dup2(null, 0); _ = dup2(null, 1); _ = dup2(null, 2)
            if null > 2 { close(null) }
        }
        _exit(body())
    }
}
