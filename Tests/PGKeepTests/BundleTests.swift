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

/// Bundles (repo-layout.md §3.6): many small files as independent frames in one object, written
/// once and read once, front to back, through a `MemoryStorage` repository.
@Suite("Bundles")
struct BundleUnitTests {
    static let bufferSize = 4096

    /// Mixed compression in one bundle: every frame names its own.
    static let samples: [(name: String, bytes: [UInt8], compression: CompressionType)] = [
        ("empty", [], .none),
        ("empty-lz4", [], .lz4),
        ("version", Array("15\n".utf8), .none),
        ("noise-zst", Samples.random(bufferSize * 3 + 17, seed: 11), .zst),
        ("text-lz4", Array(String(repeating: "INSERT INTO t VALUES (42);\n", count: 700).utf8), .lz4),
        ("noise-plain", Samples.random(bufferSize + 1, seed: 12), .none),
        ("zeros-zst", [UInt8](repeating: 0, count: 8192), .zst),
        ("page-lz4", Samples.random(8192, seed: 13), .lz4),
    ]

    let directory: TemporaryDirectory
    let storage = MemoryStorage()
    let bundlePath: StoragePath

    init() throws {
        directory = try TemporaryDirectory("bundle")
        bundlePath = try RepositoryLayout(stanza: "demo").bundle(label: BackupLabel("20261126-230501F")!, id: 1)
        for sample in Self.samples { _ = try directory.write("cluster/" + sample.name, sample.bytes) }
        _ = try directory.makeDirectory("restored")
    }

    func worker() throws -> Worker { try Worker(storage: storage, host: LocalHost(), bufferSize: Self.bufferSize) }

    func storeJob(_ indexes: [Int]? = nil) -> FileJob {
        let files = (indexes ?? Array(Self.samples.indices)).map { index in
            let sample = Self.samples[index]
            return FileJob.BundledFile(id: index, source: FilePath(directory.path("cluster/" + sample.name)), limit: .max,
                                       compression: sample.compression, compressLevel: sample.compression.defaultLevel)
        }
        return FileJob(id: 0, operation: .storeBundle(.init(bundle: 1, destination: bundlePath, files: files)), size: 0)
    }

    func store() throws -> BundleStoreResult {
        guard case .storedBundle(let result) = try worker().execute(storeJob()) else { throw PGKeepError(.internal, "no bundle result") }
        return result
    }

    /// Restore descriptions of the samples `indexes` from a stored bundle.
    func restoreItems(_ result: BundleStoreResult, _ indexes: [Int]) throws -> [FileJob.BundledRestore] {
        try indexes.map { index in
            guard case let .stored(offset, size, checksum, repoSize, repoChecksum, _) = result.files[index].outcome else {
                throw PGKeepError(.internal, "sample \(index) not stored")
            }
            let sample = Self.samples[index]
            let file = FileJob.RestoreFile(source: bundlePath, destination: directory.path("restored/" + sample.name),
                                           compression: sample.compression, size: size, checksum: checksum, repoSize: repoSize,
                                           repoChecksum: repoChecksum, mode: 0o640, mtime: 1_795_734_440)
            return FileJob.BundledRestore(id: index, offset: offset, file: file)
        }
    }

    func restore(_ items: [FileJob.BundledRestore]) throws -> [BundledRestoreOutcome] {
        let job = FileJob(id: 0, operation: .restoreBundle(.init(source: bundlePath, files: items)), size: 0)
        guard case .restoredBundle(let outcomes) = try worker().execute(job) else { throw PGKeepError(.internal, "no restore result") }
        return outcomes
    }

    func verify(_ result: BundleStoreResult, whole: Bool = true) throws -> BundleVerifyFinding {
        let frames = try restoreItems(result, Array(Self.samples.indices)).map { item in
            FileJob.VerifyBundle.Frame(offset: item.offset, file: .init(source: bundlePath, compression: item.file.compression,
                                                                        repoSize: item.file.repoSize, repoChecksum: item.file.repoChecksum,
                                                                        size: item.file.size, checksum: item.file.checksum))
        }
        let job = FileJob(id: 0, operation: .verifyBundle(.init(source: bundlePath, repoSize: whole ? result.repoSize : nil,
                                                                repoChecksum: whole ? result.repoChecksum : nil, frames: frames)), size: 0)
        guard case .verifiedBundle(let finding) = try worker().execute(job) else { throw PGKeepError(.internal, "no verify result") }
        return finding
    }

    func flipByte(at offset: UInt64) throws {
        var bytes = try #require(try storage.readSmallFile(bundlePath))
        bytes[Int(offset)] ^= 0x10
        try storage.writeSmallFile(bundlePath, bytes)
    }

