#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// One worker's machinery for block-incremental files and checksum comparisons: a block buffer,
/// hashers and one codec chain per compression, created once and reused for every file.
///
/// Storing (`store`): the file is read one block at a time into a fixed buffer. Each block's
/// hash (XXH3-128, or SHA-256 in a chain that began with it) is compared with the prior map's; an equal block is referenced where it already lies,
/// a different one is compressed as one frame and appended to this backup's block object. The
/// new map is written after the object is durable. A file whose every block and size match the
/// prior is reported `.unchanged` and nothing is kept.
///
/// Restoring (`restore`): the map is loaded and checked against the manifest, then the file is
/// written block by block from the objects the map names. One reader per object moves forward
/// only (skipping by reading), each block is decompressed and checked against its size, and
/// the whole file against the manifest's size and SHA-256.
final class BlockWorker {
    let storage: Storage
    let host: PostgresHost
    let bufferSize: Int
    private var blockBuffer: IOBuffer?
    private let skipBuffer: IOBuffer
    private let fileHasher: SHA256Hasher
    private let xxh3Hasher: BlockHasher
    private var sha256BlockHasher: BlockHasher?
    private let objectHasher: SHA256Hasher
    /// The worker's codec, for block frames (no observers: blocks are hashed by the block map).
    private let codec: ObjectCodec
    /// Where restored files go for their `fsync` (limit 0, the default: synced at once).
    let deferredSyncs: DeferredSyncs

    init(storage: Storage, host: PostgresHost, codec: ObjectCodec, deferredSyncs: DeferredSyncs = DeferredSyncs(limit: 0)) throws {
        self.storage = storage
        self.host = host
        self.codec = codec
        bufferSize = codec.bufferSize
        self.deferredSyncs = deferredSyncs
        skipBuffer = IOBuffer(size: bufferSize)
        fileHasher = try SHA256Hasher()
        xxh3Hasher = try BlockHasher(kind: .xxh3_128)
        objectHasher = try SHA256Hasher()
    }

    /// A block worker with a codec of its own (tests; a worker shares its codec).
    convenience init(storage: Storage, host: PostgresHost, bufferSize: Int) throws {
        try self.init(storage: storage, host: host, codec: try ObjectCodec(bufferSize: bufferSize))
    }

    /// The hasher for a map of `kind`: a chain keeps the kind its first map used.
    private func blockHasher(_ kind: BlockHashKind) throws -> BlockHasher {
        switch kind {
        case .xxh3_128: return xxh3Hasher
        case .sha256:
            if let hasher = sha256BlockHasher { return hasher }
            let hasher = try BlockHasher(kind: .sha256)
            sha256BlockHasher = hasher
            return hasher
        }
    }

    private func buffer(blockSize: Int) -> IOBuffer {
        if let buffer = blockBuffer, buffer.count == blockSize { return buffer }
        let buffer = IOBuffer(size: blockSize)
        blockBuffer = buffer
        return buffer
    }

    // MARK: Whole-file comparison

