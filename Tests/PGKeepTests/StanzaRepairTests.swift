import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

/// A memory repository holding a full backup and an incr on it, with backup.info and
/// archive.info sealed as `backup` and `stanza-create` write them: the entries are worked out by
/// hand here (sizes, stored sizes, what each backup copied, damaged pages), never by the code
/// under test.
final class RepairFixture {
    let repo: MemoryRepository
    let locks: TemporaryDirectory
    static let full = BackupLabel("20260101-000000F")!
    static let incr = BackupLabel("20260101-000000F_20260101-010000I")!
    static let now: Int64 = 1_800_000_000
    /// The files every backup.info / archive.info twin held before any damage.
    var originals: [StoragePath: [UInt8]] = [:]
    var expectedBackups: [BackupSummary] = []

    var storage: MemoryStorage { repo.storage }
    var layout: RepositoryLayout { repo.layout }
    var infoFiles: [StoragePath] {
        [layout.archiveInfo, try! SealedFile.copyPath(of: layout.archiveInfo), layout.backupInfo, try! SealedFile.copyPath(of: layout.backupInfo)]
    }

    init() throws {
        repo = try MemoryRepository()
        locks = try TemporaryDirectory("repair-locks")
        for n in 1...6 { try repo.push(MemoryRepository.segmentName(UInt64(n))) }
        let fullFiles = try [store(Self.full, "pg_data/base/1/1259", Array(repeating: 7, count: 40_000)),
                             store(Self.full, "pg_data/global/pg_control", Array(0..<255))]
        try saveManifest(Self.full, type: .full, prior: nil, references: nil, stop: Self.now - 3600, first: 1, last: 2, files: fullFiles)
        let fullRepoSize = fullFiles.reduce(0) { $0 + $1.repoSize }
        let fullSize: UInt64 = 40_000 + 255
        var fullSummary = summary(Self.full, type: .full, prior: nil, references: [], stop: Self.now - 3600, first: 1, last: 2,
                                  size: fullSize, repoSize: fullRepoSize, fileCount: 2)
        fullSummary.sizeDelta = fullSize                  // a full backup copies every byte
        fullSummary.repoSizeTotal = fullRepoSize

        // The incr: 1259 unchanged (the full holds it), 2608 new with a damaged page, a
        // block-incremental 16384 of which it stored blocks 1 and 2 itself (8192 + 100 bytes),
        // and its own pg_control.
        var changed = try store(Self.incr, "pg_data/base/1/2608", Array(repeating: 3, count: 9000))
        changed.pageChecksumErrors = [3]
        let blocks = try blockIncremental(Self.incr, "pg_data/base/1/16384", reusingFirstBlockOf: Self.full)
        let control = try store(Self.incr, "pg_data/global/pg_control", Array(1..<200))
        let incrFiles = [fullFiles[0], changed, blocks, control]
        try saveManifest(Self.incr, type: .incr, prior: Self.full, references: [Self.full], stop: Self.now - 60, first: 4, last: 5,
                         files: incrFiles)
        let incrRepoSize = changed.repoSize + blocks.repoSize + blocks.blockMapSize! + control.repoSize
        var incrSummary = summary(Self.incr, type: .incr, prior: Self.full, references: [Self.full], stop: Self.now - 60, first: 4, last: 5,
                                  size: 40_000 + 9000 + (2 * 8192 + 100) + 199, repoSize: incrRepoSize, fileCount: 4)
        incrSummary.sizeDelta = 9000 + (8192 + 100) + 199
        incrSummary.repoSizeTotal = incrRepoSize + fullRepoSize
        incrSummary.pageChecksumErrors = 1
        incrSummary.repoSizeMap = blocks.blockMapSize   // the one block map, which the incr stored
        incrSummary.repoDeltaMap = blocks.blockMapSize
        expectedBackups = [fullSummary, incrSummary]

        var info = BackupInfo(current: repo.identity)
        info.backups = expectedBackups
        try SealedFile.save(info, to: layout.backupInfo, in: storage)
        for path in infoFiles { originals[path] = try storage.readSmallFile(path) }
    }

    func store(_ label: BackupLabel, _ name: String, _ bytes: [UInt8]) throws -> Manifest.FileEntry {
        let stored = try Mover(storage: storage, host: LocalHost(), processMax: 1, bufferSize: 1 << 16)
            .store(bytes: bytes, destination: try layout.backupFile(label: label, name: name, compression: .lz4), compression: .lz4, compressLevel: 1)
        return .init(name: name, size: UInt64(bytes.count), mtime: Self.now - 7200, mode: 0o600, user: nil, group: nil,
                     checksum: stored.checksum, repoSize: stored.repoSize, repoChecksum: stored.repoChecksum, compression: .lz4, reference: label)
    }

