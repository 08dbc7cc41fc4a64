/// Streaming I/O: bytes flow from a `ByteSource` through a chain of `Filter`s into a `ByteSink`,
/// one fixed, reused buffer at a time. No stage ever holds a whole file.
///
/// The model:
/// 1. A *source* fills the caller's buffer (`read(into:)`, 0 means end of stream).
/// 2. Each *filter* is handed a slice of bytes and pushes whatever output it has to the next stage.
///    Observers (byte count, SHA-256) pass the same bytes on unchanged; transformers (compression)
///    write into a buffer they own, allocated once, and push it downstream whenever it fills.
/// 3. `finish` flushes every stage in order and runs end-of-stream checks (a truncated compressed
///    frame is an error here, never silently short output).
/// 4. Results (digest, count) are read from the observer objects after `finish`.
/// 5. `reset` prepares a filter for the next file while keeping its C context and buffers, so a
///    worker creates its contexts once and reuses them for every file it moves.

/// Where bytes go: the next filter, or the final destination (a file being written).
public protocol ByteSink: AnyObject {
    /// Consumes all of `bytes` or throws. The memory is only valid for the duration of the call.
    func write(_ bytes: UnsafeRawBufferPointer) throws
}

/// Where bytes come from.
public protocol ByteSource: AnyObject {
    /// Reads up to `buffer.count` bytes into `buffer` and returns how many; 0 means end of stream.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

extension ByteSource {
    /// The rest of a small stream (metadata, configuration files) in memory. Stops once more than
    /// `limit` bytes were read, so a damaged or hostile file cannot exhaust memory: a result
    /// longer than `limit` means the stream was larger, and the caller decides what that means.
    public func readAll(upTo limit: Int) throws -> [UInt8] {
        var bytes: [UInt8] = []
        let chunk = IOBuffer(size: 1 << 16)
        while bytes.count <= limit {
            let n = try read(into: chunk.bytes)
            if n == 0 { break }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk.bytes[0..<n]))
        }
        return bytes
    }
}

/// One stage of a chain.
public protocol Filter: AnyObject {
    /// Consumes `input` and pushes any output it produces to `next`.
    func process(_ input: UnsafeRawBufferPointer, next: ByteSink) throws
    /// The input has ended: pushes what the filter still holds to `next` and checks the stream was
    /// complete. After `finish`, results are final until `reset`.
    func finish(next: ByteSink) throws
    /// Makes the filter ready for a new stream, reusing its contexts and buffers.
    func reset() throws
    /// `process(input)` then `finish`: `input` is all that is left of the stream. A filter that
    /// can do better knowing the end (zstd: one pass over a whole block, with parameters for its
    /// size) implements it; the default does the two steps.
    func processLast(_ input: UnsafeRawBufferPointer, next: ByteSink) throws
}

extension Filter {
    public func processLast(_ input: UnsafeRawBufferPointer, next: ByteSink) throws {
        try process(input, next: next)
        try finish(next: next)
    }
}
