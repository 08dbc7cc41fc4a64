import Foundation
import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("pg_control")
struct PGControlTests {
    private func parse(_ bytes: [UInt8], path: String = "/pgdata/global/pg_control") throws -> PGControl {
        try PGControl(bytes: bytes, path: path)
    }

    private func failure(_ bytes: [UInt8], path: String = "/pgdata/global/pg_control") -> PGKeepError? {
        #expect(throws: PGKeepError.self) { try PGControl(bytes: bytes, path: path) }
    }

    @Test("parses the real PostgreSQL 15 pg_control with the values pg_controldata printed")
    func realFile() throws {
        let control = try parse(try PostgresFixture.pgControl())
        #expect(control.systemIdentifier == PostgresFixture.systemIdentifier)
        #expect(control.controlVersion == 1300)
        #expect(control.catalogVersion == 202209061)
        #expect(control.version.major == 15)
        #expect(control.version.isSupported)
        #expect(control.state == .shutDown)
        #expect(control.state.description == "shut down")
        #expect(control.checkpoint.description == "0/6000028")
        #expect(control.redo.description == "0/6000028")
        #expect(WALSegmentName.segment(containing: control.redo, timeline: control.timeline, segmentSize: control.walSegmentSize).name
            == "000000010000000000000006")  // "Latest checkpoint's REDO WAL file"
        #expect(control.timeline == 1)
        #expect(control.previousTimeline == 1)
        #expect(control.time == 1_795_734_440)  // Thu Nov 26 23:07:20 2026 UTC
        #expect(control.checkpointTime == 1_795_734_440)
        #expect(control.minRecoveryPoint == .invalid)
        #expect(control.blockSize == 8192)
        #expect(control.relsegSize == 131072)
        #expect(control.walBlockSize == 8192)
        #expect(control.walSegmentSize.bytes == 16_777_216)
        #expect(control.dataChecksumVersion == 1)
        #expect(control.dataChecksumsEnabled)
        #expect(control.crc == 0x2E51_5D69)
    }

    @Test("parses a real pg_control of each later major with the values pg_controldata printed",
          arguments: PostgresFixture.LaterMajor.all)
    func realFileOfLaterMajor(_ fixture: PostgresFixture.LaterMajor) throws {
        let control = try parse(try fixture.pgControl())
        #expect(control.version.major == fixture.major)
        #expect(control.version.isSupported)
        #expect(control.controlVersion == fixture.controlVersion)
        #expect(control.catalogVersion == fixture.catalogVersion)
        #expect(control.systemIdentifier == fixture.systemIdentifier)
        #expect(control.state == .shutDown)
        #expect(control.checkpoint.description == fixture.checkpoint)
        #expect(control.redo.description == fixture.checkpoint)
        #expect(control.timeline == 1)
        #expect(control.previousTimeline == 1)
        #expect(control.minRecoveryPoint == .invalid)
        #expect(control.blockSize == 8192)
        #expect(control.relsegSize == 131072)
        #expect(control.walBlockSize == 8192)
        #expect(control.walSegmentSize.bytes == 16_777_216)
        #expect(control.dataChecksumsEnabled)
        // The file was written within a second of its checkpoint (initdb's shutdown).
        #expect(abs(control.time - control.checkpointTime) <= 1)
    }

    @Test("reads the file from disk with open/read")
    func readFromPath() throws {
        let control = try PGControl.read(path: PostgresFixture.path("pg15-pg_control"))
        #expect(control.systemIdentifier == PostgresFixture.systemIdentifier)
    }

    @Test("refuses a pg_control with one flipped byte because the CRC does not match")
    func flippedByte() throws {
        var bytes = try PostgresFixture.pgControl()
        bytes[100] ^= 0x01
        let error = try #require(failure(bytes))
        #expect(error.code == .pgControlInvalid)
        #expect(error.message.contains("/pgdata/global/pg_control"))
        #expect(error.message.contains("CRC"))
        #expect(error.message.contains("0x2E515D69"))
        #expect(error.hint != nil)
    }

    @Test("refuses an unknown catalog version before checking the CRC")
    func unknownCatalogVersion() throws {
        let bytes = try PostgresFixture.pgControl().patched(at: 12, UInt32(202209999))
        let error = try #require(failure(bytes))
        #expect(error.code == .pgControlInvalid)
        #expect(error.message.contains("unknown catalog version 202209999"))
        #expect(error.hint?.contains("beta") == true)
    }

    @Test("refuses an unknown pg_control version and recognises the opposite byte order")
    func unknownControlVersion() throws {
        let unknown = try #require(failure(try PostgresFixture.pgControl().patched(at: 8, UInt32(1200))))
        #expect(unknown.message.contains("unknown pg_control version 1200"))
        let swapped = try #require(failure(try PostgresFixture.pgControl().patched(at: 8, UInt32(1300).byteSwapped)))
        #expect(swapped.message.contains("byte order"))
    }

    @Test("refuses a WAL segment size that is not a power of two in [1 MiB, 1 GiB], even with a valid CRC",
          arguments: [UInt32(3_000_000), 512 << 10, 2 << 30, 0])
    func badSegmentSize(size: UInt32) throws {
        let bytes = try PostgresFixture.pgControl().patched(at: 228, size).withRecomputedControlCRC()
        let error = try #require(failure(bytes))
        #expect(error.code == .pgControlInvalid)
        #expect(error.message.contains("invalid WAL segment size of \(size) bytes"))
    }

    @Test("accepts a 1 MiB WAL segment size")
    func oneMiBSegments() throws {
        let bytes = try PostgresFixture.pgControl().patched(at: 228, UInt32(1 << 20)).withRecomputedControlCRC()
        #expect(try parse(bytes).walSegmentSize.bytes == 1 << 20)
    }

    @Test("refuses a data page size other than 8192 and an impossible WAL page size")
    func badPageSizes() throws {
        let page = try #require(failure(try PostgresFixture.pgControl().patched(at: 216, UInt32(16384)).withRecomputedControlCRC()))
        #expect(page.message.contains("data page size of 16384"))
        let walPage = try #require(failure(try PostgresFixture.pgControl().patched(at: 224, UInt32(3000)).withRecomputedControlCRC()))
        #expect(walPage.message.contains("WAL page size of 3000"))
    }

    @Test("refuses a data checksum version above 1")
    func badChecksumVersion() throws {
        let error = try #require(failure(try PostgresFixture.pgControl().patched(at: 252, UInt32(2)).withRecomputedControlCRC()))
        #expect(error.message.contains("data checksum version 2"))
    }

    @Test("refuses a truncated file, naming its size", arguments: [0, 200, 295])
    func truncated(length: Int) throws {
        let error = try #require(failure(Array(try PostgresFixture.pgControl().prefix(length))))
        #expect(error.code == .pgControlInvalid)
        #expect(error.message.contains("truncated: \(length) bytes"))
    }

    @Test("uses the version table's CRC offset: a PG18 layout has its CRC at 292")
    func pg18Layout() throws {
        var bytes = try PostgresFixture.pgControl()
            .patched(at: 8, UInt32(1800))
            .patched(at: 12, UInt32(202506291))
            .patched(at: 288, UInt32(0))
        bytes = bytes.withRecomputedControlCRC(crcOffset: 292)
        let control = try parse(bytes)
        #expect(control.version.major == 18)
        #expect(control.version.isSupported)
        // The same bytes with the PG18 version replaced by PG17 fail: the CRC is looked for at 288.
        #expect(failure(bytes.patched(at: 8, UInt32(1700)).patched(at: 12, UInt32(202406281)))?.message.contains("CRC") == true)
    }

    @Test("reports a missing file as file-missing")
    func missingFile() {
        let error = #expect(throws: PGKeepError.self) { try PGControl.read(path: "/nonexistent/global/pg_control") }
        #expect(error?.code == .fileMissing)
        #expect(error?.message.contains("/nonexistent/global/pg_control") == true)
    }

    @Test("re-reads a file whose CRC does not match before giving up, and says so")
    func retriesOnCRCMismatch() throws {
        var bytes = try PostgresFixture.pgControl()
        bytes[40] ^= 0xFF
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pgkeep-pg_control-\(UUID().uuidString)").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: PGKeepError.self) { try PGControl.read(path: path, attempts: 3, retryDelay: .milliseconds(1)) }
        #expect(error?.code == .pgControlInvalid)
        #expect(error?.message.contains("after 3 reads") == true)
    }

    @Test("does not retry failures a re-read cannot cure")
    func noRetryOnTruncation() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pgkeep-pg_control-\(UUID().uuidString)").path
        try Data(try PostgresFixture.pgControl().prefix(100)).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let start = ContinuousClock.now
        let error = #expect(throws: PGKeepError.self) { try PGControl.read(path: path, attempts: 5, retryDelay: .seconds(1)) }
        #expect(error?.message.contains("truncated") == true)
        #expect(ContinuousClock.now - start < .seconds(1))
    }
}

