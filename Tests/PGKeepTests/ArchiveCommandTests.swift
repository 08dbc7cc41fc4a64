import Foundation
import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

/// A repository in a temporary directory with stanza `demo` for the fixture cluster, written
/// directly (not through stanza-create), plus helpers to push and get WAL.
struct ArchiveFixture {
    /// The fixture cluster as Fixtures/README.md describes it.
    static let identity = DatabaseIdentity(id: 1, systemIdentifier: PostgresFixture.systemIdentifier, version: 15,
                                           controlVersion: 1300, catalogVersion: 202209061)
    static let segmentName = PostgresFixture.walSegmentName
    static let segmentSize = 16 << 20

    /// A valid segment: the real first page of 000000010000000000000002, then zeros to 16 MiB.
    static let segment: [UInt8] = {
        var bytes = try! PostgresFixture.walFirstPage()
        bytes += [UInt8](repeating: 0, count: segmentSize - bytes.count)
        return bytes
    }()

    let directory: TemporaryDirectory
    let storage: PosixStorage
    let layout = try! RepositoryLayout(stanza: "demo")
    let log = Log(consoleLevel: .off)

    init(stanza: Bool = true) throws {
        directory = try TemporaryDirectory("archive")
        storage = PosixStorage(root: directory.path("repo"))
        if stanza {
            try SealedFile.save(ArchiveInfo(current: Self.identity), to: layout.archiveInfo, in: storage)
            try SealedFile.save(BackupInfo(current: Self.identity), to: layout.backupInfo, in: storage)
        }
        try directory.makeDirectory("restore/pg_wal")
    }

    /// Writes `bytes` as `pg_wal/<name>` of a pretend cluster and returns its path.
    @discardableResult
    func writeWAL(_ name: String, _ bytes: [UInt8] = ArchiveFixture.segment) throws -> String {
        try directory.write("pgdata/pg_wal/" + name, bytes)
    }

    /// A data directory holding `global/pg_control` (the fixture's unless given).
    func dataDirectory(control: [UInt8]? = nil) throws -> String {
        try directory.write("pgdata/global/pg_control", control ?? PostgresFixture.pgControl())
        return directory.path("pgdata")
    }

    func push(_ path: String, compression: CompressionType = .lz4, dataDirectory: String? = nil) throws -> ArchivePush.Outcome {
        try ArchivePush(storage: storage, layout: layout, compression: compression, compressLevel: compression.defaultLevel,
                        bufferSize: 1 << 20, log: log).push(walPath: path, dataDirectory: dataDirectory)
    }

    func get(_ name: String, to destination: String) throws {
        try ArchiveGet(storage: storage, layout: layout, bufferSize: 1 << 20, log: log).get(walFile: name, destination: destination)
    }

    /// An `ArchiveGet` whose warnings land in `log/<name>`, read back with `logged(_:)`.
    func getter(logName: String = "archive-get.log") -> ArchiveGet {
        let log = Log(consoleLevel: .off)
        log.openFile(directory: directory.path("log"), name: logName, level: .info)
        return ArchiveGet(storage: storage, layout: layout, bufferSize: 1 << 20, log: log)
    }

    func logged(_ logName: String = "archive-get.log") throws -> String {
        String(decoding: try directory.read("log/" + logName) ?? [], as: UTF8.self)
    }

    /// Flips one byte in the middle of a stored object (a path relative to the repository root).
    func damage(_ relative: String) throws {
        var bytes = try #require(try directory.read("repo/" + relative))
        bytes[bytes.count / 2] ^= 0x01
        try directory.write("repo/" + relative, bytes)
    }

    /// The files under archive/demo/15-1, relative to it (temporary files included).
    var archived: [String] { directory.files(under: "repo/archive/demo/15-1") }

    /// The path of a stored object relative to the storage root.
    func objectPath(_ relative: String) throws -> StoragePath {
        try StoragePath("archive/demo/15-1/" + relative)
    }

    static func objectName(_ name: String, _ bytes: [UInt8], _ compression: CompressionType) throws -> String {
        RepositoryLayout.archiveObjectName(walFile: name, checksum: try SHA256Digest.of(bytes), compression: compression)
    }
}

@Suite("archive-push")
struct ArchivePushTests {
    @Test("archive-push stores one object named by the SHA-256 of the original segment", arguments: CompressionType.allCases)
    func stores(_ compression: CompressionType) throws {
        let fixture = try ArchiveFixture()
        let wal = try fixture.writeWAL(ArchiveFixture.segmentName)
        let outcome = try fixture.push(wal, compression: compression)

        let object = try ArchiveFixture.objectName(ArchiveFixture.segmentName, ArchiveFixture.segment, compression)
        #expect(object.contains((try SHA256Digest.of(ArchiveFixture.segment)).hex))
        #expect(fixture.archived == ["0000000100000000/" + object])
        #expect(outcome == .stored(object: fixture.storage.describe(try fixture.objectPath("0000000100000000/" + object))))
        let stored = try #require(try fixture.directory.read("repo/archive/demo/15-1/0000000100000000/" + object))
        if compression == .none {
            #expect(stored == ArchiveFixture.segment)
        } else {
            #expect(stored.count < ArchiveFixture.segment.count / 10, "a mostly empty segment compresses well")
        }
    }