    /// A block-incremental entry of 2 blocks of 8 KiB and 100 bytes, the first block reused from
    /// `prior`, with its block map stored (the block object is not needed for the rebuild).
    func blockIncremental(_ label: BackupLabel, _ name: String, reusingFirstBlockOf prior: BackupLabel) throws -> Manifest.FileEntry {
        let map = BlockMap(blockSize: 8192, fileSize: 2 * 8192 + 100,
                           references: [.init(label: prior, compression: .lz4), .init(label: label, compression: .lz4)],
                           blocks: [.init(reference: 0, offset: 0, length: 120, checksum: BlockIncrementalTests.blockDigest("a")),
                                    .init(reference: 1, offset: 0, length: 130, checksum: BlockIncrementalTests.blockDigest("b")),
                                    .init(reference: 1, offset: 130, length: 40, checksum: BlockIncrementalTests.blockDigest("c"))])
        let bytes = map.encoded()
        try storage.writeSmallFile(try layout.blockMap(label: label, name: name), bytes)
        var entry = Manifest.FileEntry(name: name, size: 2 * 8192 + 100, mtime: Self.now - 7200, mode: 0o600, user: nil, group: nil,
                                       checksum: try SHA256Digest.of([1]), repoSize: 170, repoChecksum: try SHA256Digest.of([2]),
                                       compression: .lz4, reference: label)
        entry.blockSize = 8192
        entry.blockMapSize = UInt64(bytes.count)
        entry.blockMapChecksum = try SHA256Digest.of(bytes)
        return entry
    }

    func saveManifest(_ label: BackupLabel, type: BackupType, prior: BackupLabel?, references: [BackupLabel]?, stop: Int64,
                      first: UInt64, last: UInt64, files: [Manifest.FileEntry]) throws {
        var manifest = Manifest(
            backup: .init(label: label, type: type, prior: prior, timestampStart: stop - 10, timestampStop: stop,
                          lsnStart: LSN(first << 20), lsnStop: LSN((last << 20) + 64), walStart: MemoryRepository.segmentName(first),
                          walStop: MemoryRepository.segmentName(last), timeline: 1, references: references, timestampCopyStart: stop - 11),
            database: .init(id: 1, systemIdentifier: repo.identity.systemIdentifier, version: 15, controlVersion: 1300,
                            catalogVersion: 202209061, walSegmentSize: UInt32(MemoryRepository.segmentSize.bytes), pageChecksums: true),
            options: .init(compressType: .lz4, compressLevel: 1, bufferSize: 1 << 16, processMax: 1, startFast: true))
        manifest.targets = [.init(name: "pg_data", kind: .dataDirectory, path: "/var/lib/postgresql/15/main")]
        manifest.files = files
        try SealedFile.save(manifest, to: try layout.manifest(label: label), in: storage)
    }

    func summary(_ label: BackupLabel, type: BackupType, prior: BackupLabel?, references: [BackupLabel], stop: Int64,
                 first: UInt64, last: UInt64, size: UInt64, repoSize: UInt64, fileCount: Int) -> BackupSummary {
        BackupSummary(label: label, type: type, prior: prior, references: references, databaseID: 1, timestampStart: stop - 10,
                      timestampStop: stop, lsnStart: LSN(first << 20), lsnStop: LSN((last << 20) + 64),
                      walStart: MemoryRepository.segmentName(first), walStop: MemoryRepository.segmentName(last), timeline: 1,
                      size: size, repoSize: repoSize, fileCount: fileCount, compressType: .lz4)
    }

    func repair(force: Bool = false, dryRun: Bool = false, dataDirectory: String? = nil) throws -> StanzaRepairReport {
        try StanzaRepair(storage: storage, host: LocalHost(), layout: layout,
                         options: StanzaRepairOptions(dataDirectory: dataDirectory, force: force, dryRun: dryRun, lockPath: locks.path),
                         log: repo.log).run(now: Self.now)
    }

    /// Every stored path and its bytes, to prove a refusal or a dry run changed nothing.
    func snapshot() throws -> [StoragePath: [UInt8]] {
        var all: [StoragePath: [UInt8]] = [:]
        func walk(_ directory: StoragePath) throws {
            for entry in try storage.list(directory) {
                let path = try directory.appending(entry.name)
                if entry.kind == .directory { try walk(path) } else { all[path] = try storage.readSmallFile(path) }
            }
        }
        try walk(.root)
        return all
    }

