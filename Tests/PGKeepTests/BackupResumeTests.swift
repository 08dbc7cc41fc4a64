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

@Suite("Resuming an interrupted backup")
struct BackupResumeTests {
    static let full = BackupLabel("20261126-230501F")!
    static let interrupted = BackupLabel("20261126-230501F_20261127-010203D")!
    static let copyStart: Int64 = 1000

    /// The partial manifest of an interrupted diff backup of `full`, compressed with zst.
    static func partial(_ files: [Manifest.FileEntry] = []) -> Manifest {
        var manifest = ManifestSample.make()
        manifest.backup.label = interrupted
        manifest.backup.type = .diff
        manifest.backup.prior = full
        manifest.backup.timestampCopyStart = copyStart
        manifest.files = files
        return manifest
    }

    static func intent(type: BackupType = .diff, prior: BackupLabel? = full, compression: CompressionType = .zst,
                       newest: BackupLabel? = full) -> BackupResume.Intent {
        BackupResume.Intent(type: type, prior: prior, compression: compression, systemIdentifier: PostgresFixture.systemIdentifier,
                            version: 15, databaseID: 1, newestLabel: newest)
    }

    static func entry(_ name: String, size: UInt64 = 8192, mtime: Int64 = 900, mode: UInt32 = 0o600,
                      compression: CompressionType = .zst, reference: BackupLabel = interrupted) -> Manifest.FileEntry {
        Manifest.FileEntry(name: name, size: size, mtime: mtime, mode: mode, user: "postgres", group: "postgres",
                           checksum: ManifestSample.digest(name), repoSize: 100, repoChecksum: ManifestSample.digest(name + "."),
                           compression: compression, reference: reference)
    }

    static func listed(_ name: String, size: UInt64 = 8192, mtime: Int64 = 900, mode: UInt32 = 0o600) -> ClusterWalker.ListedFile {
        ClusterWalker.ListedFile(name: name, path: FilePath("/pg/" + name), size: size, mtime: mtime, mode: mode, user: "postgres", group: "postgres")
    }

    @Test("a backup of the same type, prior, compression and cluster resumes the interrupted one")
    func sameBackupResumes() {
        #expect(BackupResume.decide(label: Self.interrupted, partial: Self.partial(), intent: Self.intent()) == .resume)
    }

    @Test("anything that makes the stored files unfit removes the interrupted backup, naming the reason")
    func mismatchesRemove() {
        func reason(_ intent: BackupResume.Intent, partial: Manifest? = Self.partial(), problem: String? = nil) -> String? {
            if case .remove(let reason) = BackupResume.decide(label: Self.interrupted, partial: partial, problem: problem, intent: intent) {
                return reason
            }
            return nil
        }
        #expect(reason(Self.intent(type: .incr))?.contains("it is a diff backup and this one is incr") == true)
        #expect(reason(Self.intent(type: .full, prior: nil))?.contains("diff backup and this one is full") == true)
        let otherFull = BackupLabel("20261126-220000F")!
        #expect(reason(Self.intent(prior: otherFull))?.contains("its prior is \(Self.full)") == true)
        #expect(reason(Self.intent(compression: .lz4))?.contains("compressed with zst") == true)
        var other = Self.intent()
        other.systemIdentifier += 1
        #expect(reason(other)?.contains("another cluster identity") == true)
        other = Self.intent()
        other.databaseID = 2
        #expect(reason(other)?.contains("another cluster identity") == true)
        let later = BackupLabel("20261126-230501F_20261127-020000I")!
        #expect(reason(Self.intent(newest: later))?.contains("backup \(later) completed after it") == true)
        #expect(reason(Self.intent(newest: Self.interrupted))?.contains("completed after it") == true)
        var disabled = Self.intent()
        disabled.enabled = false
        #expect(reason(disabled)?.contains("--no-resume") == true)
        #expect(reason(Self.intent(), partial: nil)?.contains("no partial manifest") == true)
        #expect(reason(Self.intent(), problem: "checksum mismatch")?.contains("unusable: checksum mismatch") == true)
        var wrongLabel = Self.partial()
        wrongLabel.backup.label = Self.full
        #expect(reason(Self.intent(), partial: wrongLabel)?.contains("describes backup \(Self.full)") == true)
        var wrongFormat = Self.partial()
        wrongFormat.format = 2
        #expect(reason(Self.intent(), partial: wrongFormat)?.contains("format 2") == true)
    }

