import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

private let mib16 = WALSegmentSize.default
private let mib1 = WALSegmentSize(bytes: 1 << 20)!

private func lsn(_ text: String) -> LSN { LSN(text)! }

@Suite("WAL segment names")
struct WALSegmentNameTests {
    @Test("accepts only powers of two from 1 MiB to 1 GiB as segment sizes")
    func segmentSizes() {
        #expect(WALSegmentSize(bytes: 16 << 20)?.segmentsPerXLogID == 256)
        #expect(WALSegmentSize(bytes: 1 << 20)?.segmentsPerXLogID == 4096)
        #expect(WALSegmentSize(bytes: 1 << 30)?.segmentsPerXLogID == 4)
        for bad: UInt64 in [0, 512 << 10, 3 << 20, 2 << 30, 16_000_000] {
            #expect(WALSegmentSize(bytes: bad) == nil, "\(bad)")
        }
    }

    @Test("names the segment containing an LSN (XLByteToSeg) with 16 MiB segments", arguments: [
        ("0/5000028", "000000010000000000000005"),
        ("0/5FFFFFF", "000000010000000000000005"),
        ("0/6000000", "000000010000000000000006"),
        ("0/FF000000", "0000000100000000000000FF"),
        ("1/0", "000000010000000100000000"),
        ("16/B374D848", "0000000100000016000000B3"),
    ])
    func containing16MiB(lsnText: String, name: String) {
        let segment = WALSegmentName.segment(containing: lsn(lsnText), timeline: 1, segmentSize: mib16)
        #expect(segment.name == name)
        #expect(WALSegmentName(name, segmentSize: mib16) == segment)
    }

    @Test("follows the pg_walfile_name examples for 1 MiB segments (XLByteToPrevSeg)", arguments: [
        ("1/0", "000000010000000000000FFF"),
        ("0/100000", "000000010000000000000000"),
        ("1/00100000", "000000010000000100000000"),
    ])
    func endingAt1MiB(lsnText: String, name: String) throws {
        let segment = try #require(WALSegmentName.segment(endingAt: lsn(lsnText), timeline: 1, segmentSize: mib1))
        #expect(segment.name == name)
    }

    @Test("names start pointers with XLByteToSeg for 1 MiB segments")
    func containing1MiB() {
        #expect(WALSegmentName.segment(containing: lsn("1/0"), timeline: 1, segmentSize: mib1).name == "000000010000000100000000")
        #expect(WALSegmentName.segment(containing: lsn("0/100000"), timeline: 1, segmentSize: mib1).name == "000000010000000000000001")
        #expect(WALSegmentName.segment(containing: lsn("0/FFFFF"), timeline: 1, segmentSize: mib1).name == "000000010000000000000000")
        #expect(WALSegmentName.segment(containing: lsn("1/00100000"), timeline: 1, segmentSize: mib1).name == "000000010000000100000001")
    }

    @Test("treats an end pointer on a segment boundary as belonging to the previous segment")
    func endPointerRule() throws {
        #expect(WALSegmentName.segment(endingAt: lsn("0/6000000"), timeline: 1, segmentSize: mib16)?.name == "000000010000000000000005")
        #expect(WALSegmentName.segment(endingAt: lsn("0/6000001"), timeline: 1, segmentSize: mib16)?.name == "000000010000000000000006")
        #expect(WALSegmentName.segment(endingAt: lsn("0/5014668"), timeline: 1, segmentSize: mib16)?.name == "000000010000000000000005")
        #expect(WALSegmentName.segment(endingAt: .invalid, timeline: 1, segmentSize: mib16) == nil)
    }

    @Test("parses the same name to different segment numbers depending on the segment size")
    func parseDependsOnSize() throws {
        #expect(WALSegmentName("000000010000000100000000", segmentSize: mib16)?.segmentNumber == 256)
        #expect(WALSegmentName("000000010000000100000000", segmentSize: mib1)?.segmentNumber == 4096)
        // 0x100 is not a valid low part with 16 MiB segments (only 00-FF exist) but is with 1 MiB.
        #expect(WALSegmentName("000000010000000000000100", segmentSize: mib16) == nil)
        #expect(WALSegmentName("000000010000000000000100", segmentSize: mib1)?.segmentNumber == 256)
    }

    @Test("rejects malformed segment names", arguments: [
        "", "00000001000000000000000", "0000000100000000000000050", "00000001000000000000000a",
        "000000000000000000000005", "00000001/000000000000005", "000000010000000000000005.partial",
    ])
    func rejectsMalformed(name: String) {
        #expect(WALSegmentName(name, segmentSize: mib16) == nil)
    }

    @Test("prints hex timelines, steps over the 8-digit boundary and knows its LSN range")
    func navigation() throws {
        let last = try #require(WALSegmentName("0000000A00000000000000FF", segmentSize: mib16))
        #expect(last.timeline == 10)
        #expect(last.next.name == "0000000A0000000100000000")
        #expect(last.next.previous == last)
        #expect(last.startLSN.description == "0/FF000000")
        #expect(last.endLSN.description == "1/0")
        #expect(last.contains(lsn("0/FFFFFFFF")) && !last.contains(lsn("1/0")))
        #expect(last.directoryPrefix == "0000000A00000000")
        #expect(WALSegmentName(timeline: 1, segmentNumber: 0, segmentSize: mib16).previous == nil)
        let small = try #require(WALSegmentName("000000010000000000000FFF", segmentSize: mib1))
        #expect(small.next.name == "000000010000000100000000")
    }

