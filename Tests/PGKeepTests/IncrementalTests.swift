import Foundation
import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig
import SystemPackage

@Suite("Incremental change detection")
struct IncrementalPlanTests {
    static let priorLabel = BackupLabel("20261126-230501F")!
    /// The prior backup recorded copy start 1000 (and listed from 1001 on).
    static let priorCopyStart: Int64 = 1000

    static func entry(_ name: String, size: UInt64 = 8192, mtime: Int64 = 900, mode: UInt32 = 0o600) -> Manifest.FileEntry {
        Manifest.FileEntry(name: name, size: size, mtime: mtime, mode: mode, user: "postgres", group: "postgres",
                           checksum: ManifestSample.digest(name), repoSize: 100, repoChecksum: ManifestSample.digest(name + "."),
                           compression: .lz4, reference: priorLabel)
    }

    static func prior(_ files: [Manifest.FileEntry], timeline: UInt32 = 1, copyStart: Int64? = priorCopyStart) throws -> PriorManifest {
        var manifest = ManifestSample.make()
        manifest.backup.label = priorLabel
        manifest.backup.timeline = timeline
        manifest.backup.timestampStart = 990
        manifest.backup.timestampCopyStart = copyStart
        manifest.files = files
        return try PriorManifest(manifest)
    }

    static func listed(_ name: String, size: UInt64 = 8192, mtime: Int64 = 900, mode: UInt32 = 0o600) -> ClusterWalker.ListedFile {
        ClusterWalker.ListedFile(name: name, path: FilePath("/pg/" + name), size: size, mtime: mtime, mode: mode, user: "postgres", group: "postgres")
    }

    /// When this backup's listing ended: later than everything above.
    static let copyStart: Int64 = 2000

    @Test("size, mtime and mode equal and written before the prior copy start: referenced, not copied")
    func unchangedIsReferenced() throws {
        let plan = IncrementalPlan.make(files: [Self.listed("pg_data/a")], prior: try Self.prior([Self.entry("pg_data/a")]),
                                        listedAt: Self.copyStart, delta: false, timeline: 1)
        #expect(Array(plan.actions) == [.reference(Self.entry("pg_data/a"))])
        #expect(!plan.checksumMode)
    }

