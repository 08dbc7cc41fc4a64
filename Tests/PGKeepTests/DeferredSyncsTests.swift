import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("Batched fsync of restored files")
struct DeferredSyncsTests {
    let directory: TemporaryDirectory

    init() throws {
        directory = try TemporaryDirectory("deferred-syncs")
    }

    func written(_ name: String, _ bytes: [UInt8], writeBehind: UInt64 = 0) throws -> FileSink {
        let sink = try FileSink(creating: directory.path(name))
        sink.writeBehind = writeBehind
        try bytes.withUnsafeBytes { try sink.write($0) }
        return sink
    }

    @Test("with limit 0 a file is synced and closed as it is handed over")
    func immediate() throws {
        let syncs = DeferredSyncs(limit: 0)
        let sink = try written("a", [1, 2, 3])
        try syncs.add(sink)
        #expect(!sink.isOpen)
        #expect(syncs.count == 0)
    }

    @Test("at most `limit` files wait, the oldest is synced first, and syncAll leaves none open")
    func boundedOldestFirst() throws {
        let syncs = DeferredSyncs(limit: 3)
        var sinks: [FileSink] = []
        for index in 0..<10 {
            let sink = try written("f\(index)", Samples.random(1000 + index, seed: UInt64(index)))
            sinks.append(sink)
            try syncs.add(sink)
            #expect(syncs.count == min(index + 1, 3))
            // Everything but the newest three has been synced and closed.
            for (position, earlier) in sinks.enumerated() {
                #expect(earlier.isOpen == (position > index - 3), "file \(position) after adding \(index)")
            }
        }
        try syncs.syncAll()
        #expect(syncs.count == 0)
        #expect(sinks.allSatisfy { !$0.isOpen })
        for index in 0..<10 {
            #expect(try directory.read("f\(index)") == Samples.random(1000 + index, seed: UInt64(index)))
        }
    }

    @Test("abandon closes the waiting files without failing")
    func abandon() throws {
        let syncs = DeferredSyncs(limit: 8)
        let sinks = try (0..<4).map { try written("g\($0)", [UInt8($0)]) }
        for sink in sinks { try syncs.add(sink) }
        syncs.abandon()
        #expect(syncs.count == 0)
        #expect(sinks.allSatisfy { !$0.isOpen })
    }

    @Test("write-behind starts writeback as the file grows and leaves its bytes unchanged",
          arguments: [UInt64(1), 4096, 1 << 20])
    func writeBehind(every: UInt64) throws {
        let bytes = Samples.random(300_000, seed: 9)
        let sink = try FileSink(creating: directory.path("big"))
        sink.writeBehind = every
        // Uneven slices, so the writeback ranges do not line up with the writes.
        var offset = 0
        for size in [1, 4095, 70_000, 100_001, 125_903] {
            try bytes[offset..<offset + size].withUnsafeBytes { try sink.write($0) }
            offset += size
        }
        let syncs = DeferredSyncs(limit: 2)
        try syncs.add(sink)
        try syncs.syncAll()
        #expect(try directory.read("big") == bytes)
    }

    @Test("each worker's share of the open-file limit is bounded and never negative", arguments: [1, 2, 64, 100_000])
    func limitShare(workers: Int) {
        let limit = DeferredSyncs.limit(workers: workers)
        #expect(limit >= 0 && limit <= 256)
    }
}
