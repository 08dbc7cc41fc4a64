import Foundation
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepMover
import PGKeepEngine
import PGKeepConfig
import Synchronization

/// The conformance suite every `Storage` driver passes.
///
/// Each check is a separate, named behaviour of the written contract in `Storage.swift`. A check
/// receives a fresh, empty storage, uses only the `Storage` protocol (nothing POSIX-shaped) and
/// throws a `StorageConformanceFailure` that names the behaviour and what it saw when the driver
/// breaks the contract. A test file runs each check as its own parameterized test:
///
/// ```swift
/// @Test("PosixStorage keeps the storage contract", arguments: StorageConformance.checks)
/// func posix(_ check: StorageCheck) throws { try check.run(makeFreshStorage()) }
/// ```
///
/// What the suite deliberately leaves to each driver: whether an empty directory survives once
/// its last file is gone (POSIX keeps it, object stores have none), the size reported for a
/// directory, and what happens to parent directories created by a write that is then aborted.
public enum StorageConformance {
    /// Every check, in contract order.
    public static let checks: [StorageCheck] = [
        StorageCheck("a small file reads back exactly as written", smallRoundTrip),
        StorageCheck("an empty file reads back empty and is listed with size 0", emptyRoundTrip),
        StorageCheck("a multi-megabyte file written in odd-sized chunks reads back exactly", largeRoundTrip),
        StorageCheck("a ranged read returns exactly the bytes of its range, whatever the buffer size", rangedReads),
        StorageCheck("a range reaching past the end reads what exists; one starting past the end reads nothing; a missing file is nil", rangedReadEdges),
        StorageCheck("a write is invisible at its path until commit", invisibleBeforeCommit),
        StorageCheck("abort leaves no file and nothing in the listing", abortLeavesNothing),
        StorageCheck("abort of a replacement leaves the old file as it was", abortKeepsOldFile),
        StorageCheck("commit replaces an existing file: old content until commit, new after", commitReplaces),
        StorageCheck("missing paths are not errors: nil on read and info, empty listing, removal succeeds", missingPaths),
        StorageCheck("remove deletes one file and leaves its siblings", removeOneFile),
        StorageCheck("listing shows direct children sorted byte-wise with kinds and sizes", listingOrderKindsSizes),
        StorageCheck("listing hides writes in progress", listingHidesWritesInProgress),
        StorageCheck("writing a/b/c creates the directories a and a/b", implicitDirectories),
        StorageCheck("removeTree removes a directory and everything under it, nothing else", removeTreeRemovesAll),
        StorageCheck("two writers of the same path both commit and exactly one content wins", twoWritersSamePath),
        StorageCheck("writers of the same path on several threads never produce a mix", threadedWritersSamePath),
        StorageCheck("writers of distinct paths in one new directory on several threads all succeed", threadedWritersDistinctPaths),
        StorageCheck("createExclusive creates a missing file; over a file or a directory it returns false and changes nothing", createExclusiveOnce),
        StorageCheck("createExclusive on several threads: exactly one wins and the file is its content", threadedCreateExclusive),
        StorageCheck("readSmallFile and writeSmallFile round-trip; readSmallFile enforces its limit", smallFileHelpers),
        StorageCheck("describe mentions the path", describeMentionsPath),
    ]

    // MARK: - Round trips

    @Sendable static func smallRoundTrip(_ storage: Storage) throws {
        let path = try StoragePath("small")
        let bytes = Array("hello, storage\n".utf8)
        try write(storage, path, bytes)
        try expectContent(storage, path, bytes, "small file")
        try expectContent(storage, path, bytes, "small file read one byte at a time", bufferSize: 1)
        try expectFileInfo(storage, path, size: bytes.count)

        let nested = try StoragePath("dir/sub/small")
        try write(storage, nested, bytes)
        try expectContent(storage, nested, bytes, "small file in a nested directory")
    }

