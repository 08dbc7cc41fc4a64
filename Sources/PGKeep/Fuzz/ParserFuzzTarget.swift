import FoundationEssentials
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepEngine
import PGKeepConfig
import PGKeepProtocol

/// Every parser that reads bytes pgkeep did not write itself in this process: repository metadata
/// (which anyone with write access to the repository can edit), block maps, the files PostgreSQL
/// leaves in a data directory or the archive, object names from storage listings, the INI file and
/// the recovery-target options. Each target feeds one input to one or more parsers.
///
/// The contract every parser must keep, and the one `run` checks: bad input is rejected with a
/// `PGKeepError` (or, for the parsers whose API is optional, with nil), never a trap, another
/// error type, a hang or a huge allocation. `run` throws `Finding` when that contract is broken in
/// a way that does not trap by itself (a foreign error type, a streamed read that depends on how
/// the bytes were split, a value that does not survive being written and read again).
///
/// Used by the `pgkeep-fuzz` executable (libFuzzer's `LLVMFuzzerTestOneInput`, see
/// `Sources/pgkeep-fuzz`) and by the unit tests, which replay `Fixtures/fuzz/<target>/**`.
public enum ParserFuzzTarget: String, CaseIterable, Sendable {
    /// A manifest JSON body, sealed by the harness (a fuzzer cannot forge SHA-256) and read the
    /// way restore reads it (`SealedFile.open(Manifest.self, …)`), whole and drip-fed.
    case manifest
    /// The same body read as backup reads a prior manifest (`PriorManifest`, the compact form).
    case priorManifest = "prior-manifest"
    /// A `backup.info` JSON body, sealed by the harness.
    case backupInfo = "backup-info"
    /// An `archive.info` JSON body, sealed by the harness.
    case archiveInfo = "archive-info"
    /// A whole sealed file as stored, trailer included: the seal checks themselves.
    case sealed
    /// A block map (`PGKBMAP1`/`PGKBMAP2`).
    case blockMap = "block-map"
    /// The first page of a WAL segment: parsed, then validated against the fixture cluster.
    case walPageHeader = "wal-page-header"
    /// A pg_control file, as read and again with its CRC made to match (so the fuzzer gets past it).
    case pgControl = "pg-control"
    /// A timeline history file (`<tli>.history`).
    case timelineHistory = "timeline-history"
    /// The pgkeep INI configuration file.
    case ini
    /// Recovery-target options: the input's lines are `--type`, `--target`, `--target-timeline`,
    /// `--target-action`; the whole input is also parsed as the target of every type.
    case recoveryTarget = "recovery-target"
    /// One name as found in an archive listing or a file: WAL file and segment names, LSNs,
    /// backup labels, timeline IDs, archive object names.
    case names
    /// `postgresql.conf` / `postgresql.auto.conf` lines as a restore reads them (`ArchiveSettings`).
    case postgresqlConf = "postgresql-conf"
    /// The restore marker a restore leaves in a data directory (`pgkeep.restore-in-progress`).
    case restoreMarker = "restore-marker"
    /// Bytes from a remote peer (protocol.md): frames decoded whole and in pieces, each payload
    /// read as what its type carries (greeting, fields, error, credit).
    case protocolFrames = "protocol-frames"

    /// What a parser made of an input.
    public enum Outcome: Equatable, Sendable {
        /// At least one parser of the target accepted the input.
        case accepted
        /// Every parser rejected it the documented way; the first rejection's message.
        case rejected(String)
    }

    /// A broken parser contract that did not trap.
    public struct Finding: Error, CustomStringConvertible {
        public let description: String
    }

    /// Feeds `bytes` to the target's parsers.
    ///
    /// - Throws: `Finding` when a parser breaks its contract without trapping.
    public func run(_ bytes: [UInt8]) throws -> Outcome {
        switch self {
        case .manifest: return try Self.manifest(bytes)
        case .priorManifest: return try Self.priorManifest(bytes)
        case .backupInfo: return try Self.parse { _ = try SealedFile.open(BackupInfo.self, from: Self.seal(bytes), name: "backup.info") }
        case .archiveInfo: return try Self.parse { _ = try SealedFile.open(ArchiveInfo.self, from: Self.seal(bytes), name: "archive.info") }
        case .sealed: return try Self.sealed(bytes)
        case .blockMap: return try Self.blockMap(bytes)
        case .walPageHeader: return try Self.walPageHeader(bytes)
        case .pgControl: return try Self.pgControl(bytes)
        case .timelineHistory: return try Self.timelineHistory(bytes)
        case .ini: return try Self.parse { _ = try IniFile(parsing: String(decoding: bytes, as: UTF8.self), path: "pgkeep.conf") }
        case .recoveryTarget: return try Self.recoveryTarget(bytes)
        case .names: return Self.names(String(decoding: bytes, as: UTF8.self))
        case .postgresqlConf: return Self.postgresqlConf(String(decoding: bytes, as: UTF8.self))
        case .restoreMarker: return Self.restoreMarker(bytes)
        case .protocolFrames: return try Self.protocolFrames(bytes)
        }
    }