    @Test("a new file is copied; a changed size or a later mtime is a change; a mode change is verified by checksum")
    func changes() throws {
        let prior = try Self.prior([Self.entry("pg_data/size"), Self.entry("pg_data/time"), Self.entry("pg_data/mode")])
        let plan = IncrementalPlan.make(
            files: [Self.listed("pg_data/new"), Self.listed("pg_data/size", size: 16384, mtime: 1500), Self.listed("pg_data/time", mtime: 1500),
                    Self.listed("pg_data/mode", mode: 0o640)],
            prior: prior, listedAt: Self.copyStart, delta: false, timeline: 1)
        #expect(Array(plan.actions) == [.copy, .changed(Self.entry("pg_data/size")), .changed(Self.entry("pg_data/time")),
                                 .verify(Self.entry("pg_data/mode"))])
        #expect(!plan.checksumMode)
    }

    @Test("a file the prior backup saw written at or after its copy start is verified by checksum, not trusted")
    func writtenDuringPriorBackup() throws {
        let late = Self.entry("pg_data/late", mtime: Self.priorCopyStart + 1)
        let atStart = Self.entry("pg_data/start", mtime: Self.priorCopyStart)
        let plan = IncrementalPlan.make(files: [Self.listed("pg_data/late", mtime: Self.priorCopyStart + 1),
                                                Self.listed("pg_data/start", mtime: Self.priorCopyStart)],
                                        prior: try Self.prior([late, atStart]), listedAt: Self.copyStart, delta: false, timeline: 1)
        #expect(Array(plan.actions) == [.verify(late), .reference(atStart)])

        // A manifest without a recorded copy start trusts only mtimes before its start time.
        let old = IncrementalPlan.make(files: [Self.listed("pg_data/start", mtime: 990)],
                                       prior: try Self.prior([Self.entry("pg_data/start", mtime: 990)], copyStart: nil),
                                       listedAt: Self.copyStart, delta: false, timeline: 1)
        #expect(Array(old.actions) == [.verify(Self.entry("pg_data/start", mtime: 990))])
    }

    @Test("the copy start lies two seconds before the listing's second, so a file on a 2 s file system (FAT) stamped in the step the listing began in is verified by checksum next time")
    func copyStartCoversTwoSecondSteps() throws {
        // A listing at 1001.3 on FAT: every write in 1000.0..<1002.0, also one just after the file was read, is stamped 1000.
        let copyStart = BackupRun.copyStart(listingAt: 1001.3)
        #expect(copyStart == 999)
        let stamped = Self.entry("pg_data/fat", mtime: 1000)
        let plan = IncrementalPlan.make(files: [Self.listed("pg_data/fat", mtime: 1000)], prior: try Self.prior([stamped], copyStart: copyStart),
                                        listedAt: Self.copyStart, delta: false, timeline: 1)
        #expect(Array(plan.actions) == [.verify(stamped)])
        // Whenever the listing begins, every mtime up to the copy start lies in a 1 s or 2 s step that ended before it.
        for tenth in 10_000..<10_040 {
            let listing = Double(tenth) / 10
            let start = BackupRun.copyStart(listingAt: listing)
            for step: Int64 in [1, 2] {
                #expect(Double(start / step * step + step) <= listing, "listing at \(listing), step \(step) s, copy start \(start)")
            }
        }
    }

    @Test("untrustworthy times switch the whole backup to checksum mode", arguments: [
        "future", "backwards", "size without mtime", "delta", "timeline",
    ])
    func checksumMode(reason: String) throws {
        var files = [Self.listed("pg_data/a"), Self.listed("pg_data/b", size: 4096, mtime: 1500)]
        var delta = false
        var timeline: UInt32 = 1
        switch reason {
        case "future": files.append(Self.listed("pg_data/c", mtime: Self.copyStart + 5))
        case "backwards": files.append(Self.listed("pg_data/c", mtime: 10))
        case "size without mtime": files.append(Self.listed("pg_data/c", size: 1))
        case "delta": delta = true
        default: timeline = 2
        }
        let prior = try Self.prior([Self.entry("pg_data/a"), Self.entry("pg_data/b"), Self.entry("pg_data/c")])
        let plan = IncrementalPlan.make(files: files, prior: prior, listedAt: Self.copyStart, delta: delta, timeline: timeline)
        #expect(plan.checksumMode, "\(reason)")
        #expect(plan.checksumReasons.count == 1, "\(plan.checksumReasons)")
        // Even the file whose size, mtime and mode all match is compared by checksum; a size change stays a change.
        #expect(plan.actions[0] == .verify(Self.entry("pg_data/a")))
        #expect(plan.actions[1] == .changed(Self.entry("pg_data/b")))
    }

    @Test("the prior manifest, read as a stream into its compact table, gives back every entry, found by name")
    func priorFileTable() throws {
        var entries = [Self.entry("pg_data/b"), Self.entry("pg_data/a", mtime: 5, mode: 0o640), Self.entry("pg_data/base/1/2"),
                       Self.entry("pg_data/a/x")]
        entries[0].bundle = 3
        entries[0].bundleOffset = 77
        entries[1].blockSize = BlockIncremental.blockSize
        entries[1].blockMapSize = 9
        entries[1].blockMapChecksum = ManifestSample.digest("map")
        entries[1].pageChecksumErrors = [1, 4]
        entries[2].user = nil
        entries[2].group = "other"
        entries[3].reference = BackupLabel("20261126-230501F_20261127-010203I")!
        var manifest = ManifestSample.make()
        manifest.files = entries
        let bytes = try SealedFile.seal(manifest)
        let streamed = try #require(try SealedFile.open(PriorManifest.self, from: MemorySource(bytes), name: "test") as? PriorManifest)
        for prior in [streamed, try PriorManifest(manifest)] {
            #expect(prior.manifest.files.isEmpty)
            #expect(prior.backup.label == manifest.backup.label)
            #expect(prior.files.count == entries.count)
            for (index, entry) in entries.enumerated() {
                #expect(prior.files[index] == entry)
                #expect(prior.files.index(of: entry.name) == index)
                #expect(prior.files.size(index) == entry.size && prior.files.mtime(index) == entry.mtime && prior.files.mode(index) == entry.mode)
            }
            for missing in ["", "pg_data", "pg_data/", "pg_data/c", "pg_data/base/1/20", "pg_data/a/"] {
                #expect(prior.files.index(of: missing) == nil, "\(missing)")
            }
        }
    }

    @Test("dependent labels name their full backup and type, and sort after it")
    func dependentLabels() {
        let full = BackupLabel.full(at: 1_795_741_301)
        let diff = BackupLabel.dependent(of: full, type: .diff, at: 1_795_741_400)
        let incr = BackupLabel.dependent(of: diff, type: .incr, at: 1_795_741_500)
        #expect(BackupLabel(diff.text) == diff && diff.text.hasSuffix("D") && diff.text.hasPrefix(full.text + "_"))
        #expect(incr.text.hasPrefix(full.text + "_") && incr.text.hasSuffix("I"))
        #expect(incr.fullLabel == full && full.fullLabel == full)
        #expect(full < diff && diff < incr)
    }
}

