import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// `archive-get %f %p`: fetches one archived file for PostgreSQL's `restore_command`.
///
/// Exit contract (docs/postgres-internals.md §5.2, `ErrorCode.archiveGetExitStatus`): 0 with the file complete
/// at `%p`; 1 (`archiveFileMissing`) only when a valid configuration, an existing stanza and a
/// readable `archive.info` show that the archive does not hold the file, which PostgreSQL asks for
/// routinely (the next segment, future timelines) and must hear quickly. Every other failure exits
/// 255, which PostgreSQL treats as FATAL: recovery stops instead of ending early, because any status
/// below 126 would read as "end of WAL" and promote the server without the later commits.
///
/// 1. The stored copies of the file are those of the newest archive id holding its name (older
///    ids hold WAL from before an upgrade). Copies there with different checksums are a conflict.
///    When the cluster being recovered is known (`recovering`, from its pg_control), only the
///    archive ids of the stanza's databases that are that cluster count: after stanza-upgrade, a
///    restored pre-upgrade backup must never be handed the new cluster's segment of the same
///    name. A cluster that is none of them is refused (`archiveMismatch`).
/// 2. Each copy is decoded into a temporary name next to `%p` and hashed on the way; it is renamed
///    into place only after its SHA-256 matched the one in its name: PostgreSQL `stat`s `%p` after
///    we return and must never see a short or wrong file. No fsync: PostgreSQL durably renames the
///    file itself.
/// 3. A copy that is damaged (wrong checksum, undecodable), unreadable or gone is logged as a
///    warning and the next one is tried: the other copies of that archive id, then copies with the
///    same checksum under older archive ids. Only when none delivers intact does the fetch fail.
public struct ArchiveGet {
    /// One stored object holding the requested file.
    typealias Copy = (object: StoragePath, checksum: SHA256Digest, compression: CompressionType)

    let storage: Storage
    let layout: RepositoryLayout
    let bufferSize: Int
    let log: Log
    /// The system identifier and major of the cluster PostgreSQL recovers, from its pg_control;
    /// nil when it could not be read (then every archive id counts, newest first).
    public var recovering: (systemIdentifier: UInt64, version: Int)?

    public init(storage: Storage, layout: RepositoryLayout, bufferSize: Int, log: Log,
                recovering: (systemIdentifier: UInt64, version: Int)? = nil) {
        self.storage = storage
        self.layout = layout
        self.bufferSize = bufferSize
        self.log = log
        self.recovering = recovering
    }

    /// Delivers `walFile` to `destination`; returns the SHA-256 of the delivered bytes.
    @discardableResult
    public func get(walFile: String, destination: String) throws -> SHA256Digest {
        guard WALFileName(walFile) != nil else {
            throw PGKeepError(.walInvalid, "'\(walFile)' is not a WAL file name",
                              hint: "restore_command must pass %f and %p: restore_command = 'pgkeep --stanza=\(layout.stanza) archive-get %f \"%p\"'")
        }
        let info = try InfoFiles.loadArchiveInfo(storage, layout, warn: log.warn)
        // Newest identity first, of those that are the cluster being recovered.
        let identities = try databases(of: info).reversed().map(\.archiveID)
        var copies: [Copy] = []
        var holder = identities.endIndex
        for (index, archiveID) in identities.enumerated() {
            copies = try ArchiveLookup.find(walFile: walFile, archiveID: archiveID, storage: storage, layout: layout)
            if !copies.isEmpty {
                holder = index
                break
            }
        }
        guard let first = copies.first else {
            throw PGKeepError(.archiveFileMissing, "'\(walFile)' is not in the archive of stanza '\(layout.stanza)'")
        }
        if copies.contains(where: { $0.checksum != first.checksum }) {
            throw PGKeepError(.archiveDuplicate,
                              "the archive holds several different copies of '\(walFile)': \(copies.map { storage.describe($0.object) }.joined(separator: ", "))",
                              hint: "the archive is inconsistent; find out which copy belongs to this cluster's history before recovering")
        }
        var failures: [PGKeepError] = []
        if try deliverFirstIntact(of: copies, walFile: walFile, destination: destination, failures: &failures) {
            return first.checksum
        }
        // Older identities are listed only now: the common case never pays for them. Only the
        // same content counts there; another file of that name is another cluster's WAL.
        for archiveID in identities[(holder + 1)...] {
            let older = try ArchiveLookup.find(walFile: walFile, archiveID: archiveID, storage: storage, layout: layout)
                .filter { $0.checksum == first.checksum }
            if try deliverFirstIntact(of: older, walFile: walFile, destination: destination, failures: &failures) {
                return first.checksum
            }
        }
        throw Self.noIntactCopy(walFile, stanza: layout.stanza, failures)
    }