    @Sendable static func emptyRoundTrip(_ storage: Storage) throws {
        let path = try StoragePath("dir/empty")
        try write(storage, path, [])
        try expectContent(storage, path, [], "empty file")
        try expectFileInfo(storage, path, size: 0)
        let listed = try storage.list(path.parent)
        try ensure(listed == [StorageEntry(name: "empty", kind: .file, size: 0)],
                   "listing of 'dir' should be exactly the empty file, got \(listed)")
    }

    @Sendable static func largeRoundTrip(_ storage: Storage) throws {
        let path = try StoragePath("large/file.bin")
        let bytes = pattern(count: 3 << 20 | 4_099, seed: 0x5eed)
        // Chunk sizes from 1 byte to larger than common buffer sizes, none a power of two.
        try write(storage, path, bytes, chunkSizes: [1, 7, 4_093, 65_537, 3, 131_071, 1_000_003, 17])
        try expectFileInfo(storage, path, size: bytes.count)
        try expectContent(storage, path, bytes, "large file (read with a 7919-byte buffer)", bufferSize: 7_919)
        try expectContent(storage, path, bytes, "large file (read with a 1 MiB buffer)", bufferSize: 1 << 20)
    }

    @Sendable static func rangedReads(_ storage: Storage) throws {
        let path = try StoragePath("ranged/file.bin")
        let bytes = pattern(count: 1 << 20 | 333, seed: 0xa11)
        try write(storage, path, bytes)
        for (start, end) in [(0, 1), (0, bytes.count), (1, 2), (4_097, 700_001), (bytes.count - 1, bytes.count), (12, 12)] {
            for bufferSize in [1, 4_093, 1 << 20] where bufferSize > 1 || end - start < 5_000 {
                guard let reader = try storage.openRead(path, range: UInt64(start)..<UInt64(end)) else {
                    throw StorageConformanceFailure("openRead('\(path)', range: \(start)..<\(end)) returned nil for an existing file")
                }
                let got = try drain(reader, bufferSize: bufferSize)
                try ensure(got == Array(bytes[start..<end]),
                           "range \(start)..<\(end) read with a \(bufferSize)-byte buffer gave \(got.count) bytes, not the \(end - start) of the range")
            }
        }
    }

    @Sendable static func rangedReadEdges(_ storage: Storage) throws {
        let path = try StoragePath("ranged/short")
        let bytes = pattern(count: 1_000, seed: 0xed9e)
        try write(storage, path, bytes)
        let past = try storage.openRead(path, range: 900..<UInt64.max).map { try drain($0, bufferSize: 64) }
        try ensure(past == Array(bytes[900...]), "a range from 900 to the end of the address space should read the last 100 bytes, got \(past?.count ?? -1)")
        let beyond = try storage.openRead(path, range: 5_000..<6_000).map { try drain($0, bufferSize: 64) }
        try ensure(beyond == [], "a range starting past the end should read nothing, got \(beyond.map { "\($0.count) bytes" } ?? "nil")")
        try ensure(try storage.openRead(try StoragePath("ranged/missing"), range: 0..<10) == nil,
                   "a ranged read of a missing file should be nil")
    }

    // MARK: - Atomicity

    @Sendable static func invisibleBeforeCommit(_ storage: Storage) throws {
        for text in ["pending", "dir/pending"] {
            let path = try StoragePath(text)
            let writer = try storage.openWrite(path)
            try pattern(count: 100_000, seed: 1).withUnsafeBytes { try writer.write($0) }
            try expectMissing(storage, path, "'\(text)' after write, before commit")
            let listed = try storage.list(path.parent)
            try ensure(listed.isEmpty, "listing of '\(path.parent)' before commit should be empty, got \(listed)")
            try writer.commit()
            try expectFileInfo(storage, path, size: 100_000)
        }
    }

