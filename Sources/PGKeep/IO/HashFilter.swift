/// An observer filter that computes the SHA-256 of the bytes passing through it and hands them on
/// unchanged (no copy: the same buffer goes to `next`).
///
/// Placed before a compressor it hashes the original file; placed after, the stored bytes. Both can
/// sit in one chain, so one read pass yields both checksums.
public final class SHA256Filter: Filter {
    private let hasher: SHA256Hasher

    /// The digest of everything processed since the last `reset`; nil until `finish`.
    public private(set) var digest: SHA256Digest?

    /// Creates the filter and its OpenSSL context (once; `reset` reuses it).
    init() throws(PGKeepError) {
        hasher = try SHA256Hasher()
    }

    /// Hashes `input`, then passes it to `next`.
    public func process(_ input: UnsafeRawBufferPointer, next: ByteSink) throws {
        try hasher.update(input)
        try next.write(input)
    }

    /// Completes the digest. Holds no bytes, so pushes nothing.
    public func finish(next: ByteSink) throws {
        digest = try hasher.finalize()
    }

    /// Starts a new digest and clears the previous result.
    public func reset() throws {
        digest = nil
        try hasher.reset()
    }
}

extension SHA256Filter {
    /// The digest after `finish`; an internal error when read before (a programming mistake).
    public func finishedDigest() throws -> SHA256Digest {
        guard let digest else { throw PGKeepError(.internal, "SHA-256 digest read before the stream finished") }
        return digest
    }
}
