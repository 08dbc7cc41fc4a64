import SystemPackage
import PGKeepCore
import PGKeepPostgres

/// One worker's machinery for bundles (repo-layout.md §3.6), created on first use and reused for
/// every bundle the worker handles: the filter chains (one per compression), counters and hashers.
///
/// - Store: each file runs through count → SHA-256 → page check → compress → count → SHA-256 and is
///   appended to the bundle as one frame; the bundle object itself is one atomic storage write,
///   hashed as a whole on the way out. A crash leaves no bundle, never half of one.
/// - Restore and verify: the bundle is read once, front to back (storage readers are sequential);
///   the bytes between the frames a job needs are skipped by reading. Each frame is checked
///   against its stored size and SHA-256, then decompressed and checked against the original's.
final class BundleWorker {
    let storage: Storage
    let host: PostgresHost
    let buffer: IOBuffer
    /// The worker's codec: each frame's chains and observers.
    private let codec: ObjectCodec
    private let blocks: BlockWorker
    private let deferredSyncs: DeferredSyncs

    private let pageCheck = PageCheckFilter()
    /// The SHA-256 of the bundle object as a whole, over every frame.
    private let objectHasher: SHA256Hasher

    init(storage: Storage, host: PostgresHost, buffer: IOBuffer, codec: ObjectCodec, blocks: BlockWorker, deferredSyncs: DeferredSyncs) throws {
        self.storage = storage
        self.host = host
        self.buffer = buffer
        self.codec = codec
        self.blocks = blocks
        self.deferredSyncs = deferredSyncs
        objectHasher = try SHA256Hasher()
    }

    private static let damagedHint = "the backup is damaged; restore another backup with --set"

    // MARK: Store

    func store(_ job: FileJob.StoreBundle) throws -> BundleStoreResult {
        var result = BundleStoreResult(bundle: job.bundle)
        let writer = try storage.openWrite(job.destination)
        let object = ObjectSink(writer: writer, hasher: objectHasher)
        do {
            try objectHasher.reset()
            for file in job.files {
                result.files.append(.init(id: file.id, outcome: try store(file, into: object)))
            }
            guard result.files.contains(where: { if case .stored = $0.outcome { return true } else { return false } }) else {
                // Every file was unchanged or gone: no object at all.
                writer.abort()
                return result
            }
            try writer.commit()
        } catch {
            writer.abort()
            throw error
        }
        result.repoSize = object.count
        result.repoChecksum = try objectHasher.finalize()
        return result
    }

    private func store(_ file: FileJob.BundledFile, into object: ObjectSink) throws -> BundledFileOutcome {
        if let size = file.unchangedSize, let checksum = file.unchangedChecksum {
            switch try blocks.fileMatches(path: file.source, size: size, checksum: checksum, limit: file.limit) {
            case .none: return .vanished
            case .some(true): return .unchanged
            case .some(false): break
            }
        }
        guard let source = try host.openRead(file.source) else { return .vanished }
        pageCheck.check = file.pageCheck
        defer { pageCheck.check = nil }
        let offset = object.count
        try codec.writeChain(ObjectEncoding(compression: file.compression), level: file.compressLevel, inspector: pageCheck)
            .run(from: source, into: object, buffer: buffer, limit: file.limit)
        var pageErrors: [UInt32] = []
        if let check = file.pageCheck, let failed = pageCheck.checker?.failedBlocks, !failed.isEmpty {
            pageErrors = PageRecheck.confirm(failed, in: source, check: check)
        }
        return .stored(offset: offset, size: codec.original.size, checksum: try codec.original.digest(),
                       repoSize: codec.stored.size, repoChecksum: try codec.stored.digest(), pageErrors: pageErrors)
    }

    // MARK: Restore

