import Foundation
import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

/// A manifest with every field populated, optional ones included, and entries of each kind.
enum ManifestSample {
    static let full = BackupLabel("20261126-230501F")!
    static let diff = BackupLabel("20261126-230501F_20261127-010203D")!

    static func digest(_ text: String) -> SHA256Digest { try! SHA256Digest.of(Array(text.utf8)) }

    static func make() -> Manifest {
        var manifest = Manifest(
            backup: .init(label: diff, type: .diff, prior: full, timestampStart: 1_795_741_323, timestampStop: 1_795_741_400,
                          lsnStart: LSN(high: 0x1, low: 0x2000028), lsnStop: LSN(high: 0x1, low: 0x20000F8),
                          walStart: "000000010000000100000002", walStop: "000000010000000100000002", timeline: 1),
            database: .init(id: 1, systemIdentifier: PostgresFixture.systemIdentifier, version: 15, controlVersion: 1300,
                            catalogVersion: 202209061, walSegmentSize: 16 << 20, pageChecksums: true),
            options: .init(compressType: .zst, compressLevel: 3, bufferSize: 1 << 20, processMax: 3, startFast: true))
        manifest.databases = [.init(oid: 5, name: "postgres"), .init(oid: 16385, name: "app, \"quoted\"")]
        manifest.targets = [
            .init(name: "pg_data", kind: .dataDirectory, path: "/var/lib/postgresql/15/main", tablespaceOID: nil, tablespaceName: nil),
            .init(name: "pg_tblspc/16384", kind: .tablespace, path: "/srv/ts1", tablespaceOID: 16384, tablespaceName: "ts1"),
        ]
        manifest.paths = [
            .init(name: "pg_data", mode: 0o700, user: "postgres", group: "postgres"),
            .init(name: "pg_data/pg_wal", mode: 0o700, user: nil, group: nil),
        ]
        manifest.links = [.init(name: "pg_data/pg_tblspc/16384", destination: "/srv/ts1", user: "postgres", group: nil)]
        manifest.files = [
            .init(name: "pg_data/base/5/1259", size: 114_688, mtime: 1_795_741_301, mode: 0o600, user: "postgres", group: "postgres",
                  checksum: digest("1259"), repoSize: 9341, repoChecksum: digest("1259.zst"), compression: .zst, reference: diff),
            .init(name: "pg_data/PG_VERSION", size: 3, mtime: 1_795_000_000, mode: 0o600, user: nil, group: nil,
                  checksum: digest("15\n"), repoSize: 3, repoChecksum: digest("15\n"), compression: .none, reference: full),
            .init(name: "pg_tblspc/16384/PG_15_202209061/16385/16386", size: 0, mtime: -1, mode: 0o644, user: "postgres",
                  group: "staff", checksum: digest(""), repoSize: 23, repoChecksum: digest("lz4 empty"), compression: .lz4,
                  reference: diff),
        ]
        return manifest
    }
}

@Suite("Backup manifest")
struct ManifestTests {
    @Test("a manifest with every field populated survives seal and open unchanged")
    func roundTrip() throws {
        let original = ManifestSample.make()
        let bytes = try SealedFile.seal(original)
        let decoded = try SealedFile.open(Manifest.self, from: bytes, name: "backup.manifest")

        #expect(decoded.format == RepositoryFormat.current)
        #expect(decoded.backup.label == ManifestSample.diff)
        #expect(decoded.backup.type == .diff)
        #expect(decoded.backup.prior == ManifestSample.full)
        #expect(decoded.backup.timestampStart == 1_795_741_323 && decoded.backup.timestampStop == 1_795_741_400)
        #expect(decoded.backup.lsnStart == LSN(high: 1, low: 0x2000028))
        #expect(decoded.backup.lsnStop == LSN(high: 1, low: 0x20000F8))
        #expect(decoded.backup.walStart == "000000010000000100000002" && decoded.backup.walStop == "000000010000000100000002")
        #expect(decoded.backup.timeline == 1)
        #expect(decoded.database.systemIdentifier == PostgresFixture.systemIdentifier)
        #expect(decoded.database.version == 15 && decoded.database.controlVersion == 1300)
        #expect(decoded.database.catalogVersion == 202209061 && decoded.database.walSegmentSize == 16 << 20)
        #expect(decoded.database.pageChecksums && decoded.database.id == 1)
        #expect(decoded.options.compressType == .zst && decoded.options.compressLevel == 3)
        #expect(decoded.options.bufferSize == 1 << 20 && decoded.options.processMax == 3 && decoded.options.startFast)
        #expect(decoded.databases == original.databases)
        #expect(decoded.targets == original.targets)
        #expect(decoded.paths == original.paths)
        #expect(decoded.links == original.links)
        #expect(decoded.files == original.files)
        // Nothing is lost: sealing the decoded value gives the same bytes.
        #expect(try SealedFile.seal(decoded) == bytes)
    }

