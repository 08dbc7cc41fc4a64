import Foundation
import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

/// A small metadata value standing in for the info files.
struct SealedNote: Codable, Equatable {
    var format: Int
    var title: String
    var values: [Int]
    var path: String
}

@Suite("Sealed files")
struct SealedFileTests {
    private let sample = SealedNote(format: 1, title: "zebra before apple", values: [3, 1, 2], path: "a/b")
    private let name = "/repo/archive/demo/archive.info"

    private func sealed() throws -> [UInt8] { try SealedFile.seal(sample) }

    private func openError(_ bytes: [UInt8]) -> PGKeepError? {
        #expect(throws: PGKeepError.self) { try SealedFile.open(SealedNote.self, from: bytes, name: name) }
    }

    // MARK: seal and open

    @Test("seal then open gives the value back")
    func roundTrip() throws {
        #expect(try SealedFile.open(SealedNote.self, from: try sealed(), name: name) == sample)
    }

    @Test("a sealed file is sorted pretty JSON, a newline and 'sha256 <hex of the body>'")
    func layout() throws {
        let bytes = try sealed()
        let text = String(decoding: bytes, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.last == "")  // ends with a newline
        let trailer = try #require(lines.dropLast().last)
        #expect(trailer.hasPrefix("sha256 "))
        let body = Array(bytes[0..<(bytes.count - trailer.utf8.count - 2)])
        #expect(String(trailer.dropFirst("sha256 ".count)) == (try SHA256Digest.of(body).hex))
        // Keys sorted, pretty-printed, slashes unescaped.
        let bodyText = String(decoding: body, as: UTF8.self)
        let order = ["\"format\"", "\"path\"", "\"title\"", "\"values\""].map { bodyText.range(of: $0)!.lowerBound }
        #expect(order == order.sorted())
        #expect(bodyText.contains("\n  \"format\" : 1"))
        #expect(bodyText.contains("\"a/b\""))
    }

    @Test("sealing the same value twice gives identical bytes")
    func deterministic() throws {
        #expect(try sealed() == (try sealed()))
    }

    @Test("a flipped byte anywhere in the body is a checksum mismatch")
    func bodyFlip() throws {
        let bytes = try sealed()
        let bodyEnd = bytes.count - (7 + 64 + 1) - 1
        for offset in 0..<bodyEnd {
            var damaged = bytes
            damaged[offset] ^= 0x01
            let error = try #require(openError(damaged), "offset \(offset)")
            #expect(error.code == .checksumMismatch, "offset \(offset)")
            #expect(error.message.contains(name))
        }
    }

    @Test("a flipped byte in the trailer is a checksum mismatch or a format error, never accepted")
    func trailerFlip() throws {
        let bytes = try sealed()
        let trailerStart = bytes.count - (7 + 64 + 1) - 1  // the separating newline
        for offset in trailerStart..<bytes.count {
            var damaged = bytes
            damaged[offset] ^= 0x01
            let error = try #require(openError(damaged), "offset \(offset)")
            #expect([ErrorCode.checksumMismatch, .formatInvalid].contains(error.code), "offset \(offset): \(error)")
        }
        // A changed hex digit of the recorded checksum is a mismatch naming both values.
        var digit = bytes
        digit[bytes.count - 2] = digit[bytes.count - 2] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        let mismatch = try #require(openError(digit))
        #expect(mismatch.code == .checksumMismatch)
        #expect(mismatch.message.contains("recorded") && mismatch.message.contains("computed"))
        // A damaged "sha256 " prefix is a malformed trailer.
        var prefix = bytes
        prefix[trailerStart + 1] = UInt8(ascii: "S")
        #expect(openError(prefix)?.code == .formatInvalid)
    }

    @Test("every truncation of a sealed file is refused as a format error naming the file")
    func truncated() throws {
        let bytes = try sealed()
        for length in 0..<bytes.count {
            let error = try #require(openError(Array(bytes[0..<length])), "length \(length)")
            #expect(error.code == .formatInvalid, "length \(length)")
            #expect(error.message.contains(name), "length \(length)")
        }
        #expect(openError([])?.message.contains("truncated") == true)
    }

    @Test("a valid seal over a body of the wrong shape is a format error")
    func wrongShape() throws {
        let other = try SealedFile.seal(["unrelated": true])
        #expect(openError(other)?.code == .formatInvalid)
    }

    // MARK: load and save with the .copy twin

    struct OnDisk {
        let directory: TemporaryDirectory
        let storage: PosixStorage
        let path = try! StoragePath("archive/demo/archive.info")
        let copy = try! StoragePath("archive/demo/archive.info.copy")

        init() throws {
            directory = try TemporaryDirectory("sealed")
            storage = PosixStorage(root: directory.path)
        }

        func flipByte(_ path: StoragePath, at offset: Int = 3) throws {
            var bytes = try #require(try storage.readSmallFile(path))
            bytes[offset] ^= 0x20
            try storage.writeSmallFile(path, bytes)
        }

        func load(_ warnings: inout [String]) throws -> SealedNote? {
            try SealedFile.load(SealedNote.self, from: path, in: storage) { warnings.append($0) }
        }
    }

    @Test("save writes the file and an identical .copy")
    func saveWritesTwin() throws {
        let disk = try OnDisk()
        try SealedFile.save(sample, to: disk.path, in: disk.storage)
        let main = try #require(try disk.storage.readSmallFile(disk.path))
        #expect(main == (try sealed()))
        #expect(try disk.storage.readSmallFile(disk.copy) == main)
        var warnings: [String] = []
        #expect(try disk.load(&warnings) == sample)
        #expect(warnings.isEmpty)
    }