    /// Whether the file at `path` has exactly `size` bytes (reading at most `limit`) with SHA-256
    /// `checksum`. nil when the file does not exist. The size is checked first, from `fstat`.
    func fileMatches(path: FilePath, size: UInt64, checksum: SHA256Digest, limit: UInt64? = nil) throws -> Bool? {
        guard let source = try host.openRead(path) else { return nil }
        let status = try source.status()
        guard status.kind == .file else { return false }
        if limit == nil, status.size != size { return false }
        try fileHasher.reset()
        var total: UInt64 = 0
        while true {
            var want = skipBuffer.count
            if let limit { want = Int(min(UInt64(want), limit - total)) }
            if want == 0 { break }
            let n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: skipBuffer.bytes[0..<want]))
            if n == 0 { break }
            total += UInt64(n)
            if total > size { return false }
            try fileHasher.update(UnsafeRawBufferPointer(rebasing: skipBuffer.bytes[0..<n]))
        }
        guard total == size else { return false }
        return try fileHasher.finalize() == checksum
    }

    /// Whether the file at `path` holds exactly the blocks `map` describes: its size from `fstat`,
    /// then each block's XXH3-128 against the map. nil when the file does not exist or the map
    /// has SHA-256 block hashes (the caller then compares the whole file's SHA-256).
    ///
    /// This is how `restore --delta` decides to keep a block-incremental file: XXH3 runs at more
    /// than ten times SHA-256's speed, so checking an unchanged multi-gigabyte cluster is bounded
    /// by reading it. A 128-bit hash per 128 KiB block leaves an accidental match of different
    /// content out of practical reach; what was written is still checked against SHA-256.
    func blocksMatch(path: FilePath, map: BlockMap) throws -> Bool? {
        guard map.hashKind == .xxh3_128 else { return nil }
        guard let source = try host.openRead(path) else { return nil }
        let status = try source.status()
        guard status.kind == .file, status.size == map.fileSize else { return false }
        let block = buffer(blockSize: map.blockSize)
        for (index, expected) in map.blocks.enumerated() {
            let length = BlockMap.blockLength(index: index, blockSize: map.blockSize, fileSize: map.fileSize)
            let bytes = UnsafeMutableRawBufferPointer(rebasing: block.bytes[0..<length])
            guard try source.read(into: bytes) == length else { return false }  // shrank meanwhile
            guard try xxh3Hasher.digest(UnsafeRawBufferPointer(bytes)) == expected.checksum else { return false }
        }
        return true
    }

    // MARK: Store

    func store(_ job: FileJob.StoreBlocks) throws -> FileJobResult {
        guard let source = try host.openRead(job.source) else { return .vanished }
        var prior: BlockMap?
        if let priorJob = job.prior {
            let loaded = try loadMap(priorJob.map, size: priorJob.mapSize, checksum: priorJob.mapChecksum)
            // A map in another block size cannot be compared block for block: store everything.
            if loaded.blockSize == job.blockSize { prior = loaded }
        }
        // New chains hash blocks with XXH3-128; a chain begun with SHA-256 maps keeps SHA-256 so its
        // blocks stay comparable until the next full backup.
        let blockHasher = try blockHasher(prior?.hashKind ?? .xxh3_128)
        var map = BlockMap(hashKind: blockHasher.kind, blockSize: job.blockSize)
        let own = try map.referenceIndex(.init(label: job.label, compression: job.compression))
        let chain = try codec.writeChain(ObjectEncoding(compression: job.compression), level: job.compressLevel, observing: [])
        let block = buffer(blockSize: job.blockSize)
        let writer = try storage.openWrite(job.blockObject)
        let object = ObjectSink(writer: writer, hasher: objectHasher)
        do {
            try objectHasher.reset()
            try fileHasher.reset()
            var total: UInt64 = 0
            var pages = job.pageCheck.map { PageChecker(startLSN: $0.startLSN, segment: $0.segment, relsegSize: $0.relsegSize) }
            var changedBytes: UInt64 = 0
            var changedBlocks = 0
            while total < job.limit {
                let want = Int(min(UInt64(job.blockSize), job.limit - total))
                let n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: block.bytes[0..<want]))
                if n == 0 { break }
                let bytes = UnsafeRawBufferPointer(rebasing: block.bytes[0..<n])
                try fileHasher.update(bytes)
                pages?.update(bytes)
                let digest = try blockHasher.digest(bytes)
                let index = map.blocks.count
                if let prior, index < prior.blocks.count, prior.blocks[index].checksum == digest,
                   BlockMap.blockLength(index: index, blockSize: prior.blockSize, fileSize: prior.fileSize) == n {
                    var reused = prior.blocks[index]
                    reused.reference = try map.referenceIndex(prior.references[Int(reused.reference)])
                    map.blocks.append(reused)
                } else {
                    let offset = object.count
                    try chain.reset()
                    try chain.writeLast(bytes, into: object)
                    map.blocks.append(.init(reference: own, offset: offset, length: UInt32(object.count - offset), checksum: digest))
                    changedBytes += UInt64(n)
                    changedBlocks += 1
                }
                total += UInt64(n)
                if n < want { break }  // end of file
            }
            map.fileSize = total
            let checksum = try fileHasher.finalize()
            if changedBlocks == 0, let priorJob = job.prior, priorJob.size == total, priorJob.checksum == checksum {
                writer.abort()
                return .unchanged
            }
            if changedBlocks == 0, let size = job.unchangedSize, let expected = job.unchangedChecksum, size == total, expected == checksum {
                writer.abort()
                return .unchanged
            }
            try writer.commit()
            let repoChecksum = try objectHasher.finalize()
            // References no block uses any more are dropped before the map is written.
            map = Self.compacted(map)
            let mapBytes = map.encoded()
            try storage.writeSmallFile(job.blockMap, mapBytes)
            return .storedBlocks(BlockStoreResult(
                size: total, checksum: checksum, repoSize: object.count, repoChecksum: repoChecksum,
                mapSize: UInt64(mapBytes.count), mapChecksum: try SHA256Digest.of(mapBytes),
                changedBytes: changedBytes, changedBlocks: changedBlocks, blockSize: job.blockSize,
                otherLabels: map.usedLabels.filter { $0 != job.label },
                pageErrors: job.pageCheck.map { PageRecheck.confirm(pages?.failedBlocks ?? [], in: source, check: $0) } ?? []))
        } catch {
            writer.abort()
            throw error
        }
    }

    /// The map with only the references its blocks use, in first-use order.
    static func compacted(_ map: BlockMap) -> BlockMap {
        var result = BlockMap(hashKind: map.hashKind, blockSize: map.blockSize, fileSize: map.fileSize)
        var remap: [UInt16: UInt16] = [:]
        for block in map.blocks {
            var copy = block
            if let index = remap[block.reference] {
                copy.reference = index
            } else {
                let index = UInt16(result.references.count)
                result.references.append(map.references[Int(block.reference)])
                remap[block.reference] = index
                copy.reference = index
            }
            result.blocks.append(copy)
        }
        return result
    }

    // MARK: Restore

    func restore(_ job: FileJob.RestoreBlocks) throws -> FileJobResult {
        let map = try loadMap(job.map, size: job.mapSize, checksum: job.mapChecksum)
        let hint = "the backup is damaged; restore another backup with --set"
        guard map.fileSize == job.size else {
            throw PGKeepError(.checksumMismatch, "block map '\(storage.describe(job.map))' describes \(map.fileSize) bytes, the manifest \(job.size)",
                              hint: hint)
        }
        let destination = FilePath(job.destination)
        if job.keepMatching,
           try blocksMatch(path: destination, map: map)
               ?? fileMatches(path: destination, size: job.size, checksum: job.checksum) == true {
            try Self.applyAttributes(on: host, destination, mode: job.mode, uid: job.ownerUID, gid: job.ownerGID, mtime: job.mtime)
            return .kept(size: job.size)
        }
        let layout = try RepositoryLayout(stanza: job.stanza)
        let sink = try host.createFile(destination, mode: job.mode, temporaryFor: nil)
        sink.writeBehind = Worker.writeBehind
        // One SHA-256 pass: the whole file's checksum (checked before the file is accepted) covers
        // every block; per-block checksums would hash every byte twice for no extra safety.
        let check = BlockCheckSink(target: sink, fileHasher: fileHasher, blockHasher: nil)
        var readers: [Int: (reader: StorageReader, path: StoragePath, position: UInt64)] = [:]
        do {
            try fileHasher.reset()
            for (index, block) in map.blocks.enumerated() {
                let reference = map.references[Int(block.reference)]
                let objectPath = try layout.blockObject(label: reference.label, name: job.name)
                var entry = try positionedReader(readers[Int(block.reference)], at: block.offset, in: objectPath, hint: hint)
                check.count = 0
                // The reassembled file's SHA-256 is compared with the manifest before it is kept,
                // so the codec's frame checksum may be skipped.
                let read = try codec.readChain(ObjectEncoding(compression: reference.compression), observing: [], frameChecksum: .skip).run(from: entry.reader, into: check, buffer: skipBuffer,
                                                                         limit: UInt64(block.length))
                guard read == UInt64(block.length) else { throw truncated(objectPath, hint) }
                entry.position += read
                readers[Int(block.reference)] = entry
                let expected = BlockMap.blockLength(index: index, blockSize: map.blockSize, fileSize: map.fileSize)
                guard check.count == expected else {
                    throw PGKeepError(.checksumMismatch,
                                      "block \(index) of '\(job.name)' in '\(storage.describe(objectPath))' has \(check.count) bytes, its block map \(expected)",
                                      hint: hint)
                }
            }
            let checksum = try fileHasher.finalize()
            guard sink.written == job.size, checksum == job.checksum else {
                let objects = readers.values.map { storage.describe($0.path) }.sorted().joined(separator: "', '")
                throw PGKeepError(.checksumMismatch,
                                  "restored '\(job.destination)' from its blocks in '\(objects)' does not match the manifest: \(sink.written) bytes with SHA-256 \(checksum.hex), expected \(job.size) bytes with \(job.checksum.hex)",
                                  hint: hint + " (verify names the damaged block object)")
            }
        } catch {
            try? sink.close()
            _ = try? host.remove(destination)
            if let error = error as? PGKeepError, error.code == .compression {
                throw PGKeepError(.checksumMismatch, "a stored block of '\(job.name)' is damaged: \(error.message)", hint: hint)
            }
            throw error
        }
        // Attributes before the fsync, which makes them durable with the data.
        try Self.applyAttributes(on: host, destination, mode: job.mode, uid: job.ownerUID, gid: job.ownerGID, mtime: job.mtime)
        try deferredSyncs.add(sink)
        return .restored(size: job.size)
    }

    /// A reader of `objectPath` at `offset`: the one already open on it when the block lies a
    /// small gap ahead (read through), otherwise a ranged read from the block on (the first use of
    /// the object, a large gap where unchanged blocks are in another reference, or an earlier block).
    private func positionedReader(_ open: (reader: StorageReader, path: StoragePath, position: UInt64)?, at offset: UInt64,
                                  in objectPath: StoragePath, hint: String) throws -> (reader: StorageReader, path: StoragePath, position: UInt64) {
        var entry: (reader: StorageReader, path: StoragePath, position: UInt64)
        if let open, open.position <= offset, offset - open.position <= storage.rangedReadGap {
            entry = open
        } else {
            guard let reader = try storage.openRead(objectPath, range: offset..<UInt64.max) else {
                throw PGKeepError(.fileMissing, "stored block object '\(storage.describe(objectPath))' is missing from the repository",
                                  hint: hint)
            }
            entry = (reader, objectPath, offset)
        }
        while entry.position < offset {
            let want = Int(min(UInt64(skipBuffer.count), offset - entry.position))
            let n = try entry.reader.read(into: UnsafeMutableRawBufferPointer(rebasing: skipBuffer.bytes[0..<want]))
            if n == 0 { throw truncated(objectPath, hint) }
            entry.position += UInt64(n)
        }
        return entry
    }

    /// Gives a restored (or kept) file the manifest's mode, owner (when restoring as root) and
    /// modification time. open(2) applies the umask, so the mode is always set exactly.
    static func applyAttributes(on host: PostgresHost, _ path: FilePath, mode: UInt32, uid: UInt32?, gid: UInt32?, mtime: Int64) throws {
        try host.setMode(path, mode: mode)
        if let uid, let gid { try host.setOwner(path, uid: uid, gid: gid) }
        try host.setModificationTime(path, seconds: mtime)
    }

    private func truncated(_ path: StoragePath, _ hint: String) -> PGKeepError {
        PGKeepError(.checksumMismatch, "stored block object '\(storage.describe(path))' is shorter than its block map says", hint: hint)
    }

    func loadMap(_ path: StoragePath, size: UInt64, checksum: SHA256Digest) throws -> BlockMap {
        try BlockMap.load(path, size: size, checksum: checksum, from: storage)
    }
}

/// Writes to a storage writer, counting and hashing what passes.
final class ObjectSink: ByteSink {
    let writer: StorageWriter
    let hasher: SHA256Hasher
    private(set) var count: UInt64 = 0

    init(writer: StorageWriter, hasher: SHA256Hasher) {
        self.writer = writer
        self.hasher = hasher
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try hasher.update(bytes)
        try writer.write(bytes)
        count += UInt64(bytes.count)
    }
}

/// Receives one decompressed block: hashes it on its own and as part of the file, and writes it.
final class BlockCheckSink: ByteSink {
    let target: ByteSink
    let fileHasher: SHA256Hasher
    let blockHasher: SHA256Hasher?
    var count = 0

    init(target: ByteSink, fileHasher: SHA256Hasher, blockHasher: SHA256Hasher?) {
        self.target = target
        self.fileHasher = fileHasher
        self.blockHasher = blockHasher
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try blockHasher?.update(bytes)
        try fileHasher.update(bytes)
        try target.write(bytes)
        count += bytes.count
    }
}