@Suite("Block maps and block-incremental files")
struct BlockIncrementalTests {
    static let blockSize = 4096
    static let labels = ["20261126-230501F", "20261126-230501F_20261127-010203I", "20261126-230501F_20261127-020304I"]
        .map { BackupLabel($0)! }
    static let name = "pg_data/base/5/16384"

    let directory: TemporaryDirectory
    let storage: PosixStorage
    let layout: RepositoryLayout

    init() throws {
        directory = try TemporaryDirectory("blocks")
        storage = PosixStorage(root: directory.path("repo"))
        layout = try RepositoryLayout(stanza: "demo")
    }

    /// What one stored generation left in the manifest.
    struct Stored {
        var label: BackupLabel
        var result: BlockStoreResult
    }

    func store(_ bytes: [UInt8], generation: Int, prior: Stored?, compression: CompressionType) throws -> FileJobResult {
        let source = try directory.write("source", bytes)
        var job = FileJob.StoreBlocks(source: FilePath(source), limit: UInt64(bytes.count), label: Self.labels[generation],
                                      blockObject: try layout.blockObject(label: Self.labels[generation], name: Self.name),
                                      blockMap: try layout.blockMap(label: Self.labels[generation], name: Self.name),
                                      blockSize: Self.blockSize, compression: compression,
                                      compressLevel: compression.defaultLevel, prior: nil)
        if let prior {
            job.prior = .init(map: try layout.blockMap(label: prior.label, name: Self.name), mapSize: prior.result.mapSize,
                              mapChecksum: prior.result.mapChecksum, size: prior.result.size, checksum: prior.result.checksum)
        }
        return try BlockWorker(storage: storage, host: LocalHost(), bufferSize: 1024).store(job)
    }

    func restoreJob(_ stored: Stored, into relative: String) -> FileJob.RestoreBlocks {
        FileJob.RestoreBlocks(stanza: "demo", name: Self.name, map: try! layout.blockMap(label: stored.label, name: Self.name),
                              mapSize: stored.result.mapSize, mapChecksum: stored.result.mapChecksum,
                              destination: directory.path(relative), size: stored.result.size,
                              checksum: stored.result.checksum, mode: 0o600, mtime: 1_700_000_000)
    }

    func restore(_ stored: Stored, into relative: String) throws -> [UInt8]? {
        _ = try BlockWorker(storage: storage, host: LocalHost(), bufferSize: 1024).restore(restoreJob(stored, into: relative))
        return try directory.read(relative)
    }

    static func stored(_ result: FileJobResult, _ label: BackupLabel) throws -> Stored {
        guard case .storedBlocks(let blocks) = result else { throw PGKeepError(.internal, "not stored in blocks: \(result)") }
        return Stored(label: label, result: blocks)
    }

    static func blockDigest(_ text: String, _ kind: BlockHashKind = .xxh3_128) -> BlockDigest {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { try! BlockHasher(kind: kind).digest($0) }
    }

    @Test("a block map survives encoding and decoding unchanged, with either block hash",
          arguments: [BlockHashKind.xxh3_128, .sha256])
    func mapRoundTrip(kind: BlockHashKind) throws {
        let map = BlockMap(hashKind: kind, blockSize: 8192, fileSize: 8192 * 2 + 10,
                           references: [.init(label: Self.labels[0], compression: .lz4), .init(label: Self.labels[1], compression: .zst)],
                           blocks: [.init(reference: 0, offset: 0, length: 100, checksum: Self.blockDigest("0", kind)),
                                    .init(reference: 1, offset: 0, length: 70, checksum: Self.blockDigest("1", kind)),
                                    .init(reference: 0, offset: 100, length: 9, checksum: Self.blockDigest("2", kind))])
        let encoded = map.encoded()
        #expect(encoded.prefix(8) == (kind == .sha256 ? Array("PGKBMAP1".utf8) : Array("PGKBMAP2".utf8))[...])
        let referenceBytes = Self.labels[0...1].map { 1 + $0.text.utf8.count + 1 }.reduce(0, +)
        #expect(encoded.count == 8 + 4 + 8 + 2 + referenceBytes + 4 + 3 * (14 + kind.byteCount))
        let decoded = try BlockMap.decode(encoded, name: "map")
        #expect(decoded == map)
        #expect(decoded.hashKind == kind)
        #expect(decoded.usedLabels == [Self.labels[0], Self.labels[1]])
    }

