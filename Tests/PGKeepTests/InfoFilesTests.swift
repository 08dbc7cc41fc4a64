import Foundation
import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("Info files and backup labels")
struct InfoFilesTests {
    static let identity = DatabaseIdentity(id: 2, systemIdentifier: PostgresFixture.systemIdentifier, version: 15,
                                           controlVersion: 1300, catalogVersion: 202209061)
    static let older = DatabaseIdentity(id: 1, systemIdentifier: 7_000_000_000_000_000_001, version: 14,
                                        controlVersion: 1300, catalogVersion: 202107181)

    static func summary(_ label: String, stop: Int64, type: BackupType = .full, prior: String? = nil) -> BackupSummary {
        BackupSummary(label: BackupLabel(label)!, type: type, prior: prior.flatMap(BackupLabel.init), references: prior.flatMap(BackupLabel.init).map { [$0] } ?? [],
                      databaseID: 2, timestampStart: stop - 60, timestampStop: stop,
                      lsnStart: LSN(high: 0, low: 0x2000028), lsnStop: LSN(high: 0xA, low: 0xFFFF_FFFF),
                      walStart: "000000010000000000000002", walStop: "000000010000000A000000FF", timeline: 1,
                      size: 1 << 40, repoSize: 123, fileCount: 987, compressType: .lz4)
    }

    // MARK: round trips

    @Test("archive.info with a history survives seal and open, and load from storage")
    func archiveInfoRoundTrip() throws {
        var info = ArchiveInfo(current: Self.identity)
        info.history = [Self.older, Self.identity]
        let bytes = try SealedFile.seal(info)
        let decoded = try SealedFile.open(ArchiveInfo.self, from: bytes, name: "archive.info")
        #expect(decoded.format == RepositoryFormat.current)
        #expect(decoded.current == Self.identity)
        #expect(decoded.history == [Self.older, Self.identity])
        #expect(decoded.current.archiveID == "15-2")

        let directory = try TemporaryDirectory("info")
        let storage = PosixStorage(root: directory.path)
        let layout = try RepositoryLayout(stanza: "demo")
        try SealedFile.save(info, to: layout.archiveInfo, in: storage)
        let loaded = try InfoFiles.loadArchiveInfo(storage, layout, warn: { Issue.record("unexpected warning: \($0)") })
        #expect(loaded.history == info.history)
        // The system identifier is written as an exact integer, not a float.
        #expect(sealedBody(bytes).contains("\"systemIdentifier\" : 7712620586789208204"))
    }

    @Test("backup.info with full, diff and incr entries survives seal and open")
    func backupInfoRoundTrip() throws {
        var info = BackupInfo(current: Self.identity)
        info.history = [Self.older, Self.identity]
        info.backups = [
            Self.summary("20261126-230501F", stop: 100),
            Self.summary("20261126-230501F_20261127-010203D", stop: 200, type: .diff, prior: "20261126-230501F"),
            Self.summary("20261126-230501F_20261127-020304I", stop: 300, type: .incr, prior: "20261126-230501F_20261127-010203D"),
        ]
        let bytes = try SealedFile.seal(info)
        let decoded = try SealedFile.open(BackupInfo.self, from: bytes, name: "backup.info")
        #expect(decoded.format == RepositoryFormat.current)
        #expect(decoded.current == Self.identity)
        #expect(decoded.history == info.history)
        #expect(decoded.backups == info.backups)
        #expect(decoded.backups[2].lsnStop.description == "A/FFFFFFFF")
        #expect(decoded.backups[1].references == [BackupLabel("20261126-230501F")!])
        #expect(decoded.backups[0].prior == nil)
        #expect(try SealedFile.seal(decoded) == bytes)
        #expect(!sealedBody(bytes).contains("\"prior\" : null"))
    }

    @Test("system identifiers above Int64.max (clusters created after 2038) survive exactly")
    func largeSystemIdentifier() throws {
        // initdb puts the creation time's seconds in the top 32 bits: from 2038 the top bit is set.
        for systemIdentifier in [UInt64(1) << 63 | 1, UInt64.max - 12345] {
            var identity = Self.identity
            identity.systemIdentifier = systemIdentifier
            let bytes = try SealedFile.seal(ArchiveInfo(current: identity))
            #expect(sealedBody(bytes).contains("\(systemIdentifier)"))
            #expect(try SealedFile.open(ArchiveInfo.self, from: bytes, name: "archive.info").current == identity)
        }
    }

