import PGKeepCore

/// The header at the start of a WAL page, with the long-header fields of a segment's first page.
///
/// Layout: `XLogPageHeaderData` and `XLogLongPageHeaderData` in `src/include/access/xlog_internal.h`
/// (docs/postgres-internals.md §4.2), in the writing machine's byte order:
///
/// | off | size | field |
/// |---|---|---|
/// | 0 | 2 | `xlp_magic` |
/// | 2 | 2 | `xlp_info` |
/// | 4 | 4 | `xlp_tli` |
/// | 8 | 8 | `xlp_pageaddr` |
/// | 16 | 4 | `xlp_rem_len` (+4 padding: `SizeOfXLogShortPHD` = 24) |
/// | 24 | 8 | `xlp_sysid` (long header only) |
/// | 32 | 4 | `xlp_seg_size` (long header only) |
/// | 36 | 4 | `xlp_xlog_blcksz` (long header only; `SizeOfXLogLongPHD` = 40) |
///
/// `validate` runs, before a segment is archived, the checks the server's reader makes on a
/// segment's first page (`XLogReaderValidatePageHeader` in `src/backend/access/transam/xlogreader.c`)
/// plus the file-size and version checks pgBackRest makes (`pgWalFromBuffer`).
public struct WALPageHeader: Hashable, Sendable {
    /// `SizeOfXLogShortPHD`.
    public static let shortSize = 24
    /// `SizeOfXLogLongPHD`.
    public static let longSize = 40

    /// `XLP_FIRST_IS_CONTRECORD`: the page starts with the continuation of a record.
    public static let firstIsContRecord: UInt16 = 0x0001
    /// `XLP_LONG_HEADER`: the long header follows (set on the first page of every segment).
    public static let longHeader: UInt16 = 0x0002
    /// `XLP_BKP_REMOVABLE`: full-page images on this page may be dropped by an archiver.
    public static let backupRemovable: UInt16 = 0x0004
    /// `XLP_FIRST_IS_OVERWRITE_CONTRECORD`: the continuation was overwritten (PG15 `missingContrecPtr`).
    public static let firstIsOverwriteContRecord: UInt16 = 0x0008
    /// `XLP_ALL_FLAGS`: any other bit in `xlp_info` marks a damaged page.
    public static let allFlags: UInt16 = 0x000F

    /// `xlp_magic`: identifies the major version (`XLOG_PAGE_MAGIC`).
    public let magic: UInt16
    /// `xlp_info`: flag bits.
    public let info: UInt16
    /// `xlp_tli`: the timeline of the first record on the page.
    public let timeline: TimelineID
    /// `xlp_pageaddr`: the LSN of the page's first byte.
    public let pageAddress: LSN
    /// `xlp_rem_len`: bytes of a record continued from the previous page.
    public let remainingLength: UInt32
    /// `xlp_sysid`: the cluster's system identifier; nil without a long header.
    public let systemIdentifier: UInt64?
    /// `xlp_seg_size`: the segment size; nil without a long header.
    public let segmentSize: UInt32?
    /// `xlp_xlog_blcksz`: the WAL page size; nil without a long header.
    public let walBlockSize: UInt32?

    /// Whether `xlp_info` has `XLP_LONG_HEADER`.
    public var isLong: Bool { info & Self.longHeader != 0 }

    /// The version whose `XLOG_PAGE_MAGIC` this page carries, if the table knows it.
    public var version: PGVersion? { PGVersion.lookup(walPageMagic: magic) }