    /// Overwrites the middle of a file with garbage: its seal no longer verifies.
    func damage(_ path: StoragePath) throws { try repo.flipByte(path) }

    func damageAllInfoFiles() throws { for path in infoFiles { try damage(path) } }

    /// A data directory whose pg_control is the fixture's, or another cluster's.
    func dataDirectory(systemIdentifier: UInt64? = nil) throws -> String {
        var control = try PostgresFixture.pgControl()
        if let systemIdentifier { control = control.patched(at: 0, systemIdentifier).withRecomputedControlCRC() }
        _ = try locks.write("pgdata/global/pg_control", control)
        return locks.path("pgdata")
    }
}

@Suite("stanza-repair")
struct StanzaRepairTests {
    @Test("with every twin of both info files damaged, stanza-repair rebuilds both byte for byte as backup and stanza-create wrote them, keeping the damaged twins aside")
    func rebuildsWhatBackupWrote() throws {
        let fixture = try RepairFixture()
        try fixture.damageAllInfoFiles()
        var damaged: [StoragePath: [UInt8]] = [:]
        for path in fixture.infoFiles { damaged[path] = try fixture.storage.readSmallFile(path) }
        let refused = #expect(throws: PGKeepError.self) { try InfoFiles.loadBackupInfo(fixture.storage, fixture.layout, warn: { _ in }) }
        #expect(refused?.code == .repositoryInvalid && refused?.hint?.contains("stanza-repair") == true, "\(String(describing: refused))")

        let report = try fixture.repair()
        #expect(report.listed == [RepairFixture.full, RepairFixture.incr])
        #expect(report.skipped.isEmpty)
        for path in fixture.infoFiles {
            #expect(try fixture.storage.readSmallFile(path) == fixture.originals[path], "\(path) is what was written before")
            let aside = try path.parent.appending(path.name + ".damaged-" + BackupLabel.timestamp(RepairFixture.now))
            #expect(try fixture.storage.readSmallFile(aside) == damaged[path], "\(aside) keeps the damaged bytes")
        }
        let info = try InfoFiles.loadBackupInfo(fixture.storage, fixture.layout, warn: { Issue.record("no fallback needed: \($0)") })
        #expect(info.backups == fixture.expectedBackups)
        #expect(report.lines.contains { $0.contains("wrote '\(fixture.storage.describe(fixture.layout.backupInfo))' and its copy") })
    }

    @Test("a backup whose manifest twins are both damaged is skipped with the reason, so is the incr that needs it and an interrupted backup; a manifest with one good twin is used")
    func damagedManifestSkipped() throws {
        let fixture = try RepairFixture()
        // A later full backup whose main manifest is damaged: its copy serves.
        let later = BackupLabel("20260103-000000F")!
        try fixture.saveManifest(later, type: .full, prior: nil, references: nil, stop: RepairFixture.now - 10, first: 6, last: 6,
                                 files: [try fixture.store(later, "pg_data/global/pg_control", Array(0..<100))])
        try fixture.damage(try fixture.layout.manifest(label: later))
        // The full's manifest damaged in both twins; an interrupted backup after everything.
        let fullManifest = try fixture.layout.manifest(label: RepairFixture.full)
        try fixture.damage(fullManifest)
        try fixture.damage(try SealedFile.copyPath(of: fullManifest))
        try fixture.storage.writeSmallFile(try fixture.layout.partialManifest(label: BackupLabel("20260104-000000F")!), [1, 2, 3])
        try fixture.damage(fixture.layout.backupInfo)
        try fixture.damage(try SealedFile.copyPath(of: fixture.layout.backupInfo))

        let report = try fixture.repair()
        #expect(report.listed == [later])
        #expect(report.skipped == [RepairFixture.full, RepairFixture.incr, BackupLabel("20260104-000000F")!])
        let text = report.lines.joined(separator: "\n")
        #expect(text.contains("backup \(RepairFixture.full): skipped") && text.contains(fixture.storage.describe(fullManifest)), "\(text)")
        #expect(text.contains("backup \(RepairFixture.incr): skipped, it needs backup \(RepairFixture.full), which is not listed"), "\(text)")
        #expect(text.contains("backup 20260104-000000F: skipped, an interrupted backup"), "\(text)")
        #expect(text.contains("backup \(later): found (") && text.contains("using the copy"), "\(text)")
        #expect(text.contains("move one out of the repository first to keep it"), "\(text)")
        let info = try InfoFiles.loadBackupInfo(fixture.storage, fixture.layout, warn: { Issue.record("\($0)") })
        #expect(info.backups.map(\.label) == [later])
        // archive.info was sound and agrees: it is left alone.
        #expect(try fixture.storage.readSmallFile(fixture.layout.archiveInfo) == fixture.originals[fixture.layout.archiveInfo])
        #expect(text.contains("'\(fixture.storage.describe(fixture.layout.archiveInfo))' and its copy already hold the rebuilt file: unchanged"), "\(text)")
        // Every skipped directory is still there: nothing was deleted.
        #expect(try fixture.storage.readSmallFile(fullManifest) != nil)
        #expect(try fixture.storage.info(try fixture.layout.backupDirectory(label: RepairFixture.incr)) != nil)
    }

