/// A transformer filter's fixed output buffer: the codec writes into the free tail, and the filled
/// head is pushed downstream only when the codec needs more room or the stream ends.
///
/// Holding output across `process` calls (instead of pushing after every call) keeps downstream
/// writes large even when input arrives in small pieces, and the buffer is allocated once per
/// filter, never per call.
struct PendingOutput {
    /// The storage, allocated once and kept across `reset`.
    let storage: IOBuffer
    /// Bytes at the start of `storage` not yet pushed downstream.
    private(set) var used = 0

    /// Allocates `capacity` bytes.
    init(capacity: Int) {
        storage = IOBuffer(size: capacity)
    }

    /// The total size of the buffer.
    var capacity: Int { storage.count }

    /// The number of bytes the codec may still write.
    var freeCount: Int { storage.count - used }

    /// True when no byte can be written before a `flush`.
    var isFull: Bool { used == storage.count }

    /// Where the codec writes next.
    var freeStart: UnsafeMutableRawPointer { storage.bytes.baseAddress! + used }

    /// Records that the codec wrote `count` bytes at `freeStart`.
    mutating func commit(_ count: Int) {
        // A codec reporting more than it was given would already have overrun the heap.
        precondition(count >= 0 && count <= freeCount, "codec reported \(count) bytes written into \(freeCount) free")
        used += count
    }

    /// Pushes the pending bytes to `next` and empties the buffer.
    mutating func flush(to next: ByteSink) throws {
        guard used > 0 else { return }
        let pending = UnsafeRawBufferPointer(rebasing: storage.bytes[0..<used])
        // Emptied before the write so that a throwing sink cannot make us push the bytes twice.
        used = 0
        try next.write(pending)
    }

    /// Drops pending bytes (for `reset` after an abandoned stream).
    mutating func discard() { used = 0 }
}
