import Foundation
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

/// The small real PostgreSQL 15 artefacts in `Fixtures/` (see `Fixtures/README.md`) and builders
/// that corrupt one field of them.
enum PostgresFixture {
    /// `Fixtures/` at the package root: three levels up from `Tests/PGKeepTests/<file>.swift`.
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    /// The facts `pg_controldata` printed for the fixture cluster (Fixtures/README.md).
    static let systemIdentifier: UInt64 = 7712620586789208204
    /// The segment whose first page is `pg15-wal-first-page`.
    static let walSegmentName = "000000010000000000000002"

    static func path(_ name: String) -> String {
        directory.appendingPathComponent(name).path
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
    }

    static func text(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
    }

    static func pgControl() throws -> [UInt8] { try bytes("pg15-pg_control") }
    static func walFirstPage() throws -> [UInt8] { try bytes("pg15-wal-first-page") }
}

extension Array where Element == UInt8 {
    /// A copy with a native-endian integer stored at `offset`.
    func patched<T: FixedWidthInteger>(at offset: Int, _ value: T) -> [UInt8] {
        var copy = self
        copy.withUnsafeMutableBytes { $0.storeBytes(of: value, toByteOffset: offset, as: T.self) }
        return copy
    }

    /// A copy with pg_control's CRC recomputed over the first `crcOffset` bytes, so that a test
    /// reaches the checks after the CRC.
    func withRecomputedControlCRC(crcOffset: Int = 288) -> [UInt8] {
        let crc = CRC32C.checksum(Array(self[0..<crcOffset]))
        return patched(at: crcOffset, crc)
    }
}
