import Foundation
import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

/// The feature lists of sealed files (repo-layout.md §3.9): what a reader and a writer must know,
/// judged once, when a file is opened.
@Suite("Repository features")
struct RepositoryFeatureTests {
    static let identity = DatabaseIdentity(id: 1, systemIdentifier: PostgresFixture.systemIdentifier, version: 15,
                                           controlVersion: 1300, catalogVersion: 202209061)

    /// Opens `value`'s sealed bytes as `access` does.
    static func open<T: Codable>(_ value: T, as access: RepositoryAccess) throws -> T {
        let bytes = try SealedFile.seal(value)
        return try RepositoryFormat.$access.withValue(access) { try SealedFile.open(T.self, from: bytes, name: "the-file") }
    }

    static func openError<T: Codable>(_ value: T, as access: RepositoryAccess) -> PGKeepError? {
        do { _ = try open(value, as: access); return nil } catch { return error as? PGKeepError }
    }

    @Test("a manifest naming a reader feature this build does not know is refused, naming the file and the feature")
    func unknownReaderFeatureRefused() throws {
        var manifest = ManifestSample.make()
        manifest.readerFeatures = ["time-travel"]
        let error = try #require(Self.openError(manifest, as: .read))
        #expect(error.code == .repositoryInvalid)
        #expect(error.message.contains("'the-file'") && error.message.contains("'time-travel'"))
        #expect(error.hint?.contains("upgrade pgkeep to a version that knows 'time-travel'") == true)
    }

    @Test("an unknown writer feature in backup.info is refused to writers")
    func unknownWriterFeatureRefusedToWriters() throws {
        var info = BackupInfo(current: Self.identity)
        info.writerFeatures = ["lease-v9"]
        let error = try #require(Self.openError(info, as: .write))
        #expect(error.code == .repositoryInvalid)
        #expect(error.message.contains("'lease-v9'"))
    }

    @Test("an unknown writer feature in backup.info does not stop commands that only read")
    func unknownWriterFeatureReadable() throws {
        var info = BackupInfo(current: Self.identity)
        info.writerFeatures = ["lease-v9"]
        #expect(try Self.open(info, as: .read).writerFeatures == ["lease-v9", "repository-lease"])
    }

    @Test("a manifest written before features existed loads, and names no features")
    func fileWithoutFeaturesLoads() throws {
        let fixture = try PostgresFixture.bytes("manifest-every-key.json")
        let features = "  \"readerFeatures\" : [\n    \"block-incremental\",\n    \"bundles\"\n  ],\n"
        let body = String(decoding: fixture, as: UTF8.self)
        #expect(body.contains(features))
        var bytes = Array(body.replacingOccurrences(of: features, with: "").utf8)
        #expect(!String(decoding: bytes, as: UTF8.self).contains("Features"))
        bytes += Array("\nsha256 \(try SHA256Digest.of(bytes).hex)\n".utf8)
        let manifest = try RepositoryFormat.$access.withValue(.write) { try SealedFile.open(Manifest.self, from: bytes, name: "m") }
        #expect(manifest.readerFeatures == nil)
        #expect(manifest.files == ManifestJSONTests.everyKey().files)
    }

    @Test("sealing and opening keeps both feature lists")
    func roundTripKeepsFeatures() throws {
        var manifest = ManifestSample.make()
        manifest.readerFeatures = ["bundles"]
        manifest.writerFeatures = ["repository-lease"]
        let opened = try Self.open(manifest, as: .write)
        #expect(opened.readerFeatures == ["bundles"])
        #expect(opened.writerFeatures == ["repository-lease"])
    }

    @Test("a manifest with bundled entries records 'bundles'")
    func bundlesRecorded() throws {
        var manifest = ManifestSample.make()
        manifest.files[0].bundle = 1
        manifest.files[0].bundleOffset = 0
        #expect(try Self.open(manifest, as: .read).readerFeatures == ["bundles"])
    }

    @Test("a manifest with block-incremental entries records 'block-incremental'")
    func blockIncrementalRecorded() throws {
        var manifest = ManifestSample.make()
        manifest.files[0].blockSize = 131_072
        manifest.files[0].blockMapSize = 100
        manifest.files[0].blockMapChecksum = ManifestSample.digest("map")
        #expect(try Self.open(manifest, as: .read).readerFeatures == ["block-incremental"])
    }

    @Test("a manifest with a link target records 'link-targets'")
    func linkTargetsRecorded() throws {
        var manifest = ManifestSample.make()
        manifest.format = RepositoryFormat.linkTargets
        manifest.targets.append(.init(name: "pg_data/pg_wal", kind: .link, path: "/srv/wal", tablespaceOID: nil, tablespaceName: nil))
        #expect(try Self.open(manifest, as: .read).readerFeatures == ["link-targets"])
    }

    @Test("a manifest using no feature records none")
    func plainManifestRecordsNone() throws {
        let sealed = String(decoding: try SealedFile.seal(ManifestSample.make()), as: UTF8.self)
        #expect(!sealed.contains("Features"))
    }

    @Test("every backup.info written records 'repository-lease' for writers")
    func backupInfoRecordsLease() throws {
        #expect(try Self.open(BackupInfo(current: Self.identity), as: .read).writerFeatures == ["repository-lease"])
    }

    @Test("archive.info names no features")
    func archiveInfoRecordsNone() throws {
        let sealed = String(decoding: try SealedFile.seal(ArchiveInfo(current: Self.identity)), as: UTF8.self)
        #expect(!sealed.contains("Features"))
    }

    @Test("an unknown reader feature in archive.info is refused")
    func archiveInfoUnknownReaderFeature() throws {
        var info = ArchiveInfo(current: Self.identity)
        info.readerFeatures = ["wal-v2"]
        #expect(Self.openError(info, as: .read)?.message.contains("'wal-v2'") == true)
    }

    // check writes a probe it never publishes, but judges whether archive-push would work: it
    // refuses what archive-push would refuse.
    @Test("only the commands that write the repository (and check, which vouches for archive-push) are judged as writers")
    func commandAccess() {
        let writers = CommandName.allCases.filter { $0.repositoryAccess == .write }
        #expect(Set(writers) == [.stanzaCreate, .stanzaRepair, .stanzaUpgrade, .stanzaDelete, .check, .backup, .archivePush, .expire, .annotate])
    }
}