    @Test("load falls back to the .copy when the main file is corrupt, with a warning")
    func fallbackCorrupt() throws {
        let disk = try OnDisk()
        try SealedFile.save(sample, to: disk.path, in: disk.storage)
        try disk.flipByte(disk.path)
        var warnings: [String] = []
        #expect(try disk.load(&warnings) == sample)
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains(disk.storage.describe(disk.copy)) == true)
        #expect(warnings.first?.contains("checksum mismatch") == true)
    }

    @Test("load falls back to the .copy when the main file is missing, with a warning")
    func fallbackMissing() throws {
        let disk = try OnDisk()
        try SealedFile.save(sample, to: disk.path, in: disk.storage)
        try disk.storage.remove(disk.path)
        var warnings: [String] = []
        #expect(try disk.load(&warnings) == sample)
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("missing") == true)
        #expect(warnings.first?.contains(disk.storage.describe(disk.copy)) == true)
    }

    @Test("load fails naming both files when the main file and the copy are damaged")
    func bothDamaged() throws {
        let disk = try OnDisk()
        try SealedFile.save(sample, to: disk.path, in: disk.storage)
        try disk.flipByte(disk.path)
        try disk.storage.writeSmallFile(disk.copy, Array((try sealed()).dropLast(10)))
        var warnings: [String] = []
        let error = try #require(#expect(throws: PGKeepError.self) { try disk.load(&warnings) })
        #expect(error.message.contains("'\(disk.storage.describe(disk.path))'"))
        #expect(error.message.contains("'\(disk.storage.describe(disk.copy))'"))
        #expect(error.hint?.contains("both") == true)
        #expect(warnings.isEmpty)
    }

    @Test("load fails naming the missing copy when the main file is damaged and has no twin")
    func damagedWithoutCopy() throws {
        let disk = try OnDisk()
        try SealedFile.save(sample, to: disk.path, in: disk.storage)
        try disk.flipByte(disk.path)
        try disk.storage.remove(disk.copy)
        var warnings: [String] = []
        let error = try #require(#expect(throws: PGKeepError.self) { try disk.load(&warnings) })
        #expect(error.code == .checksumMismatch)
        #expect(error.message.contains(disk.storage.describe(disk.path)))
        #expect(error.message.contains(disk.storage.describe(disk.copy)) && error.message.contains("missing"))
    }

    @Test("load fails naming both problems when the main file is missing and the copy is damaged")
    func missingWithDamagedCopy() throws {
        let disk = try OnDisk()
        try SealedFile.save(sample, to: disk.path, in: disk.storage)
        try disk.storage.remove(disk.path)
        try disk.flipByte(disk.copy)
        var warnings: [String] = []
        let error = try #require(#expect(throws: PGKeepError.self) { try disk.load(&warnings) })
        #expect(error.code == .checksumMismatch)
        #expect(error.message.contains("'\(disk.storage.describe(disk.path))' is missing"))
        #expect(error.message.contains("'\(disk.storage.describe(disk.copy))' checksum mismatch"))
        #expect(warnings.isEmpty)
    }

    @Test("load returns nil without a warning when neither file exists")
    func neither() throws {
        let disk = try OnDisk()
        var warnings: [String] = []
        #expect(try disk.load(&warnings) == nil)
        #expect(warnings.isEmpty)
    }

    @Test("a good main file wins over a damaged copy, silently")
    func goodMainDamagedCopy() throws {
        let disk = try OnDisk()
        try SealedFile.save(sample, to: disk.path, in: disk.storage)
        try disk.flipByte(disk.copy)
        var warnings: [String] = []
        #expect(try disk.load(&warnings) == sample)
        #expect(warnings.isEmpty)
    }

    // MARK: format value

    @Test("InfoFiles refuses an archive.info or backup.info with another format value")
    func wrongFormat() throws {
        let disk = try OnDisk()
        let layout = try RepositoryLayout(stanza: "demo")
        let identity = DatabaseIdentity(id: 1, systemIdentifier: 42, version: 15, controlVersion: 1300, catalogVersion: 202209061)
        var archive = ArchiveInfo(current: identity)
        archive.format = RepositoryFormat.current + 1
        var backup = BackupInfo(current: identity)
        backup.format = 0
        try SealedFile.save(archive, to: layout.archiveInfo, in: disk.storage)
        try SealedFile.save(backup, to: layout.backupInfo, in: disk.storage)

        let archiveError = try #require(#expect(throws: PGKeepError.self) {
            try InfoFiles.loadArchiveInfo(disk.storage, layout, warn: { _ in })
        })
        #expect(archiveError.code == .repositoryInvalid)
        #expect(archiveError.message.contains("format \(RepositoryFormat.current + 1)"))
        #expect(archiveError.message.contains(disk.storage.describe(layout.archiveInfo)))

        let backupError = try #require(#expect(throws: PGKeepError.self) {
            try InfoFiles.loadBackupInfo(disk.storage, layout, warn: { _ in })
        })
        #expect(backupError.code == .repositoryInvalid)
        #expect(backupError.message.contains("format 0"))
    }

    @Test("InfoFiles reports a missing stanza with a stanza-create hint")
    func missingStanza() throws {
        let disk = try OnDisk()
        let layout = try RepositoryLayout(stanza: "demo")
        let error = try #require(#expect(throws: PGKeepError.self) {
            try InfoFiles.loadArchiveInfo(disk.storage, layout, warn: { _ in })
        })
        #expect(error.code == .stanzaMissing)
        #expect(error.hint?.contains("stanza-create") == true)
        #expect(#expect(throws: PGKeepError.self) { try InfoFiles.loadBackupInfo(disk.storage, layout, warn: { _ in }) }?.code == .stanzaMissing)
    }
}
