import Testing
@testable import PGKeep
import TestSupport

@Suite("info: stanza status and WAL ranges")
struct InfoReportTests {
    let storage = MemoryStorage()
    let layout = try! RepositoryLayout(stanza: "main")
    let identity = DatabaseIdentity(id: 1, systemIdentifier: 7_000_000_000_000_000_001, version: 15,
                                    controlVersion: 1300, catalogVersion: 202209061)

    func report() throws -> InfoReport.Stanza {
        try InfoReport(storage: storage, log: Log(consoleLevel: .off)).collect(only: "main")[0]
    }

    func put(_ path: String, _ bytes: [UInt8] = [1, 2, 3]) throws {
        let writer = try storage.openWrite(try StoragePath(path))
        try bytes.withUnsafeBytes { try writer.write($0) }
        try writer.commit()
    }

    func archive(_ name: String) throws {
        let object = RepositoryLayout.archiveObjectName(walFile: name, checksum: try SHA256Digest.of(Array(name.utf8)), compression: .lz4)
        try put("archive/main/15-1/\(name.prefix(16))/\(object)")
    }

    @Test("codes follow pgBackRest: missing stanza path 1, missing stanza data 3, no valid backups 2, info files of two clusters 99 (other)")
    func statusCodes() throws {
        #expect(try report().status.code == 1)

        try SealedFile.save(ArchiveInfo(current: identity), to: layout.archiveInfo, in: storage)
        let missing = try report().status
        #expect(missing.code == 3)
        #expect(missing.message.contains("backup.info"))

        try SealedFile.save(BackupInfo(current: identity), to: layout.backupInfo, in: storage)
        #expect(try report().status.code == 2)

        var other = identity
        other.systemIdentifier += 1
        try SealedFile.save(BackupInfo(current: other), to: layout.backupInfo, in: storage)
        let mismatch = try report().status
        #expect(mismatch.code == 99)
        #expect(mismatch.message.contains("\(other.systemIdentifier)") && mismatch.message.contains("\(identity.systemIdentifier)"))
    }

    @Test("the archive is reported per timeline, gaps flagged, across a log id boundary, with its stored size")
    func timelineRanges() throws {
        try SealedFile.save(ArchiveInfo(current: identity), to: layout.archiveInfo, in: storage)
        try SealedFile.save(BackupInfo(current: identity), to: layout.backupInfo, in: storage)
        for name in ["0000000100000000000000FE", "0000000100000000000000FF", "000000010000000100000000",
                     "000000020000000100000001", "000000020000000100000003"] {
            try archive(name)
        }
        try put("archive/main/15-1/00000002.history")
        let stanza = try report()
        let archive = try #require(stanza.archive.first)
        #expect(archive.min == "0000000100000000000000FE")
        #expect(archive.max == "000000020000000100000003")
        #expect(archive.timelines.map(\.timeline) == [1, 2])
        #expect(archive.timelines[0].continuous && archive.timelines[0].segments == 3)
        #expect(!archive.timelines[1].continuous && archive.timelines[1].segments == 2)
        #expect(archive.size == 6 * 3)
        #expect(stanza.repository.size == 6 * 3)
        let text = InfoReport(storage: storage, log: Log(consoleLevel: .off)).text([stanza])
        #expect(text.contains("timeline 2: 000000020000000100000001/000000020000000100000003, 2 segments, WITH GAPS"))
    }
}