    @Sendable static func abortLeavesNothing(_ storage: Storage) throws {
        let sibling = try StoragePath("dir/sibling")
        try write(storage, sibling, [1, 2, 3])
        for text in ["aborted", "dir/aborted", "dir/new/aborted"] {
            let path = try StoragePath(text)
            let writer = try storage.openWrite(path)
            try pattern(count: 10_000, seed: 2).withUnsafeBytes { try writer.write($0) }
            writer.abort()
            try expectMissing(storage, path, "'\(text)' after abort")
        }
        // An aborted write that never wrote a byte leaves nothing either.
        let untouched = try StoragePath("dir/untouched")
        try storage.openWrite(untouched).abort()
        try expectMissing(storage, untouched, "'dir/untouched' after abort without writes")

        let root = try storage.list(.root).map(\.name)
        try ensure(root == ["dir"], "listing of the root after aborts should be ['dir'], got \(root)")
        let dir = try storage.list(try StoragePath("dir")).filter { $0.kind == .file }.map(\.name)
        try ensure(dir == ["sibling"], "files listed in 'dir' after aborts should be ['sibling'], got \(dir)")
        try expectContent(storage, sibling, [1, 2, 3], "sibling of aborted writes")
    }

    @Sendable static func abortKeepsOldFile(_ storage: Storage) throws {
        let path = try StoragePath("keep")
        let old = pattern(count: 5_000, seed: 3)
        try write(storage, path, old)
        let writer = try storage.openWrite(path)
        try pattern(count: 9_000, seed: 4).withUnsafeBytes { try writer.write($0) }
        writer.abort()
        try expectContent(storage, path, old, "old file after an aborted replacement")
        try expectFileInfo(storage, path, size: old.count)
        let listed = try storage.list(.root)
        try ensure(listed == [StorageEntry(name: "keep", kind: .file, size: UInt64(old.count))],
                   "listing after an aborted replacement should be only the old file, got \(listed)")
    }

    @Sendable static func commitReplaces(_ storage: Storage) throws {
        let path = try StoragePath("dir/replaced")
        let old = pattern(count: 70_000, seed: 5)
        let new = pattern(count: 1_234, seed: 6)
        try write(storage, path, old)

        let writer = try storage.openWrite(path)
        try new.withUnsafeBytes { try writer.write($0) }
        try expectContent(storage, path, old, "file being replaced, before commit")
        try expectFileInfo(storage, path, size: old.count)

        // A reader opened before the commit keeps seeing one complete version, never a mix.
        let early = try storage.openRead(path)
        try writer.commit()
        if let early {
            let seen = try drain(early, bufferSize: 4_096)
            try ensure(seen == old || seen == new,
                       "a reader opened before commit saw \(seen.count) bytes that are neither the old nor the new file")
        }

        try expectContent(storage, path, new, "replaced file after commit")
        try expectFileInfo(storage, path, size: new.count)
        let listed = try storage.list(path.parent)
        try ensure(listed == [StorageEntry(name: "replaced", kind: .file, size: UInt64(new.count))],
                   "listing after a replacement should be exactly the new file, got \(listed)")
    }

    // MARK: - Missing paths and removal

    @Sendable static func missingPaths(_ storage: Storage) throws {
        try write(storage, try StoragePath("present/file"), [9])
        for text in ["missing", "present/missing", "no/such/dir/file", "present/file/below-a-file"] {
            let path = try StoragePath(text)
            try ensure(try storage.openRead(path) == nil, "openRead of missing '\(text)' should be nil")
            try ensure(try storage.info(path) == nil, "info of missing '\(text)' should be nil")
            let listed = try storage.list(path)
            try ensure(listed.isEmpty, "listing of missing '\(text)' should be empty, got \(listed)")
            try attempt("remove of missing '\(text)' should succeed") { try storage.remove(path) }
            try attempt("removeTree of missing '\(text)' should succeed") { try storage.removeTree(path) }
            // Removal is idempotent: a second time succeeds too.
            try attempt("second remove of missing '\(text)' should succeed") { try storage.remove(path) }
        }
        try ensure(try storage.list(try StoragePath("present/file")).isEmpty,
                   "listing a file as if it were a directory should be empty")
        try expectContent(storage, try StoragePath("present/file"), [9], "file next to missing paths")
    }

