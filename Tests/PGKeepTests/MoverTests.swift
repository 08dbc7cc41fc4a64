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

/// Collects what a mover reports; `onResult` runs on worker threads (serialized by the mover).
final class MoverResults: @unchecked Sendable {
    private let lock = NSLock()
    private var byID: [Int: FileJobResult] = [:]
    private var sequence: [Int] = []

    func add(_ job: FileJob, _ result: FileJobResult) {
        lock.lock(); defer { lock.unlock() }
        #expect(byID[job.id] == nil, "job \(job.id) reported twice")
        byID[job.id] = result
        sequence.append(job.id)
    }

    var results: [Int: FileJobResult] { lock.lock(); defer { lock.unlock() }; return byID }
    var order: [Int] { lock.lock(); defer { lock.unlock() }; return sequence }
}

@Suite("Mover")
struct MoverTests {
    /// Small, so that "larger than the buffer" files stay small too.
    static let bufferSize = 4096
    static let label = "20261126-230501F"

    /// A cluster file to back up: name, bytes and the compression to store it with.
    struct Sample {
        var name: String
        var bytes: [UInt8]
        var compression: CompressionType
    }

    static let samples: [Sample] = [
        Sample(name: "empty", bytes: [], compression: .none),
        Sample(name: "empty-lz4", bytes: [], compression: .lz4),
        Sample(name: "empty-zst", bytes: [], compression: .zst),
        Sample(name: "small", bytes: Array("PG_VERSION says 15\n".utf8), compression: .lz4),
        Sample(name: "one-buffer", bytes: Samples.random(bufferSize, seed: 1), compression: .zst),
        Sample(name: "noise", bytes: Samples.random(bufferSize * 5 + 123, seed: 2), compression: .zst),
        Sample(name: "noise-lz4", bytes: Samples.random(bufferSize * 3 + 1, seed: 3), compression: .lz4),
        Sample(name: "noise-plain", bytes: Samples.random(bufferSize * 2 + 7, seed: 4), compression: .none),
        Sample(name: "text", bytes: Array(String(repeating: "INSERT INTO t VALUES (42);\n", count: 2000).utf8), compression: .lz4),
        Sample(name: "zeros", bytes: [UInt8](repeating: 0, count: bufferSize * 4), compression: .zst),
    ]

    let directory: TemporaryDirectory
    let storage: PosixStorage

    init() throws {
        directory = try TemporaryDirectory("mover")
        storage = PosixStorage(root: directory.path("repo"))
    }

    func objectPath(_ name: String, _ compression: CompressionType) throws -> StoragePath {
        try RepositoryLayout(stanza: "demo").backupFile(label: BackupLabel(Self.label)!, name: "pg_data/" + name, compression: compression)
    }

    func storeJob(id: Int, _ sample: Sample, limit: UInt64 = .max) throws -> FileJob {
        FileJob(id: id, operation: .store(.init(source: FilePath(directory.path("cluster/" + sample.name)),
                                                destination: try objectPath(sample.name, sample.compression),
                                                limit: limit, compression: sample.compression,
                                                compressLevel: sample.compression.defaultLevel)),
                size: UInt64(sample.bytes.count))
    }

    /// Writes the samples to `cluster/` and stores them; returns the results by job id.
    func storeSamples(processMax: Int) throws -> [Int: FileJobResult] {
        for sample in Self.samples { try directory.write("cluster/" + sample.name, sample.bytes) }
        let jobs = try Self.samples.enumerated().map { try storeJob(id: $0.offset, $0.element) }
        let collected = MoverResults()
        try Mover(storage: storage, host: LocalHost(), processMax: processMax, bufferSize: Self.bufferSize).run(jobs) { collected.add($0, $1) }
        return collected.results
    }