    @Test("frames are appended back to back; the bundle's size and SHA-256 cover exactly the frames")
    func framesTileTheBundle() throws {
        let result = try store()
        let stored = try #require(try storage.readSmallFile(bundlePath))
        #expect(result.files.map(\.id) == Array(Self.samples.indices))
        var end: UInt64 = 0
        for (index, item) in result.files.enumerated() {
            guard case let .stored(offset, size, checksum, repoSize, repoChecksum, _) = item.outcome else {
                Issue.record("sample \(index) not stored"); continue
            }
            #expect(offset == end)
            #expect(size == UInt64(Self.samples[index].bytes.count))
            #expect(checksum == (try SHA256Digest.of(Self.samples[index].bytes)))
            #expect(repoChecksum == (try SHA256Digest.of(Array(stored[Int(offset)..<Int(offset + repoSize)]))))
            if Self.samples[index].compression == .none { #expect(repoSize == size) }
            end = offset + repoSize
        }
        #expect(result.repoSize == end && UInt64(stored.count) == end)
        #expect(result.repoChecksum == (try SHA256Digest.of(stored)))
    }

    @Test("any subset of files restores byte for byte, each frame decompressed alone, with mode and mtime")
    func restoreSubset() throws {
        let result = try store()
        let wanted = [1, 3, 4, 7]
        let outcomes = try restore(try restoreItems(result, wanted))
        #expect(outcomes.map(\.id) == wanted && outcomes.allSatisfy { !$0.kept })
        for index in wanted {
            let sample = Self.samples[index]
            #expect(try directory.read("restored/" + sample.name) == sample.bytes, "\(sample.name)")
            let attributes = try FileManager.default.attributesOfItem(atPath: directory.path("restored/" + sample.name))
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o640)
            #expect((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 == 1_795_734_440)
        }
        #expect(!directory.exists("restored/" + Self.samples[0].name))
        #expect(!directory.exists("restored/" + Self.samples[5].name))
    }

    @Test("past a gap larger than the storage's ranged-read gap, each needed frame is read by a ranged read of its own, and restores exactly",
          arguments: [(gap: UInt64(0), reads: 3), (gap: UInt64(128 << 10), reads: 1)])
    func rangedReadsPastGaps(gap: UInt64, reads: Int) throws {
        let result = try store()
        storage.rangedReadGap = gap
        let before = storage.rangedReadCount
        let outcomes = try restore(try restoreItems(result, [1, 3, 6]))
        #expect(outcomes.map(\.kept) == [false, false, false])
        #expect(storage.rangedReadCount - before == reads)
        for index in [1, 3, 6] {
            #expect(try directory.read("restored/" + Self.samples[index].name) == Self.samples[index].bytes)
        }
    }

    @Test("a flipped byte in one frame: restoring that file fails with checksum-mismatch, the others before and after restore; verify names only that frame and the whole")
    func corruptedFrame() throws {
        let result = try store()
        let damaged = 4
        guard case let .stored(offset, _, _, repoSize, _, _) = result.files[damaged].outcome else { throw PGKeepError(.internal, "not stored") }
        try flipByte(at: offset + repoSize / 2)

        do {
            _ = try restore(try restoreItems(result, [3, damaged, 6]))
            Issue.record("restore of a damaged frame succeeded")
        } catch {
            let error = try #require(error as? PGKeepError)
            #expect(error.code == .checksumMismatch, "\(error)")
            #expect(error.message.contains("offset \(offset)") && error.message.contains(Self.samples[damaged].name), "\(error.message)")
        }
        #expect(!directory.exists("restored/" + Self.samples[damaged].name), "no damaged file is left behind")
        // Skipping over the damaged frame by reading is fine.
        _ = try restore(try restoreItems(result, [3, 6, 7]))
        #expect(try directory.read("restored/" + Self.samples[7].name) == Self.samples[7].bytes)

        let finding = try verify(result)
        #expect(finding.whole.status == .checksumMismatch)
        for (index, frame) in finding.frames.enumerated() {
            #expect(frame.status == (index == damaged ? .checksumMismatch : .ok), "frame \(index): \(frame)")
        }
        // A flip in an uncompressed frame is caught by the stored checksum too.
        let plain = 5
        guard case let .stored(plainOffset, _, _, _, _, _) = result.files[plain].outcome else { throw PGKeepError(.internal, "not stored") }
        try flipByte(at: plainOffset)
        let again = try verify(result, whole: false)
        #expect(again.whole.status == .ok, "without a recorded whole checksum the whole is only measured")
        #expect(again.frames[plain].status == .checksumMismatch && again.frames[damaged].status == .checksumMismatch)
        #expect(again.frames.enumerated().filter { $0.element.status != .ok }.count == 2)
    }

