#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage
import PGKeepCore
import PGKeepPostgres

/// One worker's reusable machinery: a read buffer and the worker's `ObjectCodec` (its chains,
/// compression contexts and observers, created on first use and reused for every later file),
/// shared with its block and bundle machinery.
final class Worker {
    let storage: Storage
    /// Where cluster files are read (backup) and compared (delta restore).
    let host: PostgresHost
    let buffer: IOBuffer
    let bufferSize: Int

    let codec: ObjectCodec
    private let pageCheck = PageCheckFilter()
    private var blockWorker: BlockWorker?
    private var bundleWorker: BundleWorker?
    /// Restored files waiting for their `fsync` (see `DeferredSyncs`); `syncDeferred` drains them.
    let deferredSyncs: DeferredSyncs

    /// `deferredSyncLimit`: restored files this worker may keep waiting for a batched `fsync`
    /// (0: each is synced before its job returns). A worker with a nonzero limit must end with
    /// `syncDeferred()` (the mover does this) before anything relies on the files being durable.
    init(storage: Storage, host: PostgresHost, bufferSize: Int, deferredSyncLimit: Int = 0) throws {
        self.storage = storage
        self.host = host
        self.bufferSize = bufferSize
        deferredSyncs = DeferredSyncs(limit: deferredSyncLimit)
        buffer = IOBuffer(size: bufferSize)
        codec = try ObjectCodec(bufferSize: bufferSize)
    }

    func execute(_ job: FileJob) throws -> FileJobResult {
        switch job.operation {
        case .store(let file): return try store(file)
        case .restore(let file): return try restore(file)
        case .storeBlocks(let file): return try blocks().store(file)
        case .restoreBlocks(let file): return try blocks().restore(file)
        case .verify(let file): return .verified(verify(file))
        case .storeBundle(let bundle): return .storedBundle(try bundles().store(bundle))
        case .restoreBundle(let bundle): return .restoredBundle(try bundles().restore(bundle))
        case .verifyBundle(let bundle): return .verifiedBundle(try bundles().verify(bundle))
        case .zeroFill(let file): return try zeroFill(file)
        }
    }

    /// Syncs and closes every restored file still waiting for its `fsync`; on an error the
    /// others are closed unsynced and the error is thrown.
    func syncDeferred() throws {
        do {
            try deferredSyncs.syncAll()
        } catch {
            deferredSyncs.abandon()
            throw error
        }
    }

    /// The bundle machinery, made on first use.
    func bundles() throws -> BundleWorker {
        if let bundleWorker { return bundleWorker }
        let created = try BundleWorker(storage: storage, host: host, buffer: buffer, codec: codec, blocks: try blocks(),
                                       deferredSyncs: deferredSyncs)
        bundleWorker = created
        return created
    }

    /// The block and checksum machinery, made on first use (most jobs never need it).
    func blocks() throws -> BlockWorker {
        if let blockWorker { return blockWorker }
        let created = try BlockWorker(storage: storage, host: host, codec: codec, deferredSyncs: deferredSyncs)
        blockWorker = created
        return created
    }

    /// repository → [count, sha256] → decompress → [count, sha256] → discard, compared with what
    /// the job expects. Every failure becomes a finding; nothing is thrown.
    private func verify(_ file: FileJob.VerifyFile) -> VerifyFinding {
        let source: StorageReader
        do {
            guard let opened = try storage.openRead(file.source) else { return VerifyFinding(status: .missing, detail: "missing") }
            source = opened
        } catch {
            return VerifyFinding(status: .unreadable, detail: "\((error as? PGKeepError)?.message ?? "\(error)")")
        }
        do {
            try codec.readChain(ObjectEncoding(compression: file.compression)).run(from: source, into: DiscardSink(), buffer: buffer)
        } catch {
            // Stored bytes that no longer decompress were changed after they were hashed: report
            // them as damaged, as restore does. Anything else (an I/O error) is "unreadable".
            if let error = error as? PGKeepError, error.code == .compression {
                return VerifyFinding(status: .checksumMismatch, repoSize: codec.stored.size, size: codec.original.size,
                                     detail: "the stored bytes are damaged: \(error.message)")
            }
            return VerifyFinding(status: .unreadable, repoSize: codec.stored.size, size: codec.original.size,
                                 detail: "\((error as? PGKeepError)?.message ?? "\(error)")")
        }
        let repoSize = codec.stored.size
        let size = codec.original.size
        do {
            let repoChecksum = try codec.stored.digest()
            let checksum = try codec.original.digest()
            return file.finding(repoSize: repoSize, repoChecksum: repoChecksum, size: size, checksum: checksum)
        } catch {
            return VerifyFinding(status: .unreadable, repoSize: repoSize, size: size, detail: "\(error)")
        }
    }