    @Test("a healthy stanza is refused with repair-not-needed and a hint, and nothing changes; --force rebuilds it, and identical files are left untouched")
    func refusesWhenHealthy() throws {
        let fixture = try RepairFixture()
        let before = try fixture.snapshot()
        let error = try #require(#expect(throws: PGKeepError.self) { try fixture.repair() })
        #expect(error.code == .repairNotNeeded)
        #expect(error.message.contains(fixture.storage.describe(fixture.layout.backupInfo)))
        #expect(error.hint?.contains("verify") == true && error.hint?.contains("--force") == true)
        #expect(try fixture.snapshot() == before)

        let forced = try fixture.repair(force: true)
        #expect(forced.files.allSatisfy { !$0.write })
        #expect(try fixture.snapshot() == before, "the rebuilt files equal the healthy ones: nothing written, nothing aside")
    }

    @Test("--force on valid files that differ from the manifests replaces them, keeping the old ones aside as replaced")
    func forceKeepsValidFilesAside() throws {
        let fixture = try RepairFixture()
        var info = try InfoFiles.loadBackupInfo(fixture.storage, fixture.layout, warn: { _ in })
        info.backups.removeLast()                          // lost the incr's entry
        try SealedFile.save(info, to: fixture.layout.backupInfo, in: fixture.storage)
        let edited = try #require(try fixture.storage.readSmallFile(fixture.layout.backupInfo))

        let report = try fixture.repair(force: true)
        #expect(report.lines.contains("listed now and not before: \(RepairFixture.incr)"))
        #expect(try fixture.storage.readSmallFile(fixture.layout.backupInfo) == fixture.originals[fixture.layout.backupInfo])
        let aside = try fixture.layout.backupRoot.appending("backup.info.replaced-" + BackupLabel.timestamp(RepairFixture.now))
        #expect(try fixture.storage.readSmallFile(aside) == edited)
    }

