import Foundation
import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig
import TestSupport

@Suite("Storage conformance")
struct StorageConformanceTests {
    @Test("PosixStorage keeps the storage contract", arguments: StorageConformance.checks)
    func posixStorage(_ check: StorageCheck) throws {
        let directory = try TemporaryDirectory()
        // The root does not exist yet: the driver creates it on the first write.
        try check.run(PosixStorage(root: directory.path + "/repo"))
    }

    @Test("MemoryStorage keeps the storage contract", arguments: StorageConformance.checks)
    func memoryStorage(_ check: StorageCheck) throws {
        try check.run(MemoryStorage())
    }
}

@Suite("PosixStorage")
struct PosixStorageTests {
    @Test("a committed file has the storage's file mode, whatever the umask", arguments: [0o640, 0o600, 0o664] as [UInt32])
    func fileMode(_ mode: UInt32) throws {
        let directory = try TemporaryDirectory()
        let storage = PosixStorage(root: directory.path, fileMode: mode)
        try storage.writeSmallFile(try StoragePath("dir/file"), [1, 2, 3])
        let status = try #require(try Posix.lstat(directory.path + "/dir/file"))
        #expect(status.kind == .file)
        #expect(String(status.mode, radix: 8) == String(mode, radix: 8))
    }

    @Test("new directories have the storage's directory mode, whatever the umask", arguments: [0o750, 0o700, 0o775] as [UInt32])
    func directoryMode(_ mode: UInt32) throws {
        let directory = try TemporaryDirectory()
        let storage = PosixStorage(root: directory.path + "/repo", directoryMode: mode)
        try storage.writeSmallFile(try StoragePath("a/b/file"), [1])
        for created in ["/repo", "/repo/a", "/repo/a/b"] {
            let status = try #require(try Posix.lstat(directory.path + created))
            #expect(status.kind == .directory)
            #expect(String(status.mode, radix: 8) == String(mode, radix: 8), "mode of \(created)")
        }
    }

    @Test("the temporary file of a write lives in the destination directory and is gone after commit")
    func temporaryFileBesideDestination() throws {
        let directory = try TemporaryDirectory()
        let storage = PosixStorage(root: directory.path)
        let writer = try storage.openWrite(try StoragePath("dir/file"))
        try [1, 2, 3].withUnsafeBytes { try writer.write($0) }
        let during = try #require(try Posix.listDirectory(directory.path + "/dir"))
        #expect(during.count == 1)
        #expect(during.allSatisfy { $0.hasPrefix("file" + PosixStorage.temporaryMarker) })
        try writer.commit()
        #expect(try Posix.listDirectory(directory.path + "/dir") == ["file"])
    }