    @Test("a stored file is reused only when unchanged since before the interrupted run's copy start and stored alike")
    func fileReuse() {
        let partial = Self.partial()
        func may(_ file: ClusterWalker.ListedFile, _ entry: Manifest.FileEntry, trust: Bool = true) -> Bool {
            BackupResume.mayReuse(file, entry: entry, partial: partial, compression: .zst, trustTimestamps: trust)
        }
        let name = "pg_data/base/5/1259"
        #expect(may(Self.listed(name), Self.entry(name)))
        #expect(may(Self.listed(name, mtime: Self.copyStart), Self.entry(name, mtime: Self.copyStart)), "written before the listing second")
        #expect(!may(Self.listed(name, size: 16384), Self.entry(name)), "size changed")
        #expect(!may(Self.listed(name, mtime: 901), Self.entry(name)), "mtime changed")
        #expect(!may(Self.listed(name, mode: 0o640), Self.entry(name)), "mode changed")
        #expect(!may(Self.listed(name, mtime: Self.copyStart + 1), Self.entry(name, mtime: Self.copyStart + 1)),
                "written in or after the copy-start second: may have changed after it was read")
        #expect(!may(Self.listed(name), Self.entry(name, reference: Self.full)), "held by another backup: nothing to resume")
        #expect(!may(Self.listed(name), Self.entry(name, compression: .lz4)), "stored with another compression")
        #expect(!may(Self.listed(name), Self.entry(name), trust: false), "checksum mode trusts no timestamps")
        var bundled = Self.entry(name)
        bundled.bundle = 3
        bundled.bundleOffset = 4096
        #expect(!may(Self.listed(name), bundled), "bundled files are copied again with their bundle")
        var noCopyStart = partial
        noCopyStart.backup.timestampCopyStart = nil
        #expect(!BackupResume.mayReuse(Self.listed(name), entry: Self.entry(name), partial: noCopyStart, compression: .zst, trustTimestamps: true))

        // A large file must have been stored in blocks of today's size, a small one whole.
        let big = BlockIncremental.minimumFileSize
        var blocks = Self.entry("pg_data/big", size: big)
        #expect(!may(Self.listed("pg_data/big", size: big), blocks), "a large file stored whole")
        blocks.blockSize = BlockIncremental.blockSize
        blocks.blockMapSize = 100
        blocks.blockMapChecksum = ManifestSample.digest("map")
        #expect(may(Self.listed("pg_data/big", size: big), blocks))
        blocks.blockSize = 8192
        #expect(!may(Self.listed("pg_data/big", size: big), blocks), "another block size")
    }

    @Test("a stored object is intact only with the recorded size and SHA-256; the directory keeps only reused objects")
    func storedObjectsAndCleaning() throws {
        let storage = MemoryStorage()
        let layout = try RepositoryLayout(stanza: "main")
        let bytes = Array("stored bytes".utf8)
        var good = Self.entry("pg_data/good")
        good.repoSize = UInt64(bytes.count)
        good.repoChecksum = try SHA256Digest.of(bytes)
        var damaged = good
        damaged.name = "pg_data/damaged"
        var missing = good
        missing.name = "pg_data/missing"
        var short = good
        short.name = "pg_data/short"
        for entry in [good, damaged, short] {
            var content = bytes
            if entry.name == damaged.name { content[0] ^= 1 }
            if entry.name == short.name { content.removeLast() }
            try storage.writeSmallFile(try layout.backupFile(label: Self.interrupted, name: entry.name, compression: .zst), content)
        }
        let stray = try layout.backupFile(label: Self.interrupted, name: "pg_data/base/5/dropped", compression: .zst)
        try storage.writeSmallFile(stray, bytes)
        let partialPath = try layout.partialManifest(label: Self.interrupted)
        try storage.writeSmallFile(partialPath, bytes)

        let intact = try BackupResume.verifyStored([good, damaged, missing, short], layout: layout, storage: storage,
                                                   processMax: 2, bufferSize: 4)
        #expect(intact == [true, false, false, false])

        var keep = Set(try BackupResume.objects(of: good, layout: layout))
        keep.insert(partialPath)
        let removed = try BackupResume.clean(directory: try layout.backupDirectory(label: Self.interrupted), keep: keep, storage: storage)
        #expect(removed == 3)
        #expect(try storage.info(try layout.backupFile(label: Self.interrupted, name: good.name, compression: .zst)) != nil)
        #expect(try storage.info(partialPath) != nil)
        #expect(try storage.info(stray) == nil)
    }

    @Test("the POSIX driver removes temporary files of interrupted writes below a directory, and nothing else")
    func temporaryFilesRemoved() throws {
        let scratch = try Scratch()
        let storage = PosixStorage(root: scratch.path)
        let keep = try StoragePath("backup/main/L/pg_data/base/1")
        try storage.writeSmallFile(keep, [1, 2, 3])
        let directory = scratch.path("backup/main/L/pg_data/base")
        _ = FileManager.default.createFile(atPath: directory + "/2.pgkeep-tmp.123.4", contents: Data([9]))
        _ = FileManager.default.createFile(atPath: scratch.path("backup/main/L") + "/backup.manifest.partial.pgkeep-tmp.1.1", contents: Data([9]))
        #expect(try storage.removeTemporaryFiles(under: try StoragePath("backup/main/L")) == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["1"])
        #expect(try storage.removeTemporaryFiles(under: try StoragePath("backup/main/none")) == 0)
    }
}