    /// cluster file → [count, sha256] → compress → [count, sha256] → repository (atomic).
    private func store(_ file: FileJob.StoreFile) throws -> FileJobResult {
        if let size = file.unchangedSize, let checksum = file.unchangedChecksum {
            // Checksum mode: hash first, store only when the bytes differ.
            switch try blocks().fileMatches(path: file.source, size: size, checksum: checksum, limit: file.limit) {
            case .none: return .vanished
            case .some(true): return .unchanged
            case .some(false): break
            }
        }
        guard let source = try host.openRead(file.source) else { return .vanished }
        pageCheck.check = file.pageCheck
        defer { pageCheck.check = nil }
        let result = try store(source: source, destination: file.destination, limit: file.limit,
                               compression: file.compression, compressLevel: file.compressLevel)
        guard let check = file.pageCheck, let failed = pageCheck.checker?.failedBlocks, !failed.isEmpty,
              case .stored(let size, let checksum, let repoSize, let repoChecksum, _) = result else { return result }
        return .stored(size: size, checksum: checksum, repoSize: repoSize, repoChecksum: repoChecksum,
                       pageErrors: PageRecheck.confirm(failed, in: source, check: check))
    }

    func store(source: ByteSource, destination: StoragePath, limit: UInt64, compression: CompressionType,
               compressLevel: Int) throws -> FileJobResult {
        let chain = try codec.writeChain(ObjectEncoding(compression: compression), level: compressLevel, inspector: pageCheck)
        let writer = try storage.openWrite(destination)
        do {
            try chain.run(from: source, into: writer, buffer: buffer, limit: limit)
            try writer.commit()
        } catch {
            writer.abort()
            throw error
        }
        return .stored(size: codec.original.size, checksum: try codec.original.digest(),
                       repoSize: codec.stored.size, repoChecksum: try codec.stored.digest())
    }

    /// repository → [count, sha256] → decompress → [count, sha256] → cluster file; both checksums
    /// and sizes must match the manifest or the file is removed and the restore fails.
    private func restore(_ file: FileJob.RestoreFile) throws -> FileJobResult {
        let destination = FilePath(file.destination)
        if file.keepMatching, try blocks().fileMatches(path: destination, size: file.size, checksum: file.checksum) == true {
            try BlockWorker.applyAttributes(on: host, destination, mode: file.mode, uid: file.ownerUID, gid: file.ownerGID, mtime: file.mtime)
            return .kept(size: file.size)
        }
        guard let source = try storage.openRead(file.source) else {
            throw PGKeepError(.fileMissing, "stored file '\(storage.describe(file.source))' is missing from the repository",
                              hint: "the backup is damaged; restore another backup with --set")
        }
        // The original's SHA-256 is compared with the manifest before the file is kept, so the
        // codec's frame checksum may be skipped.
        let chain = try codec.readChain(ObjectEncoding(compression: file.compression), frameChecksum: .skip)
        let sink = try host.createFile(destination, mode: file.mode, temporaryFor: nil)
        sink.writeBehind = Self.writeBehind
        do {
            try chain.run(from: source, into: sink, buffer: buffer)
            try verify(file)
        } catch {
            try? sink.close()
            _ = try? host.remove(destination)
            if let error = error as? PGKeepError, error.code == .compression {
                throw PGKeepError(.checksumMismatch, "stored file '\(storage.describe(file.source))' is damaged: \(error.message)",
                                  hint: "the backup is damaged; restore another backup with --set")
            }
            throw error
        }
        // open(2) applies the umask; set the recorded mode exactly. Attributes are set before the
        // fsync, so that it makes them durable with the data.
        try BlockWorker.applyAttributes(on: host, destination, mode: file.mode, uid: file.ownerUID, gid: file.ownerGID, mtime: file.mtime)
        try deferredSyncs.add(sink)
        return .restored(size: codec.original.size)
    }

    /// A file of a database left out of a selective restore: created empty and extended to its
    /// size, so the file system allocates nothing and every byte reads as zero. Synced like every
    /// restored file: recovery writes into it.
    private func zeroFill(_ file: FileJob.ZeroFill) throws -> FileJobResult {
        let destination = FilePath(file.destination)
        let sink = try host.createFile(destination, mode: file.mode, temporaryFor: nil)
        do {
            try sink.extend(to: file.size)
            try BlockWorker.applyAttributes(on: host, destination, mode: file.mode, uid: file.ownerUID, gid: file.ownerGID, mtime: file.mtime)
        } catch {
            try? sink.close()
            _ = try? host.remove(destination)
            throw error
        }
        try deferredSyncs.add(sink)
        return .zeroFilled(size: file.size)
    }

    /// Restored files start their writeback every 8 MiB while they are written (see
    /// `FileSink.startWriteback`): large enough for big sequential I/Os, small enough that the
    /// disk starts early and dirty pages never pile up.
    static let writeBehind: UInt64 = 8 << 20

    private func verify(_ file: FileJob.RestoreFile) throws {
        let where_ = storage.describe(file.source)
        let hint = "the backup is damaged; restore another backup with --set"
        guard codec.stored.size == file.repoSize, try codec.stored.digest() == file.repoChecksum else {
            throw PGKeepError(.checksumMismatch,
                              "stored file '\(where_)' does not match the manifest: \(codec.stored.size) bytes with SHA-256 \(try codec.stored.digest().hex), expected \(file.repoSize) bytes with \(file.repoChecksum.hex)",
                              hint: hint)
        }
        guard codec.original.size == file.size, try codec.original.digest() == file.checksum else {
            throw PGKeepError(.checksumMismatch,
                              "restored '\(file.destination)' from '\(where_)' does not match the manifest: \(codec.original.size) bytes with SHA-256 \(try codec.original.digest().hex), expected \(file.size) bytes with \(file.checksum.hex)",
                              hint: hint)
        }
    }
}
