import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

/// The packed forms a backup keeps per file: the listing (`ClusterWalker.FileList`) and the entries
/// (`BackupFileTable`) give back exactly what was put in.
@Suite("Backup file tables")
struct BackupFileTableTests {
    static let files: [ClusterWalker.ListedFile] = [
        .init(name: "pg_data/PG_VERSION", path: "/var/lib/postgresql/15/main/PG_VERSION", size: 3, mtime: 1, mode: 0o600,
              user: "postgres", group: "postgres"),
        .init(name: "pg_data/base/5/16384", path: "/var/lib/postgresql/15/main/base/5/16384", size: 8192, mtime: -5, mode: 0o640,
              user: nil, group: "staff"),
        .init(name: "pg_tblspc/16384/PG_15_202209061/5/16390", path: "/srv/ts1/PG_15_202209061/5/16390", size: UInt64.max,
              mtime: Int64.max, mode: 0o600, user: "other", group: nil),
        .init(name: "pg_data/postgresql.auto.conf", path: "/data//postgresql.auto.conf", size: 0, mtime: 0, mode: 0o600,
              user: "postgres", group: "postgres"),
        .init(name: "odd", path: "/elsewhere/entirely", size: 1, mtime: 2, mode: 0o644, user: "é", group: "é"),
    ]

    @Test("the packed listing gives back every name, path and attribute")
    func fileListRoundTrip() throws {
        let list = try ClusterWalker.FileList(Self.files)
        #expect(list.count == Self.files.count)
        for (index, file) in Self.files.enumerated() {
            let back = list[index]
            #expect(back.name == file.name && back.path == file.path && list.name(index) == file.name)
            #expect(back.size == file.size && back.mtime == file.mtime && back.mode == file.mode)
            #expect(back.user == file.user && back.group == file.group)
        }
    }

    @Test("the entry table gives back every field of an entry, optional ones included, and counts references")
    func entryTableRoundTrip() throws {
        let list = try ClusterWalker.FileList(Self.files)
        let own = ManifestSample.diff, prior = ManifestSample.full
        func entry(_ index: Int, reference: BackupLabel) -> Manifest.FileEntry {
            let file = Self.files[index]
            return Manifest.FileEntry(name: file.name, size: file.size &- 1, mtime: file.mtime, mode: file.mode, user: file.user,
                                      group: file.group, checksum: ManifestSample.digest("c\(index)"), repoSize: UInt64(index) * 7,
                                      repoChecksum: ManifestSample.digest("r\(index)"), compression: index == 0 ? .lz4 : .zst,
                                      reference: reference)
        }
        var block = entry(1, reference: own)
        block.blockSize = 131_072
        block.blockMapSize = 99
        block.blockMapChecksum = ManifestSample.digest("map")
        block.pageChecksumErrors = [3, 9]
        var bundled = entry(2, reference: prior)
        bundled.bundle = 7
        bundled.bundleOffset = 123_456
        let expected: [Int: Manifest.FileEntry] = [0: entry(0, reference: own), 1: block, 2: bundled, 4: entry(4, reference: own)]

        var table = BackupFileTable(fileCount: Self.files.count)
        for (index, value) in expected { try table.set(index, value) }
        #expect(table.count == 4 && !table.contains(3) && table.contains(4))
        for index in Self.files.indices {
            #expect(table.entry(index, file: list[index]) == expected[index])
        }
        #expect(Array(table.entries(list)) == expected.keys.sorted().map { expected[$0]! })
        #expect(table.references == [own, prior])
        #expect(table.count(referencing: own) == 3 && table.count(referencing: prior) == 1)
        #expect(table.containsBlockIncremental { $0 == own } && !table.containsBlockIncremental { $0 == prior })
        #expect(table.damagedPages.map(\.index) == [1])
    }
}