    @Test("twins that are both valid but differ (a crash between the two writes) are repaired without --force: the differing twin is kept aside, the matching one untouched")
    func differingTwinsRepaired() throws {
        let fixture = try RepairFixture()
        var info = try InfoFiles.loadBackupInfo(fixture.storage, fixture.layout, warn: { _ in })
        info.backups.removeLast()
        let stale = try SealedFile.seal(info)
        try fixture.storage.writeSmallFile(fixture.layout.backupInfo, stale)

        let report = try fixture.repair()
        #expect(report.twins[1].contains("and the two differ"), "\(report.twins)")
        for path in fixture.infoFiles { #expect(try fixture.storage.readSmallFile(path) == fixture.originals[path], "\(path)") }
        let backupFile = try #require(report.files.last)
        #expect(backupFile.asides.map(\.from) == [fixture.storage.describe(fixture.layout.backupInfo)], "only the differing twin goes aside")
        let aside = try fixture.layout.backupRoot.appending("backup.info.replaced-" + BackupLabel.timestamp(RepairFixture.now))
        #expect(try fixture.storage.readSmallFile(aside) == stale)
    }

    @Test("a sealed backup.info claiming another cluster than the manifests and archive.info is rebuilt from the manifests, and the report says whose record was used")
    func manifestsWinOverAnInfoFileClaim() throws {
        let fixture = try RepairFixture()
        var info = try InfoFiles.loadBackupInfo(fixture.storage, fixture.layout, warn: { _ in })
        info.current.systemIdentifier &+= 1
        info.history = [info.current]
        try SealedFile.save(info, to: fixture.layout.backupInfo, in: fixture.storage)

        let report = try fixture.repair()
        #expect(report.notes.contains { $0.hasPrefix("backup.info records system identifier \(info.current.systemIdentifier)") && $0.hasSuffix("the backups' record is used") },
                "\(report.notes)")
        for path in fixture.infoFiles { #expect(try fixture.storage.readSmallFile(path) == fixture.originals[path], "\(path)") }
    }

    @Test("--dry-run prints the files it would write and what it would keep aside, and writes nothing")
    func dryRunWritesNothing() throws {
        let fixture = try RepairFixture()
        try fixture.damageAllInfoFiles()
        let before = try fixture.snapshot()
        let report = try fixture.repair(dryRun: true)
        #expect(try fixture.snapshot() == before)
        let text = report.lines.joined(separator: "\n")
        #expect(text.contains("would write '\(fixture.storage.describe(fixture.layout.backupInfo))' and its copy:"), "\(text)")
        #expect(text.contains(String(decoding: fixture.originals[fixture.layout.backupInfo]!, as: UTF8.self).trimmingSuffix("\n")), "\(text)")
        #expect(text.contains("would keep '\(fixture.storage.describe(fixture.layout.archiveInfo))' aside as"), "\(text)")
        #expect(text.hasSuffix("dry run: nothing was written"))
    }

    @Test("--pg1-path of another cluster is refused with stanza-mismatch naming both identities; the right one is accepted")
    func refusesAnotherCluster() throws {
        let fixture = try RepairFixture()
        try fixture.damageAllInfoFiles()
        let before = try fixture.snapshot()
        let other = try fixture.dataDirectory(systemIdentifier: 6_000_000_000_000_000_001)
        let error = try #require(#expect(throws: PGKeepError.self) { try fixture.repair(dataDirectory: other) })
        #expect(error.code == .stanzaMismatch)
        #expect(error.message.contains(other) && error.message.contains("6000000000000000001")
                && error.message.contains("\(PostgresFixture.systemIdentifier)"), "\(error.message)")
        #expect(try fixture.snapshot() == before)

        _ = try fixture.repair(dataDirectory: try fixture.dataDirectory())
        #expect(try fixture.storage.readSmallFile(fixture.layout.archiveInfo) == fixture.originals[fixture.layout.archiveInfo])
    }

    @Test("without any manifest or valid info file the identity comes only from --pg1-path; without it the repair is refused with that hint")
    func identityFromControlOnly() throws {
        let repo = try MemoryRepository()
        try repo.push(MemoryRepository.segmentName(1))
        for path in [repo.layout.archiveInfo, repo.layout.backupInfo] {
            try repo.flipByte(path)
            try repo.flipByte(try SealedFile.copyPath(of: path))
        }
        let locks = try TemporaryDirectory("repair-locks")
        func repair(_ dataDirectory: String?) throws -> StanzaRepairReport {
            try StanzaRepair(storage: repo.storage, host: LocalHost(), layout: repo.layout,
                             options: .init(dataDirectory: dataDirectory, force: false, dryRun: false, lockPath: locks.path), log: repo.log).run()
        }
        let error = try #require(#expect(throws: PGKeepError.self) { try repair(nil) })
        #expect(error.code == .repositoryInvalid && error.hint?.contains("--pg1-path") == true, "\(error)")

        _ = try locks.write("pgdata/global/pg_control", try PostgresFixture.pgControl())
        let report = try repair(locks.path("pgdata"))
        #expect(report.identity == repo.identity)
        let archive = try InfoFiles.loadArchiveInfo(repo.storage, repo.layout, warn: { Issue.record("\($0)") })
        let backup = try InfoFiles.loadBackupInfo(repo.storage, repo.layout, warn: { Issue.record("\($0)") })
        #expect(archive.history == [repo.identity] && backup.history == [repo.identity] && backup.backups.isEmpty)
    }

    @Test("a damaged backup.info is rebuilt with the identity of the sound archive.info when no backup records one")
    func identityFromTheSoundTwinFile() throws {
        let repo = try MemoryRepository()
        try repo.flipByte(repo.layout.backupInfo)
        let locks = try TemporaryDirectory("repair-locks")
        let report = try StanzaRepair(storage: repo.storage, host: LocalHost(), layout: repo.layout,
                                      options: .init(dataDirectory: nil, force: false, dryRun: false, lockPath: locks.path), log: repo.log).run()
        #expect(report.identitySource == "archive.info")
        #expect(try InfoFiles.loadBackupInfo(repo.storage, repo.layout, warn: { Issue.record("\($0)") }).current == repo.identity)
    }