    @Test("a sound bundle verifies whole and frame by frame; a truncated one fails restore and verify; a missing one is reported")
    func verifyAndTruncation() throws {
        let result = try store()
        let sound = try verify(result)
        #expect(sound.whole.status == .ok && sound.whole.repoSize == result.repoSize)
        #expect(sound.frames.count == Self.samples.count && sound.frames.allSatisfy { $0.status == .ok })

        let bytes = try #require(try storage.readSmallFile(bundlePath))
        try storage.writeSmallFile(bundlePath, Array(bytes.dropLast(10)))
        let last = Self.samples.count - 1
        #expect(throws: PGKeepError.self) { _ = try restore(try restoreItems(result, [last])) }
        let truncated = try verify(result)
        #expect(truncated.whole.status == .sizeMismatch)
        #expect(truncated.frames[last].status != .ok && truncated.frames[0].status == .ok)

        try storage.remove(bundlePath)
        let missing = try verify(result)
        #expect(missing.whole.status == .missing && missing.frames.allSatisfy { $0.status == .missing })
        do {
            _ = try restore(try restoreItems(result, [0]))
            Issue.record("restore from a missing bundle succeeded")
        } catch {
            #expect((error as? PGKeepError)?.code == .fileMissing)
        }
    }

    @Test("delta restore keeps matching files without opening the bundle; a differing file is rewritten")
    func deltaKeepsMatching() throws {
        let result = try store()
        var items = try restoreItems(result, [3, 4])
        for index in items.indices { items[index].file.keepMatching = true }
        _ = try directory.write("restored/" + Self.samples[3].name, Self.samples[3].bytes)
        _ = try directory.write("restored/" + Self.samples[4].name, Array("changed".utf8))
        let outcomes = try restore(items)
        #expect(outcomes.map(\.kept) == [true, false])
        #expect(try directory.read("restored/" + Self.samples[4].name) == Self.samples[4].bytes)

        // Everything matching: the bundle is never read, so even a missing one does not matter.
        try storage.remove(bundlePath)
        #expect(try restore(items).allSatisfy(\.kept))
    }

    @Test("vanished and unchanged files take no frame; a bundle with nothing stored is not written")
    func vanishedAndUnchanged() throws {
        var job = storeJob([3, 4])
        guard case .storeBundle(var bundle) = job.operation else { return }
        bundle.files[0].source = FilePath(directory.path("cluster/gone"))
        bundle.files[1].unchangedSize = UInt64(Self.samples[4].bytes.count)
        bundle.files[1].unchangedChecksum = try SHA256Digest.of(Self.samples[4].bytes)
        job.operation = .storeBundle(bundle)
        guard case .storedBundle(let result) = try worker().execute(job) else { throw PGKeepError(.internal, "no result") }
        #expect(result.files.map(\.outcome) == [.vanished, .unchanged])
        #expect(result.repoSize == nil && result.repoChecksum == nil)
        #expect(try storage.info(bundlePath) == nil)
    }

    @Test("grouping: consecutive runs, one bundle per worker at least when there are enough files, none empty, about bundle-size each")
    func grouping() {
        let small = (0..<10).map { (id: $0, size: UInt64(8192)) }
        let two = BundlePlan.group(small, bundleSize: 20 << 20, processMax: 2)
        #expect(two.count == 2 && two.flatMap { $0 } == Array(0..<10) && two.allSatisfy { !$0.isEmpty })
        #expect(BundlePlan.group(small, bundleSize: 20 << 20, processMax: 1) == [Array(0..<10)])
        #expect(BundlePlan.group(Array(small.prefix(3)), bundleSize: 20 << 20, processMax: 8).count == 3)
        #expect(BundlePlan.group([], bundleSize: 20 << 20, processMax: 2).isEmpty)

        let big = (0..<100).map { (id: $0, size: UInt64(900 << 10)) }   // ~88 MiB
        let groups = BundlePlan.group(big, bundleSize: 20 << 20, processMax: 1)
        #expect(groups.count == 5 && groups.flatMap { $0 } == Array(0..<100))
        for group in groups { #expect(UInt64(group.count) * (900 << 10) <= (20 << 20) + (900 << 10)) }

        // Empty files still spread over the workers.
        let empty = (0..<1000).map { (id: $0, size: UInt64(0)) }
        let spread = BundlePlan.group(empty, bundleSize: 20 << 20, processMax: 4)
        #expect(spread.count == 4 && spread.allSatisfy { $0.count == 250 })
    }

    @Test("what is bundled: below the limit, never block-incremental sizes, nothing with --no-bundle")
    func candidates() {
        let options = BundleOptions()
        #expect(options.bundles(size: 0) && options.bundles(size: 8192) && options.bundles(size: BlockIncremental.minimumFileSize - 1))
        #expect(!options.bundles(size: BlockIncremental.minimumFileSize))
        #expect(!BundleOptions(limit: 8192).bundles(size: 8192) && BundleOptions(limit: 8192).bundles(size: 8191))
        #expect(!BundleOptions(enabled: false).bundles(size: 1))
    }
}