    @Sendable static func removeOneFile(_ storage: Storage) throws {
        let a = try StoragePath("dir/a"), b = try StoragePath("dir/b")
        try write(storage, a, [1])
        try write(storage, b, [2, 2])
        try storage.remove(a)
        try expectMissing(storage, a, "'dir/a' after remove")
        try expectContent(storage, b, [2, 2], "sibling of a removed file")
        let listed = try storage.list(a.parent)
        try ensure(listed == [StorageEntry(name: "b", kind: .file, size: 2)],
                   "listing after remove should be exactly 'b', got \(listed)")
        try attempt("removing 'dir/a' a second time should succeed") { try storage.remove(a) }
        // The path can be written again after removal.
        try write(storage, a, [3])
        try expectContent(storage, a, [3], "file written again after remove")
    }

    // MARK: - Listing and directories

    @Sendable static func listingOrderKindsSizes(_ storage: Storage) throws {
        // Names chosen so that byte order differs from case-insensitive, numeric and Unicode-aware
        // orders, and so that a prefix of one name is another name.
        let files: [(String, Int)] = [
            ("b", 2), ("a", 1), ("B", 3), ("a-1", 4), ("a.1", 5), ("a1", 6), ("_x", 7), ("Z", 8),
            ("é", 9), ("e\u{301}", 10), ("10", 11), ("9", 12), ("a b", 13),
        ]
        for (name, size) in files { try write(storage, try StoragePath(name), pattern(count: size, seed: UInt64(size))) }
        try write(storage, try StoragePath("dir/inner"), [1, 2, 3, 4])
        try write(storage, try StoragePath("dir/deeper/leaf"), [1])
        try write(storage, try StoragePath("a2/x"), [1])

        let listed = try storage.list(.root)
        let names = listed.map(\.name)
        let expectedNames = (files.map(\.0) + ["dir", "a2"]).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        try ensure(names.map { Array($0.utf8) } == expectedNames.map { Array($0.utf8) }, "root listing should be \(expectedNames) (byte-wise order), got \(names)")
        for entry in listed {
            if let (_, size) = files.first(where: { $0.0.utf8.elementsEqual(entry.name.utf8) }) {
                try ensure(entry.kind == .file && entry.size == UInt64(size),
                           "entry '\(entry.name)' should be a file of \(size) bytes, got \(entry)")
            } else {
                try ensure(entry.kind == .directory, "entry '\(entry.name)' should be a directory, got \(entry)")
            }
        }

        let dir = try storage.list(try StoragePath("dir"))
        try ensure(dir.map(\.name) == ["deeper", "inner"], "listing of 'dir' should be direct children only, got \(dir)")
        try ensure(dir[0].kind == .directory, "'dir/deeper' should be listed as a directory, got \(dir[0])")
        try ensure(dir[1] == StorageEntry(name: "inner", kind: .file, size: 4),
                   "'dir/inner' should be listed as a 4-byte file, got \(dir[1])")
        let dirInfo = try storage.info(try StoragePath("dir"))
        try ensure(dirInfo?.kind == .directory && dirInfo?.name == "dir", "info of 'dir' should be a directory named 'dir', got \(String(describing: dirInfo))")
    }

