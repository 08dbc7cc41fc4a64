#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage
import PGKeepCore

/// The fields pgkeep needs from `global/pg_control`, parsed and checked.
///
/// Layout: `ControlFileData` in `src/include/catalog/pg_control.h`, offsets for x86-64/arm64 in
/// docs/postgres-internals.md §3.1. The file is 8192 bytes (`PG_CONTROL_FILE_SIZE`); only the first 296
/// (`sizeof(ControlFileData)`) mean anything. Values are in the byte order of the machine that
/// wrote them, which is also ours: a cluster cannot move between endiannesses.
///
/// Parsing order (docs/postgres-internals.md §3.2):
/// 1. Look the (`pg_control_version`, `catalog_version_no`) pair up in `PGVersion.known`; this
///    picks the layout and the CRC offset.
/// 2. Check the CRC-32C over the bytes before the CRC field.
/// 3. Check `xlog_seg_size` is a power of two in [1 MiB, 1 GiB].
/// 4. Check the data page size (`blcksz`) is 8192 and the WAL page size a power of two.
/// 5. Check `data_checksum_version` is 0 or 1.
/// Every failure is a `PGKeepError(.pgControlInvalid, ...)` that names the file and what was wrong.
public struct PGControl: Sendable {
    /// `DBState` (`src/include/catalog/pg_control.h`): the cluster state recorded in pg_control.
    /// A struct rather than an enum so that a value added by a future release still parses.
    public struct State: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The raw `DBState` value.
        public let rawValue: UInt32
        /// Wraps a raw `DBState` value.
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        /// `DB_STARTUP`
        public static let startingUp = State(rawValue: 0)
        /// `DB_SHUTDOWNED`: cleanly shut down.
        public static let shutDown = State(rawValue: 1)
        /// `DB_SHUTDOWNED_IN_RECOVERY`: a standby cleanly shut down.
        public static let shutDownInRecovery = State(rawValue: 2)
        /// `DB_SHUTDOWNING`
        public static let shuttingDown = State(rawValue: 3)
        /// `DB_IN_CRASH_RECOVERY`
        public static let inCrashRecovery = State(rawValue: 4)
        /// `DB_IN_ARCHIVE_RECOVERY`: a running standby or a restore in progress.
        public static let inArchiveRecovery = State(rawValue: 5)
        /// `DB_IN_PRODUCTION`: a running (or crashed) primary.
        public static let inProduction = State(rawValue: 6)

