import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepMover
import PGKeepEngine
import PGKeepConfig
import TestSupport

// In-memory ends for filter chains, and drivers that feed a filter its input in chosen slices
// (style item 17: streaming code is tested drip-fed, whole, and at random split points).

/// A source that serves a byte array, at most `maxRead` bytes per read (to mimic short reads).
final class MemorySource: ByteSource {
    let bytes: [UInt8]
    let maxRead: Int
    private(set) var offset = 0

    init(_ bytes: [UInt8], maxRead: Int = .max) {
        self.bytes = bytes
        self.maxRead = maxRead
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, maxRead, bytes.count - offset)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<offset + n]))
        }
        offset += n
        return n
    }
}

/// A sink that collects everything written to it, and counts the writes.
final class MemorySink: ByteSink {
    private(set) var bytes: [UInt8] = []
    private(set) var writes = 0

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        self.bytes.append(contentsOf: bytes)
        writes += 1
    }
}

/// How a driver slices its input.
enum Feeding: CustomStringConvertible, Sendable {
    /// The whole input in one call.
    case whole
    /// One byte per call.
    case drip
    /// Random slice lengths from 0 (an empty call) to `maxSlice`, from a seeded generator.
    case random(seed: UInt64, maxSlice: Int)

    var description: String {
        switch self {
        case .whole: return "whole"
        case .drip: return "drip"
        case let .random(seed, maxSlice): return "random(seed: \(seed), maxSlice: \(maxSlice))"
        }
    }

    /// The slice boundaries for an input of `count` bytes.
    func slices(count: Int) -> [Range<Int>] {
        switch self {
        case .whole:
            return [0..<count]
        case .drip:
            return (0..<count).map { $0..<$0 + 1 }
        case let .random(seed, maxSlice):
            var rng = SeededGenerator(seed: seed)
            var ranges: [Range<Int>] = []
            var start = 0
            while start < count {
                let length = min(Int.random(in: 0...maxSlice, using: &rng), count - start)
                ranges.append(start..<start + length)
                start += length
            }
            return ranges
        }
    }
}

/// Drives one filter directly: feeds `input` in the slices `feeding` gives, then finishes.
/// Each slice is copied to its own allocation, so a filter that kept a pointer to old input past
/// the call would read freed memory (and trip the address sanitizer when one is used).
func run(_ filter: Filter, _ input: [UInt8], feeding: Feeding = .whole) throws -> [UInt8] {
    let sink = MemorySink()
    try input.withUnsafeBytes { all in
        for range in feeding.slices(count: input.count) {
            let slice = UnsafeMutableRawBufferPointer.allocate(byteCount: range.count, alignment: 1)
            defer { slice.deallocate() }
            slice.copyMemory(from: UnsafeRawBufferPointer(rebasing: all[range]))
            try filter.process(UnsafeRawBufferPointer(slice), next: sink)
        }
    }
    try filter.finish(next: sink)
    return sink.bytes
}


/// Test inputs named for what is special about them.
enum Samples {
    /// `count` bytes of noise: incompressible, so compressed output is larger than the input.
    static func random(_ count: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededGenerator(seed: seed)
        var bytes = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            var word = rng.next()
            for _ in 0..<min(8, count - index) {
                bytes[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                index += 1
            }
        }
        return bytes
    }

    /// `count` bytes of repeated text with a little variation: compresses very well.
    static func compressible(_ count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + 64)
        var line = 0
        while bytes.count < count {
            bytes.append(contentsOf: "INSERT INTO t VALUES (\(line), 'pgkeep row');\n".utf8)
            line += 1
        }
        return Array(bytes.prefix(count))
    }
}