    @Test("pushing the identical segment again succeeds without writing, whatever the compression")
    func identicalAgain() throws {
        let fixture = try ArchiveFixture()
        let wal = try fixture.writeWAL(ArchiveFixture.segmentName)
        guard case .stored(let object) = try fixture.push(wal, compression: .lz4) else { Issue.record("not stored"); return }
        let before = fixture.archived
        let bytes = try fixture.directory.read("repo/archive/demo/15-1/" + before[0])

        #expect(try fixture.push(wal, compression: .lz4) == .alreadyArchived(object: object))
        #expect(try fixture.push(wal, compression: .zst) == .alreadyArchived(object: object))
        #expect(fixture.archived == before)
        #expect(try fixture.directory.read("repo/archive/demo/15-1/" + before[0]) == bytes)
    }

    @Test("pushing different content under an archived name is refused and the archived object is kept unchanged")
    func duplicateName() throws {
        let fixture = try ArchiveFixture()
        let wal = try fixture.writeWAL(ArchiveFixture.segmentName)
        _ = try fixture.push(wal, compression: .zst)
        let before = fixture.archived
        let original = try #require(try fixture.directory.read("repo/archive/demo/15-1/" + before[0]))

        var changed = ArchiveFixture.segment
        changed[8192 + 100] = 0x5A  // a record after the first page: the header still checks out
        try fixture.writeWAL(ArchiveFixture.segmentName, changed)
        for compression in CompressionType.allCases {
            let error = try #require(#expect(throws: PGKeepError.self) { try fixture.push(wal, compression: compression) })
            #expect(error.code == .archiveDuplicate)
            #expect(error.message.contains(before[0].split(separator: "/").last!))
            #expect(error.message.contains((try SHA256Digest.of(changed)).hex))
            #expect(error.hint?.contains("kept unchanged") == true)
        }
        #expect(fixture.archived == before)
        #expect(try fixture.directory.read("repo/archive/demo/15-1/" + before[0]) == original)
    }

    @Test("an identical duplicate succeeds and a different file is refused, whatever the stored compression",
          arguments: CompressionType.allCases)
    func duplicateByStoredCompression(_ stored: CompressionType) throws {
        let fixture = try ArchiveFixture()
        let wal = try fixture.writeWAL(ArchiveFixture.segmentName)
        guard case .stored(let object) = try fixture.push(wal, compression: stored) else { Issue.record("not stored"); return }
        let before = fixture.archived
        let original = try #require(try fixture.directory.read("repo/archive/demo/15-1/" + before[0]))
        for compression in CompressionType.allCases {
            #expect(try fixture.push(wal, compression: compression) == .alreadyArchived(object: object))
        }
        // Differences at the start, in the middle, in the last byte, and a zeroed page.
        for position in [8192 + 1, 8 << 20, (16 << 20) - 1] {
            var changed = ArchiveFixture.segment
            changed[position] ^= 0x5A
            try fixture.writeWAL(ArchiveFixture.segmentName, changed)
            let error = try #require(#expect(throws: PGKeepError.self) { try fixture.push(wal, compression: stored) })
            #expect(error.code == .archiveDuplicate)
            #expect(error.message.contains((try SHA256Digest.of(changed)).hex))
        }
        #expect(fixture.archived == before)
        #expect(try fixture.directory.read("repo/archive/demo/15-1/" + before[0]) == original)
    }

    @Test("with the stored object damaged or truncated, a different push is refused writing nothing, and an identical push replaces the damaged object",
          arguments: CompressionType.allCases, ["flip", "truncate", "empty", "extend"])
    func duplicateOfDamagedObject(_ stored: CompressionType, _ damage: String) throws {
        let fixture = try ArchiveFixture()
        let wal = try fixture.writeWAL(ArchiveFixture.segmentName)
        guard case .stored(let object) = try fixture.push(wal, compression: stored) else { Issue.record("not stored"); return }
        let before = fixture.archived
        let path = "repo/archive/demo/15-1/" + before[0]
        var bytes = try #require(try fixture.directory.read(path))
        switch damage {
        case "flip": bytes[bytes.count / 2] ^= 0x01
        case "truncate": bytes.removeLast(bytes.count / 3)
        case "empty": bytes = []
        default: bytes += [0x00, 0x01]
        }
        try fixture.directory.write(path, bytes)

        // Other content is refused whatever the state of the stored object, and writes nothing.
        var changed = ArchiveFixture.segment
        changed[8192 + 100] = 0x5A
        try fixture.writeWAL(ArchiveFixture.segmentName, changed)
        let error = try #require(#expect(throws: PGKeepError.self) { try fixture.push(wal, compression: stored) })
        #expect(error.code == .archiveDuplicate)
        #expect(error.message.contains((try SHA256Digest.of(changed)).hex))
        #expect(fixture.archived == before)
        #expect(try fixture.directory.read(path) == bytes)

        // The file hashes to the name's checksum, yet the object does not decode to it: the
        // object is proven damaged and the pushed file replaces it under the same name.
        try fixture.writeWAL(ArchiveFixture.segmentName)
        #expect(try fixture.push(wal, compression: stored) == .repaired(object: object, damaged: [object]))
        #expect(fixture.archived == before)
        try fixture.get(ArchiveFixture.segmentName, to: fixture.directory.path("restore/pg_wal/RECOVERYXLOG"))
        #expect(try fixture.directory.read("restore/pg_wal/RECOVERYXLOG") == ArchiveFixture.segment)
        // Once repaired, the next identical push is a plain duplicate again.
        #expect(try fixture.push(wal, compression: stored) == .alreadyArchived(object: object))
    }

