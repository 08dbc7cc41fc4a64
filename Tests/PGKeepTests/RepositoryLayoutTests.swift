import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("Repository layout")
struct RepositoryLayoutTests {
    private let layout = try! RepositoryLayout(stanza: "demo")
    private let digest = try! SHA256Digest.of(Array("segment bytes".utf8))

    // MARK: archive

    @Test("archive.info lives in archive/<stanza>, backup.info in backup/<stanza>")
    func infoPaths() {
        #expect(layout.archiveRoot.description == "archive/demo")
        #expect(layout.archiveInfo.description == "archive/demo/archive.info")
        #expect(layout.backupRoot.description == "backup/demo")
        #expect(layout.backupInfo.description == "backup/demo/backup.info")
    }

    @Test("segments, partial segments and backup history files go in a directory named by their first 16 hex digits",
          arguments: ["000000010000000000000002", "000000010000000000000002.partial", "000000010000000000000004.00000028.backup",
                      "0000000A000000FF000000FF"])
    func segmentParent(_ name: String) throws {
        let parent = try layout.archiveParent(archiveID: "15-1", walFile: name)
        #expect(parent.description == "archive/demo/15-1/" + name.prefix(16))
    }

    @Test("timeline history files go at the root of the archive id directory")
    func historyParent() throws {
        #expect(try layout.archiveParent(archiveID: "15-1", walFile: "00000002.history").description == "archive/demo/15-1")
        #expect(try layout.archiveDirectory(archiveID: "16-2").description == "archive/demo/16-2")
    }

    @Test("an archive object name carries the WAL name, the SHA-256 and the compression, and parses back",
          arguments: CompressionType.allCases)
    func objectNameRoundTrip(_ compression: CompressionType) throws {
        for name in ["000000010000000000000002", "000000010000000000000002.partial",
                     "000000010000000000000004.00000028.backup", "00000002.history"] {
            let object = RepositoryLayout.archiveObjectName(walFile: name, checksum: digest, compression: compression)
            let suffix = compression.fileExtension.map { "." + $0 } ?? ""
            #expect(object == "\(name)-\(digest.hex)\(suffix)")
            let parsed = try #require(RepositoryLayout.parseArchiveObjectName(object), "\(object)")
            #expect(parsed.name == name)
            #expect(parsed.checksum == digest)
            #expect(parsed.compression == compression)
        }
    }

    @Test("malformed archive object names do not parse")
    func malformedObjectNames() {
        let hex = digest.hex
        let bad = [
            "",
            "000000010000000000000002",                              // no checksum
            "000000010000000000000002.lz4",
            "000000010000000000000002-" + hex.dropLast(),             // 63 digits
            "000000010000000000000002-" + hex + "0",                  // 65 digits
            "000000010000000000000002_" + hex,                        // wrong separator
            "000000010000000000000002-" + hex.dropLast() + "g",       // not hex
            "000000010000000000000002-" + hex + ".gz",                // unknown compression
            "000000010000000000000002-" + hex + ".lz4.zst",           // two extensions
            "000000010000000000000002-" + hex + ".",
            "-" + hex,                                                // no WAL name
            hex,
        ]
        for object in bad {
            #expect(RepositoryLayout.parseArchiveObjectName(object) == nil, "\(object)")
        }
    }

    @Test("archive paths refuse WAL names that would leave their directory")
    func archivePathEscape() {
        #expect(throws: PGKeepError.self) { try layout.archiveParent(archiveID: "15-1", walFile: "../../../etc/passwd") }
        #expect(throws: PGKeepError.self) { try layout.archiveDirectory(archiveID: "..") }
        #expect(throws: PGKeepError.self) { try layout.archiveDirectory(archiveID: "15-1/../../x") }
    }

    // MARK: backup

    @Test("backup files live under backup/<stanza>/<label>/, with the compression's extension")
    func backupPaths() throws {
        let label = BackupLabel("20261126-230501F")!
        #expect(try layout.backupDirectory(label: label).description == "backup/demo/20261126-230501F")
        #expect(try layout.manifest(label: label).description == "backup/demo/20261126-230501F/backup.manifest")
        #expect(try layout.backupFile(label: label, name: "pg_data/base/5/1259", compression: .none).description
            == "backup/demo/20261126-230501F/pg_data/base/5/1259")
        #expect(try layout.backupFile(label: label, name: "pg_data/base/5/1259", compression: .lz4).description
            == "backup/demo/20261126-230501F/pg_data/base/5/1259.lz4")
        #expect(try layout.backupFile(label: label, name: "pg_tblspc/16384/PG_15_202209061/5/16386", compression: .zst).description
            == "backup/demo/20261126-230501F/pg_tblspc/16384/PG_15_202209061/5/16386.zst")
    }

    @Test("backup file paths refuse manifest names that would escape the backup directory",
          arguments: ["../20261125-000000F/pg_data/x", "pg_data/../../x", "/etc/passwd", "pg_data//x", "pg_data/./x"])
    func backupPathEscape(_ name: String) {
        let label = BackupLabel("20261126-230501F")!
        let error = #expect(throws: PGKeepError.self) { try layout.backupFile(label: label, name: name, compression: .none) }
        #expect(error?.code == .pathInvalid)
    }

    // MARK: stanza names

    @Test("stanza names of safe characters are accepted",
          arguments: ["demo", "main-15", "a.b_c", "X", String(repeating: "s", count: 64)])
    func validStanza(_ name: String) throws {
        #expect(try RepositoryLayout(stanza: name).stanza == name)
    }

    @Test("stanza names that are empty, too long, a path or outside the alphabet are refused",
          arguments: ["", ".", "..", "a/b", "../x", "/abs", String(repeating: "s", count: 65), "with space", "tab\t", "ünï",
                      "a\0b", "a\\b", "star*"])
    func invalidStanza(_ name: String) {
        let error = #expect(throws: PGKeepError.self) { try RepositoryLayout(stanza: name) }
        #expect(error?.code == .optionInvalid)
        #expect(error?.hint?.contains("1 to 64") == true)
    }
}