    @Sendable static func listingHidesWritesInProgress(_ storage: Storage) throws {
        try write(storage, try StoragePath("dir/done"), [1])
        var writers: [StorageWriter] = []
        for text in ["dir/pending", "dir/done", "dir/x/pending", "top"] {
            let writer = try storage.openWrite(try StoragePath(text))
            try [7, 7, 7].withUnsafeBytes { try writer.write($0) }
            writers.append(writer)
        }
        let dir = try storage.list(try StoragePath("dir")).filter { $0.kind == .file }
        try ensure(dir == [StorageEntry(name: "done", kind: .file, size: 1)],
                   "files listed in 'dir' during writes should be only 'done', got \(dir)")
        let root = try storage.list(.root).filter { $0.kind == .file }
        try ensure(root.isEmpty, "files listed in the root during a write should be none, got \(root)")
        for writer in writers { writer.abort() }
        let after = try storage.list(try StoragePath("dir")).filter { $0.kind == .file }
        try ensure(after == [StorageEntry(name: "done", kind: .file, size: 1)],
                   "files listed in 'dir' after aborts should be only 'done', got \(after)")
    }

    @Sendable static func implicitDirectories(_ storage: Storage) throws {
        let path = try StoragePath("a/b/c")
        try write(storage, path, [42])
        for text in ["a", "a/b"] {
            let info = try storage.info(try StoragePath(text))
            try ensure(info?.kind == .directory, "info of '\(text)' after writing 'a/b/c' should be a directory, got \(String(describing: info))")
        }
        let root = try storage.list(.root)
        try ensure(root.map(\.name) == ["a"] && root[0].kind == .directory, "root listing should be the directory 'a', got \(root)")
        let a = try storage.list(try StoragePath("a"))
        try ensure(a.map(\.name) == ["b"] && a[0].kind == .directory, "listing of 'a' should be the directory 'b', got \(a)")
        let b = try storage.list(try StoragePath("a/b"))
        try ensure(b == [StorageEntry(name: "c", kind: .file, size: 1)], "listing of 'a/b' should be the file 'c', got \(b)")
        try expectContent(storage, path, [42], "file in implicit directories")
    }

    @Sendable static func removeTreeRemovesAll(_ storage: Storage) throws {
        let inside = ["a/x", "a/b/y", "a/b/c/z", "a/b/c/d/e/f"]
        let outside = ["ab/keep", "a-keep", "a.keep", "b/a/keep"]
        for text in inside + outside { try write(storage, try StoragePath(text), Array(text.utf8)) }
        // An aborted write under the tree leaves nothing behind that would block the removal.
        let pending = try storage.openWrite(try StoragePath("a/b/pending"))
        try [1].withUnsafeBytes { try pending.write($0) }
        pending.abort()

        try storage.removeTree(try StoragePath("a"))
        try expectMissing(storage, try StoragePath("a"), "'a' after removeTree")
        for text in inside { try expectMissing(storage, try StoragePath(text), "'\(text)' after removeTree of 'a'") }
        try ensure(try storage.list(try StoragePath("a")).isEmpty, "listing of 'a' after removeTree should be empty")
        try ensure(try storage.list(try StoragePath("a/b")).isEmpty, "listing of 'a/b' after removeTree should be empty")
        for text in outside { try expectContent(storage, try StoragePath(text), Array(text.utf8), "'\(text)' outside the removed tree") }
        let root = try storage.list(.root).map(\.name)
        try ensure(root == ["a-keep", "a.keep", "ab", "b"], "root listing after removeTree should be the survivors, got \(root)")

        try attempt("removeTree of an already removed tree should succeed") { try storage.removeTree(try StoragePath("a")) }
        try write(storage, try StoragePath("a/b/again"), [1])
        try expectContent(storage, try StoragePath("a/b/again"), [1], "file written under a removed tree")
    }

    // MARK: - Concurrency