    @Test("a repair under another compress-type writes the new object first, then removes the damaged one, and warns naming it")
    func repairUnderOtherCompression() throws {
        let fixture = try ArchiveFixture()
        let wal = try fixture.writeWAL(ArchiveFixture.segmentName)
        guard case .stored(let damaged) = try fixture.push(wal, compression: .lz4) else { Issue.record("not stored"); return }
        try fixture.damage("archive/demo/15-1/" + fixture.archived[0])
        let log = Log(consoleLevel: .off)
        log.openFile(directory: fixture.directory.path("log"), name: "archive-push.log", level: .info)
        let outcome = try ArchivePush(storage: fixture.storage, layout: fixture.layout, compression: .zst, compressLevel: 3,
                                      bufferSize: 1 << 20, log: log).push(walPath: wal, dataDirectory: nil)
        let zst = "0000000100000000/" + (try ArchiveFixture.objectName(ArchiveFixture.segmentName, ArchiveFixture.segment, .zst))
        #expect(outcome == .repaired(object: fixture.storage.describe(try fixture.objectPath(zst)), damaged: [damaged]))
        #expect(fixture.archived == [zst])
        let logged = try fixture.logged("archive-push.log")
        #expect(logged.contains("WARN") && logged.contains(damaged), "\(logged)")
        try fixture.get(ArchiveFixture.segmentName, to: fixture.directory.path("restore/pg_wal/RECOVERYXLOG"))
        #expect(try fixture.directory.read("restore/pg_wal/RECOVERYXLOG") == ArchiveFixture.segment)
    }

    @Test("a damaged timeline history file or partial segment is repaired by an identical push too")
    func repairHistoryAndPartial() throws {
        let fixture = try ArchiveFixture()
        let history = try PostgresFixture.bytes("pg15-00000002.history")
        let data = try fixture.dataDirectory()
        for (name, bytes) in [("00000002.history", history), ("000000010000000000000002.partial", ArchiveFixture.segment)] {
            let path = try fixture.writeWAL(name, bytes)
            guard case .stored(let object) = try fixture.push(path, compression: .zst, dataDirectory: data) else {
                Issue.record("\(name) not stored"); continue
            }
            let relative = try #require(fixture.archived.first { $0.contains(name) })
            try fixture.damage("archive/demo/15-1/" + relative)
            #expect(try fixture.push(path, compression: .zst, dataDirectory: data) == .repaired(object: object, damaged: [object]))
            let destination = fixture.directory.path("restore/pg_wal/" + name)
            try fixture.get(name, to: destination)
            #expect(try fixture.directory.read("restore/pg_wal/" + name) == bytes)
        }
    }

    @Test("a pushed file that is a prefix or an extension of the archived one is refused")
    func duplicateOfOtherLength() throws {
        let fixture = try ArchiveFixture()
        let name = "000000010000000000000002.00000028.backup"
        let label = Array("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n".utf8)
        let data = try fixture.dataDirectory()
        let path = try fixture.writeWAL(name, label)
        _ = try fixture.push(path, compression: .lz4, dataDirectory: data)
        let before = fixture.archived
        for other in [Array(label.dropLast()), label + [0x0A], []] {
            try fixture.writeWAL(name, other)
            let error = try #require(#expect(throws: PGKeepError.self) { try fixture.push(path, compression: .lz4, dataDirectory: data) })
            #expect(error.code == .archiveDuplicate)
        }
        #expect(fixture.archived == before)
    }

    @Test("a segment whose header carries another system identifier is refused as an archive mismatch, storing nothing")
    func otherCluster() throws {
        let fixture = try ArchiveFixture()
        let foreign = ArchiveFixture.segment.patched(at: 24, UInt64(7_712_620_586_789_208_205))
        let wal = try fixture.writeWAL(ArchiveFixture.segmentName, foreign)
        let error = try #require(#expect(throws: PGKeepError.self) { try fixture.push(wal) })
        #expect(error.code == .archiveMismatch)
        #expect(error.message.contains("7712620586789208205") && error.message.contains("7712620586789208204"))
        #expect(fixture.directory.files(under: "repo/archive") == ["demo/archive.info", "demo/archive.info.copy"])
    }