    // MARK: - Targets

    private static func manifest(_ body: [UInt8]) throws -> Outcome {
        let sealed = seal(body)
        // Compared as written again: what a reader keeps is what a writer would write.
        let whole = result { try SealedFile.seal(SealedFile.open(Manifest.self, from: sealed, name: "backup.manifest")) }
        let dripped = result { try SealedFile.seal(SealedFile.open(Manifest.self, from: ChunkedSource(sealed, chunk: 7), name: "backup.manifest") as! Manifest) }
        try same(whole, dripped, "manifest read whole and drip-fed")
        guard let written = try whole.value() else { return .rejected(whole.rejection) }
        // What was accepted must read back as itself once written.
        let again = try SealedFile.seal(try contract { try SealedFile.open(Manifest.self, from: written, name: "rewritten") })
        guard again == written else { throw Finding(description: "a manifest written and read again differs") }
        return .accepted
    }

    private static func priorManifest(_ body: [UInt8]) throws -> Outcome {
        let sealed = seal(body)
        let whole = result { (try SealedFile.open(PriorManifest.self, from: MemorySource(sealed), name: "prior") as! PriorManifest).files.count }
        let dripped = result { (try SealedFile.open(PriorManifest.self, from: ChunkedSource(sealed, chunk: 5), name: "prior") as! PriorManifest).files.count }
        try same(whole, dripped, "prior manifest read whole and drip-fed")
        return try whole.value() == nil ? .rejected(whole.rejection) : .accepted
    }

    private static func sealed(_ bytes: [UInt8]) throws -> Outcome {
        let whole = result { try SealedFile.seal(SealedFile.open(Manifest.self, from: bytes, name: "backup.manifest")) }
        let dripped = result { try SealedFile.seal(SealedFile.open(Manifest.self, from: ChunkedSource(bytes, chunk: 3), name: "backup.manifest") as! Manifest) }
        try same(whole, dripped, "sealed file read whole and drip-fed")
        let info = try parse { _ = try SealedFile.open(BackupInfo.self, from: bytes, name: "backup.info") }
        return try whole.value() == nil && info != .accepted ? .rejected(whole.rejection) : .accepted
    }

    private static func blockMap(_ bytes: [UInt8]) throws -> Outcome {
        var rejection: String?
        let map = try contract({ try BlockMap.decode(bytes, name: "fuzz.map") }, rejection: &rejection)
        guard let map else { return .rejected(rejection ?? "") }
        // A map that decodes is one pgkeep could have written: it encodes to the same bytes.
        guard map.encoded() == bytes else { throw Finding(description: "a decoded block map encodes to other bytes") }
        for index in map.blocks.indices { _ = BlockMap.blockLength(index: index, blockSize: map.blockSize, fileSize: map.fileSize) }
        return .accepted
    }

    private static func walPageHeader(_ bytes: [UInt8]) throws -> Outcome {
        var rejection: String?
        let header = try contract({ try WALPageHeader(bytes: bytes, path: "fuzz-wal") }, rejection: &rejection)
        guard let header else { return .rejected(rejection ?? "") }
        _ = header.version
        // The fixture cluster: system identifier 7712620586789208204, PostgreSQL 15, 16 MiB segments.
        let segment = WALSegmentName(timeline: TimelineID(rawValue: 1), segmentNumber: 2, segmentSize: .default)
        return try parse {
            try header.validate(fileSize: Int64(WALSegmentSize.default.bytes), segment: segment, systemIdentifier: 7712620586789208204,
                                version: PGVersion(major: 15)!, walBlockSize: 8192, path: "fuzz-wal")
        }
    }