    @Sendable static func twoWritersSamePath(_ storage: Storage) throws {
        let path = try StoragePath("dir/contested")
        let first = pattern(count: 300_001, seed: 7)
        let second = pattern(count: 200_003, seed: 8)
        for commitFirstWriterFirst in [true, false] {
            let one = try storage.openWrite(path)
            let two = try storage.openWrite(path)
            // Interleave the two streams so that any shared temporary file would mix them.
            var offset = 0
            let chunk = 10_007
            while offset < max(first.count, second.count) {
                if offset < first.count { try write(one, first[offset..<min(offset + chunk, first.count)]) }
                if offset < second.count { try write(two, second[offset..<min(offset + chunk, second.count)]) }
                offset += chunk
            }
            if commitFirstWriterFirst { try one.commit(); try two.commit() } else { try two.commit(); try one.commit() }
            let got = try readAll(storage, path, bufferSize: 65_536)
            try ensure(got == first || got == second,
                       "after two commits of the same path the content (\(got.map { "\($0.count) bytes" } ?? "missing")) should be exactly one of the two writes")
            let listed = try storage.list(path.parent)
            try ensure(listed.count == 1 && listed[0].name == "contested" && (listed[0].size == UInt64(first.count) || listed[0].size == UInt64(second.count)),
                       "listing after two commits should be the one file, got \(listed)")
        }
    }

    @Sendable static func threadedWritersSamePath(_ storage: Storage) throws {
        let path = try StoragePath("race/same")
        let contents = (0..<4).map { pattern(count: 100_000 + 3_331 * $0, seed: 100 + UInt64($0)) }
        for round in 0..<5 {
            try runConcurrently(contents.count) { index in
                try write(storage, path, contents[index], chunkSizes: [4_099, 1, 8_191])
            }
            let got = try readAll(storage, path, bufferSize: 65_536)
            try ensure(got.map { contents.contains($0) } == true,
                       "round \(round): after concurrent commits the content (\(got.map { "\($0.count) bytes" } ?? "missing")) should be exactly one of the writes")
            let listed = try storage.list(path.parent)
            try ensure(listed.map(\.name) == ["same"], "round \(round): listing after concurrent commits should be ['same'], got \(listed)")
        }
    }

    @Sendable static func threadedWritersDistinctPaths(_ storage: Storage) throws {
        let count = 8
        try runConcurrently(count) { index in
            let path = try StoragePath("fan/out/deep/file-\(index)")
            try write(storage, path, pattern(count: 10_000 + index, seed: UInt64(index)))
        }
        let listed = try storage.list(try StoragePath("fan/out/deep"))
        let expected = (0..<count).map { "file-\($0)" }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        try ensure(listed.map(\.name) == expected, "listing after concurrent writes should be \(expected), got \(listed.map(\.name))")
        for index in 0..<count {
            try expectContent(storage, try StoragePath("fan/out/deep/file-\(index)"),
                              pattern(count: 10_000 + index, seed: UInt64(index)), "concurrently written file-\(index)")
        }
    }

    // MARK: - Exclusive creation

    @Sendable static func createExclusiveOnce(_ storage: Storage) throws {
        let path = try StoragePath("lock/main/lease")
        let first = pattern(count: 300, seed: 11)
        try ensure(try storage.createExclusive(path, first), "createExclusive of a missing file should return true")
        try expectContent(storage, path, first, "file made by createExclusive")
        let listed = try storage.list(path.parent)
        try ensure(listed == [StorageEntry(name: "lease", kind: .file, size: 300)],
                   "listing after createExclusive should be exactly the file, got \(listed)")

        try ensure(!(try storage.createExclusive(path, [1, 2, 3])), "createExclusive over an existing file should return false")
        try expectContent(storage, path, first, "file after a refused createExclusive")
        try ensure(!(try storage.createExclusive(try StoragePath("lock/main"), [1])), "createExclusive over a directory should return false")
        let after = try storage.list(path.parent)
        try ensure(after == listed, "a refused createExclusive should leave nothing in the listing, got \(after)")

        // Once removed, the path can be created again (a lease released and taken anew).
        try storage.remove(path)
        try ensure(try storage.createExclusive(path, []), "createExclusive after remove should return true")
        try expectContent(storage, path, [], "empty file made by createExclusive")
    }