    @Test("a segment of the wrong size is refused as invalid WAL, storing nothing",
          arguments: [0, 8192, (16 << 20) - 8192, (16 << 20) + 1])
    func wrongSize(_ size: Int) throws {
        let fixture = try ArchiveFixture()
        var bytes = Array(ArchiveFixture.segment.prefix(size))
        if size > bytes.count { bytes += [UInt8](repeating: 0, count: size - bytes.count) }
        let wal = try fixture.writeWAL(ArchiveFixture.segmentName, bytes)
        let error = try #require(#expect(throws: PGKeepError.self) { try fixture.push(wal) })
        #expect(error.code == .walInvalid)
        #expect(error.message.contains(wal))
        #expect(fixture.archived.isEmpty)
    }

    @Test("a segment renamed to another segment's name is refused by its page address")
    func renamedSegment() throws {
        let fixture = try ArchiveFixture()
        let wal = try fixture.writeWAL("000000010000000000000003")
        let error = try #require(#expect(throws: PGKeepError.self) { try fixture.push(wal) })
        #expect(error.code == .walInvalid)
        #expect(fixture.archived.isEmpty)
    }

    @Test("names PostgreSQL does not archive are refused before anything is read",
          arguments: ["foo", "../x", "00000001000000000000000g", "000000010000000000000002.gz", "00000000.history",
                      "pg_wal/000000010000000000000002/", "archive_status"])
    func notWAL(_ path: String) throws {
        let fixture = try ArchiveFixture()
        let error = try #require(#expect(throws: PGKeepError.self) { try fixture.push(path) })
        #expect(error.code == .walInvalid)
        #expect(error.message.contains("'\(path)'"))
        #expect(error.hint?.contains("%p") == true)
        #expect(fixture.directory.files(under: "repo/archive") == ["demo/archive.info", "demo/archive.info.copy"])
    }

    @Test("archive-push without a stanza fails as stanza-missing")
    func noStanza() throws {
        let fixture = try ArchiveFixture(stanza: false)
        let wal = try fixture.writeWAL(ArchiveFixture.segmentName)
        let error = try #require(#expect(throws: PGKeepError.self) { try fixture.push(wal) })
        #expect(error.code == .stanzaMissing)
        #expect(fixture.directory.files(under: "repo").isEmpty)
    }

    @Test("a timeline history file is stored at the archive id root and comes back byte for byte")
    func historyFile() throws {
        let fixture = try ArchiveFixture()
        let content = try PostgresFixture.bytes("pg15-00000002.history")
        let wal = try fixture.writeWAL("00000002.history", content)
        _ = try fixture.push(wal, compression: .zst, dataDirectory: try fixture.dataDirectory())
        #expect(fixture.archived == [try ArchiveFixture.objectName("00000002.history", content, .zst)])

        let destination = fixture.directory.path("restore/pg_wal/RECOVERYHISTORY")
        try fixture.get("00000002.history", to: destination)
        #expect(try fixture.directory.read("restore/pg_wal/RECOVERYHISTORY") == content)
    }

