import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("Data page checksums")
struct PageChecksumTests {
    let pages = try! PostgresFixture.bytes("pg15-pg_class-first-2-pages")

    func page(_ index: Int, _ bytes: [UInt8]? = nil) -> [UInt8] {
        Array((bytes ?? pages)[index * 8192..<(index + 1) * 8192])
    }

    @Test("recomputes the checksums PostgreSQL 15 stored in real pg_class pages")
    func realPages() {
        for index in 0..<2 {
            page(index).withUnsafeBytes { raw in
                #expect(PageChecksum.compute(raw, blockNumber: UInt32(index)) == PageChecksum.stored(raw))
                #expect(PageChecksum.compute(raw, blockNumber: UInt32(index) + 1) != PageChecksum.stored(raw),
                        "the block number is part of the checksum")
            }
        }
        #expect(page(0).withUnsafeBytes(PageChecksum.stored) == 0x3C20)
        #expect(page(0).withUnsafeBytes(PageChecksum.lsn) == 0x158B4C8)
    }

    @Test("a flipped bit anywhere in the page, checksum field included, fails the check", arguments: [0, 8, 9, 100, 4096, 8191])
    func flippedBit(_ offset: Int) {
        var damaged = page(0)
        damaged[offset] ^= 0x10
        damaged.withUnsafeBytes { raw in
            #expect(!PageChecker.pageIsValid(raw, blockNumber: 0, startLSN: UInt64.max), "offset \(offset)")
        }
    }

    @Test("pages changed after the backup started and new zero pages are not judged; a new page with bytes in it is")
    func skippedPages() {
        var damaged = page(0)
        damaged[5000] ^= 0xFF
        damaged.withUnsafeBytes { raw in
            #expect(PageChecker.pageIsValid(raw, blockNumber: 0, startLSN: 0x158B4C8), "LSN at the start LSN: replay fixes it")
            #expect(!PageChecker.pageIsValid(raw, blockNumber: 0, startLSN: 0x158B4C9))
        }
        var zero = [UInt8](repeating: 0, count: 8192)
        zero.withUnsafeBytes { #expect(PageChecker.pageIsValid($0, blockNumber: 7, startLSN: .max)) }
        zero[100] = 1   // pd_upper is still 0, but the page is not all zeros
        zero.withUnsafeBytes { #expect(!PageChecker.pageIsValid($0, blockNumber: 7, startLSN: .max)) }
    }

    @Test("the checker finds the damaged block whatever the slicing of the stream, numbering from the segment", arguments: [1, 100, 8192, 5000, 16384])
    func streamed(_ slice: Int) {
        var bytes = pages
        bytes[8192 + 300] ^= 0x01
        var checker = PageChecker(startLSN: .max, segment: 2, relsegSize: 131072)
        // The fixture pages were checksummed as blocks 0 and 1, so as segment 2 both fail; block
        // numbers in the report are segment-based.
        var plain = PageChecker(startLSN: .max, segment: 0, relsegSize: 131072)
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + slice, bytes.count)
            bytes[offset..<end].withUnsafeBytes { checker.update($0); plain.update($0) }
            offset = end
        }
        #expect(plain.failedBlocks == [1])
        #expect(checker.failedBlocks == [262144, 262145])
    }

    @Test("relation files are recognised by name and place; the rest are not page-checked")
    func relationNames() {
        #expect(PageChecksum.relationSegment(manifestName: "pg_data/base/5/1259") == 0)
        #expect(PageChecksum.relationSegment(manifestName: "pg_data/base/16384/16385.3") == 3)
        #expect(PageChecksum.relationSegment(manifestName: "pg_data/base/16384/16385_fsm") == 0)
        #expect(PageChecksum.relationSegment(manifestName: "pg_data/base/16384/16385_vm.1") == 1)
        #expect(PageChecksum.relationSegment(manifestName: "pg_data/global/1262") == 0)
        #expect(PageChecksum.relationSegment(manifestName: "pg_tblspc/16390/PG_15_202209061/5/16391") == 0)
        for name in ["pg_data/global/pg_control", "pg_data/global/pg_filenode.map", "pg_data/base/5/PG_VERSION",
                     "pg_data/base/5/pg_internal.init", "pg_data/pg_xact/0000", "pg_data/base/5/16385_foo",
                     "pg_data/base/5/t3_16385", "pg_data/pg_wal/000000010000000000000001"] {
            #expect(PageChecksum.relationSegment(manifestName: name) == nil, "\(name)")
        }
    }
}
