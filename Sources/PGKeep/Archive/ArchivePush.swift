import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// `archive-push %p`: stores one file PostgreSQL completed (a WAL segment, a partial segment, a
/// timeline history file or a backup history file), durably, under a checksum-carrying name.
///
/// 1. The name must be one PostgreSQL archives; anything else is refused (it becomes a path).
/// 2. A segment's first page header must carry the stanza's system identifier and version (and a
///    page address that matches its name); other files are checked through pg_control when the
///    data directory is known (PostgreSQL runs archive_command in it).
/// 3. When the name is already archived (PostgreSQL re-archives segments after a crash or a
///    promotion, and refusing an identical one would stall it forever, docs/postgres-internals.md §5.1), the
///    stored object is decoded and compared byte for byte with the file: a complete match is
///    success without writing, and costs a fraction of hashing (see `storedCopyMatches`).
///    Otherwise the file is hashed: another checksum than the stored objects' is a refusal that
///    writes nothing.
/// 4. The same checksum: each stored object of it is compared with the file, and one that matches
///    makes the push success without writing. When none matches, every one of them is damaged or
///    unreadable (the file hashes to their name's checksum, yet they do not decode to it), and
///    PostgreSQL recycles its segment once we return: the file is stored in their place (step 5),
///    then the damaged objects of other names are removed, and the push reports a repair.
/// 5. Otherwise it is stored atomically (temp, fsync, rename, fsync directory); its size and mtime
///    must be unchanged since step 3, so the name always describes what is stored.
public struct ArchivePush {
    public enum Outcome: Equatable, Sendable {
        case stored(object: String)
        case alreadyArchived(object: String)
        /// The stored copies of the file were damaged and were replaced by the pushed file.
        case repaired(object: String, damaged: [String])
    }

    let storage: Storage
    let layout: RepositoryLayout
    let compression: CompressionType
    let compressLevel: Int
    let bufferSize: Int
    let log: Log

    public init(storage: Storage, layout: RepositoryLayout, compression: CompressionType, compressLevel: Int,
                bufferSize: Int, log: Log) {
        self.storage = storage
        self.layout = layout
        self.compression = compression
        self.compressLevel = compressLevel
        self.bufferSize = bufferSize
        self.log = log
    }

    /// `walPath` is `%p`: relative to the current directory (PostgreSQL's data directory) or
    /// absolute. `dataDirectory` is the cluster's data directory when known.
    public func push(walPath: String, dataDirectory: String?) throws -> Outcome {
        let name = Posix.basename(walPath)
        guard let kind = WALFileName(name)?.kind else {
            throw PGKeepError(.walInvalid, "'\(walPath)' is not a WAL file name PostgreSQL archives",
                              hint: "archive_command must pass %p: archive_command = 'pgkeep --stanza=\(layout.stanza) archive-push %p'")
        }
        let info = try InfoFiles.loadArchiveInfo(storage, layout, warn: log.warn)
        try checkIdentity(walPath: walPath, name: name, kind: kind, info: info, dataDirectory: dataDirectory)

        let buffer = IOBuffer(size: bufferSize)
        let codec = try ObjectCodec(bufferSize: bufferSize)
        let existing = try ArchiveLookup.find(walFile: name, archiveID: info.current.archiveID, storage: storage, layout: layout)
        // One open file, two passes: the object name carries the SHA-256, so the hash comes first;
        // the second pass only compresses. A completed segment never changes while PostgreSQL waits
        // for us, and size plus nanosecond mtime before and after prove it did not.
        guard let source = try FileSource.open(walPath) else {
            throw PGKeepError(.fileMissing, "WAL file '\(walPath)' does not exist",
                              hint: "archive_command must pass %p, which is relative to the data directory PostgreSQL runs it in")
        }
        let before = try Posix.fstat(source.fd, path: walPath)
        if existing.count == 1, let stored = existing.first {
            if storedCopyMatches(stored.object, compression: stored.compression, source: source, buffer: buffer, codec: codec) {
                log.info("\(name) is already archived with the same content ('\(storage.describe(stored.object))')")
                return .alreadyArchived(object: storage.describe(stored.object))
            }
            try source.rewind()
        }
        try codec.measureChain(observing: .originalSHA256).run(from: source, into: DiscardSink(), buffer: buffer)
        let checksum = try codec.original.digest()
        let same = existing.filter { $0.checksum == checksum }
        if same.isEmpty, let other = existing.first {
            throw PGKeepError(.archiveDuplicate,
                              "WAL file '\(name)' is already archived with different content ('\(storage.describe(other.object))'; pushed file SHA-256 \(checksum.hex))",
                              hint: "two clusters may be archiving to stanza '\(layout.stanza)', or a server was promoted without a new timeline; the archived file was kept unchanged")
        }
        // The single object was compared above already; several are compared now, one by one.
        let compared = existing.count == 1
        for copy in same where !compared {
            try source.rewind()
            if storedCopyMatches(copy.object, compression: copy.compression, source: source, buffer: buffer, codec: codec) {
                log.info("\(name) is already archived with the same content ('\(storage.describe(copy.object))')")
                return .alreadyArchived(object: storage.describe(copy.object))
            }
        }

        let parent = try layout.archiveParent(archiveID: info.current.archiveID, walFile: name)
        let object = try parent.appending(RepositoryLayout.archiveObjectName(walFile: name, checksum: checksum, compression: compression))
        try store(source, at: object, walPath: walPath, before: before, buffer: buffer, codec: codec)
        guard !same.isEmpty else {
            log.info("pushed \(name) to '\(storage.describe(object))'")
            return .stored(object: storage.describe(object))
        }
        return try finishRepair(of: same.map(\.object), with: object, name: name, source: source, buffer: buffer, codec: codec)
    }