    @Test("a new info file starts with its identity as the whole history and no backups")
    func freshInfo() {
        let archive = ArchiveInfo(current: Self.identity)
        let backup = BackupInfo(current: Self.identity)
        #expect(archive.history == [Self.identity] && backup.history == [Self.identity])
        #expect(backup.backups.isEmpty && backup.latest == nil)
        #expect(archive.format == RepositoryFormat.current && backup.format == RepositoryFormat.current)
    }

    @Test("an identity matches on system identifier and version, whatever its id")
    func identityMatching() {
        #expect(Self.identity.matches(systemIdentifier: PostgresFixture.systemIdentifier, version: 15))
        #expect(!Self.identity.matches(systemIdentifier: PostgresFixture.systemIdentifier, version: 16))
        #expect(!Self.identity.matches(systemIdentifier: 1, version: 15))
    }

    // MARK: latest

    @Test("latest picks the backup that stopped last, not the greatest label")
    func latestByStopTime() {
        var info = BackupInfo(current: Self.identity)
        // The clock was set back between the two backups: the later one has the smaller label.
        info.backups = [Self.summary("20261127-000000F", stop: 1_000), Self.summary("20261126-120000F", stop: 2_000)]
        #expect(info.latest?.label.text == "20261126-120000F")
        info.backups.reverse()
        #expect(info.latest?.label.text == "20261126-120000F")
    }

    @Test("latest breaks a tie in stop time by label")
    func latestTie() {
        var info = BackupInfo(current: Self.identity)
        info.backups = [Self.summary("20261127-000000F", stop: 5), Self.summary("20261126-000000F", stop: 5)]
        #expect(info.latest?.label.text == "20261127-000000F")
    }

    // MARK: labels

    @Test("backup labels accept the full, differential and incremental forms",
          arguments: ["20261126-230501F", "00000000-000000F", "20261126-230501F_20261127-010203D", "20261126-230501F_20261127-010203I"])
    func validLabels(_ text: String) throws {
        let label = try #require(BackupLabel(text))
        #expect(label.text == text && label.description == text)
        let decoded = try JSONDecoder().decode([BackupLabel].self, from: Data("[\"\(text)\"]".utf8))
        #expect(decoded == [label])
    }

    @Test("backup labels reject anything else",
          arguments: ["", "20261126-230501", "20261126-230501D", "20261126-230501f", "20261126_230501F", "2026112-2305011F",
                      "20261126-23050AF", " 20261126-230501F", "20261126-230501F ", "20261126-230501F_", "20261126-230501F_20261127-010203F",
                      "20261126-230501D_20261127-010203D", "20261126-230501F-20261127-010203D", "20261126-230501F_20261127-010203",
                      "2026112６-230501F", "../20261126-230501F", "latest"])
    func invalidLabels(_ text: String) throws {
        #expect(BackupLabel(text) == nil)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([BackupLabel].self, from: Data(try JSONEncoder().encode([text])))
        }
    }

    @Test("full(at:) writes the local start time as YYYYMMDD-HHMMSSF")
    func fullLabelFormat() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .current
        for time: Int64 in [0, 1_795_734_440, 1_700_000_000, 951_782_400 /* 2000-02-29 */, 4_102_444_799] {
            let label = BackupLabel.full(at: time)
            let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second],
                                                from: Date(timeIntervalSince1970: TimeInterval(time)))
            let expected = String(format: "%04d%02d%02d-%02d%02d%02dF", parts.year!, parts.month!, parts.day!,
                                  parts.hour!, parts.minute!, parts.second!)
            #expect(label.text == expected, "time \(time)")
            #expect(BackupLabel(label.text) == label)
        }
    }

    @Test("labels of full backups taken later sort later within a day")
    func labelOrder() {
        let base: Int64 = 1_795_734_000
        #expect(BackupLabel.full(at: base) < BackupLabel.full(at: base + 59))
    }
}

