/// `archive-get %f %p`: fetches one archived file for PostgreSQL's `restore_command`.
///
/// Exit contract (postgres-facts §5.3): 0 with the file complete at `%p`; 1 (`archiveFileMissing`)
/// when the archive does not have it, which PostgreSQL asks for routinely (the next segment, future
/// timelines) and must hear quickly; any other failure another code below 126.
///
/// The file is written under a temporary name next to `%p` and renamed into place only after its
/// SHA-256 matched the one in the object's name: PostgreSQL `stat`s `%p` after we return and
/// must never see a short or wrong file. No fsync: PostgreSQL durably renames the file itself.
public struct ArchiveGet {
    let storage: Storage
    let layout: RepositoryLayout
    let bufferSize: Int
    let log: Log

    public init(storage: Storage, layout: RepositoryLayout, bufferSize: Int, log: Log) {
        self.storage = storage
        self.layout = layout
        self.bufferSize = bufferSize
        self.log = log
    }

    public func get(walFile: String, destination: String) throws {
        guard WALFileName(walFile) != nil else {
            throw PGKeepError(.walInvalid, "'\(walFile)' is not a WAL file name",
                              hint: "restore_command must pass %f and %p: restore_command = 'pgkeep --stanza=\(layout.stanza) archive-get %f \"%p\"'")
        }
        let info = try InfoFiles.loadArchiveInfo(storage, layout, warn: log.warn)
        // Newest identity first; older ones hold WAL from before an upgrade.
        var candidates: [(object: StoragePath, checksum: SHA256Digest, compression: CompressionType)] = []
        for identity in info.history.reversed() {
            candidates = try ArchiveLookup.find(walFile: walFile, archiveID: identity.archiveID, storage: storage, layout: layout)
            if !candidates.isEmpty { break }
        }
        guard let chosen = candidates.first else {
            throw PGKeepError(.archiveFileMissing, "'\(walFile)' is not in the archive of stanza '\(layout.stanza)'")
        }
        if candidates.contains(where: { $0.checksum != chosen.checksum }) {
            throw PGKeepError(.archiveDuplicate,
                              "the archive holds several different copies of '\(walFile)': \(candidates.map { storage.describe($0.object) }.joined(separator: ", "))",
                              hint: "the archive is inconsistent; find out which copy belongs to this cluster's history before recovering")
        }
        guard let source = try storage.openRead(chosen.object) else {
            throw PGKeepError(.archiveFileMissing, "'\(walFile)' disappeared from the archive while being fetched")
        }
        let hasher = try SHA256Filter()
        var filters: [Filter] = []
        if let decompressor = try chosen.compression.makeDecompressFilter(bufferSize: bufferSize) { filters.append(decompressor) }
        filters.append(hasher)

        let temporary = destination + ".pgkeep-tmp.\(getpid())"
        let sink = try FileSink(creating: temporary, mode: 0o600)
        do {
            try FilterChain(filters).run(from: source, into: sink, buffer: IOBuffer(size: bufferSize))
            guard try hasher.finishedDigest() == chosen.checksum else {
                throw PGKeepError(.checksumMismatch,
                                  "archived '\(storage.describe(chosen.object))' is damaged: its content has SHA-256 \(try hasher.finishedDigest().hex)",
                                  hint: "the archive copy of \(walFile) is corrupt; recovery cannot use it")
            }
            try sink.close()
            try Posix.rename(temporary, destination)
        } catch {
            try? sink.close()
            _ = try? Posix.unlink(temporary)
            if let error = error as? PGKeepError, error.code == .compression {
                throw PGKeepError(.checksumMismatch, "archived '\(storage.describe(chosen.object))' is damaged: \(error.message)",
                                  hint: "the archive copy of \(walFile) is corrupt; recovery cannot use it")
            }
            throw error
        }
        log.info("fetched \(walFile) from '\(storage.describe(chosen.object))'")
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