    @Sendable static func threadedCreateExclusive(_ storage: Storage) throws {
        let count = 8
        let contents = (0..<count).map { pattern(count: 1_000 + $0, seed: 200 + UInt64($0)) }
        for round in 0..<5 {
            let path = try StoragePath("race/lease-\(round)")
            let wins = ThreadLog<Int>()
            try runConcurrently(count) { index in
                if try storage.createExclusive(path, contents[index]) { wins.append(index) }
            }
            let winners = wins.all
            try ensure(winners.count == 1, "round \(round): exactly one createExclusive should succeed, got \(winners.count)")
            try expectContent(storage, path, contents[winners[0]], "round \(round): the winner's file")
            let listed = try storage.list(path.parent).map(\.name)
            try ensure(listed == (0...round).map { "lease-\($0)" }, "round \(round): listing should be the created files only, got \(listed)")
        }
    }

    // MARK: - Helpers of the extension and describe

    @Sendable static func smallFileHelpers(_ storage: Storage) throws {
        let path = try StoragePath("meta/info")
        let bytes = pattern(count: 100, seed: 9)
        try storage.writeSmallFile(path, bytes)
        try ensure(try storage.readSmallFile(path) == bytes, "readSmallFile should return what writeSmallFile wrote")
        try ensure(try storage.readSmallFile(path, limit: 100) == bytes, "readSmallFile with a limit equal to the size should succeed")
        do {
            let got = try storage.readSmallFile(path, limit: 99)
            throw StorageConformanceFailure("readSmallFile with a limit below the size should throw, got \(got?.count ?? -1) bytes")
        } catch is StorageConformanceFailure {
            throw StorageConformanceFailure("readSmallFile with a limit below the size should throw")
        } catch {
            // Expected: the limit is enforced.
        }
        try ensure(try storage.readSmallFile(try StoragePath("meta/missing")) == nil, "readSmallFile of a missing file should be nil")

        try storage.writeSmallFile(path, [])
        try ensure(try storage.readSmallFile(path) == [], "readSmallFile of an empty file should be []")
        let big = pattern(count: 200_000, seed: 10)
        try storage.writeSmallFile(path, big)
        try ensure(try storage.readSmallFile(path, limit: big.count) == big, "readSmallFile of a file larger than its read buffer should round-trip")
    }

    @Sendable static func describeMentionsPath(_ storage: Storage) throws {
        for text in ["archive/main/000000010000000000000001", "backup.info", "a b/é"] {
            let description = storage.describe(try StoragePath(text))
            try ensure(description.contains(text), "describe('\(text)') should mention the path, got '\(description)'")
        }
        try ensure(!storage.describe(.root).isEmpty, "describe(root) should name the storage, got an empty string")
    }
}

/// One named behaviour of the storage contract, run against a fresh, empty storage.
public struct StorageCheck: Sendable, CustomStringConvertible {
    public let name: String
    public let run: @Sendable (Storage) throws -> Void

    public init(_ name: String, _ run: @escaping @Sendable (Storage) throws -> Void) {
        self.name = name
        self.run = run
    }

    public var description: String { name }
}

/// A broken promise of the storage contract, with what was seen.
public struct StorageConformanceFailure: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "storage contract violated: \(message)" }
}

// MARK: - Shared helpers

func ensure(_ condition: @autoclosure () throws -> Bool, _ message: @autoclosure () -> String) throws {
    if try !condition() { throw StorageConformanceFailure(message()) }
}

/// Runs `body`, reporting an error it throws as a contract failure that says what was expected.
func attempt(_ expectation: String, _ body: () throws -> Void) throws {
    do { try body() } catch { throw StorageConformanceFailure("\(expectation), but it threw: \(error)") }
}

/// Deterministic pseudo-random bytes (SplitMix64), so a misplaced chunk never matches by chance.
public func pattern(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    var bytes = [UInt8](repeating: 0, count: count)
    var index = 0
    while index < count {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        for shift in stride(from: 0, to: 64, by: 8) where index < count {
            bytes[index] = UInt8(truncatingIfNeeded: z >> UInt64(shift))
            index += 1
        }
    }
    return bytes
}

