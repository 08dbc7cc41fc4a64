/// A fixed-size byte buffer allocated once and reused for every file a worker moves.
///
/// A class so that it has one owner and one `deinit`; it is deliberately not `Sendable`: each
/// worker thread owns its buffers.
public final class IOBuffer {
    public let bytes: UnsafeMutableRawBufferPointer

    public init(size: Int) {
        precondition(size > 0, "buffer size must be positive")
        bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
    }

    public var count: Int { bytes.count }

    deinit { bytes.deallocate() }
}