    @Test("a history file pushed from another cluster's data directory is refused as an archive mismatch")
    func historyFromOtherCluster() throws {
        let fixture = try ArchiveFixture()
        let control = try PostgresFixture.pgControl().patched(at: 0, UInt64(1234)).withRecomputedControlCRC()
        let wal = try fixture.writeWAL("00000002.history", try PostgresFixture.bytes("pg15-00000002.history"))
        let error = try #require(#expect(throws: PGKeepError.self) {
            try fixture.push(wal, dataDirectory: try fixture.dataDirectory(control: control))
        })
        #expect(error.code == .archiveMismatch)
        #expect(fixture.archived.isEmpty)
    }

    @Test("backup history files and partial segments go in the segment directory")
    func backupHistoryAndPartial() throws {
        let fixture = try ArchiveFixture()
        let label = Array("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n".utf8)
        let backupHistory = try fixture.writeWAL("000000010000000000000002.00000028.backup", label)
        _ = try fixture.push(backupHistory, compression: .none, dataDirectory: try fixture.dataDirectory())
        let partial = try fixture.writeWAL("000000010000000000000002.partial")
        _ = try fixture.push(partial, compression: .lz4)
        #expect(Set(fixture.archived) == [
            "0000000100000000/" + (try ArchiveFixture.objectName("000000010000000000000002.00000028.backup", label, .none)),
            "0000000100000000/" + (try ArchiveFixture.objectName("000000010000000000000002.partial", ArchiveFixture.segment, .lz4)),
        ])
        // The partial segment is not the complete one: archive-get does not confuse them.
        #expect(#expect(throws: PGKeepError.self) {
            try fixture.get(ArchiveFixture.segmentName, to: fixture.directory.path("restore/pg_wal/RECOVERYXLOG"))
        }?.code == .archiveFileMissing)
    }

    @Test("a timeline history file pushed again with other content is refused as a duplicate; the stored history is kept and still delivered")
    func divergentHistoryRepush() throws {
        // A second point-in-time restore into the same stanza makes a new timeline 2 with its own
        // switch point: its 00000002.history differs from the archived one. Overwriting it would
        // change which WAL every later restore along timeline 2 reads.
        let fixture = try ArchiveFixture()
        let data = try fixture.dataDirectory()
        let archived = try PostgresFixture.bytes("pg15-00000002.history")
        let path = try fixture.writeWAL("00000002.history", archived)
        guard case .stored = try fixture.push(path, compression: .zst, dataDirectory: data) else { Issue.record("not stored"); return }
        let before = fixture.archived
        let stored = try #require(try fixture.directory.read("repo/archive/demo/15-1/" + before[0]))

        // Identical again (PostgreSQL retries after a crash): success, nothing written.
        #expect(try fixture.push(path, compression: .lz4, dataDirectory: data) == .alreadyArchived(object: fixture.storage.describe(try fixture.objectPath(before[0]))))

        let divergent = Array("1\t0/7000028\tno recovery target specified\n".utf8)
        try fixture.writeWAL("00000002.history", divergent)
        for compression in CompressionType.allCases {
            let error = try #require(#expect(throws: PGKeepError.self) { try fixture.push(path, compression: compression, dataDirectory: data) })
            #expect(error.code == .archiveDuplicate)
            let pushedChecksum = try SHA256Digest.of(divergent).hex
            #expect(error.message.contains("00000002.history") && error.message.contains(pushedChecksum), "\(error.message)")
            #expect(error.hint?.contains("kept unchanged") == true)
        }
        #expect(fixture.archived == before)
        #expect(try fixture.directory.read("repo/archive/demo/15-1/" + before[0]) == stored)
        try fixture.get("00000002.history", to: fixture.directory.path("restore/pg_wal/RECOVERYHISTORY"))
        #expect(try fixture.directory.read("restore/pg_wal/RECOVERYHISTORY") == archived)
    }

    @Test("a partial segment pushed again: identical content succeeds without writing, other content is refused and never overwrites")
    func partialDuplicate() throws {
        // PostgreSQL archives the last, incomplete segment of the old timeline as .partial at a
        // promotion; a crash before the archiver records success makes it push the same file again.
        let fixture = try ArchiveFixture()
        let name = "000000010000000000000002.partial"
        let path = try fixture.writeWAL(name)
        guard case .stored(let object) = try fixture.push(path, compression: .lz4) else { Issue.record("not stored"); return }
        let before = fixture.archived
        let stored = try #require(try fixture.directory.read("repo/archive/demo/15-1/" + before[0]))
        #expect(try fixture.push(path, compression: .zst) == .alreadyArchived(object: object))
        #expect(fixture.archived == before)

        // The old primary's own .partial of the same segment (it kept writing after the fork).
        var other = ArchiveFixture.segment
        other[(8 << 20) + 17] ^= 0x42
        try fixture.writeWAL(name, other)
        let error = try #require(#expect(throws: PGKeepError.self) { try fixture.push(path, compression: .lz4) })
        #expect(error.code == .archiveDuplicate)
        #expect(error.message.contains(name), "\(error.message)")
        #expect(fixture.archived == before)
        #expect(try fixture.directory.read("repo/archive/demo/15-1/" + before[0]) == stored)
        try fixture.get(name, to: fixture.directory.path("restore/pg_wal/RECOVERYXLOG"))
        #expect(try fixture.directory.read("restore/pg_wal/RECOVERYXLOG") == ArchiveFixture.segment)
    }
}

@Suite("archive-get")
struct ArchiveGetTests {
    @Test("archive-get writes the archived segment to the destination byte for byte", arguments: CompressionType.allCases)
    func fetches(_ compression: CompressionType) throws {
        let fixture = try ArchiveFixture()
        _ = try fixture.push(try fixture.writeWAL(ArchiveFixture.segmentName), compression: compression)
        let destination = fixture.directory.path("restore/pg_wal/RECOVERYXLOG")
        try fixture.get(ArchiveFixture.segmentName, to: destination)
        #expect(try fixture.directory.read("restore/pg_wal/RECOVERYXLOG") == ArchiveFixture.segment)
        #expect(fixture.directory.files(under: "restore") == ["pg_wal/RECOVERYXLOG"])
    }

