import Foundation
import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig
import TestSupport

/// Repository writes go through a `DirectStage` (O_DIRECT for each full stage, the tail through
/// the page cache): whatever the sizes of the pieces written, the committed file holds exactly
/// the bytes given, in order, and an aborted write leaves nothing.
@Suite("Direct writes")
struct DirectStageTests {
    static let stage = DirectStage.size

    /// Bytes that differ at every offset, so a misplaced or repeated piece cannot go unnoticed.
    static func pattern(_ count: Int) -> [UInt8] {
        precondition(count <= longPattern.count)
        return Array(longPattern[0..<count])
    }

    /// Made once: building megabytes byte by byte is slow in a debug build.
    static let longPattern: [UInt8] = {
        var bytes = [UInt8](repeating: 0, count: 4 * stage)
        bytes.withUnsafeMutableBufferPointer { buffer in
            for index in buffer.indices { buffer[index] = UInt8(truncatingIfNeeded: index &* 31 &+ index >> 12) }
        }
        return bytes
    }()

    static let sizes = [0, 1, 4095, 4096, stage - 1, stage, stage + 1, 2 * stage + 4096, 3 * stage + 12_345]

    @Test("a committed file holds exactly the bytes written, in pieces of any size", arguments: sizes)
    func exactBytes(_ size: Int) throws {
        let directory = try TemporaryDirectory("direct")
        let storage = PosixStorage(root: directory.path, directWrites: true)
        let bytes = Self.pattern(size)
        for piece in [7_777, 65_536, Self.stage + 3, max(size, 1)] {
            let path = try StoragePath("piece-\(piece)")
            let writer = try storage.openWrite(path)
            var offset = 0
            while offset < size {
                let n = min(piece, size - offset)
                try bytes[offset..<offset + n].withUnsafeBytes { try writer.write($0) }
                offset += n
            }
            try writer.commit()
            let written = try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory.path("piece-\(piece)"))))
            #expect(written.count == size, "size with pieces of \(piece)")
            #expect(written == bytes, "content with pieces of \(piece)")
        }
        #expect(try Posix.listDirectory(directory.path)?.contains { $0.contains(PosixStorage.temporaryMarker) } == false)
    }

    @Test("an aborted write of several stages leaves no file, visible or temporary")
    func abortLeavesNothing() throws {
        let directory = try TemporaryDirectory("direct")
        let storage = PosixStorage(root: directory.path, directWrites: true)
        let writer = try storage.openWrite(try StoragePath("dir/file"))
        try Self.pattern(3 * Self.stage + 10).withUnsafeBytes { try writer.write($0) }
        writer.abort()
        #expect(try Posix.listDirectory(directory.path + "/dir") == [])
    }

    @Test("a direct write the file system refuses (unaligned offset) goes through the page cache instead")
    func refusedDirectWriteFallsBack() throws {
        let directory = try TemporaryDirectory("direct")
        let path = directory.path("file")
        let sink = try FileSink(creating: path, mode: 0o600)
        let head = Self.pattern(100)
        try head.withUnsafeBytes { try sink.write($0) }
        // From offset 100 on, every stage is written at an offset O_DIRECT refuses (EINVAL on
        // block-device file systems): the stage must notice and write the bytes anyway.
        sink.stage = DirectStage.take()
        let rest = Self.pattern(2 * Self.stage + 999).reversed() as [UInt8]
        try rest.withUnsafeBytes { try sink.write($0) }
        try sink.sync()
        try sink.close()
        let written = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(written == head + rest)
        #expect(sink.written == UInt64(head.count + rest.count))
    }

    @Test("a file closed without sync still gets the staged tail")
    func closeDrainsTheStage() throws {
        let directory = try TemporaryDirectory("direct")
        let path = directory.path("file")
        let sink = try FileSink(creating: path, mode: 0o600)
        sink.stage = DirectStage.take()
        let bytes = Self.pattern(Self.stage + 5_000)
        try bytes.withUnsafeBytes { try sink.write($0) }
        try sink.close()
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) == bytes)
    }

    @Test("bytes written after a sync land after the staged ones (the stage leaves the file position at the end)")
    func writesAfterSyncAppend() throws {
        let directory = try TemporaryDirectory("direct")
        let path = directory.path("file")
        let sink = try FileSink(creating: path, mode: 0o600)
        sink.stage = DirectStage.take()
        let bytes = Self.pattern(2 * Self.stage + 777)
        try bytes.withUnsafeBytes { try sink.write($0) }
        try sink.sync()
        let more: [UInt8] = Array(repeating: 0xEE, count: 10)
        try more.withUnsafeBytes { try sink.write($0) }
        try sink.close()
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) == bytes + more)
    }

    @Test("a sink dropped in the middle of staged writes stops its writer before the descriptor closes")
    func droppedWhileWriting() throws {
        let directory = try TemporaryDirectory("direct")
        let victimBytes: [UInt8] = Array(repeating: 0x5A, count: 4096)
        var reused = 0
        for round in 0..<20 {
            var sink: FileSink? = try FileSink(creating: directory.path("file\(round)"), mode: 0o600)
            sink!.stage = DirectStage.take()
            let number = sink!.fd.rawValue
            try Self.pattern(3 * Self.stage).withUnsafeBytes { try sink!.write($0) }
            sink = nil
            // The descriptor number is free now, and the next open takes it: a staged write that
            // outlived the sink would land in this file.
            let victim = try FileSink(creating: directory.path("victim\(round)"), mode: 0o600)
            if victim.fd.rawValue == number { reused += 1 }
            try victimBytes.withUnsafeBytes { try victim.write($0) }
            usleep(20_000)  // room for a stray write from a writer thread still running
            try victim.close()
            #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory.path("victim\(round)")))) == victimBytes,
                    "round \(round): the file that reused descriptor \(number) holds only its own bytes")
        }
        #expect(reused > 0, "the test needs the next open to reuse the dropped sink's descriptor number")
        // The stages went back to the pool and work again.
        let storage = PosixStorage(root: directory.path, directWrites: true)
        let writer = try storage.openWrite(try StoragePath("after"))
        let bytes = Self.pattern(2 * Self.stage + 1)
        try bytes.withUnsafeBytes { try writer.write($0) }
        try writer.commit()
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory.path("after")))) == bytes)
    }

    @Test("direct writes only on local block-device file systems: not NFS, SMB, tmpfs, FUSE, overlay or ZFS")
    func fileSystemPolicy() {
        for local: Int64 in [0xEF53, 0x5846_5342, 0x9123_683E, 0xF2F5_2010] {
            #expect(DirectStage.suits(fileSystemType: local), "\(String(local, radix: 16))")
        }
        for other: Int64 in [0x6969, 0xFF53_4D42, 0xFE53_4D42, 0x0102_1994, 0x6573_5546, 0x794C_7630, 0x2FC1_2FC1, -1] {
            #expect(!DirectStage.suits(fileSystemType: other), "\(String(other, radix: 16))")
        }
    }

    @Test("a repository root that does not exist yet is judged by its nearest existing ancestor")
    func policyOfMissingRoot() throws {
        let directory = try TemporaryDirectory("direct")
        #expect(DirectStage.suits(directory.path("not/there/yet")) == DirectStage.suits(directory.path))
        #expect(PosixStorage(root: directory.path("repo")).directWrites == DirectStage.suits(directory.path))
        #expect(PosixStorage(root: directory.path("repo"), directWrites: false).directWrites == false)
    }
}
