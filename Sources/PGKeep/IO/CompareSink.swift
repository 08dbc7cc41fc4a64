#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A sink that checks that the stream it receives is, byte for byte, the content of a reference
/// source: each slice written is compared with the next bytes read from the reference through one
/// fixed, reused buffer, so neither side is ever held whole.
///
/// The first difference throws `CompareSink.Mismatch` out of `write`, which stops the chain there.
/// After the chain has finished, `finish()` checks that the reference has nothing left: only then
/// are the two streams proven identical, of the same length.
public final class CompareSink: ByteSink {
    /// The streams differ at byte `offset` (in length when one of them ends there).
    public struct Mismatch: Error, Equatable {
        public let offset: UInt64
    }

    private let reference: ByteSource
    private let buffer: IOBuffer
    /// Bytes found identical so far.
    public private(set) var compared: UInt64 = 0

    /// - Parameters:
    ///   - reference: read from its current position; left wherever the comparison stopped.
    ///   - buffer: the reference's bytes are read into it, at most its size at a time.
    public init(reference: ByteSource, buffer: IOBuffer) {
        self.reference = reference
        self.buffer = buffer
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let want = min(bytes.count - offset, buffer.count)
            let n = try reference.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<want]))
            // The reference ends before the stream does.
            guard n > 0 else { throw Mismatch(offset: compared) }
            guard memcmp(buffer.bytes.baseAddress!, bytes.baseAddress! + offset, n) == 0 else {
                throw Mismatch(offset: compared)
            }
            offset += n
            compared += UInt64(n)
        }
    }

    /// The stream has ended: throws `Mismatch` when the reference goes on.
    public func finish() throws {
        let n = try reference.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<1]))
        if n > 0 { throw Mismatch(offset: compared) }
    }
}
