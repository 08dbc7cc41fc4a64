import Testing
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

    /// A cluster of a later major just after `initdb --data-checksums` (Fixtures/README.md):
    /// its `pg<major>-pg_control` and `pg<major>-wal-first-page`, with what `pg_controldata`
    /// printed for it.
    struct LaterMajor: Sendable, CustomTestStringConvertible {
        let major: Int
        let controlVersion: UInt32
        let catalogVersion: UInt32
        let walPageMagic: UInt16
        let systemIdentifier: UInt64
        /// Latest checkpoint location, which is also its REDO location (a shutdown checkpoint).
        let checkpoint: String

        var testDescription: String { "PostgreSQL \(major)" }
        func pgControl() throws -> [UInt8] { try bytes("pg\(major)-pg_control") }
        func walFirstPage() throws -> [UInt8] { try bytes("pg\(major)-wal-first-page") }

        static let all = [
            LaterMajor(major: 16, controlVersion: 1300, catalogVersion: 202307071, walPageMagic: 0xD113,
                       systemIdentifier: 7715297840228649420, checkpoint: "0/16C3518"),
            LaterMajor(major: 17, controlVersion: 1700, catalogVersion: 202406281, walPageMagic: 0xD116,
                       systemIdentifier: 7715297844352457182, checkpoint: "0/16C37F8"),
            LaterMajor(major: 18, controlVersion: 1800, catalogVersion: 202506291, walPageMagic: 0xD118,
                       systemIdentifier: 7715297848310249967, checkpoint: "0/16EF458"),
        ]
    }
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