@Suite("PostgreSQL version table")
struct PGVersionTests {
    @Test("identifies majors 13 to 18 by pg_control pair and by WAL magic")
    func lookups() {
        #expect(PGVersion.known.map(\.major) == [13, 14, 15, 16, 17, 18])
        #expect(PGVersion.lookup(controlVersion: 1300, catalogVersion: 202107181)?.major == 14)
        #expect(PGVersion.lookup(controlVersion: 1700, catalogVersion: 202107181) == nil)
        #expect(PGVersion.lookup(walPageMagic: 0xD110)?.major == 15)
        #expect(PGVersion.lookup(walPageMagic: 0xD116)?.major == 17)
        #expect(PGVersion.lookup(walPageMagic: 0x1234) == nil)
        #expect(PGVersion(major: 15)?.tablespaceDirectoryName == "PG_15_202209061")
        #expect(PGVersion(major: 12) == nil)
        #expect(PGVersion.supported == [15, 16, 17, 18])
        #expect(PGVersion(major: 14)?.isSupported == false && PGVersion(major: 13)?.isSupported == false)
        #expect(Set(PGVersion.known.map(\.walPageMagic)).count == PGVersion.known.count)
        #expect(Set(PGVersion.known.map(\.catalogVersion)).count == PGVersion.known.count)
    }
}