        /// The wording `pg_controldata` prints (`dbState()` in `src/bin/pg_controldata/pg_controldata.c`).
        public var description: String {
            switch rawValue {
            case 0: return "starting up"
            case 1: return "shut down"
            case 2: return "shut down in recovery"
            case 3: return "shutting down"
            case 4: return "in crash recovery"
            case 5: return "in archive recovery"
            case 6: return "in production"
            default: return "unrecognized status code \(rawValue)"
            }
        }
    }

    /// `PG_CONTROL_FILE_SIZE`: the size of the file on disk.
    public static let fileSize = 8192
    /// `sizeof(ControlFileData)` for PG13 to PG18: the meaningful prefix of the file.
    public static let structSize = 296
    /// Where the file lives, relative to the data directory.
    public static let relativePath = "global/pg_control"
    /// The only data page size pgkeep's page checksum code handles (`BLCKSZ` default; pgBackRest
    /// also refuses others).
    public static let supportedBlockSize: UInt32 = 8192

    /// `system_identifier` @0: unique per initdb, repeated in every WAL long page header.
    public let systemIdentifier: UInt64
    /// `pg_control_version` @8.
    public let controlVersion: UInt32
    /// `catalog_version_no` @12.
    public let catalogVersion: UInt32
    /// The major version identified by the (control, catalog) pair.
    public let version: PGVersion
    /// `state` @16.
    public let state: State
    /// `time` @24: when pg_control was last updated, Unix seconds (`pg_time_t`).
    public let time: Int64
    /// `checkPoint` @32: the LSN of the latest checkpoint *record*.
    public let checkpoint: LSN
    /// `checkPointCopy.redo` @40: the REDO location of the latest checkpoint.
    public let redo: LSN
    /// `checkPointCopy.ThisTimeLineID` @48: the current timeline.
    public let timeline: TimelineID
    /// `checkPointCopy.PrevTimeLineID` @52.
    public let previousTimeline: TimelineID
    /// `checkPointCopy.time` @104: time of the latest checkpoint, Unix seconds.
    public let checkpointTime: Int64
    /// `minRecoveryPoint` @136: on a standby, the stop LSN of a backup taken from it (§1.7).
    public let minRecoveryPoint: LSN
    /// `minRecoveryPointTLI` @144.
    public let minRecoveryPointTimeline: TimelineID
    /// `blcksz` @216: data page size.
    public let blockSize: UInt32
    /// `relseg_size` @220: blocks per relation segment file (131072 = 1 GiB by default).
    public let relsegSize: UInt32
    /// `xlog_blcksz` @224: WAL page size.
    public let walBlockSize: UInt32
    /// `xlog_seg_size` @228: WAL segment size.
    public let walSegmentSize: WALSegmentSize
    /// `data_checksum_version` @252: 0 = data checksums off, 1 = on.
    public let dataChecksumVersion: UInt32
    /// The CRC-32C stored in the file (and verified).
    public let crc: UInt32

    /// Whether data pages carry checksums (`data_checksum_version` is `PG_DATA_CHECKSUM_VERSION`).
    public var dataChecksumsEnabled: Bool { dataChecksumVersion == 1 }

    /// Parses and checks the bytes of a pg_control file.
    ///
    /// - Parameters:
    ///   - bytes: the file's content; at least the first 296 bytes (`structSize`), normally all 8192.
    ///   - path: where the bytes came from, for error messages.
    /// - Throws: `PGKeepError(.pgControlInvalid)` when the file is too short, of an unknown version,
    ///   fails its CRC, or holds an impossible segment size, page size or checksum version.
    public init(bytes: UnsafeRawBufferPointer, path: String) throws(PGKeepError) {
        guard bytes.count >= Self.structSize else {
            throw PGKeepError(.pgControlInvalid,
                              "pg_control '\(path)' is truncated: \(bytes.count) bytes, expected \(Self.fileSize) (at least \(Self.structSize))",
                              hint: "the file is damaged or is not a pg_control file; check that the data directory path is correct")
        }
        let controlVersion = Self.u32(bytes, 8)
        let catalogVersion = Self.u32(bytes, 12)

        // 1. Version table (pg_control.h PG_CONTROL_VERSION, catversion.h CATALOG_VERSION_NO).
        guard let version = PGVersion.lookup(controlVersion: controlVersion, catalogVersion: catalogVersion) else {
            throw Self.unknownVersionError(path: path, controlVersion: controlVersion, catalogVersion: catalogVersion)
        }

        // 2. CRC-32C over [0, offsetof(crc)) (xlog.c ReadControlFile; pg_crc32c.h).
        let stored = Self.u32(bytes, version.controlCRCOffset)
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<version.controlCRCOffset]))
        guard stored == computed else {
            throw PGKeepError(.pgControlInvalid,
                              "pg_control '\(path)' fails its CRC check: stored 0x\(Hex.upper(stored, width: 8)), computed 0x\(Hex.upper(computed, width: 8)) over \(version.controlCRCOffset) bytes (\(version))",
                              hint: "the file is torn or corrupt; if the server is running, run the command again; otherwise inspect the cluster with pg_controldata")
        }

        // 3. IsValidWalSegSize (xlog_internal.h).
        let rawSegmentSize = Self.u32(bytes, 228)
        guard let walSegmentSize = WALSegmentSize(bytes: UInt64(rawSegmentSize)) else {
            throw PGKeepError(.pgControlInvalid,
                              "pg_control '\(path)' has an invalid WAL segment size of \(rawSegmentSize) bytes: it must be a power of two from 1 MiB to 1 GiB",
                              hint: "the file is corrupt; inspect the cluster with pg_controldata")
        }

        // 4. Page sizes. pgBackRest refuses any blcksz but 8192 (interface.c); XLOG_BLCKSZ is a
        //    configure choice among powers of two from 1 kB to 64 kB (configure.ac --with-wal-blocksize).
        let blockSize = Self.u32(bytes, 216)
        guard blockSize == Self.supportedBlockSize else {
            throw PGKeepError(.pgControlInvalid,
                              "pg_control '\(path)' has a data page size of \(blockSize) bytes; only \(Self.supportedBlockSize) is supported",
                              hint: "this PostgreSQL was built with a non-default --with-blocksize, which pgkeep cannot back up")
        }
        let walBlockSize = Self.u32(bytes, 224)
        guard walBlockSize.nonzeroBitCount == 1, (1024...65536).contains(walBlockSize) else {
            throw PGKeepError(.pgControlInvalid,
                              "pg_control '\(path)' has an invalid WAL page size of \(walBlockSize) bytes: it must be a power of two from 1 kB to 64 kB",
                              hint: "the file is corrupt; inspect the cluster with pg_controldata")
        }
        let relsegSize = Self.u32(bytes, 220)
        guard relsegSize > 0 else {
            throw PGKeepError(.pgControlInvalid,
                              "pg_control '\(path)' has a relation segment size of 0 blocks",
                              hint: "the file is corrupt; inspect the cluster with pg_controldata")
        }

        // 5. PG_DATA_CHECKSUM_VERSION is 1 (storage/bufpage.h); 0 means off.
        let dataChecksumVersion = Self.u32(bytes, 252)
        guard dataChecksumVersion <= 1 else {
            throw PGKeepError(.pgControlInvalid,
                              "pg_control '\(path)' has an unknown data checksum version \(dataChecksumVersion) (expected 0 or 1)",
                              hint: "the file is corrupt or from a newer PostgreSQL; inspect the cluster with pg_controldata")
        }

        self.systemIdentifier = Self.u64(bytes, 0)
        self.controlVersion = controlVersion
        self.catalogVersion = catalogVersion
        self.version = version
        self.state = State(rawValue: Self.u32(bytes, 16))
        self.time = Int64(bitPattern: Self.u64(bytes, 24))
        self.checkpoint = LSN(Self.u64(bytes, 32))
        self.redo = LSN(Self.u64(bytes, 40))
        self.timeline = TimelineID(rawValue: Self.u32(bytes, 48))
        self.previousTimeline = TimelineID(rawValue: Self.u32(bytes, 52))
        self.checkpointTime = Int64(bitPattern: Self.u64(bytes, 104))
        self.minRecoveryPoint = LSN(Self.u64(bytes, 136))
        self.minRecoveryPointTimeline = TimelineID(rawValue: Self.u32(bytes, 144))
        self.blockSize = blockSize
        self.relsegSize = relsegSize
        self.walBlockSize = walBlockSize
        self.walSegmentSize = walSegmentSize
        self.dataChecksumVersion = dataChecksumVersion
        self.crc = stored
    }

    /// Parses a pg_control file held in an array.
    public init(bytes: [UInt8], path: String) throws(PGKeepError) {
        let result: Result<PGControl, PGKeepError> = bytes.withUnsafeBytes { buffer in
            Result { () throws(PGKeepError) -> PGControl in try PGControl(bytes: buffer, path: path) }
        }
        self = try result.get()
    }

    /// True when `bytes` are long enough, of a known version, and their CRC does not match: the
    /// one failure a re-read can cure, because a running server rewrites pg_control in place.
    static func hasCRCMismatch(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= structSize,
              let version = PGVersion.lookup(controlVersion: u32(bytes, 8), catalogVersion: u32(bytes, 12))
        else { return false }
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<version.controlCRCOffset]))
        return computed != u32(bytes, version.controlCRCOffset)
    }

    /// Reads and parses the pg_control file at `path`, re-reading when the CRC does not match.
    ///
    /// The server rewrites pg_control in place (`update_controlfile` in
    /// `src/common/controldata_utils.c` writes 8192 bytes over the old ones) and a reader can see a
    /// half-written file; PostgreSQL's own frontend tools retry the read for this reason
    /// (docs/postgres-internals.md §3.2). Other failures are not retried.
    ///
    /// - Parameters:
    ///   - path: the file, normally `<pgdata>/global/pg_control`.
    ///   - attempts: how many reads to make before a CRC mismatch is reported.
    ///   - retryDelay: the pause between reads.
    /// - Throws: `.fileMissing`/`.fileOpen`/`.fileRead` for I/O failures, `.pgControlInvalid` for
    ///   content failures.
    public static func read(path: String, attempts: Int = 10, retryDelay: Duration = .milliseconds(100)) throws(PGKeepError) -> PGControl {
        try readWithBytes(path: path, attempts: attempts, retryDelay: retryDelay).control
    }

    /// Reads the data directory's `global/pg_control`.
    public static func read(dataDirectory: String) throws(PGKeepError) -> PGControl {
        try read(path: dataDirectory.hasSuffix("/") ? dataDirectory + relativePath : dataDirectory + "/" + relativePath)
    }

    /// Like `read`, also returning the exact bytes that passed the CRC check: a backup stores those
    /// bytes, never a second read that might catch the server mid-rewrite.
    public static func readWithBytes(path: String, attempts: Int = 10, retryDelay: Duration = .milliseconds(100)) throws(PGKeepError) -> (control: PGControl, bytes: [UInt8]) {
        try readWithBytes(path: path, attempts: attempts, retryDelay: retryDelay) { (buffer: inout [UInt8]) throws(PGKeepError) -> Int in
            try readPrefix(path: path, into: &buffer)
        }
    }

    /// Reads the data directory's `global/pg_control` on `host`, with the same re-reads as
    /// `read(path:)`, and returns the bytes that passed the CRC check.
    public static func read(from host: PostgresHost, dataDirectory: FilePath, attempts: Int = 10,
                            retryDelay: Duration = .milliseconds(100)) throws(PGKeepError) -> (control: PGControl, bytes: [UInt8]) {
        try refuseUnknownMajor(on: host, dataDirectory: dataDirectory)
        let path = dataDirectory.joined(relativePath)
        return try readWithBytes(path: path.string, attempts: attempts, retryDelay: retryDelay) { (buffer: inout [UInt8]) throws(PGKeepError) -> Int in
            let bytes: [UInt8]?
            do {
                bytes = try host.readSmallFile(path, limit: 1 << 20)
            } catch let error as PGKeepError {
                throw error
            } catch {
                throw PGKeepError(.fileRead, "unable to read pg_control '\(path)': \(error)")
            }
            guard let bytes else {
                throw PGKeepError(.fileMissing, "unable to open pg_control '\(path)': it does not exist",
                                  hint: "check that the data directory path is correct and readable by this user")
            }
            let count = min(bytes.count, buffer.count)
            buffer.replaceSubrange(0..<count, with: bytes[0..<count])
            return count
        }
    }

    /// The re-read loop of `readWithBytes`, over any way of reading the file's first
    /// `buffer.count` bytes (`readPrefix` returns how many it read).
    private static func readWithBytes(path: String, attempts: Int, retryDelay: Duration,
                                      readPrefix: (inout [UInt8]) throws(PGKeepError) -> Int) throws(PGKeepError) -> (control: PGControl, bytes: [UInt8]) {
        var buffer = [UInt8](repeating: 0, count: fileSize)
        var attempt = 1
        while true {
            let count = try readPrefix(&buffer)
            let outcome: Result<PGControl, PGKeepError> = buffer.withUnsafeBytes { all in
                let bytes = UnsafeRawBufferPointer(rebasing: all[0..<count])
                return Result { () throws(PGKeepError) -> PGControl in try PGControl(bytes: bytes, path: path) }
            }
            switch outcome {
            case .success(let control):
                return (control, Array(buffer[0..<count]))
            case .failure(let error):
                let retryable = buffer.withUnsafeBytes { all in hasCRCMismatch(UnsafeRawBufferPointer(rebasing: all[0..<count])) }
                guard retryable, attempt < attempts else {
                    if retryable && attempts > 1 {
                        throw PGKeepError(error.code, error.message + " (after \(attempts) reads)", hint: error.hint)
                    }
                    throw error
                }
                attempt += 1
                sleep(for: retryDelay)
            }
        }
    }

    /// Reads up to `buffer.count` bytes from the start of `path`; returns how many were read.
    private static func readPrefix(path: String, into buffer: inout [UInt8]) throws(PGKeepError) -> Int {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            throw PGKeepError.system(code == ENOENT ? .fileMissing : .fileOpen, "open pg_control", path: path, errno: code,
                                     hint: "check that the data directory path is correct and readable by this user")
        }
        defer { _ = close(fd) }
        var total = 0
        let capacity = buffer.count
        while total < capacity {
            let result = buffer.withUnsafeMutableBytes { raw in
                systemRead(fd, raw.baseAddress! + total, capacity - total)
            }
            if result < 0 {
                let code = errno
                if code == EINTR { continue }
                throw PGKeepError.system(.fileRead, "read pg_control", path: path, errno: code)
            }
            if result == 0 { break }
            total += result
        }
        return total
    }

    private static func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
        #if canImport(Glibc)
        return Glibc.read(fd, buffer, count)
        #else
        return Darwin.read(fd, buffer, count)
        #endif
    }

    private static func sleep(for delay: Duration) {
        let (seconds, attoseconds) = delay.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR {
            request = remaining
        }
    }

    /// A major pgkeep has no layout for (PostgreSQL 19, say) has a pg_control it cannot parse:
    /// `PG_VERSION` names the major first, so the error can say which one was found. Supported
    /// and known majors go on to pg_control, which decides; an unreadable PG_VERSION too.
    static func refuseUnknownMajor(on host: PostgresHost, dataDirectory: FilePath) throws(PGKeepError) {
        let bytes: [UInt8]?
        do { bytes = try host.readSmallFile(dataDirectory.joined("PG_VERSION"), limit: 64) } catch { return }
        guard let bytes, let major = Int(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: " \n")),
              !PGVersion.known.contains(where: { $0.major == major }) else { return }
        try PGVersion.requireSupported(major, of: "the cluster in '\(dataDirectory)' (its PG_VERSION)")
    }

    private static func unknownVersionError(path: String, controlVersion: UInt32, catalogVersion: UInt32) -> PGKeepError {
        let known = PGVersion.known.map { String($0.major) }.joined(separator: ", ")
        if PGVersion.known.contains(where: { $0.controlVersion == controlVersion }) {
            return PGKeepError(.pgControlInvalid,
                               "pg_control '\(path)' has an unknown catalog version \(catalogVersion) for pg_control version \(controlVersion)",
                               hint: "pgkeep knows the release catalog versions of PostgreSQL \(known); beta and release-candidate builds, and newer releases, are not recognised")
        }
        if PGVersion.known.contains(where: { $0.controlVersion == controlVersion.byteSwapped }) {
            return PGKeepError(.pgControlInvalid,
                               "pg_control '\(path)' was written with the opposite byte order (pg_control version \(controlVersion.byteSwapped) byte-swapped)",
                               hint: "a cluster cannot be read on a machine of different endianness; run pgkeep on the database host")
        }
        return PGKeepError(.pgControlInvalid,
                           "pg_control '\(path)' has an unknown pg_control version \(controlVersion) (catalog version \(catalogVersion))",
                           hint: "check that the path is a PostgreSQL data directory; pgkeep knows PostgreSQL \(known)")
    }

    // Native-endian loads: pg_control is written in the host's byte order (§3.1).
    private static func u32(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
        bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
    }

    private static func u64(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
        bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
    }
}