    @Test("an archive directory outside the rebuilt history is refused naming it, and nothing is written")
    func strayArchiveDirectoryRefused() throws {
        let fixture = try RepairFixture()
        try fixture.damageAllInfoFiles()
        let stray = try fixture.layout.archiveDirectory(archiveID: "15-2").appending("0000000100000000")
        try fixture.storage.writeSmallFile(try stray.appending("x"), [0])
        let before = try fixture.snapshot()
        let error = try #require(#expect(throws: PGKeepError.self) { try fixture.repair() })
        #expect(error.code == .repositoryInvalid && error.message.contains(fixture.storage.describe(stray.parent)), "\(error)")
        #expect(try fixture.snapshot() == before)
    }

    @Test("a stanza that was never created is refused with stanza-missing, even with --pg1-path, and nothing is written")
    func neverCreatedStanzaRefused() throws {
        let storage = MemoryStorage(name: "empty")
        let locks = try TemporaryDirectory("repair-locks")
        _ = try locks.write("pgdata/global/pg_control", try PostgresFixture.pgControl())
        let error = try #require(#expect(throws: PGKeepError.self) {
            try StanzaRepair(storage: storage, host: LocalHost(), layout: try RepositoryLayout(stanza: "typo"),
                             options: .init(dataDirectory: locks.path("pgdata"), force: true, dryRun: false, lockPath: locks.path),
                             log: Log(consoleLevel: .off)).run()
        })
        #expect(error.code == .stanzaMissing && error.hint?.contains("stanza-create") == true, "\(error)")
        #expect(try storage.list(.root).isEmpty)
    }

    @Test("stanza-repair refuses while a backup or expire holds the stanza lock")
    func refusesWhileLocked() throws {
        let fixture = try RepairFixture()
        try fixture.damageAllInfoFiles()
        let lock = try StanzaLock(lockPath: fixture.locks.path, stanza: fixture.layout.stanza, kind: .backup)
        let error = try #require(#expect(throws: PGKeepError.self) { try fixture.repair() })
        #expect(error.code == .lockHeld && error.message.contains(lock.path))
        withExtendedLifetime(lock) {}
    }

    @Test("stanza-repair refuses while another host's backup holds the repository lease, naming it, and writes nothing")
    func refusesWhileLeased() throws {
        let fixture = try RepairFixture()
        try fixture.damageAllInfoFiles()
        let now = Clock.now()
        let other = LeaseHolder(host: "other-host", pid: 4242, command: "backup", since: now, renewed: now, duration: 60, token: "1")
        try fixture.storage.writeSmallFile(fixture.layout.backupLease, try SealedFile.seal(other))
        let before = try fixture.snapshot()
        let error = try #require(#expect(throws: PGKeepError.self) { try fixture.repair() })
        #expect(error.code == .lockHeld && error.message.contains(fixture.storage.describe(fixture.layout.backupLease))
                && error.message.contains("host 'other-host'"), "\(error)")
        #expect(try fixture.snapshot() == before)
    }

    @Test("readers and stanza-create refuse lost info files with repository-invalid and the stanza-repair hint, never an empty backup.info")
    func lostInfoFilesAreRepositoryInvalid() throws {
        let fixture = try RepairFixture()
        for path in fixture.infoFiles.suffix(2) { try fixture.storage.remove(path) }
        let error = try #require(#expect(throws: PGKeepError.self) { try InfoFiles.loadBackupInfo(fixture.storage, fixture.layout, warn: { _ in }) })
        #expect(error.code == .repositoryInvalid && error.message.contains(RepairFixture.full.text), "\(error.message)")
        #expect(error.hint?.contains("stanza-repair") == true)

        let create = #expect(throws: PGKeepError.self) {
            try StanzaCreate(storage: fixture.storage, host: LocalHost(), layout: fixture.layout, log: fixture.repo.log).run(dataDirectory: try fixture.dataDirectory())
        }
        #expect(create?.code == .repositoryInvalid)
        #expect(try fixture.storage.readSmallFile(fixture.layout.backupInfo) == nil, "stanza-create wrote no empty backup.info")

        let report = try fixture.repair()
        #expect(report.files[1].asides.isEmpty, "nothing to keep aside: the files were missing")
        #expect(try fixture.storage.readSmallFile(fixture.layout.backupInfo) == fixture.originals[fixture.layout.backupInfo])
    }
}