    func restoreFile(_ sample: Sample, _ result: FileJobResult, mode: UInt32 = 0o600, mtime: Int64 = 1_795_734_440) throws -> FileJob.RestoreFile {
        guard case let .stored(size, checksum, repoSize, repoChecksum, _) = result else {
            throw PGKeepError(.internal, "expected a stored result for \(sample.name), got \(result)")
        }
        return .init(source: try objectPath(sample.name, sample.compression), destination: directory.path("restored/" + sample.name),
                     compression: sample.compression, size: size, checksum: checksum, repoSize: repoSize,
                     repoChecksum: repoChecksum, mode: mode, mtime: mtime)
    }

    func restore(_ files: [FileJob.RestoreFile], processMax: Int = 1) throws -> MoverResults {
        try directory.makeDirectory("restored")
        let jobs = files.enumerated().map { FileJob(id: $0.offset, operation: .restore($0.element), size: $0.element.size) }
        let collected = MoverResults()
        try Mover(storage: storage, host: LocalHost(), processMax: processMax, bufferSize: Self.bufferSize).run(jobs) { collected.add($0, $1) }
        return collected
    }

    /// Stores one sample and returns the restore description of it.
    func storedSingle(_ sample: Sample) throws -> FileJob.RestoreFile {
        try directory.write("cluster/" + sample.name, sample.bytes)
        let collected = MoverResults()
        try Mover(storage: storage, host: LocalHost(), processMax: 1, bufferSize: Self.bufferSize).run([try storeJob(id: 0, sample)]) { collected.add($0, $1) }
        return try restoreFile(sample, try #require(collected.results[0]))
    }

    func flipByte(in path: StoragePath, at offset: Int? = nil) throws {
        var bytes = try #require(try storage.readSmallFile(path))
        bytes[offset ?? bytes.count / 2] ^= 0x10
        try storage.writeSmallFile(path, bytes)
    }

    // MARK: store and restore

    @Test("stored files report their sizes and both checksums, and restore byte for byte with the requested mode and mtime",
          arguments: [1, 3])
    func roundTrip(processMax: Int) throws {
        let stored = try storeSamples(processMax: processMax)
        #expect(stored.count == Self.samples.count)

        var restores: [FileJob.RestoreFile] = []
        let modes: [UInt32] = [0o600, 0o640, 0o660, 0o400, 0o775]  // group-write bits: the umask must not apply
        for (id, sample) in Self.samples.enumerated() {
            let result = try #require(stored[id])
            guard case let .stored(size, checksum, repoSize, repoChecksum, _) = result else {
                Issue.record("\(sample.name): \(result)"); continue
            }
            let object = try #require(try storage.readSmallFile(try objectPath(sample.name, sample.compression)), "\(sample.name)")
            #expect(size == UInt64(sample.bytes.count), "\(sample.name)")
            #expect(checksum == (try SHA256Digest.of(sample.bytes)), "\(sample.name)")
            #expect(repoSize == UInt64(object.count), "\(sample.name)")
            #expect(repoChecksum == (try SHA256Digest.of(object)), "\(sample.name)")
            if sample.compression == .none {
                #expect(object == sample.bytes && repoChecksum == checksum, "\(sample.name)")
            } else {
                #expect(!object.isEmpty && object != sample.bytes, "\(sample.name) is stored compressed")
            }
            restores.append(try restoreFile(sample, result, mode: modes[id % modes.count], mtime: 1_700_000_000 + Int64(id)))
        }
        // Nothing but the objects: no temporary files left in the repository.
        #expect(directory.files(under: "repo").count == Self.samples.count)

        let restored = try restore(restores, processMax: processMax).results
        for (id, sample) in Self.samples.enumerated() {
            #expect(restored[id] == .restored(size: UInt64(sample.bytes.count)), "\(sample.name)")
            #expect(try directory.read("restored/" + sample.name) == sample.bytes, "\(sample.name)")
            let status = try #require(try Posix.lstat(directory.path("restored/" + sample.name)))
            #expect(status.mode == modes[id % modes.count], "\(sample.name)")
            #expect(status.mtime == 1_700_000_000 + Int64(id), "\(sample.name)")
        }
    }

    @Test("a store job reads at most its limit, so a file that grew is stored as it was listed")
    func storeLimit() throws {
        let sample = Sample(name: "growing", bytes: Samples.random(Self.bufferSize * 2 + 100, seed: 9), compression: .lz4)
        try directory.write("cluster/growing", sample.bytes)
        let limit = UInt64(Self.bufferSize + 10)
        let collected = MoverResults()
        try Mover(storage: storage, host: LocalHost(), processMax: 1, bufferSize: Self.bufferSize)
            .run([try storeJob(id: 0, sample, limit: limit)]) { collected.add($0, $1) }
        let result = try #require(collected.results[0])
        guard case let .stored(size, checksum, _, _, _) = result else { Issue.record("\(result)"); return }
        #expect(size == limit)
        #expect(checksum == (try SHA256Digest.of(sample.bytes[..<Int(limit)])))
        _ = try restore([try restoreFile(sample, result)])
        #expect(try directory.read("restored/growing") == Array(sample.bytes[..<Int(limit)]))
    }

    @Test("a source that vanished before it was opened is reported as vanished and stores nothing")
    func vanished() throws {
        let sample = Sample(name: "dropped-relation", bytes: [1, 2, 3], compression: .zst)
        let collected = MoverResults()
        try Mover(storage: storage, host: LocalHost(), processMax: 1, bufferSize: Self.bufferSize).run([try storeJob(id: 7, sample)]) { collected.add($0, $1) }
        #expect(collected.results == [7: .vanished])
        #expect(directory.files(under: "repo").isEmpty)
    }

    @Test("small buffers are stored through the same filters as files")
    func storeBytes() throws {
        let bytes = try PostgresFixture.pgControl()
        let path = try objectPath("global/pg_control", .zst)
        let mover = Mover(storage: storage, host: LocalHost(), processMax: 1, bufferSize: Self.bufferSize)
        let stored = try mover.store(bytes: bytes, destination: path, compression: .zst, compressLevel: 3)
        let object = try #require(try storage.readSmallFile(path))
        #expect(stored.checksum == (try SHA256Digest.of(bytes)))
        #expect(stored.repoSize == UInt64(object.count))
        #expect(stored.repoChecksum == (try SHA256Digest.of(object)))
    }

    // MARK: restore verification

    @Test("a stored object with one flipped byte fails the restore as a checksum mismatch and leaves no file",
          arguments: CompressionType.allCases)
    func damagedObject(_ compression: CompressionType) throws {
        let sample = Sample(name: "relation", bytes: Samples.random(Self.bufferSize * 3, seed: 5), compression: compression)
        let file = try storedSingle(sample)
        try flipByte(in: file.source)
        let error = try #require(#expect(throws: PGKeepError.self) { try restore([file]) })
        #expect(error.code == .checksumMismatch, "\(error)")
        #expect(error.message.contains(storage.describe(file.source)))
        #expect(!directory.exists("restored/relation"))
        #expect(directory.files(under: "restored").isEmpty)
    }

    enum ManifestDamage: String, CaseIterable, CustomTestStringConvertible {
        case checksum, size, repoChecksum, repoSize
        var testDescription: String { rawValue }
    }

    @Test("a manifest whose size or checksum does not match the object fails the restore and leaves no file",
          arguments: ManifestDamage.allCases)
    func wrongManifest(_ damage: ManifestDamage) throws {
        let sample = Sample(name: "relation", bytes: Array(String(repeating: "row\n", count: 3000).utf8), compression: .lz4)
        var file = try storedSingle(sample)
        let other = try SHA256Digest.of(Array("something else".utf8))
        switch damage {
        case .checksum: file.checksum = other
        case .size: file.size += 1
        case .repoChecksum: file.repoChecksum = other
        case .repoSize: file.repoSize -= 1
        }
        let error = try #require(#expect(throws: PGKeepError.self) { try restore([file]) })
        #expect(error.code == .checksumMismatch, "\(error)")
        #expect(error.message.contains("does not match the manifest"))
        #expect(!directory.exists("restored/relation"))
    }

    @Test("a stored object missing from the repository fails the restore as file-missing")
    func missingObject() throws {
        let sample = Sample(name: "relation", bytes: [1, 2, 3], compression: .none)
        let file = try storedSingle(sample)
        try storage.remove(file.source)
        let error = try #require(#expect(throws: PGKeepError.self) { try restore([file]) })
        #expect(error.code == .fileMissing)
        #expect(error.message.contains(storage.describe(file.source)))
        #expect(!directory.exists("restored/relation"))
    }

    // MARK: scheduling and errors

    @Test("jobs run largest first")
    func largestFirst() throws {
        let samples = [Sample(name: "a", bytes: [1], compression: .none), Sample(name: "b", bytes: [1, 2, 3], compression: .none),
                       Sample(name: "c", bytes: [1, 2], compression: .none), Sample(name: "d", bytes: [9, 9], compression: .none)]
        for sample in samples { try directory.write("cluster/" + sample.name, sample.bytes) }
        let jobs = try samples.enumerated().map { try storeJob(id: $0.offset, $0.element) }
        let collected = MoverResults()
        try Mover(storage: storage, host: LocalHost(), processMax: 1, bufferSize: Self.bufferSize).run(jobs) { collected.add($0, $1) }
        #expect(collected.order == [1, 2, 3, 0])  // equal sizes: lower id first
    }

    @Test("the first failing job stops the run and its error is rethrown")
    func firstErrorStops() throws {
        var files: [FileJob.RestoreFile] = []
        for index in 0..<5 {
            files.append(try storedSingle(Sample(name: "file\(index)", bytes: Array(repeating: UInt8(index), count: 100 * (index + 1)),
                                                 compression: .none)))
        }
        // Jobs run largest first: 500, 400, then the missing one (size 350), then 300, 200, 100.
        var missing = files[0]
        missing.source = try objectPath("missing", .none)
        missing.destination = directory.path("restored/missing")
        missing.size = 350
        let jobs = (files + [missing]).enumerated().map { FileJob(id: $0.offset, operation: .restore($0.element), size: $0.element.size) }
        try directory.makeDirectory("restored")
        let collected = MoverResults()
        let error = try #require(#expect(throws: PGKeepError.self) {
            try Mover(storage: storage, host: LocalHost(), processMax: 1, bufferSize: Self.bufferSize).run(jobs) { collected.add($0, $1) }
        })
        #expect(error.code == .fileMissing)
        #expect(collected.order == [4, 3])
        #expect(directory.files(under: "restored") == ["file3", "file4"])
    }

    @Test("an error thrown by the result handler stops the run and is rethrown", arguments: [1, 3])
    func handlerErrorStops(processMax: Int) throws {
        for sample in Self.samples { try directory.write("cluster/" + sample.name, sample.bytes) }
        let jobs = try Self.samples.enumerated().map { try storeJob(id: $0.offset, $0.element) }
        struct Refused: Error {}
        let collected = MoverResults()
        #expect(throws: Refused.self) {
            try Mover(storage: storage, host: LocalHost(), processMax: processMax, bufferSize: Self.bufferSize).run(jobs) { job, result in
                collected.add(job, result)
                throw Refused()
            }
        }
        // Each worker stops after its first failure; no new job starts once one failed.
        #expect(collected.order.count >= 1 && collected.order.count <= processMax)
    }

    @Test("with several workers a failing job still fails the whole run")
    func parallelFailure() throws {
        var files: [FileJob.RestoreFile] = []
        for index in 0..<6 {
            files.append(try storedSingle(Sample(name: "file\(index)", bytes: Samples.random(1000 + index, seed: UInt64(index)),
                                                 compression: .zst)))
        }
        try flipByte(in: files[2].source)
        let error = try #require(#expect(throws: PGKeepError.self) { try restore(files, processMax: 3) })
        #expect(error.code == .checksumMismatch)
        #expect(!directory.exists("restored/file2"))
    }
}