    @Test("a WAL file the archive does not have fails with code 1 and creates nothing")
    func missing() throws {
        let fixture = try ArchiveFixture()
        let error = try #require(#expect(throws: PGKeepError.self) {
            try fixture.get("000000010000000000000009", to: fixture.directory.path("restore/pg_wal/RECOVERYXLOG"))
        })
        #expect(error.code == .archiveFileMissing)
        #expect(error.code.rawValue == 1)
        #expect(error.message.contains("000000010000000000000009"))
        #expect(fixture.directory.files(under: "restore").isEmpty)
        // A timeline history file PostgreSQL probes for is missing in the same way.
        #expect(#expect(throws: PGKeepError.self) {
            try fixture.get("00000002.history", to: fixture.directory.path("restore/pg_wal/RECOVERYHISTORY"))
        }?.code == .archiveFileMissing)
    }

    @Test("a damaged archived object fails as a checksum mismatch, leaving neither the destination nor a temporary file",
          arguments: CompressionType.allCases)
    func damaged(_ compression: CompressionType) throws {
        let fixture = try ArchiveFixture()
        _ = try fixture.push(try fixture.writeWAL(ArchiveFixture.segmentName), compression: compression)
        let object = "repo/archive/demo/15-1/" + fixture.archived[0]
        var bytes = try #require(try fixture.directory.read(object))
        bytes[bytes.count / 2] ^= 0x01
        try fixture.directory.write(object, bytes)

        let destination = fixture.directory.path("restore/pg_wal/RECOVERYXLOG")
        let error = try #require(#expect(throws: PGKeepError.self) { try fixture.get(ArchiveFixture.segmentName, to: destination) })
        #expect(error.code == .checksumMismatch, "\(error)")
        #expect(error.message.contains(fixture.directory.path(object)))
        #expect(!fixture.directory.exists("restore/pg_wal/RECOVERYXLOG"))
        #expect(fixture.directory.files(under: "restore").isEmpty)
    }

    @Test("when the chosen copy is damaged, archive-get delivers another stored copy with the same checksum and warns naming the damaged one")
    func damagedCopyFallsBackToAnotherCompression() throws {
        let fixture = try ArchiveFixture()
        let wal = try fixture.writeWAL(ArchiveFixture.segmentName)
        guard case .stored(let lz4) = try fixture.push(wal, compression: .lz4) else { Issue.record("not stored"); return }
        // A second copy of the same content under another compression, as a change of
        // compress-type and a re-archive by a second writer can leave.
        let zst = try ArchiveFixture.objectName(ArchiveFixture.segmentName, ArchiveFixture.segment, .zst)
        let zstPath = try fixture.objectPath("0000000100000000/" + zst)
        let writer = try fixture.storage.openWrite(zstPath)
        let compressor = try #require(try CompressionType.zst.makeCompressFilter(level: 3, bufferSize: 1 << 20))
        try FilterChain([compressor]).run(from: try #require(try FileSource.open(wal)), into: writer, buffer: IOBuffer(size: 1 << 20))
        try writer.commit()
        // Listing order puts the lz4 copy first: damage that one.
        #expect(fixture.archived.sorted().first?.hasSuffix(".lz4") == true)
        try fixture.damage("archive/demo/15-1/0000000100000000/" + lz4.split(separator: "/").last!)

        let destination = fixture.directory.path("restore/pg_wal/RECOVERYXLOG")
        let checksum = try fixture.getter().get(walFile: ArchiveFixture.segmentName, destination: destination)
        #expect(checksum == (try SHA256Digest.of(ArchiveFixture.segment)))
        #expect(try fixture.directory.read("restore/pg_wal/RECOVERYXLOG") == ArchiveFixture.segment)
        #expect(fixture.directory.files(under: "restore") == ["pg_wal/RECOVERYXLOG"])
        let log = try fixture.logged()
        #expect(log.contains("WARN") && log.contains(lz4) && log.contains("damaged"), "\(log)")
        #expect(log.contains("fetched \(ArchiveFixture.segmentName) from '\(fixture.storage.describe(zstPath))'"), "\(log)")
    }

    @Test("a damaged copy under the current archive id falls back to the same content under an older archive id, never to other content there")
    func damagedCopyFallsBackToOlderArchiveID() throws {
        let fixture = try ArchiveFixture()
        // Archive id 15-2 is current; 15-1 (the fixture's) is history.
        var info = ArchiveInfo(current: ArchiveFixture.identity)
        info.current = DatabaseIdentity(id: 2, systemIdentifier: ArchiveFixture.identity.systemIdentifier, version: 15,
                                        controlVersion: 1300, catalogVersion: 202209061)
        info.history.append(info.current)
        try SealedFile.save(info, to: fixture.layout.archiveInfo, in: fixture.storage)
        let wal = try fixture.writeWAL(ArchiveFixture.segmentName)
        guard case .stored(let current) = try fixture.push(wal, compression: .lz4) else { Issue.record("not stored"); return }
        #expect(current.contains("/15-2/"))
        let name = try ArchiveFixture.objectName(ArchiveFixture.segmentName, ArchiveFixture.segment, .none)
        try fixture.storage.writeSmallFile(try fixture.objectPath("0000000100000000/" + name), ArchiveFixture.segment)
        try fixture.damage("archive/demo/15-2/0000000100000000/" + current.split(separator: "/").last!)

        let destination = fixture.directory.path("restore/pg_wal/RECOVERYXLOG")
        try fixture.getter().get(walFile: ArchiveFixture.segmentName, destination: destination)
        #expect(try fixture.directory.read("restore/pg_wal/RECOVERYXLOG") == ArchiveFixture.segment)
        #expect(try fixture.logged().contains(current))

        // Other content of that name under the older id is another cluster's WAL: never delivered.
        try fixture.storage.remove(try fixture.objectPath("0000000100000000/" + name))
        let other = try ArchiveFixture.objectName(ArchiveFixture.segmentName, [1, 2, 3], .none)
        try fixture.storage.writeSmallFile(try fixture.objectPath("0000000100000000/" + other), [1, 2, 3])
        try Posix.unlink(destination)
        let error = try #require(#expect(throws: PGKeepError.self) {
            try fixture.get(ArchiveFixture.segmentName, to: destination)
        })
        #expect(error.code == .checksumMismatch, "\(error)")
        #expect(fixture.directory.files(under: "restore").isEmpty)
    }

    @Test("when every copy is damaged, archive-get fails as a checksum mismatch naming each copy, never as a missing file")
    func everyCopyDamaged() throws {
        let fixture = try ArchiveFixture()
        let wal = try fixture.writeWAL(ArchiveFixture.segmentName)
        _ = try fixture.push(wal, compression: .lz4)
        let plain = try ArchiveFixture.objectName(ArchiveFixture.segmentName, ArchiveFixture.segment, .none)
        try fixture.storage.writeSmallFile(try fixture.objectPath("0000000100000000/" + plain), ArchiveFixture.segment)
        for object in fixture.archived { try fixture.damage("archive/demo/15-1/" + object) }

        let error = try #require(#expect(throws: PGKeepError.self) {
            try fixture.getter().get(walFile: ArchiveFixture.segmentName, destination: fixture.directory.path("restore/pg_wal/RECOVERYXLOG"))
        })
        #expect(error.code == .checksumMismatch)
        #expect(ErrorCode.archiveGetExitStatus(error.code) == 255)
        for object in fixture.archived { #expect(error.message.contains(object.split(separator: "/").last!), "\(error)") }
        #expect(error.hint?.contains("archive-push") == true)
        #expect(fixture.directory.files(under: "restore").isEmpty)
    }

    @Test("archive-get's exit status is 1 only for a file the archive lacks and 255 for every other failure; every error code stays below 126")
    func exitStatus() {
        for code in ErrorCode.allCases {
            #expect(code.rawValue > 0 && code.rawValue < 126, "\(code)")
            #expect(ErrorCode.archiveGetExitStatus(code) == (code == .archiveFileMissing ? 1 : 255), "\(code)")
        }
        #expect(ErrorCode.archiveGetFatalExitStatus == 255)
        #expect(ErrorCode.archiveGetFatalHint.contains("255") && ErrorCode.archiveGetFatalHint.contains("skip"))
    }

    @Test("archive-get refuses when the archive holds two different copies of one WAL file")
    func twoCopies() throws {
        let fixture = try ArchiveFixture()
        _ = try fixture.push(try fixture.writeWAL(ArchiveFixture.segmentName), compression: .none)
        let other = try ArchiveFixture.objectName(ArchiveFixture.segmentName, [1, 2, 3], .none)
        try fixture.storage.writeSmallFile(try fixture.objectPath("0000000100000000/" + other), [1, 2, 3])
        let error = try #require(#expect(throws: PGKeepError.self) {
            try fixture.get(ArchiveFixture.segmentName, to: fixture.directory.path("restore/pg_wal/RECOVERYXLOG"))
        })
        #expect(error.code == .archiveDuplicate)
        #expect(fixture.directory.files(under: "restore").isEmpty)
    }

    @Test("archive-get refuses names that are not WAL file names", arguments: ["foo", "../000000010000000000000002", "RECOVERYXLOG"])
    func notWAL(_ name: String) throws {
        let fixture = try ArchiveFixture()
        let error = try #require(#expect(throws: PGKeepError.self) {
            try fixture.get(name, to: fixture.directory.path("restore/pg_wal/RECOVERYXLOG"))
        })
        #expect(error.code == .walInvalid)
    }

    @Test("archive-get without a stanza fails as stanza-missing, not as a missing file")
    func noStanza() throws {
        let fixture = try ArchiveFixture(stanza: false)
        let error = try #require(#expect(throws: PGKeepError.self) {
            try fixture.get(ArchiveFixture.segmentName, to: fixture.directory.path("restore/pg_wal/RECOVERYXLOG"))
        })
        #expect(error.code == .stanzaMissing)
    }
}