    @Test("a temporary file that cannot be created is reported by the file's name and its directory, not by the temporary name")
    func temporaryFileFailureNamesTheDirectory() throws {
        let directory = try TemporaryDirectory()
        let storage = PosixStorage(root: directory.path)
        // The name fits, its temporary name (the name plus .pgkeep-tmp.<pid>.<n>) does not: the open fails as root too.
        let name = String(repeating: "n", count: 250)
        #expect {
            _ = try storage.openWrite(try StoragePath("dir/" + name))
        } throws: { error in
            guard let error = error as? PGKeepError else { return false }
            return error.code == .fileOpen && !error.message.contains(PosixStorage.temporaryMarker)
                && error.message.hasPrefix("unable to create the temporary file for '\(name)' in directory '\(directory.path)/dir': ")
        }
        #expect(try Posix.listDirectory(directory.path + "/dir") == [])
    }

    @Test("a writer dropped without commit or abort leaves no file, visible or temporary")
    func droppedWriter() throws {
        let directory = try TemporaryDirectory()
        let storage = PosixStorage(root: directory.path)
        try storage.writeSmallFile(try StoragePath("dir/old"), [1])
        try storage.writeSmallFile(try StoragePath("dir/replaced"), [1, 1])
        do {
            for name in ["dir/new", "dir/replaced"] {
                let writer = try storage.openWrite(try StoragePath(name))
                try [9, 9, 9].withUnsafeBytes { try writer.write($0) }
                // Dropped here: the deinit runs as if the worker died mid-write.
            }
        }
        #expect(try storage.info(try StoragePath("dir/new")) == nil)
        #expect(try storage.readSmallFile(try StoragePath("dir/replaced")) == [1, 1])
        #expect(try storage.list(try StoragePath("dir")).map(\.name) == ["old", "replaced"])
        #expect(try Posix.listDirectory(directory.path + "/dir") == ["old", "replaced"])
    }

    @Test("a temporary file left by a killed process is hidden from listings and removed with its tree")
    func leftoverTemporaryFile() throws {
        let directory = try TemporaryDirectory()
        let storage = PosixStorage(root: directory.path)
        try storage.writeSmallFile(try StoragePath("dir/kept"), [1])
        // What a process killed between create and rename leaves behind.
        for leftover in ["/dir/segment" + PosixStorage.temporaryMarker + "99999.1", "/top" + PosixStorage.temporaryMarker + "4242.7"] {
            let sink = try FileSink(creating: directory.path + leftover, mode: 0o640, exclusive: true)
            try [5, 5].withUnsafeBytes { try sink.write($0) }
            try sink.close()
        }

        #expect(try storage.list(try StoragePath("dir")) == [StorageEntry(name: "kept", kind: .file, size: 1)])
        #expect(try storage.list(.root) .map(\.name) == ["dir"])
        #expect(try storage.info(try StoragePath("dir/segment")) == nil)
        #expect(try storage.info(try StoragePath("top")) == nil)

        // A later write of the same path is unaffected by the leftover.
        try storage.writeSmallFile(try StoragePath("dir/segment"), [7])
        #expect(try storage.list(try StoragePath("dir")).map(\.name) == ["kept", "segment"])
        #expect(try storage.readSmallFile(try StoragePath("dir/segment")) == [7])

        try storage.removeTree(try StoragePath("dir"))
        #expect(try Posix.lstat(directory.path + "/dir") == nil)
    }

    @Test("the root is absolute and describe gives the absolute path of a file")
    func describeIsAbsolute() throws {
        let storage = PosixStorage(root: "relative/repo/")
        #expect(storage.root.hasPrefix("/"))
        #expect(storage.root.hasSuffix("/relative/repo"))
        #expect(storage.describe(try StoragePath("a/b")) == storage.root + "/a/b")
        #expect(storage.describe(.root) == storage.root)
    }

    @Test("writing below an existing file fails with an error that names the path")
    func writeBelowFile() throws {
        let directory = try TemporaryDirectory()
        let storage = PosixStorage(root: directory.path)
        try storage.writeSmallFile(try StoragePath("file"), [1])
        let error = #expect(throws: PGKeepError.self) { try storage.openWrite(try StoragePath("file/child")) }
        #expect(error?.message.contains(directory.path + "/file") == true)
        #expect(try storage.readSmallFile(try StoragePath("file")) == [1])
    }
}

@Suite("MemoryStorage")
struct MemoryStorageTests {
    @Test("a directory disappears with its last file, as in an object store")
    func directoriesAreImplicit() throws {
        let storage = MemoryStorage()
        let path = try StoragePath("a/b/c")
        try storage.writeSmallFile(path, [1])
        try storage.remove(path)
        #expect(try storage.info(try StoragePath("a")) == nil)
        #expect(try storage.list(.root).isEmpty)
    }

    @Test("writing below a file or over a directory is refused")
    func conflicts() throws {
        let storage = MemoryStorage()
        try storage.writeSmallFile(try StoragePath("a/b"), [1])
        #expect(throws: PGKeepError.self) { try storage.openWrite(try StoragePath("a/b/c")) }
        #expect(throws: PGKeepError.self) { try storage.openWrite(try StoragePath("a")) }
        #expect(try storage.readSmallFile(try StoragePath("a/b")) == [1])
    }
}
