import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepEngine
@testable import PGKeepConfig
import SystemPackage

/// `backup --exclude=PATH` against a scripted host.
@Suite("backup --exclude")
struct BackupExcludeTests {
    static let data = ScriptedBackupTests.dataDirectory

    /// A backup of the scripted cluster with a `log` directory and a stray file added, and `exclude`.
    func manifestNames(excluding exclude: [String]) throws -> [String] {
        let setup = try ScriptedBackupTests.Setup()
        setup.host.addFile(Self.data + "/log/postgresql-Mon.log", Array("log\n".utf8))
        setup.host.addFile(Self.data + "/log/keep/inner", Array("x".utf8))
        setup.host.addFile(Self.data + "/junk.txt", Array("junk".utf8))
        let summary = try setup.backup { $0.exclude = exclude }
        let manifest = try setup.manifest(summary)
        return manifest.files.map(\.name) + manifest.paths.map(\.name)
    }

    @Test("--exclude=log leaves out the directory and everything below it; other files stay")
    func excludesATree() throws {
        let names = try manifestNames(excluding: ["log"])
        #expect(!names.contains { $0.hasPrefix("pg_data/log") }, "\(names)")
        #expect(names.contains("pg_data/junk.txt") && names.contains("pg_data/base/5/16384"))
    }

    @Test("--exclude=log/ keeps the directory and leaves out what is in it")
    func excludesContents() throws {
        let names = try manifestNames(excluding: ["log/"])
        #expect(names.contains("pg_data/log"), "\(names)")
        #expect(!names.contains { $0.hasPrefix("pg_data/log/") }, "\(names)")
    }

    @Test("--exclude of a file leaves out that file only, not others sharing its prefix")
    func excludesAFile() throws {
        let names = try manifestNames(excluding: ["junk.txt", "base/5/1638"])
        #expect(!names.contains("pg_data/junk.txt") && names.contains("pg_data/base/5/16384"), "\(names)")
    }

    @Test("--exclude of what a restored cluster needs, an absolute path or '..' is refused with option-invalid",
          arguments: ["PG_VERSION", "global", "global/pg_control", "/etc", "../x", "base/../global", ""])
    func refusesBadExclusions(_ path: String) {
        let error = #expect(throws: PGKeepError.self) { _ = try ClusterWalker.Exclusions([path]) }
        #expect(error?.code == .optionInvalid, "\(String(describing: error))")
    }

    @Test("--exclude may be given several times; the values add up in order")
    func repeatable() throws {
        let config = try Configuration.resolve(arguments: ["backup", "--stanza=main", "--pg1-path=/d", "--exclude=log/", "--exclude=junk"],
                                               environment: [:]) { _ throws(Errno) in throw Errno.noSuchFileOrDirectory }
        #expect(config.list(.exclude) == ["log/", "junk"])
    }
}

/// `backup --checksum-page` against a scripted host whose cluster has data checksums (the fixture's pg_control).
@Suite("backup --checksum-page")
struct BackupChecksumPageTests {
    /// A backup of the scripted cluster with one relation page whose checksum is wrong (LSN 0, so
    /// not a page changed during the backup); returns the damaged pages the backup reports.
    func damagedPages(checksumPage: Bool?) throws -> Int {
        let setup = try ScriptedBackupTests.Setup()
        var page = [UInt8](repeating: 0, count: 8192)
        page[8] = 0xFF; page[9] = 0xFF                         // pd_checksum
        page[12] = 24; page[14] = 0x00; page[15] = 0x20       // pd_lower 24, pd_upper 8192: not a new page
        page[100] = 42
        setup.host.addFile(ScriptedBackupTests.dataDirectory + "/base/5/16390", page)
        return try setup.backup { $0.checksumPage = checksumPage }.pageChecksumErrors ?? 0
    }

    @Test("by default a cluster with data checksums has its pages verified: the bad page is reported")
    func verifiedByDefault() throws {
        #expect(try damagedPages(checksumPage: nil) == 1)
    }

    @Test("--no-checksum-page skips the verification")
    func skipped() throws {
        #expect(try damagedPages(checksumPage: false) == 0)
    }
}