func write(_ writer: StorageWriter, _ bytes: ArraySlice<UInt8>) throws {
    try bytes.withUnsafeBytes { try writer.write($0) }
}

/// Writes and commits `bytes` at `path`, handing them over in chunks of the given sizes (cycled).
func write(_ storage: Storage, _ path: StoragePath, _ bytes: [UInt8], chunkSizes: [Int] = [Int.max]) throws {
    let writer = try storage.openWrite(path)
    do {
        var offset = 0, turn = 0
        while offset < bytes.count {
            let size = min(chunkSizes[turn % chunkSizes.count], bytes.count - offset)
            try write(writer, bytes[offset..<offset + size])
            offset += size
            turn += 1
        }
        try writer.commit()
    } catch {
        writer.abort()
        throw error
    }
}

func drain(_ reader: StorageReader, bufferSize: Int) throws -> [UInt8] {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 1)
    defer { buffer.deallocate() }
    var bytes: [UInt8] = []
    while true {
        let n = try reader.read(into: buffer)
        if n == 0 { return bytes }
        guard n > 0 && n <= bufferSize else { throw StorageConformanceFailure("read returned \(n) for a \(bufferSize)-byte buffer") }
        bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
    }
}

func readAll(_ storage: Storage, _ path: StoragePath, bufferSize: Int) throws -> [UInt8]? {
    guard let reader = try storage.openRead(path) else { return nil }
    return try drain(reader, bufferSize: bufferSize)
}

func expectContent(_ storage: Storage, _ path: StoragePath, _ expected: [UInt8], _ what: String, bufferSize: Int = 65_536) throws {
    guard let got = try readAll(storage, path, bufferSize: bufferSize) else {
        throw StorageConformanceFailure("\(what): openRead('\(path)') returned nil, expected \(expected.count) bytes")
    }
    guard got == expected else {
        let firstDifference = zip(got, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(got.count, expected.count)
        throw StorageConformanceFailure("\(what): read \(got.count) bytes, expected \(expected.count); first difference at byte \(firstDifference)")
    }
}

func expectFileInfo(_ storage: Storage, _ path: StoragePath, size: Int) throws {
    let info = try storage.info(path)
    try ensure(info == StorageEntry(name: path.name, kind: .file, size: UInt64(size)),
               "info('\(path)') should be a file of \(size) bytes named '\(path.name)', got \(String(describing: info))")
}

/// The path is missing in every way the protocol can tell: read, info and its parent's listing.
func expectMissing(_ storage: Storage, _ path: StoragePath, _ what: String) throws {
    try ensure(try storage.openRead(path) == nil, "\(what): openRead should be nil")
    try ensure(try storage.info(path) == nil, "\(what): info should be nil")
    let names = try storage.list(path.parent).map(\.name)
    try ensure(!names.contains(path.name), "\(what): the parent's listing should not contain '\(path.name)', got \(names)")
}

/// Runs `body(0..<count)` on `count` threads started together, and rethrows the first failure.
func runConcurrently(_ count: Int, _ body: @escaping @Sendable (Int) throws -> Void) throws {
    let failures = ThreadLog<String>()
    let start = DispatchSemaphore(value: 0)
    let done = DispatchGroup()
    for index in 0..<count {
        done.enter()
        let thread = Thread {
            start.wait()
            do { try body(index) } catch { failures.append("thread \(index): \(error)") }
            done.leave()
        }
        thread.start()
    }
    for _ in 0..<count { start.signal() }
    done.wait()
    let seen = failures.all
    try ensure(seen.isEmpty, "concurrent operations failed: \(seen.joined(separator: "; "))")
}

/// Items (failures, the winners of a race) collected from several threads.
final class ThreadLog<Item>: @unchecked Sendable {
    private let lock = Mutex(())
    private var items: [Item] = []
    func append(_ item: Item) { lock.withLock { _ in items.append(item) } }
    var all: [Item] { lock.withLock { _ in items } }
}