    func restore(_ job: FileJob.RestoreBundle) throws -> [BundledRestoreOutcome] {
        var outcomes: [BundledRestoreOutcome] = []
        // Opened on first need: a delta restore that keeps every file of a bundle never reads it.
        var reader: BundleReader?
        for item in job.files {
            let file = item.file
            let destination = FilePath(file.destination)
            if file.keepMatching, try blocks.fileMatches(path: destination, size: file.size, checksum: file.checksum) == true {
                try BlockWorker.applyAttributes(on: host, destination, mode: file.mode, uid: file.ownerUID, gid: file.ownerGID, mtime: file.mtime)
                outcomes.append(.init(id: item.id, size: file.size, kept: true))
                continue
            }
            // Read through a small gap; past a large one (a delta restore keeping most files), or
            // back to an earlier frame, a new ranged read starts at the frame itself.
            if reader == nil || reader!.position > item.offset || item.offset - reader!.position > storage.rangedReadGap {
                guard let opened = try storage.openRead(job.source, range: item.offset..<UInt64.max) else {
                    throw PGKeepError(.fileMissing, "stored bundle '\(storage.describe(job.source))' is missing from the repository",
                                      hint: Self.damagedHint)
                }
                reader = BundleReader(opened, hasher: nil, position: item.offset)
            }
            try restore(item, from: reader!, bundle: job.source)
            outcomes.append(.init(id: item.id, size: file.size, kept: false))
        }
        return outcomes
    }

    private func restore(_ item: FileJob.BundledRestore, from reader: BundleReader, bundle: StoragePath) throws {
        let file = item.file
        let where_ = "'\(file.destination)' (offset \(item.offset) of bundle '\(storage.describe(bundle))')"
        guard try reader.skip(to: item.offset, buffer: buffer) else {
            throw PGKeepError(.checksumMismatch, "stored bundle '\(storage.describe(bundle))' ends before offset \(item.offset), where \(where_) starts",
                              hint: Self.damagedHint)
        }
        let destination = FilePath(file.destination)
        let sink = try host.createFile(destination, mode: file.mode, temporaryFor: nil)
        do {
            try codec.readChain(ObjectEncoding(compression: file.compression), frameChecksum: .skip)
                .run(from: reader, into: sink, buffer: buffer, limit: file.repoSize)
            guard codec.stored.size == file.repoSize, try codec.stored.digest() == file.repoChecksum else {
                throw PGKeepError(.checksumMismatch,
                                  "the stored frame of \(where_) does not match the manifest: \(codec.stored.size) bytes with SHA-256 \(try codec.stored.digest().hex), expected \(file.repoSize) bytes with \(file.repoChecksum.hex)",
                                  hint: Self.damagedHint)
            }
            guard codec.original.size == file.size, try codec.original.digest() == file.checksum else {
                throw PGKeepError(.checksumMismatch,
                                  "restored \(where_) does not match the manifest: \(codec.original.size) bytes with SHA-256 \(try codec.original.digest().hex), expected \(file.size) bytes with \(file.checksum.hex)",
                                  hint: Self.damagedHint)
            }
        } catch {
            try? sink.close()
            _ = try? host.remove(destination)
            if let error = error as? PGKeepError, error.code == .compression {
                throw PGKeepError(.checksumMismatch, "the stored frame of \(where_) is damaged: \(error.message)", hint: Self.damagedHint)
            }
            throw error
        }
        // Attributes before the fsync, which makes them durable with the data.
        try BlockWorker.applyAttributes(on: host, destination, mode: file.mode, uid: file.ownerUID, gid: file.ownerGID, mtime: file.mtime)
        try deferredSyncs.add(sink)
    }

    // MARK: Verify