    private static func pgControl(_ bytes: [UInt8]) throws -> Outcome {
        var outcome = try parse { _ = try PGControl(bytes: bytes, path: "pg_control") }
        if bytes.count >= PGControl.structSize, let version = PGVersion.lookup(controlVersion: u32(bytes, 8), catalogVersion: u32(bytes, 12)),
           version.controlCRCOffset + 4 <= bytes.count {
            var fixed = bytes
            let crc = CRC32C.checksum(Array(fixed[0..<version.controlCRCOffset]))
            for i in 0..<4 { fixed[version.controlCRCOffset + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
            if try parse({ _ = try PGControl(bytes: fixed, path: "pg_control") }) == .accepted { outcome = .accepted }
        }
        return outcome
    }

    private static func timelineHistory(_ bytes: [UInt8]) throws -> Outcome {
        // The first byte picks the timeline the file is said to be for (history files exist from 2).
        let timeline = TimelineID(rawValue: UInt32(bytes.first ?? 2))
        var rejection: String?
        let history = try contract({ try TimelineHistory(timeline: timeline, text: String(decoding: bytes.dropFirst(), as: UTF8.self), path: "fuzz.history") },
                                   rejection: &rejection)
        guard let history else { return .rejected(rejection ?? "") }
        _ = history.ancestry
        for entry in history.entries {
            _ = history.timeline(at: entry.switchPoint)
            _ = history.beginning(of: entry.parent)
            _ = history.timeline(forSegmentNumber: entry.switchPoint.value / WALSegmentSize.default.bytes, segmentSize: .default)
        }
        return .accepted
    }

    private static func recoveryTarget(_ bytes: [UInt8]) throws -> Outcome {
        let text = String(decoding: bytes, as: UTF8.self)
        var outcome = Outcome.rejected("")
        for kind in RecoveryTarget.Kind.allCases {
            if try parse({ _ = try RecoveryTarget.parseValue(kind: kind, text: text) }) == .accepted { outcome = .accepted }
        }
        if try parse({ _ = try RecoveryTarget.Timeline.parse(text) }) == .accepted { outcome = .accepted }
        var rejection: String?
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        func line(_ i: Int) -> String? { i < lines.count ? lines[i] : nil }
        let parsed = try contract({
            try RecoveryTarget.parse(type: line(0) ?? "", target: line(1), exclusive: bytes.count % 2 == 1, explicitExclusive: bytes.count % 3 == 1,
                                     timeline: line(2) ?? "current", action: line(3) ?? "pause", explicitAction: line(3) != nil)
        }, rejection: &rejection)
        if parsed == nil, outcome != .accepted { outcome = .rejected(rejection ?? "") }
        if let parsed {
            outcome = .accepted
            _ = parsed.settings(timeline: TimelineID(rawValue: 3), backupTimeline: TimelineID(rawValue: 1))
        }
        return outcome
    }

    private static func names(_ text: String) -> Outcome {
        var accepted = false
        if let name = WALFileName(text) {
            accepted = true
            _ = name.segment(segmentSize: .default)
            _ = name.segment(segmentSize: WALSegmentSize(bytes: WALSegmentSize.minimumBytes)!)
            _ = name.segment(segmentSize: WALSegmentSize(bytes: WALSegmentSize.maximumBytes)!)
        }
        for size in [WALSegmentSize.default, WALSegmentSize(bytes: WALSegmentSize.minimumBytes)!, WALSegmentSize(bytes: WALSegmentSize.maximumBytes)!] {
            if let segment = WALSegmentName(text, segmentSize: size) {
                accepted = true
                _ = segment.name
                _ = segment.directoryPrefix
                _ = segment.startLSN
                _ = segment.endLSN
                _ = segment.next.name
                _ = segment.previous?.name
                _ = segment.contains(segment.startLSN)
            }
        }
        if LSN(text) != nil { accepted = true }
        if BackupLabel(text) != nil { accepted = true }
        if let parts = RepositoryLayout.parseArchiveObjectName(text) {
            accepted = true
            _ = RepositoryLayout.archiveObjectName(walFile: parts.name, checksum: parts.checksum, compression: parts.compression)
        }
        return accepted ? .accepted : .rejected("no parser took it")
    }

    private static func postgresqlConf(_ text: String) -> Outcome {
        var accepted = false
        for line in text.split(separator: "\n") where ArchiveSettings.parse(line) != nil { accepted = true }
        return accepted ? .accepted : .rejected("no parser took it")
    }

    private static func restoreMarker(_ bytes: [UInt8]) -> Outcome {
        // RestoreMarker.read treats an undecodable marker as none; decoding must still not trap.
        (try? JSONDecoder().decode(RestoreMarker.self, from: Data(bytes))) == nil ? .rejected("not a restore marker") : .accepted
    }

    private static func protocolFrames(_ bytes: [UInt8]) throws -> Outcome {
        func decode(chunk: Int) -> Result<[Frame], any Error> {
            result {
                var decoder = FrameDecoder(peer: "fuzz")
                var frames: [Frame] = []
                var offset = 0
                while offset < bytes.count {
                    let end = min(bytes.count, offset + chunk)
                    decoder.feed(bytes[offset..<end])
                    offset = end
                    while let frame = try decoder.next() { frames.append(frame) }
                }
                return frames
            }
        }
        let whole = decode(chunk: Int.max / 2)
        try same(whole, decode(chunk: 3), "protocol frames decoded whole and in 3-byte pieces")
        guard let frames = try whole.value() else { return .rejected(whole.rejection) }
        // What was decoded encodes to the bytes it came from (the trailing partial frame aside).
        let encoded = frames.flatMap { $0.encoded() }
        guard Array(bytes.prefix(encoded.count)) == encoded else { throw Finding(description: "decoded frames encode to other bytes") }
        var accepted = frames.isEmpty ? false : true
        for frame in frames {
            let outcome = try parse {
                switch frame.type {
                case .hello: _ = try Greeting(frame, peer: "fuzz").agree(with: Greeting(role: .agent), peerName: "fuzz")
                case .request, .result: _ = try Fields(decoding: frame.payload, what: "a frame", peer: "fuzz")
                case .error: _ = try RemoteError(frame, peer: "fuzz")
                case .credit: _ = Credit(frame)
                case .data, .cancel, .ping, .pong: break
                }
            }
            if outcome != .accepted { accepted = false }
        }
        return accepted ? .accepted : .rejected("a payload was refused")
    }

    // MARK: - Helpers

    /// Seals `body` as `SealedFile.write` does, so the fuzzer's bytes reach the JSON reader.
    static func seal(_ body: [UInt8]) -> [UInt8] {
        var bytes = body
        bytes.append(UInt8(ascii: "\n"))
        bytes.append(contentsOf: SealedFile.trailerPrefix)
        // SHA-256 of bytes in memory fails only when OpenSSL cannot allocate a context.
        bytes.append(contentsOf: Array(try! SHA256Digest.of(body).hex.utf8))
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// Runs `body`: nil when it threw a `PGKeepError` (whose message goes to `rejection`), a
    /// `Finding` for any other error.
    private static func contract<T>(_ body: () throws -> T, rejection: inout String?) throws -> T? {
        do { return try body() } catch {
            guard let error = error as? PGKeepError else {
                throw Finding(description: "a parser threw \(type(of: error)), not PGKeepError: \(error)")
            }
            if rejection == nil { rejection = error.message }
            return nil
        }
    }

    private static func contract<T>(_ body: () throws -> T) throws -> T? {
        var ignored: String?
        return try contract(body, rejection: &ignored)
    }

    private static func parse(_ body: () throws -> Void) throws -> Outcome {
        var rejection: String?
        return try contract(body, rejection: &rejection) == nil ? .rejected(rejection ?? "") : .accepted
    }

    /// Keeps a value, or the message of the `PGKeepError` that rejected the input.
    private static func result<T>(_ body: () throws -> T) -> Result<T, any Error> { Result { try body() } }

    private static func same<T: Equatable>(_ a: Result<T, any Error>, _ b: Result<T, any Error>, _ what: String) throws {
        switch (a, b) {
        case let (.success(x), .success(y)) where x == y: return
        case let (.failure(x), .failure(y)):
            guard let x = x as? PGKeepError, let y = y as? PGKeepError else {
                throw Finding(description: "\(what): a parser threw something other than PGKeepError: \(x) / \(y)")
            }
            guard x.message == y.message else { throw Finding(description: "\(what) disagree: '\(x.message)' / '\(y.message)'") }
        default:
            throw Finding(description: "\(what) disagree: \(a) / \(b)")
        }
    }

    private static func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }
}

extension Result where Failure == any Error {
    /// The value, nil for a `PGKeepError`; any other error is a finding.
    fileprivate func value() throws -> Success? {
        switch self {
        case .success(let value): return value
        case .failure(let error):
            guard error is PGKeepError else { throw ParserFuzzTarget.Finding(description: "a parser threw \(type(of: error)), not PGKeepError: \(error)") }
            return nil
        }
    }

    /// The message of the `PGKeepError` this holds, if it does.
    fileprivate var rejection: String {
        if case .failure(let error) = self { return (error as? PGKeepError)?.message ?? "" }
        return ""
    }
}

/// Hands out at most `chunk` bytes per read, like a slow pipe: streamed readers must not depend
/// on where reads end.
final class ChunkedSource: ByteSource {
    private let bytes: [UInt8]
    private let chunk: Int
    private var offset = 0

    init(_ bytes: [UInt8], chunk: Int) {
        self.bytes = bytes
        self.chunk = chunk
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, chunk, bytes.count - offset)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
        offset += n
        return n
    }
}
