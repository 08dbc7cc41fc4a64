/// An observer filter that counts the bytes passing through it and hands them on unchanged.
///
/// Placed before a compressor it measures the original size; placed after, the stored size.
public final class ByteCountFilter: Filter {
    /// Bytes processed since the last `reset`. Final after `finish`.
    public private(set) var count: UInt64 = 0

    /// Creates a counter at zero.
    public init() {}

    /// Counts `input`, then passes it to `next`.
    public func process(_ input: UnsafeRawBufferPointer, next: ByteSink) throws {
        count += UInt64(input.count)
        try next.write(input)
    }

    /// Holds no bytes and has nothing to check.
    public func finish(next: ByteSink) throws {}

    /// Sets the count back to zero.
    public func reset() throws {
        count = 0
    }
}