    /// Makes a repair final: the new object must decode to the file (a storage that damaged the old
    /// copy may damage this one), then the damaged objects under other names go. Until that removal
    /// they are only redundant: `archive-get` skips a damaged copy for an intact one.
    private func finishRepair(of damaged: [StoragePath], with object: StoragePath, name: String, source: FileSource,
                              buffer: IOBuffer, codec: ObjectCodec) throws -> Outcome {
        try source.rewind()
        guard storedCopyMatches(object, compression: compression, source: source, buffer: buffer, codec: codec) else {
            throw PGKeepError(.checksumMismatch,
                              "'\(storage.describe(object))', just written to replace a damaged copy of \(name), does not read back as the pushed file",
                              hint: "the repository storage is damaging what is written to it; check its disks, then let PostgreSQL push \(name) again")
        }
        for path in damaged where path != object { try storage.remove(path) }
        let names = damaged.map { storage.describe($0) }
        log.warn("\(name): the archived \(names.map { "'\($0)'" }.joined(separator: ", ")) did not match the pushed file with the same SHA-256 (damaged or unreadable); replaced it with '\(storage.describe(object))'")
        return .repaired(object: storage.describe(object), damaged: names)
    }

    /// Writes `source` from its start to `object` atomically, compressed, failing when the file
    /// changed since `before`.
    private func store(_ source: FileSource, at object: StoragePath, walPath: String, before: Posix.Status, buffer: IOBuffer,
                       codec: ObjectCodec) throws {
        try source.rewind()
        let writer = try storage.openWrite(object)
        do {
            try codec.writeChain(ObjectEncoding(compression: compression), level: compressLevel, observing: .originalSize)
                .run(from: source, into: writer, buffer: buffer)
            let after = try Posix.fstat(source.fd, path: walPath)
            guard codec.original.size == before.size, after.size == before.size, after.mtimeNanoseconds == before.mtimeNanoseconds else {
                throw PGKeepError(.checksumMismatch, "WAL file '\(walPath)' changed while being archived",
                                  hint: "nothing was stored; PostgreSQL will retry")
            }
            try writer.commit()
        } catch {
            writer.abort()
            throw error
        }
    }