@Suite("Waiting for WAL")
struct ArchiveWaitTests {
    static let size = WALSegmentSize.default
    static func segment(_ name: String) -> WALSegmentName { WALSegmentName(name, segmentSize: size)! }

    /// Records an archived segment the way a listing sees it (content is irrelevant to waiting).
    func archive(_ name: String, in fixture: ArchiveFixture) throws {
        let object = try ArchiveFixture.objectName(name, Array(name.utf8), .lz4)
        try fixture.storage.writeSmallFile(try fixture.objectPath(String(name.prefix(16)) + "/" + object), Array(name.utf8))
    }

    func wait(_ fixture: ArchiveFixture, from: String, through: String, timeout: Double) throws {
        try ArchiveWait.waitForSegments(from: Self.segment(from), through: Self.segment(through), archiveID: "15-1",
                                        storage: fixture.storage, layout: fixture.layout, timeout: timeout)
    }

    @Test("waiting fails after the timeout with archive-timeout naming the first missing segment")
    func timesOut() throws {
        let fixture = try ArchiveFixture()
        try archive("000000010000000000000002", in: fixture)
        try archive("000000010000000000000004", in: fixture)
        let start = Clock.monotonic()
        let error = try #require(#expect(throws: PGKeepError.self) {
            try wait(fixture, from: "000000010000000000000002", through: "000000010000000000000005", timeout: 0.2)
        })
        let elapsed = Clock.monotonic() - start
        #expect(error.code == .archiveTimeout)
        #expect(error.message.contains("000000010000000000000003"))
        #expect(!error.message.contains("000000010000000000000002") && !error.message.contains("000000010000000000000005"))
        #expect(error.hint?.contains("archive_command") == true)
        #expect(elapsed >= 0.2 && elapsed < 2)
    }

    @Test("waiting returns at once when every segment is archived, across a log id boundary")
    func present() throws {
        let fixture = try ArchiveFixture()
        for name in ["0000000100000000000000FE", "0000000100000000000000FF", "000000010000000100000000"] {
            try archive(name, in: fixture)
        }
        let start = Clock.monotonic()
        try wait(fixture, from: "0000000100000000000000FE", through: "000000010000000100000000", timeout: 5)
        #expect(Clock.monotonic() - start < 1)
    }

    @Test("waiting succeeds when the missing segment arrives before the timeout")
    func arrives() throws {
        let fixture = try ArchiveFixture()
        try archive("000000010000000000000002", in: fixture)
        let thread = Thread {
            Clock.sleep(seconds: 0.15)
            try! archive("000000010000000000000003", in: fixture)
        }
        thread.start()
        try wait(fixture, from: "000000010000000000000002", through: "000000010000000000000003", timeout: 10)
        #expect(fixture.archived.count == 2)
    }

    @Test("a real pushed segment satisfies the wait")
    func pushedSegment() throws {
        let fixture = try ArchiveFixture()
        _ = try fixture.push(try fixture.writeWAL(ArchiveFixture.segmentName), compression: .zst)
        try wait(fixture, from: ArchiveFixture.segmentName, through: ArchiveFixture.segmentName, timeout: 0)
    }
}

