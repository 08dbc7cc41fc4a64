import Foundation
import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

extension Manifest.FileEntry {
    func renamed(_ name: String, size: UInt64) -> Self {
        var entry = self
        entry.name = name
        entry.size = size
        return entry
    }
}

/// The streamed manifest JSON (`Manifest+JSON.swift`, `JSONStreamWriter`, `JSONStreamReader`):
/// byte for byte what `JSONEncoder` wrote before, read back exactly, and strict about bad input.
@Suite("Manifest JSON, streamed")
struct ManifestJSONTests {
    /// The pre-streaming path: `JSONEncoder` with the options `SealedFile` has always used.
    static func encoderBody(_ manifest: Manifest) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return Array(try encoder.encode(manifest))
    }

    /// `ManifestSample` with every optional key present, strings that need escaping, and entries of
    /// every kind (block-incremental, bundled, with damaged pages).
    static func everyKey() -> Manifest {
        var manifest = ManifestSample.make()
        manifest.backup.references = [ManifestSample.full, BackupLabel("20261126-230501F_20261126-235959I")!]
        manifest.backup.timestampCopyStart = 1_795_741_324
        manifest.backup.pgkeepVersion = "0.5.0"
        manifest.annotation = ["ticket": "CHG-42", "reason": "before upgrade"]
        manifest.options.bundle = true
        manifest.options.bundleLimit = 2 << 20
        manifest.options.bundleSize = 20 << 20
        manifest.options.archiveCheck = true
        manifest.options.archiveCopy = false
        manifest.options.checksumPage = true
        manifest.options.exclude = ["log/", "junk \"quoted\""]
        manifest.bundles = [.init(id: 1, repoSize: 20_975_211, repoChecksum: ManifestSample.digest("b1")),
                            .init(id: 2, repoSize: 0, repoChecksum: ManifestSample.digest("b2"))]
        manifest.databases.append(.init(oid: 16390, name: "quote\" back\\slash /slash tab\t nl\n cr\r bs\u{8} ff\u{c} nul\u{0} us\u{1f} del\u{7f} é ✓ 🐘"))
        manifest.targets[1].tablespaceName = "ts/with \"odd\" name"
        var block = ManifestSample.make().files[0]
        block.name = "pg_data/base/5/16384"
        block.size = 108_675_072
        block.blockSize = 131_072
        block.blockMapSize = 38_276
        block.blockMapChecksum = ManifestSample.digest("map")
        block.pageChecksumErrors = [0, 7, UInt32.max]
        var bundled = ManifestSample.make().files[1]
        bundled.name = "pg_data/base/5/2608_fsm"
        bundled.bundle = 2
        bundled.bundleOffset = 1_833_510
        bundled.mtime = Int64.min
        bundled.size = UInt64.max
        manifest.files += [block, bundled]
        // What the streamed writer records for these entries; the `Codable` conformance writes the
        // stored list as it is.
        manifest.readerFeatures = ["block-incremental", "bundles"]
        return manifest
    }

    @Test("the streamed body is byte-identical to JSONEncoder's for a manifest with every optional key")
    func byteIdentityEveryKey() throws {
        let manifest = Self.everyKey()
        let sealed = try SealedFile.seal(manifest)
        let expected = try Self.encoderBody(manifest)
        #expect(Array(sealed[..<(sealed.count - 73)]) == expected,
                "streamed:\n\(sealedBody(sealed))\nencoder:\n\(String(decoding: expected, as: UTF8.self))")
        #expect(Array(sealed[(sealed.count - 73)...]) == Array("\nsha256 \(try SHA256Digest.of(expected).hex)\n".utf8))
    }

    @Test("the streamed body and the Codable conformance both give the bytes JSONEncoder wrote before (Fixtures/manifest-every-key.json)")
    func byteIdentityFixture() throws {
        let fixture = try PostgresFixture.bytes("manifest-every-key.json")
        let sealed = try SealedFile.seal(Self.everyKey())
        #expect(Array(sealed[..<(sealed.count - 73)]) == fixture)
        #expect(try Self.encoderBody(Self.everyKey()) == fixture)
        let decoded = try JSONDecoder().decode(Manifest.self, from: Data(fixture))
        #expect(decoded.files == Self.everyKey().files)
    }

    @Test("a file entry stays small in memory: a manifest holds one per file of the cluster")
    func entryLayout() {
        #expect(MemoryLayout<Manifest.FileEntry>.stride <= 200)
        var entry = Self.everyKey().files[3]
        let copy = entry
        entry.blockSize = nil
        entry.pageChecksumErrors = [1]
        #expect(copy.blockSize == 131_072 && copy.pageChecksumErrors == [0, 7, UInt32.max], "setters keep value semantics")
        #expect(entry.blockSize == nil && entry.blockMapSize == 38_276 && entry.pageChecksumErrors == [1])
        entry.blockMapSize = nil
        entry.blockMapChecksum = nil
        entry.pageChecksumErrors = nil
        #expect(entry == Self.everyKey().files[0].renamed(entry.name, size: entry.size))
    }

    @Test("empty lists and absent optionals lay out as JSONEncoder lays them out")
    func byteIdentityEmpty() throws {
        var manifest = ManifestSample.make()
        manifest.databases = []
        manifest.links = []
        manifest.files = []
        manifest.bundles = []
        manifest.backup.references = []
        manifest.backup.prior = nil
        let sealed = try SealedFile.seal(manifest)
        #expect(sealedBody(sealed) == String(decoding: try Self.encoderBody(manifest), as: UTF8.self))
    }

    @Test("a large synthetic manifest is byte-identical, round-trips, and the old decoder reads it")
    func largeManifest() throws {
        var manifest = Self.everyKey()
        let template = manifest.files
        for i in 0..<20_000 {
            var entry = template[i % template.count]
            entry.name = "pg_data/base/16385/\(100_000 + i)"
            entry.size = UInt64(i) * 8192
            entry.checksum = ManifestSample.digest("\(i)")
            manifest.files.append(entry)
        }
        let sealed = try SealedFile.seal(manifest)
        let expected = try Self.encoderBody(manifest)
        #expect(Array(sealed[..<(sealed.count - 73)]) == expected)
        let decoded = try SealedFile.open(Manifest.self, from: sealed, name: "m")
        #expect(decoded.files == manifest.files)
        // Manifests this build writes stay readable by the JSONDecoder-based builds before it.
        let old = try JSONDecoder().decode(Manifest.self, from: Data(expected))
        #expect(old.files == manifest.files)
    }

    @Test("decoding gives back every field, whole, drip-fed a byte at a time, and at random split points")
    func roundTripDripFed() throws {
        let manifest = Self.everyKey()
        let sealed = try SealedFile.seal(manifest)
        var sizes = [Int.max, 1, 2, 7, 73, 74, 4096]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5 { sizes.append(Int.random(in: 1...300, using: &generator)) }
        for size in sizes {
            let decoded = try #require(try SealedFile.open(Manifest.self, from: MemorySource(sealed, maxRead: size), name: "m") as? Manifest)
            #expect(decoded.files == manifest.files, "read size \(size)")
            #expect(decoded.databases == manifest.databases && decoded.targets == manifest.targets)
            #expect(decoded.paths == manifest.paths && decoded.links == manifest.links && decoded.bundles == manifest.bundles)
            #expect(decoded.backup.references == manifest.backup.references)
            #expect(decoded.backup.timestampCopyStart == manifest.backup.timestampCopyStart)
            #expect(decoded.options.bundle == true && decoded.options.bundleLimit == 2 << 20 && decoded.options.bundleSize == 20 << 20)
            #expect(try SealedFile.seal(decoded) == sealed, "re-encoding is stable")
        }
    }

    @Test("unknown keys are ignored and null reads as absent, as JSONDecoder does")
    func unknownKeysAndNull() throws {
        var text = sealedBody(try SealedFile.seal(ManifestSample.make()))
        text = text.replacingOccurrences(of: "\"format\" : 1", with: "\"format\" : 1, \"future\" : {\"a\" : [1, -2, true, null, \"x\\u00e9\\ud83d\\udc18\"]}")
        text = text.replacingOccurrences(of: "\"prior\" : \"20261126-230501F\"", with: "\"prior\" : null")
        let decoded = try SealedFile.open(Manifest.self, from: try sealRaw(Array(text.utf8)), name: "m")
        #expect(decoded.backup.prior == nil)
        #expect(decoded.files == ManifestSample.make().files)
    }

    @Test("malformed bodies under a valid seal are format errors naming the file and the byte")
    func malformed() throws {
        let text = sealedBody(try SealedFile.seal(ManifestSample.make()))
        let cases: [(String, String)] = [
            (String(text.dropLast(40)), "truncated"),
            (text.replacingOccurrences(of: "\"mode\" : 384", with: "\"mode\" : \"384\""), "string for a number"),
            (text.replacingOccurrences(of: "\"mode\" : 384", with: "\"mode\" : 384.5"), "fraction"),
            (text.replacingOccurrences(of: "\"mode\" : 384", with: "\"mode\" : 0384"), "leading zero"),
            (text.replacingOccurrences(of: "\"mode\" : 384", with: "\"mode\" : 99999999999"), "out of range"),
            (text.replacingOccurrences(of: "\"mode\" : 384,", with: ""), "missing key"),
            (text.replacingOccurrences(of: "\"compression\" : \"zst\"", with: "\"compression\" : \"gzip\""), "unknown enum"),
            (text.replacingOccurrences(of: "\"startFast\" : true", with: "\"startFast\" : 1"), "number for a bool"),
            (text + " x", "trailing data"),
            (text.replacingOccurrences(of: "\"name\" : \"postgres\"", with: "\"name\" : \"post\\qgres\""), "bad escape"),
            (text.replacingOccurrences(of: "\"name\" : \"postgres\"", with: "\"name\" : \"post\u{1}gres\""), "raw control character"),
            ("[]", "not an object"),
            ("", "empty"),
        ]
        for (body, why) in cases {
            let error = try #require(#expect(throws: PGKeepError.self, "\(why)") {
                try SealedFile.open(Manifest.self, from: try sealRaw(Array(body.utf8)), name: "backup.manifest")
            })
            #expect(error.code == .formatInvalid, "\(why): \(error)")
            #expect(error.message.contains("'backup.manifest' cannot be decoded"), "\(why): \(error.message)")
        }
        // Invalid UTF-8 inside a string.
        var bytes = Array(text.utf8)
        let at = try #require(String(decoding: bytes, as: UTF8.self).range(of: "postgres")).lowerBound.utf16Offset(in: text)
        bytes[at] = 0xFF
        let error = try #require(#expect(throws: PGKeepError.self) { try SealedFile.open(Manifest.self, from: try sealRaw(bytes), name: "m") })
        #expect(error.code == .formatInvalid && error.message.contains("UTF-8"))
    }

    @Test("a damaged seal is reported before any decoding problem, as before")
    func sealBeforeDecode() throws {
        var sealed = try SealedFile.seal(ManifestSample.make())
        sealed[10] = UInt8(ascii: "#")  // breaks the JSON and the checksum
        let error = try #require(#expect(throws: PGKeepError.self) { try SealedFile.open(Manifest.self, from: sealed, name: "m") })
        #expect(error.code == .checksumMismatch)
        let cut = Array(try SealedFile.seal(ManifestSample.make()).dropLast(10))
        let truncated = try #require(#expect(throws: PGKeepError.self) { try SealedFile.open(Manifest.self, from: cut, name: "m") })
        #expect(truncated.code == .formatInvalid && truncated.message.contains("no checksum trailer"))
    }

    @Test("a manifest of a later format is refused")
    func laterFormat() throws {
        var manifest = ManifestSample.make()
        manifest.format = RepositoryFormat.highestReadable + 1
        let error = try #require(#expect(throws: PGKeepError.self) {
            try SealedFile.open(Manifest.self, from: try SealedFile.seal(manifest), name: "m")
        })
        #expect(error.code == .repositoryInvalid)
    }
}