    @Test("block hashes are XXH3-128 in canonical byte order and SHA-256 for old chains")
    func blockHashVectors() throws {
        // Reference values of XXH3-128 (seed 0) and SHA-256 for "" and "abc".
        #expect(Self.blockDigest("").description == "99aa06d3014798d86001c324468d497f")
        #expect(Self.blockDigest("abc").description == "06b05ab6733a618578af5f94892f3950")
        #expect(Self.blockDigest("abc", .sha256).description == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Self.blockDigest("abc") != Self.blockDigest("abd"))
    }

    @Test("damaged block maps are refused", arguments: ["truncated", "magic", "count", "order", "reference"])
    func damagedMaps(damage: String) throws {
        var map = BlockMap(blockSize: 8192, fileSize: 8192 * 2, references: [.init(label: Self.labels[0], compression: .none)],
                           blocks: [.init(reference: 0, offset: 0, length: 8192, checksum: Self.blockDigest("0")),
                                    .init(reference: 0, offset: 8192, length: 8192, checksum: Self.blockDigest("1"))])
        var bytes = map.encoded()
        switch damage {
        case "truncated": bytes.removeLast()
        case "magic": bytes[0] = UInt8(ascii: "X")
        case "count": map.fileSize = 8192 * 3; bytes = map.encoded()
        case "order": map.blocks[1].offset = 10; bytes = map.encoded()
        default: map.blocks[1].reference = 3; bytes = map.encoded()
        }
        let error = #expect(throws: PGKeepError.self) { try BlockMap.decode(bytes, name: "m") }
        #expect(error?.code == .formatInvalid)
    }