@Suite("stanza-create")
struct StanzaCreateTests {
    let fixture: ArchiveFixture
    let infoFiles = ["archive/demo/archive.info", "archive/demo/archive.info.copy",
                     "backup/demo/backup.info", "backup/demo/backup.info.copy"]

    init() throws { fixture = try ArchiveFixture(stanza: false) }

    func create() throws -> StanzaCreate.Outcome {
        try StanzaCreate(storage: fixture.storage, host: LocalHost(), layout: fixture.layout, log: fixture.log).run(dataDirectory: try fixture.dataDirectory())
    }

    func infoBytes() throws -> [[UInt8]?] { try infoFiles.map { try fixture.directory.read("repo/" + $0) } }

    @Test("stanza-create writes archive.info and backup.info, with copies, for the cluster's pg_control")
    func creates() throws {
        #expect(try create() == .created)
        #expect(fixture.directory.files(under: "repo") == infoFiles.sorted())
        let archive = try InfoFiles.loadArchiveInfo(fixture.storage, fixture.layout, warn: { Issue.record("\($0)") })
        let backup = try InfoFiles.loadBackupInfo(fixture.storage, fixture.layout, warn: { Issue.record("\($0)") })
        #expect(archive.current == ArchiveFixture.identity)
        #expect(archive.history == [ArchiveFixture.identity])
        #expect(backup.current == ArchiveFixture.identity && backup.backups.isEmpty)
    }

    @Test("stanza-create run again for the same cluster reports it exists and changes nothing")
    func again() throws {
        _ = try create()
        let before = try infoBytes()
        #expect(try create() == .alreadyExists)
        #expect(try infoBytes() == before)
    }

    @Test("stanza-create refuses a stanza that serves another cluster and changes nothing")
    func otherCluster() throws {
        var other = ArchiveFixture.identity
        other.systemIdentifier = 6_000_000_000_000_000_001
        try SealedFile.save(ArchiveInfo(current: other), to: fixture.layout.archiveInfo, in: fixture.storage)
        try SealedFile.save(BackupInfo(current: other), to: fixture.layout.backupInfo, in: fixture.storage)
        let before = try infoBytes()

        let error = try #require(#expect(throws: PGKeepError.self) { try create() })
        #expect(error.code == .stanzaMismatch)
        #expect(error.message.contains("6000000000000000001") && error.message.contains("\(PostgresFixture.systemIdentifier)"))
        #expect(error.hint?.contains("nothing was changed") == true)
        #expect(try infoBytes() == before)
    }

    @Test("stanza-create completes a stanza whose backup.info was never written")
    func halfCreated() throws {
        try SealedFile.save(ArchiveInfo(current: ArchiveFixture.identity), to: fixture.layout.archiveInfo, in: fixture.storage)
        let archiveBefore = try fixture.directory.read("repo/archive/demo/archive.info")
        #expect(try create() == .created)
        #expect(try fixture.directory.read("repo/archive/demo/archive.info") == archiveBefore)
        #expect(try InfoFiles.loadBackupInfo(fixture.storage, fixture.layout, warn: { _ in }).current == ArchiveFixture.identity)
    }

    @Test("stanza-create refuses a data directory without pg_control and writes nothing")
    func noControl() throws {
        try fixture.directory.makeDirectory("empty")
        #expect(throws: PGKeepError.self) {
            try StanzaCreate(storage: fixture.storage, host: LocalHost(), layout: fixture.layout, log: fixture.log)
                .run(dataDirectory: fixture.directory.path("empty"))
        }
        #expect(fixture.directory.files(under: "repo").isEmpty)
    }
}
