#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PGKeepCore
import PGKeepPostgres

/// The page-checksum observer in a store chain: passes bytes through unchanged and feeds them to a
/// `PageChecker` when the current file has a `PageCheck` (set before each run; `reset` starts over).
final class PageCheckFilter: Filter {
    var check: FileJob.PageCheck?
    private(set) var checker: PageChecker?

    func process(_ input: UnsafeRawBufferPointer, next: ByteSink) throws {
        checker?.update(input)
        try next.write(input)
    }

    func finish(next: ByteSink) throws {}

    func reset() throws {
        checker = check.map { PageChecker(startLSN: $0.startLSN, segment: $0.segment, relsegSize: $0.relsegSize) }
    }
}

enum PageRecheck {
    /// Re-reads each failed block once from the file just copied (PostgreSQL may have been
    /// writing it: the OS writes a page in pieces) and keeps only those that fail again. A block
    /// that is gone (the file shrank) or cannot be read again is not an error.
    static func confirm(_ blocks: [UInt32], in file: HostFileReader, check: FileJob.PageCheck) -> [UInt32] {
        guard !blocks.isEmpty else { return [] }
        var page = [UInt8](repeating: 0, count: PageChecksum.pageSize)
        let firstBlock = check.segment &* check.relsegSize
        return blocks.filter { block in
            let offset = UInt64(block &- firstBlock) * UInt64(PageChecksum.pageSize)
            let n = page.withUnsafeMutableBytes { (try? file.read(at: offset, into: $0)) ?? 0 }
            guard n == PageChecksum.pageSize else { return false }
            return page.withUnsafeBytes { !PageChecker.pageIsValid($0, blockNumber: block, startLSN: check.startLSN) }
        }
    }
}