    /// Parses the header at the start of `bytes` (the first bytes of a page, normally of a segment).
    ///
    /// - Parameters:
    ///   - bytes: at least 24 bytes, or 40 when the long-header flag is set.
    ///   - path: the file the bytes came from, for error messages.
    /// - Throws: `PGKeepError(.walInvalid)` when there are too few bytes for the header.
    public init(bytes: UnsafeRawBufferPointer, path: String) throws(PGKeepError) {
        guard bytes.count >= Self.shortSize else {
            throw PGKeepError(.walInvalid,
                              "WAL file '\(path)' is too short for a page header: \(bytes.count) bytes, expected at least \(Self.shortSize)",
                              hint: "the file is truncated or is not a WAL segment")
        }
        magic = bytes.loadUnaligned(fromByteOffset: 0, as: UInt16.self)
        info = bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self)
        timeline = TimelineID(rawValue: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        pageAddress = LSN(bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        remainingLength = bytes.loadUnaligned(fromByteOffset: 16, as: UInt32.self)
        if info & Self.longHeader != 0 {
            guard bytes.count >= Self.longSize else {
                throw PGKeepError(.walInvalid,
                                  "WAL file '\(path)' is too short for a long page header: \(bytes.count) bytes, expected at least \(Self.longSize)",
                                  hint: "the file is truncated or is not a WAL segment")
            }
            systemIdentifier = bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            segmentSize = bytes.loadUnaligned(fromByteOffset: 32, as: UInt32.self)
            walBlockSize = bytes.loadUnaligned(fromByteOffset: 36, as: UInt32.self)
        } else {
            systemIdentifier = nil
            segmentSize = nil
            walBlockSize = nil
        }
    }

    /// Parses the header at the start of a byte array.
    public init(bytes: [UInt8], path: String) throws(PGKeepError) {
        let result: Result<WALPageHeader, PGKeepError> = bytes.withUnsafeBytes { buffer in
            Result { () throws(PGKeepError) -> WALPageHeader in try WALPageHeader(bytes: buffer, path: path) }
        }
        self = try result.get()
    }

    /// Checks that this header, read from the first page of the file at `path`, belongs to
    /// `segment` of the cluster described by the other arguments (the checks of docs/postgres-internals.md §4.2).
    ///
    /// 1. The file is exactly one segment long.
    /// 2. `xlp_magic` is `version`'s `XLOG_PAGE_MAGIC`.
    /// 3. `xlp_info` has no unknown bits and has `XLP_LONG_HEADER`.
    /// 4. `xlp_sysid` is the cluster's system identifier.
    /// 5. `xlp_seg_size` and `xlp_xlog_blcksz` are the cluster's.
    /// 6. `xlp_pageaddr` is the segment's start LSN: catches a recycled or renamed segment.
    /// 7. `xlp_tli` is not after the timeline in the file name.
    ///
    /// - Parameters:
    ///   - fileSize: the size of the file on disk.
    ///   - segment: the segment the file name says it is, built with the cluster's segment size.
    ///   - systemIdentifier: the cluster's (stanza's) system identifier.
    ///   - version: the cluster's (stanza's) major version.
    ///   - walBlockSize: the cluster's WAL page size (`xlog_blcksz` in pg_control).
    ///   - path: the file, for error messages.
    /// - Throws: `.archiveMismatch` when the file belongs to another cluster or major version,
    ///   `.walInvalid` for every other failed check.
    public func validate(fileSize: Int64, segment: WALSegmentName, systemIdentifier: UInt64, version: PGVersion,
                         walBlockSize: UInt32 = 8192, path: String) throws(PGKeepError) {
        let expectedSize = segment.segmentSize.bytes
        // 1. The archiver hands over only complete segments; `.partial` files are full size too.
        guard fileSize == Int64(expectedSize) else {
            throw PGKeepError(.walInvalid,
                              "WAL file '\(path)' is \(fileSize) bytes, expected the segment size \(expectedSize)",
                              hint: "the file is truncated or from a cluster with another wal_segment_size")
        }
        // 2. XLogReaderValidatePageHeader: "invalid magic number %04X".
        guard magic == version.walPageMagic else {
            if let other = self.version {
                throw PGKeepError(.archiveMismatch,
                                  "WAL file '\(path)' is from \(other) (magic 0x\(Hex.upper(magic, width: 4))), but the stanza is \(version) (magic 0x\(Hex.upper(version.walPageMagic, width: 4)))",
                                  hint: "are you archiving to the correct stanza? After a major upgrade, run stanza-upgrade")
            }
            throw PGKeepError(.walInvalid,
                              "WAL file '\(path)' has invalid magic number 0x\(Hex.upper(magic, width: 4)), expected 0x\(Hex.upper(version.walPageMagic, width: 4)) (\(version))",
                              hint: "the file is not a WAL segment or is corrupt")
        }
        // 3. XLogReaderValidatePageHeader: "invalid info bits %04X"; the first page of a segment
        //    must carry the long header.
        guard info & ~Self.allFlags == 0 else {
            throw PGKeepError(.walInvalid,
                              "WAL file '\(path)' has invalid info bits 0x\(Hex.upper(info, width: 4)) in its first page header",
                              hint: "the file is corrupt")
        }
        guard isLong, let foundSystemIdentifier = self.systemIdentifier, let foundSegmentSize = segmentSize,
              let foundBlockSize = self.walBlockSize
        else {
            throw PGKeepError(.walInvalid,
                              "WAL file '\(path)' has no long header on its first page (info bits 0x\(Hex.upper(info, width: 4)))",
                              hint: "the file is not the start of a WAL segment or is corrupt")
        }
        // 4. "WAL file is from different database system: WAL file database system identifier is
        //    %llu, pg_control database system identifier is %llu".
        guard foundSystemIdentifier == systemIdentifier else {
            throw PGKeepError(.archiveMismatch,
                              "WAL file '\(path)' is from a different database system: its system identifier is \(foundSystemIdentifier), the stanza's is \(systemIdentifier)",
                              hint: "are you archiving to the correct stanza? Check the stanza's pg1-path and archive_command")
        }
        // 5. "Incorrect XLOG_SEG_SIZE in page header" / "Incorrect XLOG_BLCKSZ in page header".
        guard UInt64(foundSegmentSize) == expectedSize else {
            throw PGKeepError(.walInvalid,
                              "WAL file '\(path)' has segment size \(foundSegmentSize) in its page header, expected \(expectedSize)",
                              hint: "the file is from a cluster with another wal_segment_size, or is corrupt")
        }
        guard foundBlockSize == walBlockSize else {
            throw PGKeepError(.walInvalid,
                              "WAL file '\(path)' has WAL block size \(foundBlockSize) in its page header, expected \(walBlockSize)",
                              hint: "the file is from a cluster built with another --with-wal-blocksize, or is corrupt")
        }
        // 6. "unexpected pageaddr %X/%X in log segment %s, offset %u".
        guard pageAddress == segment.startLSN else {
            let actual = WALSegmentName.segment(containing: pageAddress, timeline: segment.timeline, segmentSize: segment.segmentSize)
            throw PGKeepError(.walInvalid,
                              "WAL file '\(path)' has page address \(pageAddress) in its first page, expected \(segment.startLSN) for segment \(segment.name) (the content belongs to segment number \(actual.segmentNumber))",
                              hint: "the file was renamed or recycled; archive the segment PostgreSQL named, not a copy under another name")
        }
        // 7. A page's TLI can only be at or below the timeline its file is named for (a new
        //    timeline's first segment starts with the copied pages of its parent).
        guard timeline <= segment.timeline else {
            throw PGKeepError(.walInvalid,
                              "WAL file '\(path)' has timeline \(timeline) in its first page header, after timeline \(segment.timeline) in its name",
                              hint: "the file was renamed or is corrupt")
        }
    }
}
