import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("WAL page header")
struct WALPageHeaderTests {
    private let pg15 = PGVersion(major: 15)!
    private let segmentBytes = Int64(16 << 20)
    private let path = "/pgdata/pg_wal/000000010000000000000002"

    private func segment(_ name: String, size: WALSegmentSize = .default) -> WALSegmentName {
        WALSegmentName(name, segmentSize: size)!
    }

    private func validationError(_ bytes: [UInt8], fileSize: Int64? = nil, segment name: String = PostgresFixture.walSegmentName,
                                 segmentSize: WALSegmentSize = .default, systemIdentifier: UInt64 = PostgresFixture.systemIdentifier,
                                 version: PGVersion? = nil) throws -> PGKeepError? {
        let header = try WALPageHeader(bytes: bytes, path: path)
        let seg = segment(name, size: segmentSize)
        return #expect(throws: PGKeepError.self) {
            try header.validate(fileSize: fileSize ?? Int64(segmentSize.bytes), segment: seg, systemIdentifier: systemIdentifier,
                                version: version ?? pg15, path: path)
        }
    }

    @Test("parses the long header of a real PostgreSQL 15 segment")
    func realHeader() throws {
        let header = try WALPageHeader(bytes: try PostgresFixture.walFirstPage(), path: path)
        #expect(header.magic == 0xD110)
        #expect(header.version?.major == 15)
        #expect(header.info == 0x0006)  // XLP_LONG_HEADER | XLP_BKP_REMOVABLE
        #expect(header.isLong)
        #expect(header.timeline == 1)
        #expect(header.pageAddress.description == "0/2000000")
        #expect(header.remainingLength == 0)
        #expect(header.systemIdentifier == PostgresFixture.systemIdentifier)
        #expect(header.segmentSize == 16 << 20)
        #expect(header.walBlockSize == 8192)
    }

    @Test("a later major's first WAL page carries its magic and its cluster's system identifier, and validates for that major only",
          arguments: PostgresFixture.LaterMajor.all)
    func realHeaderOfLaterMajor(_ fixture: PostgresFixture.LaterMajor) throws {
        let header = try WALPageHeader(bytes: try fixture.walFirstPage(), path: path)
        #expect(header.magic == fixture.walPageMagic)
        #expect(header.version?.major == fixture.major)
        #expect(header.isLong)
        #expect(header.timeline == 1)
        #expect(header.pageAddress.description == "0/1000000")
        #expect(header.systemIdentifier == fixture.systemIdentifier)
        #expect(header.segmentSize == 16 << 20)
        let version = try #require(PGVersion(major: fixture.major))
        try header.validate(fileSize: segmentBytes, segment: segment("000000010000000000000001"),
                            systemIdentifier: fixture.systemIdentifier, version: version, path: path)
        #expect(throws: PGKeepError.self) {
            try header.validate(fileSize: segmentBytes, segment: segment("000000010000000000000001"),
                                systemIdentifier: fixture.systemIdentifier, version: pg15, path: path)
        }
    }

    @Test("accepts the real segment for its own cluster, name and size")
    func validates() throws {
        let header = try WALPageHeader(bytes: try PostgresFixture.walFirstPage(), path: path)
        try header.validate(fileSize: segmentBytes, segment: segment(PostgresFixture.walSegmentName),
                            systemIdentifier: PostgresFixture.systemIdentifier, version: pg15, path: path)
        // A segment of a later timeline may start with pages its parent wrote (xlp_tli 1 in file TLI 2).
        try header.validate(fileSize: segmentBytes, segment: segment("000000020000000000000002"),
                            systemIdentifier: PostgresFixture.systemIdentifier, version: pg15, path: path)
    }

    @Test("refuses a segment from another cluster as an archive mismatch, asking about the stanza")
    func wrongSystemIdentifier() throws {
        let error = try #require(try validationError(try PostgresFixture.walFirstPage(), systemIdentifier: 1234))
        #expect(error.code == .archiveMismatch)
        #expect(error.message.contains(path))
        #expect(error.message.contains("\(PostgresFixture.systemIdentifier)") && error.message.contains("1234"))
        #expect(error.hint?.contains("are you archiving to the correct stanza?") == true)
    }

    @Test("refuses a segment from another major version as an archive mismatch")
    func otherVersion() throws {
        let bytes = try PostgresFixture.walFirstPage().patched(at: 0, UInt16(0xD113))
        let error = try #require(try validationError(bytes))
        #expect(error.code == .archiveMismatch)
        #expect(error.message.contains("PostgreSQL 16") && error.message.contains("PostgreSQL 15"))
        let againstPG16 = try #require(try validationError(try PostgresFixture.walFirstPage(), version: PGVersion(major: 16)))
        #expect(againstPG16.code == .archiveMismatch)
    }

    @Test("refuses an unknown magic number as invalid WAL")
    func wrongMagic() throws {
        let error = try #require(try validationError(try PostgresFixture.walFirstPage().patched(at: 0, UInt16(0x1234))))
        #expect(error.code == .walInvalid)
        #expect(error.message.contains("0x1234") && error.message.contains("0xD110"))
    }

    @Test("refuses a renamed segment because its page address does not match the name")
    func renamedSegment() throws {
        let error = try #require(try validationError(try PostgresFixture.walFirstPage(), segment: "000000010000000000000003"))
        #expect(error.code == .walInvalid)
        #expect(error.message.contains("0/2000000") && error.message.contains("0/3000000"))
        #expect(error.hint?.contains("renamed") == true)
    }

    @Test("refuses a file that is not exactly one segment long")
    func wrongFileSize() throws {
        let error = try #require(try validationError(try PostgresFixture.walFirstPage(), fileSize: 8192))
        #expect(error.code == .walInvalid)
        #expect(error.message.contains("8192 bytes") && error.message.contains("16777216"))
    }

    @Test("refuses a segment whose header records another segment size")
    func wrongSegmentSize() throws {
        let error = try #require(try validationError(try PostgresFixture.walFirstPage(), segmentSize: WALSegmentSize(bytes: 1 << 20)!))
        #expect(error.code == .walInvalid)
        #expect(error.message.contains("segment size 16777216") && error.message.contains("expected 1048576"))
        let blck = try #require(try validationError(try PostgresFixture.walFirstPage().patched(at: 36, UInt32(4096))))
        #expect(blck.message.contains("WAL block size 4096"))
    }

    @Test("refuses unknown info bits and a first page without the long header")
    func infoBits() throws {
        let unknown = try #require(try validationError(try PostgresFixture.walFirstPage().patched(at: 2, UInt16(0x0016))))
        #expect(unknown.message.contains("invalid info bits 0x0016"))
        let short = try #require(try validationError(try PostgresFixture.walFirstPage().patched(at: 2, UInt16(0x0004))))
        #expect(short.message.contains("no long header"))
    }

    @Test("refuses a page timeline after the timeline in the file name")
    func timelineAfterName() throws {
        let bytes = try PostgresFixture.walFirstPage().patched(at: 4, UInt32(3))
        let error = try #require(try validationError(bytes, segment: "000000020000000000000002"))
        #expect(error.code == .walInvalid)
        #expect(error.message.contains("timeline 3") && error.message.contains("timeline 2"))
    }

    @Test("refuses bytes too short for a header")
    func tooShort() throws {
        let page = try PostgresFixture.walFirstPage()
        #expect(throws: PGKeepError.self) { try WALPageHeader(bytes: Array(page.prefix(10)), path: path) }
        let long = #expect(throws: PGKeepError.self) { try WALPageHeader(bytes: Array(page.prefix(30)), path: path) }
        #expect(long?.code == .walInvalid)
        // A short header alone parses when the long flag is clear.
        let short = try WALPageHeader(bytes: Array(page.patched(at: 2, UInt16(0)).prefix(24)), path: path)
        #expect(short.systemIdentifier == nil && !short.isLong)
    }
}