    /// Whether `object`, a stored object for the pushed file's name, decodes to exactly the bytes
    /// of `source`, read from its start through fixed buffers. A complete match proves the push an
    /// identical duplicate as hashing would: the object was stored under the SHA-256 of the very
    /// bytes it decodes to (step 5 checks that on the way in), and they are the file's.
    /// It is also cheaper: lz4 decodes at several GB/s once its frame checksum is left to the
    /// comparison, which checks every byte; zstd decodes at about twice the speed of SHA-256.
    ///
    /// Anything short of a complete match returns false and the caller hashes the file: different
    /// content is refused with the pushed file's checksum in the message, and a stored object that
    /// does not match although the file hashes to its name's checksum is proven damaged (or
    /// unreadable) and is repaired.
    private func storedCopyMatches(_ object: StoragePath, compression: CompressionType, source: FileSource,
                                   buffer: IOBuffer, codec: ObjectCodec) -> Bool {
        do {
            guard let reader = try storage.openRead(object) else { return false }
            let compare = CompareSink(reference: source, buffer: IOBuffer(size: Self.compareSlice))
            try codec.readChain(ObjectEncoding(compression: compression), observing: [], frameChecksum: .skip, slice: Self.compareSlice)
                .run(from: reader, into: compare, buffer: buffer)
            try compare.finish()
            return true
        } catch let mismatch as CompareSink.Mismatch {
            log.debug("'\(storage.describe(object))' differs from '\(source.path)' at byte \(mismatch.offset); hashing the file")
            return false
        } catch {
            log.info("'\(storage.describe(object))' could not be compared with '\(source.path)' (\(error)); hashing the file")
            return false
        }
    }

    /// Decoded bytes are compared in slices of this size: small enough that a slice is still in
    /// the core's cache when the file's bytes are compared with it.
    private static let compareSlice = 128 << 10

    private func checkIdentity(walPath: String, name: String, kind: WALFileKind, info: ArchiveInfo, dataDirectory: String?) throws {
        switch kind {
        case .segment, .partial:
            guard let source = try FileSource.open(walPath) else {
                throw PGKeepError(.fileMissing, "WAL file '\(walPath)' does not exist",
                                  hint: "archive_command must pass %p, which is relative to the data directory PostgreSQL runs it in")
            }
            let size = try Posix.fstat(source.fd, path: walPath).size
            var page = [UInt8](repeating: 0, count: 8192)
            let n = try page.withUnsafeMutableBytes { try source.read(into: $0) }
            let header = try WALPageHeader(bytes: Array(page[0..<n]), path: walPath)
            // The segment size comes from the long header itself; validate checks it is sane and
            // that the file, its name and its page address agree with it.
            guard let segmentSize = header.segmentSize.flatMap({ WALSegmentSize(bytes: UInt64($0)) }),
                  let version = PGVersion(major: info.current.version),
                  let segment = WALSegmentName(name.prefix(24), segmentSize: segmentSize) else {
                throw PGKeepError(.walInvalid, "WAL file '\(walPath)' has no valid segment size in its first page header",
                                  hint: "the file is damaged or not a WAL segment")
            }
            try header.validate(fileSize: Int64(size), segment: segment, systemIdentifier: info.current.systemIdentifier,
                                version: version, path: walPath)
        case .history, .backupHistory:
            // No header to check: compare the cluster we run in (PostgreSQL's cwd is its data
            // directory) when its pg_control is readable.
            let directory = dataDirectory ?? "."
            let controlPath = Posix.join(directory, "global/pg_control")
            guard (try Posix.lstat(controlPath)) != nil else { return }
            let control = try PGControl.read(dataDirectory: directory)
            guard info.current.matches(systemIdentifier: control.systemIdentifier, version: control.version.major) else {
                throw PGKeepError(.archiveMismatch,
                                  "'\(walPath)' comes from a cluster (system identifier \(control.systemIdentifier), PostgreSQL \(control.version.major)) that is not stanza '\(layout.stanza)' (system identifier \(info.current.systemIdentifier), PostgreSQL \(info.current.version))",
                                  hint: "are you archiving to the correct stanza?")
            }
        }
    }
}