    @Test("a manifest saved to storage loads back from it, and from the copy")
    func throughStorage() throws {
        let directory = try TemporaryDirectory("manifest")
        let storage = PosixStorage(root: directory.path)
        let layout = try RepositoryLayout(stanza: "demo")
        let path = try layout.manifest(label: ManifestSample.diff)
        let original = ManifestSample.make()
        try SealedFile.save(original, to: path, in: storage)
        #expect(directory.exists("backup/demo/\(ManifestSample.diff)/backup.manifest.copy"))
        try storage.remove(path)
        var warnings = 0
        let loaded = try #require(try SealedFile.load(Manifest.self, from: path, in: storage) { _ in warnings += 1 })
        #expect(loaded.files == original.files)
        #expect(warnings == 1)
    }

    @Test("the JSON follows repo-layout.md: LSNs as X/X, digests as lower-case hex, modes in decimal, absent optionals")
    func jsonShape() throws {
        let bytes = try SealedFile.seal(ManifestSample.make())
        let json = try #require(try JSONSerialization.jsonObject(with: Data(sealedBody(bytes).utf8)) as? [String: Any])
        #expect(json["format"] as? Int == 1)
        let backup = try #require(json["backup"] as? [String: Any])
        #expect(backup["lsnStart"] as? String == "1/2000028")
        #expect(backup["lsnStop"] as? String == "1/20000F8")
        #expect(backup["label"] as? String == "20261126-230501F_20261127-010203D")
        #expect(backup["prior"] as? String == "20261126-230501F")
        #expect(backup["type"] as? String == "diff")
        let files = try #require(json["files"] as? [[String: Any]])
        #expect(files[0]["mode"] as? Int == 384)
        #expect(files[0]["checksum"] as? String == ManifestSample.digest("1259").hex)
        #expect(files[0]["compression"] as? String == "zst")
        #expect(files[1]["user"] == nil && files[1]["group"] == nil)
        let targets = try #require(json["targets"] as? [[String: Any]])
        #expect(targets[0]["tablespaceOID"] == nil)
        #expect(targets[1]["tablespaceOID"] as? Int == 16384 && targets[1]["kind"] as? String == "tablespace")
        let options = try #require(json["options"] as? [String: Any])
        #expect(options["compressType"] as? String == "zst")
    }

    @Test("a manifest without a prior backup omits the key and decodes it as nil")
    func noPrior() throws {
        var manifest = ManifestSample.make()
        manifest.backup.prior = nil
        manifest.backup.type = .full
        let bytes = try SealedFile.seal(manifest)
        #expect(!String(decoding: bytes, as: UTF8.self).contains("\"prior\""))
        #expect(try SealedFile.open(Manifest.self, from: bytes, name: "m").backup.prior == nil)
    }

    @Test("a malformed digest, LSN or label in an otherwise sealed manifest is a format error")
    func badFieldValues() throws {
        let text = sealedBody(try SealedFile.seal(ManifestSample.make()))
        let replacements = [
            (ManifestSample.digest("1259").hex, String(repeating: "g", count: 64)),  // not hex
            (ManifestSample.digest("1259").hex, "abc"),                              // wrong length
            ("\"1/2000028\"", "\"12000028\""),                                           // LSN without '/'
            ("20261126-230501F_20261127-010203D", "latest"),                         // not a label
        ]
        for (old, new) in replacements {
            #expect(text.contains(old), "\(old)")
            let damaged = try sealRaw(Array(text.replacingOccurrences(of: old, with: new).utf8))
            let error = try #require(#expect(throws: PGKeepError.self) {
                try SealedFile.open(Manifest.self, from: damaged, name: "m")
            }, "\(new)")
            #expect(error.code == .formatInvalid)
        }
    }

    @Test("totals count every file's size, but only this backup's own stored bytes")
    func totals() {
        let manifest = ManifestSample.make()
        #expect(manifest.totalSize == 114_688 + 3 + 0)
        #expect(manifest.totalRepoSize == 9341 + 23)  // PG_VERSION is stored by the full backup
    }
}

/// Seals hand-made body bytes the way `SealedFile.seal` does, so a test can get a valid seal over
/// edited JSON and reach the decoder.
func sealRaw(_ body: [UInt8]) throws -> [UInt8] {
    body + Array("\nsha256 \(try SHA256Digest.of(body).hex)\n".utf8)
}

/// The JSON body of sealed bytes.
func sealedBody(_ bytes: [UInt8]) -> String {
    String(decoding: bytes[..<(bytes.count - 73)], as: UTF8.self)
}