    /// The stanza's databases whose WAL the recovering cluster may replay (step 1).
    private func databases(of info: ArchiveInfo) throws -> [DatabaseIdentity] {
        guard let recovering else { return info.history }
        let matching = info.history.filter { $0.matches(systemIdentifier: recovering.systemIdentifier, version: recovering.version) }
        guard !matching.isEmpty else {
            throw PGKeepError(.archiveMismatch,
                              "the cluster being recovered (system identifier \(recovering.systemIdentifier), PostgreSQL \(recovering.version)) is none of stanza '\(layout.stanza)''s databases (\(info.history.map { "\($0.archiveID): system identifier \($0.systemIdentifier)" }.joined(separator: ", ")))",
                              hint: "check that restore_command names the stanza this cluster's backup came from")
        }
        return matching
    }

    /// Tries `copies` in order; true once one was delivered. A copy that cannot be delivered for
    /// its own sake is recorded in `failures` and logged as a warning naming it; a problem with the
    /// destination fails at once, since no other copy would fare better.
    private func deliverFirstIntact(of copies: [Copy], walFile: String, destination: String,
                                    failures: inout [PGKeepError]) throws -> Bool {
        for copy in copies {
            do {
                try deliver(copy, walFile: walFile, destination: destination)
            } catch let failure as DestinationFailure {
                throw failure.error
            } catch {
                let failure = (error as? PGKeepError) ?? PGKeepError(.internal, "\(error)")
                log.warn("\(failure.message); looking for another intact copy of \(walFile)")
                failures.append(failure)
                continue
            }
            if failures.isEmpty {
                log.info("fetched \(walFile) from '\(storage.describe(copy.object))'")
            } else {
                log.warn("fetched \(walFile) from '\(storage.describe(copy.object))' after \(failures.count) unusable cop\(failures.count == 1 ? "y" : "ies")")
            }
            return true
        }
        return false
    }

    /// A failure at `%p` rather than in the stored copy.
    private struct DestinationFailure: Error { let error: Error }

    private func deliver(_ copy: Copy, walFile: String, destination: String) throws {
        let described = storage.describe(copy.object)
        guard let source = try storage.openRead(copy.object) else {
            throw PGKeepError(.fileMissing, "archived '\(described)' disappeared from the archive while being fetched",
                              hint: "an expire may have removed it; recovery cannot skip the file")
        }
        let codec = try ObjectCodec(bufferSize: bufferSize)

        let temporary = destination + ".pgkeep-tmp.\(getpid())"
        let sink: FileSink
        do { sink = try FileSink(creating: temporary, mode: 0o600, temporaryFor: destination) } catch { throw DestinationFailure(error: error) }
        do {
            try codec.readChain(ObjectEncoding(compression: copy.compression), observing: .originalSHA256)
                .run(from: source, into: sink, buffer: IOBuffer(size: bufferSize))
            let digest = try codec.original.digest()
            guard digest == copy.checksum else {
                throw PGKeepError(.checksumMismatch, "archived '\(described)' is damaged: its content has SHA-256 \(digest.hex)",
                                  hint: Self.damagedHint(walFile))
            }
        } catch {
            try? sink.close()
            _ = try? Posix.unlink(temporary)
            guard let error = error as? PGKeepError else { throw error }
            switch error.code {
            case .compression:
                throw PGKeepError(.checksumMismatch, "archived '\(described)' is damaged: \(error.message)", hint: Self.damagedHint(walFile))
            case .fileWrite, .fileSync, .diskFull:
                throw DestinationFailure(error: error)
            default:
                throw error
            }
        }
        do {
            try sink.close()
            try Posix.rename(temporary, destination)
        } catch {
            _ = try? Posix.unlink(temporary)
            throw DestinationFailure(error: error)
        }
    }

    static func damagedHint(_ walFile: String) -> String {
        "the archive copy of \(walFile) is corrupt and recovery cannot use it; archive-push the good \(walFile) "
            + "(from the primary's pg_wal or another copy) to replace it, and run 'pgkeep verify' to find other damage"
    }

    /// The error when no copy delivered: the one failure as it was, or all of them in one message.
    static func noIntactCopy(_ walFile: String, stanza: String, _ failures: [PGKeepError]) -> PGKeepError {
        if failures.count == 1 { return failures[0] }
        let allDamaged = failures.allSatisfy { $0.code == .checksumMismatch }
        return PGKeepError(allDamaged ? .checksumMismatch : failures[0].code,
                           "no intact copy of '\(walFile)' in the archive of stanza '\(stanza)': \(failures.map(\.message).joined(separator: "; "))",
                           hint: damagedHint(walFile))
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