    @Test("enumerates the WAL a backup needs: XLByteToSeg(start) through XLByteToPrevSeg(stop)")
    func backupRange() throws {
        let range = try #require(WALSegmentRange.forBackup(start: lsn("0/5000028"), stop: lsn("0/7000000"), timeline: 1, segmentSize: mib16))
        #expect(range.map(\.name) == ["000000010000000000000005", "000000010000000000000006"])
        #expect(range.count == 2)
        let one = try #require(WALSegmentRange.forBackup(start: lsn("0/5000028"), stop: lsn("0/5014668"), timeline: 1, segmentSize: mib16))
        #expect(Array(one).map(\.name) == ["000000010000000000000005"])
        #expect(WALSegmentRange.forBackup(start: lsn("0/5000028"), stop: lsn("0/5000028"), timeline: 1, segmentSize: mib16) == nil)
        let across = try #require(WALSegmentRange.forBackup(start: lsn("0/FE000000"), stop: lsn("1/01000001"), timeline: 2, segmentSize: mib16))
        #expect(across.map(\.name) == ["0000000200000000000000FE", "0000000200000000000000FF", "000000020000000100000000", "000000020000000100000001"])
    }

    @Test("builds ranges only within one timeline and segment size")
    func rangeConstraints() throws {
        let a = WALSegmentName(timeline: 1, segmentNumber: 5, segmentSize: mib16)
        #expect(a.through(WALSegmentName(timeline: 2, segmentNumber: 6, segmentSize: mib16)) == nil)
        #expect(a.through(WALSegmentName(timeline: 1, segmentNumber: 6, segmentSize: mib1)) == nil)
        let empty = try #require(a.through(WALSegmentName(timeline: 1, segmentNumber: 4, segmentSize: mib16)))
        #expect(empty.isEmpty && empty.count == 0 && Array(empty).isEmpty)
        let single = try #require(a.through(a))
        #expect(Array(single) == [a])
    }
}

@Suite("WAL archive file names")
struct WALFileNameTests {
    @Test("classifies the four kinds of archived file", arguments: [
        ("000000010000000000000005", WALFileKind.segment, UInt32(1)),
        ("000000020000000000000006.partial", .partial, 2),
        ("00000002.history", .history, 2),
        ("0000000A.history", .history, 10),
        ("000000010000000000000004.00000028.backup", .backupHistory, 1),
        ("FFFFFFFFFFFFFFFFFFFFFFFF", .segment, 0xFFFF_FFFF),
    ])
    func classifies(name: String, kind: WALFileKind, timeline: UInt32) throws {
        let file = try #require(WALFileName(name))
        #expect(file.kind == kind)
        #expect(file.timeline.rawValue == timeline)
        #expect(file.text == name)
    }

    @Test("rejects anything that is not exactly a PostgreSQL archive file name", arguments: [
        "", ".", "..", "../000000010000000000000005", "000000010000000000000005/", "a/b",
        "00000001000000000000000", "0000000100000000000000050", "00000001000000000000000a",
        "000000000000000000000005", "00000000.history", "00000002.History", "0000002.history",
        "0000000g.history", "00000002.history.tmp", "000000010000000000000005.partial.tmp",
        "000000010000000000000005.ready", "000000010000000000000005.done",
        "000000010000000000000005.0000028.backup", "000000010000000000000005.00000028.BACKUP",
        "000000010000000000000005.00000028.backup.tmp", "000000010000000000000005.0000002g.backup",
        "000000010000000000000005-00000028.backup", " 000000010000000000000005",
        "000000010000000000000005 ", "00000001000000000000/005", "000000010000000000000005\0",
        "00000001.000000000000005", "00000002.history/..",
    ])
    func rejects(name: String) {
        #expect(WALFileName(name) == nil)
    }

    @Test("gives the 16-character directory prefix and the segment of segment-like names")
    func segmentParts() throws {
        let backup = try #require(WALFileName("000000010000000000000004.00000028.backup"))
        #expect(backup.directoryPrefix == "0000000100000000")
        #expect(backup.segmentPart == "000000010000000000000004")
        #expect(backup.backupStartOffset == 0x28)
        #expect(backup.segment(segmentSize: mib16)?.startLSN.advanced(by: 0x28).description == "0/4000028")

        let partial = try #require(WALFileName("000000020000000000000006.partial"))
        #expect(partial.segment(segmentSize: mib16)?.name == "000000020000000000000006")
        #expect(partial.backupStartOffset == nil)

        let history = try #require(WALFileName("00000003.history"))
        #expect(history.directoryPrefix == nil && history.segmentPart == nil && history.segment(segmentSize: mib16) == nil)
        #expect(WALFileName.history(3) == history)
        #expect(WALFileName.segment(WALSegmentName(timeline: 1, segmentNumber: 5, segmentSize: mib16)) == WALFileName("000000010000000000000005"))
    }
}