    /// Every failure becomes a finding; only a programming error throws.
    func verify(_ job: FileJob.VerifyBundle) throws -> BundleVerifyFinding {
        func all(_ finding: VerifyFinding) -> BundleVerifyFinding {
            BundleVerifyFinding(whole: finding, frames: job.frames.map { _ in finding })
        }
        let opened: StorageReader
        do {
            guard let reader = try storage.openRead(job.source) else { return all(VerifyFinding(status: .missing, detail: "missing")) }
            opened = reader
        } catch {
            return all(VerifyFinding(status: .unreadable, detail: (error as? PGKeepError)?.message ?? "\(error)"))
        }
        try objectHasher.reset()
        let reader = BundleReader(opened, hasher: objectHasher)
        var frames: [VerifyFinding] = []
        for (index, frame) in job.frames.enumerated() {
            if reader.position > frame.offset {
                frames.append(VerifyFinding(status: .unreadable, detail: "its frame at offset \(frame.offset) overlaps the frame before it"))
                continue
            }
            do {
                guard try reader.skip(to: frame.offset, buffer: buffer) else {
                    frames.append(VerifyFinding(status: .sizeMismatch, detail: "the bundle ends before offset \(frame.offset)"))
                    continue
                }
                frames.append(try verify(frame, from: reader))
            } catch {
                // A read error: the rest of the bundle cannot be judged.
                let finding = VerifyFinding(status: .unreadable, detail: (error as? PGKeepError)?.message ?? "\(error)")
                frames += job.frames[index...].map { _ in finding }
                return BundleVerifyFinding(whole: finding, frames: frames)
            }
        }
        do {
            // The rest of the object, so the whole is hashed and sized.
            _ = try reader.skip(to: .max, buffer: buffer)
        } catch {
            return BundleVerifyFinding(whole: VerifyFinding(status: .unreadable, repoSize: reader.position,
                                                            detail: (error as? PGKeepError)?.message ?? "\(error)"), frames: frames)
        }
        let repoSize = reader.position
        let repoChecksum = try objectHasher.finalize()
        var whole = VerifyFinding(status: .ok, repoSize: repoSize, size: repoSize)
        if let expected = job.repoSize, expected != repoSize {
            whole = VerifyFinding(status: .sizeMismatch, repoSize: repoSize, size: repoSize, detail: "stored size \(repoSize) bytes, expected \(expected)")
        } else if let expected = job.repoChecksum, expected != repoChecksum {
            whole = VerifyFinding(status: .checksumMismatch, repoSize: repoSize, size: repoSize,
                                  detail: "stored SHA-256 \(repoChecksum.hex), expected \(expected.hex)")
        }
        return BundleVerifyFinding(whole: whole, frames: frames)
    }

    /// Reads one frame (the reader stands at its offset). Damage is a finding; a read error throws.
    private func verify(_ frame: FileJob.VerifyBundle.Frame, from reader: BundleReader) throws -> VerifyFinding {
        let file = frame.file
        do {
            try codec.readChain(ObjectEncoding(compression: file.compression))
                .run(from: reader, into: DiscardSink(), buffer: buffer, limit: file.repoSize ?? 0)
        } catch {
            guard let error = error as? PGKeepError, error.code == .compression else { throw error }
            // Decompression failed: skip what remains of the frame so the next one is found.
            if let repoSize = file.repoSize { _ = try reader.skip(to: frame.offset + repoSize, buffer: buffer) }
            return VerifyFinding(status: .checksumMismatch, repoSize: codec.stored.size, size: codec.original.size,
                                 detail: "the stored frame is damaged: \(error.message)")
        }
        let repoSize = codec.stored.size
        let size = codec.original.size
        let repoChecksum = try codec.stored.digest()
        let checksum = try codec.original.digest()
        return file.finding(repoSize: repoSize, repoChecksum: repoChecksum, size: size, checksum: checksum,
                            sizeNote: " (the bundle is shorter)")
    }
}

/// A sequential reader over a bundle that knows its position, skips forward by reading, and
/// optionally hashes every byte it passes (verify proves the whole object in the same read).
final class BundleReader: ByteSource {
    let reader: StorageReader
    let hasher: SHA256Hasher?
    private(set) var position: UInt64 = 0

    /// `position`: the offset in the bundle the reader starts at (a ranged read's start).
    init(_ reader: StorageReader, hasher: SHA256Hasher?, position: UInt64 = 0) {
        self.reader = reader
        self.hasher = hasher
        self.position = position
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try reader.read(into: buffer)
        if n > 0 {
            try hasher?.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            position += UInt64(n)
        }
        return n
    }

    /// Reads forward to `offset`; false when the object ends first.
    func skip(to offset: UInt64, buffer: IOBuffer) throws -> Bool {
        while position < offset {
            let want = Int(min(UInt64(buffer.count), offset - position))
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<want]))
            if n == 0 { return false }
        }
        return true
    }
}