    @Test("an incremental on top of a SHA-256 block map (a chain begun before XXH3) keeps SHA-256 and stores only changed blocks")
    func chainBegunWithSHA256() throws {
        var bytes = Samples.random(Self.blockSize * 8, seed: 12)
        let first = try Self.stored(try store(bytes, generation: 0, prior: nil, compression: .lz4), Self.labels[0])
        let mapPath = try layout.blockMap(label: Self.labels[0], name: Self.name)
        #expect(try BlockMap.decode(try #require(try storage.readSmallFile(mapPath, limit: 1 << 20)), name: "m").hashKind == .xxh3_128)

        // Rewrite generation 0's map as the SHA-256 map an earlier version wrote for the same blocks.
        var old = try BlockMap.decode(try #require(try storage.readSmallFile(mapPath, limit: 1 << 20)), name: "m")
        old.hashKind = .sha256
        for index in old.blocks.indices {
            let range = index * Self.blockSize..<(index + 1) * Self.blockSize
            old.blocks[index].checksum = bytes[range].withUnsafeBytes { try! BlockHasher(kind: .sha256).digest($0) }
        }
        let oldBytes = old.encoded()
        try storage.writeSmallFile(mapPath, oldBytes)
        var olderFirst = first
        olderFirst.result.mapSize = UInt64(oldBytes.count)
        olderFirst.result.mapChecksum = try SHA256Digest.of(oldBytes)

        bytes[3 * Self.blockSize + 1] ^= 0x10
        let second = try Self.stored(try store(bytes, generation: 1, prior: olderFirst, compression: .lz4), Self.labels[1])
        #expect(second.result.changedBlocks == 1)
        let secondMap = try BlockMap.decode(try #require(try storage.readSmallFile(try layout.blockMap(label: Self.labels[1], name: Self.name),
                                                                                   limit: 1 << 20)), name: "m")
        #expect(secondMap.hashKind == .sha256)
        #expect(try restore(second, into: "g1") == bytes)
    }

    @Test("with a ranged read for every block (no gap read through), a file whose blocks come from two generations reassembles exactly",
          arguments: [CompressionType.none, .zst])
    func rangedReadPerBlock(compression: CompressionType) throws {
        var bytes = Samples.random(Self.blockSize * 8 + 100, seed: 21)
        let first = try Self.stored(try store(bytes, generation: 0, prior: nil, compression: compression), Self.labels[0])
        bytes[2 * Self.blockSize] ^= 0x01
        bytes[6 * Self.blockSize + 5] ^= 0x01
        let second = try Self.stored(try store(bytes, generation: 1, prior: first, compression: compression), Self.labels[1])
        let tight = PosixStorage(root: directory.path("repo"), rangedReadGap: 0)
        _ = try BlockWorker(storage: tight, host: LocalHost(), bufferSize: 1024).restore(restoreJob(second, into: "tight"))
        #expect(try directory.read("tight") == bytes)
    }

    @Test("a chain of block-incremental generations stores only changed blocks and each one reassembles exactly",
          arguments: [CompressionType.none, .lz4, .zst])
    func chain(compression: CompressionType) throws {
        // Generation 0: 20.5 blocks of noise, everything stored.
        var bytes = Samples.random(Self.blockSize * 20 + Self.blockSize / 2, seed: 7)
        let first = try Self.stored(try store(bytes, generation: 0, prior: nil, compression: compression), Self.labels[0])
        #expect(first.result.changedBlocks == 21 && first.result.changedBytes == UInt64(bytes.count))
        #expect(try restore(first, into: "g0") == bytes)
        let generation0 = bytes

        // Generation 1: two blocks change.
        bytes[5 * Self.blockSize + 17] ^= 0xFF
        bytes[12 * Self.blockSize] ^= 0x01
        let second = try Self.stored(try store(bytes, generation: 1, prior: first, compression: compression), Self.labels[1])
        #expect(second.result.changedBlocks == 2 && second.result.changedBytes == UInt64(2 * Self.blockSize))
        #expect(second.result.repoSize < first.result.repoSize / 5)
        #expect(second.result.otherLabels == [Self.labels[0]])
        #expect(try restore(second, into: "g1") == bytes)
        let generation1 = bytes

        // Generation 2: the file grows (the short last block changes too) and one more block changes.
        bytes[1] ^= 0x80
        bytes += Samples.random(Self.blockSize * 2, seed: 8)
        let third = try Self.stored(try store(bytes, generation: 2, prior: second, compression: compression), Self.labels[2])
        #expect(third.result.changedBlocks == 4)
        #expect(Set(third.result.otherLabels) == [Self.labels[0], Self.labels[1]])
        #expect(try restore(third, into: "g2") == bytes)

        // Earlier generations still restore to their own bytes.
        #expect(try restore(first, into: "g0b") == generation0)
        #expect(try restore(second, into: "g1b") == generation1)

        // Unchanged: nothing stored, no object left behind.
        let fourthObject = try layout.blockObject(label: BackupLabel("20261126-230501F_20261128-000000I")!, name: Self.name)
        let unchanged = try BlockWorker(storage: storage, host: LocalHost(), bufferSize: 1024).store(FileJob.StoreBlocks(
            source: FilePath(try directory.write("source", bytes)), limit: UInt64(bytes.count), label: BackupLabel("20261126-230501F_20261128-000000I")!,
            blockObject: fourthObject, blockMap: try layout.blockMap(label: BackupLabel("20261126-230501F_20261128-000000I")!, name: Self.name),
            blockSize: Self.blockSize, compression: compression, compressLevel: compression.defaultLevel,
            prior: .init(map: try layout.blockMap(label: third.label, name: Self.name), mapSize: third.result.mapSize,
                         mapChecksum: third.result.mapChecksum, size: third.result.size, checksum: third.result.checksum)))
        #expect(unchanged == .unchanged)
        #expect(try storage.info(fourthObject) == nil)
    }

    @Test("a damaged stored block fails the restore and leaves no file behind")
    func damagedBlock() throws {
        var bytes = Samples.random(Self.blockSize * 6, seed: 9)
        let first = try Self.stored(try store(bytes, generation: 0, prior: nil, compression: .none), Self.labels[0])
        bytes[Self.blockSize * 3] ^= 0xFF
        let second = try Self.stored(try store(bytes, generation: 1, prior: first, compression: .none), Self.labels[1])
        // Flip one byte of block 4 in the full backup's object: only generation 1's restore reads it.
        let objectPath = directory.path("repo/backup/demo/\(Self.labels[0].text)/\(Self.name).pgkb")
        var object = try #require(try directory.read("repo/backup/demo/\(Self.labels[0].text)/\(Self.name).pgkb"))
        object[Self.blockSize * 4 + 9] ^= 0x01
        try Data(object).write(to: URL(fileURLWithPath: objectPath))

        let error = #expect(throws: PGKeepError.self) { try restore(second, into: "out") }
        #expect(error?.code == .checksumMismatch)
        // One SHA-256 pass over the restored bytes: the whole file's checksum catches the damaged
        // block (verify names the damaged block object).
        #expect(error?.message.contains("does not match the manifest") == true, "\(error?.message ?? "")")
        #expect(!directory.exists("out"))
    }

    @Test("a block map that does not match the manifest is refused before anything is written")
    func mapChecksumMismatch() throws {
        let bytes = Samples.random(Self.blockSize * 3, seed: 10)
        var first = try Self.stored(try store(bytes, generation: 0, prior: nil, compression: .lz4), Self.labels[0])
        first.result.mapChecksum = ManifestSample.digest("other")
        let error = #expect(throws: PGKeepError.self) { try restore(first, into: "out") }
        #expect(error?.code == .checksumMismatch)
        #expect(!directory.exists("out"))
    }

    @Test("delta restore keeps a file whose size and SHA-256 match, and rewrites one that differs")
    func keepMatching() throws {
        let bytes = Samples.random(Self.blockSize * 3 + 5, seed: 11)
        let first = try Self.stored(try store(bytes, generation: 0, prior: nil, compression: .zst), Self.labels[0])
        _ = try directory.write("existing", bytes)
        var job = restoreJob(first, into: "existing")
        job.keepMatching = true
        #expect(try BlockWorker(storage: storage, host: LocalHost(), bufferSize: 1024).restore(job) == .kept(size: UInt64(bytes.count)))

        var changed = bytes
        changed[7] ^= 1
        _ = try directory.write("existing", changed)
        #expect(try BlockWorker(storage: storage, host: LocalHost(), bufferSize: 1024).restore(job) == .restored(size: UInt64(bytes.count)))
        #expect(try directory.read("existing") == bytes)

        // A difference in the short last block, a longer and a shorter file are rewritten too.
        for existing in [Array(bytes.dropLast()) + [bytes.last! ^ 0x40], bytes + [0], Array(bytes.dropLast(5))] {
            _ = try directory.write("existing", existing)
            #expect(try BlockWorker(storage: storage, host: LocalHost(), bufferSize: 1024).restore(job) == .restored(size: UInt64(bytes.count)))
            #expect(try directory.read("existing") == bytes)
        }
    }

    @Test("delta restore compares block by block with an XXH3 map, by whole-file SHA-256 with a SHA-256 map")
    func keepMatchingByMapKind() throws {
        let bytes = Samples.random(Self.blockSize * 4, seed: 13)
        _ = try Self.stored(try store(bytes, generation: 0, prior: nil, compression: .lz4), Self.labels[0])
        let worker = try BlockWorker(storage: storage, host: LocalHost(), bufferSize: 1024)
        let mapPath = try layout.blockMap(label: Self.labels[0], name: Self.name)
        let map = try BlockMap.decode(try #require(try storage.readSmallFile(mapPath, limit: 1 << 20)), name: "m")
        _ = try directory.write("existing", bytes)
        #expect(try worker.blocksMatch(path: FilePath(directory.path("existing")), map: map) == true)
        #expect(try worker.blocksMatch(path: FilePath(directory.path("missing")), map: map) == nil)
        var changed = bytes
        changed[Self.blockSize * 2 + 100] ^= 0x02
        _ = try directory.write("existing", changed)
        #expect(try worker.blocksMatch(path: FilePath(directory.path("existing")), map: map) == false)

        var old = map
        old.hashKind = .sha256
        for index in old.blocks.indices {
            old.blocks[index].checksum = bytes[index * Self.blockSize..<(index + 1) * Self.blockSize]
                .withUnsafeBytes { try! BlockHasher(kind: .sha256).digest($0) }
        }
        #expect(try worker.blocksMatch(path: FilePath(directory.path("existing")), map: old) == nil)
    }
}
