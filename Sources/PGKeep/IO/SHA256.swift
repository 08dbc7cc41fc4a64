import CCrypto

/// Incremental SHA-256 over OpenSSL's EVP interface.
///
/// The `EVP_MD_CTX` is created once and reused: `reset()` re-initialises it in place, so a worker
/// that hashes thousands of files allocates one context, not one per file.
///
/// Life cycle: `update` any number of times, then `finalize` once; after `finalize` the hasher
/// must be `reset()` before the next `update` or `finalize`. Skipping the `reset` throws an
/// `internal` error rather than silently starting over, so the defect is caught instead of
/// yielding the digest of a stream from the middle.
///
/// Not `Sendable`: one owner, one thread.
public final class SHA256Hasher {
    private let context: OpaquePointer
    private var finalized = false

    /// Creates the OpenSSL context and starts a new digest.
    public init() throws(PGKeepError) {
        guard let context = EVP_MD_CTX_new() else {
            throw PGKeepError(.crypto, "SHA-256: EVP_MD_CTX_new could not allocate a digest context",
                              hint: "the system is out of memory; reduce process-max or free memory, then run the command again")
        }
        self.context = context
        try reset()
    }

    deinit { EVP_MD_CTX_free(context) }

    /// Starts a new digest, keeping the context's memory.
    public func reset() throws(PGKeepError) {
        try checkOpenSSL(EVP_DigestInit_ex(context, EVP_sha256(), nil), "EVP_DigestInit_ex")
        finalized = false
    }

    /// Adds `bytes` to the digest.
    public func update(_ bytes: UnsafeRawBufferPointer) throws(PGKeepError) {
        if finalized { throw Self.usedAfterFinalize }
        // An empty buffer may have a nil base address; there is nothing to hash either way.
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        try checkOpenSSL(EVP_DigestUpdate(context, base, bytes.count), "EVP_DigestUpdate")
    }

    /// Completes the digest. Call `reset()` before hashing another stream.
    public func finalize() throws(PGKeepError) -> SHA256Digest {
        if finalized { throw Self.usedAfterFinalize }
        var output = SHA256Digest.zero
        var length: UInt32 = 0
        let rc = output.withUnsafeMutableBytes { raw in
            EVP_DigestFinal_ex(context, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), &length)
        }
        try checkOpenSSL(rc, "EVP_DigestFinal_ex")
        // EVP_sha256 always yields 32 bytes; anything else means a broken libcrypto, not bad input.
        precondition(length == UInt32(SHA256Digest.byteCount), "EVP_DigestFinal_ex returned \(length) bytes for SHA-256")
        finalized = true
        return output
    }

    private static let usedAfterFinalize = PGKeepError(.internal, "SHA-256: the hasher was used after finalize without reset",
                                                       hint: "this is a defect in pgkeep; report it")
}

/// A SHA-256 digest: 32 bytes held inline (no heap allocation), compared and hashed by value.
///
/// Stored as four words read big-endian from the bytes, so that equality, hashing and ordering are cheap and ordering
/// matches the byte-wise (and hex-string) order.
public struct SHA256Digest: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The size of a SHA-256 digest in bytes.
    public static let byteCount = 32

    private var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    /// All zero bits: the starting value that OpenSSL overwrites in `finalize` and `of`.
    package static let zero = SHA256Digest(w0: 0, w1: 0, w2: 0, w3: 0)

    private init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        self.w0 = w0; self.w1 = w1; self.w2 = w2; self.w3 = w3
    }

    /// Creates a digest from exactly 32 bytes, or nil when `bytes` has another length.
    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count == Self.byteCount else { return nil }
        self = .zero
        withUnsafeMutableBytes { $0.copyMemory(from: bytes) }
    }

    /// Parses 64 hexadecimal digits (either case; `hex` always writes lower case). Returns nil for
    /// any other length or a non-hex character.
    public init?(hex: String) {
        // Manifests hold many digests: parse the UTF-8 bytes, not Characters. `withUTF8` needs a
        // mutable copy only to make a bridged string contiguous; native strings are not copied.
        var text = hex
        guard let value = text.withUTF8({ Self.parse(hex: $0) }) else { return nil }
        self = value
    }

    private static func parse(hex: UnsafeBufferPointer<UInt8>) -> SHA256Digest? {
        guard hex.count == byteCount * 2 else { return nil }
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        for wordIndex in 0..<4 {
            var word: UInt64 = 0
            for offset in 0..<16 {
                guard let nibble = nibbleValue(hex[wordIndex * 16 + offset]) else { return nil }
                word = word << 4 | UInt64(nibble)
            }
            switch wordIndex {
            case 0: words.0 = word
            case 1: words.1 = word
            case 2: words.2 = word
            default: words.3 = word
            }
        }
        return SHA256Digest(w0: words.0, w1: words.1, w2: words.2, w3: words.3)
    }

    private static func nibbleValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// The digest of a small in-memory buffer in one call (OpenSSL's one-shot `EVP_Digest`, no
    /// context to keep). For streams, use `SHA256Hasher` or `SHA256Filter`.
    public static func of(_ bytes: UnsafeRawBufferPointer) throws(PGKeepError) -> SHA256Digest {
        var output = SHA256Digest.zero
        var length: UInt32 = 0
        // A nil base address is fine for an empty buffer: OpenSSL returns early for count 0.
        let rc = output.withUnsafeMutableBytes { raw in
            EVP_Digest(bytes.baseAddress, bytes.count,
                       raw.baseAddress!.assumingMemoryBound(to: UInt8.self), &length, EVP_sha256(), nil)
        }
        try checkOpenSSL(rc, "EVP_Digest")
        precondition(length == UInt32(byteCount), "EVP_Digest returned \(length) bytes for SHA-256")
        return output
    }

    /// The digest of a small byte sequence (a string's UTF-8, an array).
    public static func of<Bytes: Sequence>(_ bytes: Bytes) throws(PGKeepError) -> SHA256Digest where Bytes.Element == UInt8 {
        let direct: Result<SHA256Digest, PGKeepError>? = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(PGKeepError) in try of(UnsafeRawBufferPointer(buffer)) }
        }
        if let direct { return try direct.get() }
        let copy = Array(bytes)
        let result: Result<SHA256Digest, PGKeepError> = copy.withUnsafeBytes { raw in
            Result { () throws(PGKeepError) in try of(raw) }
        }
        return try result.get()
    }

    /// The 32 bytes of the digest, in order.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Calls `body` with the 32 digest bytes, in order, without allocating.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var bigEndian = (w0.bigEndian, w1.bigEndian, w2.bigEndian, w3.bigEndian)
        return try Swift.withUnsafeBytes(of: &bigEndian) { try body($0) }
    }

    /// Lets OpenSSL write the 32 digest bytes in place (used by `SHA256Hasher.finalize`).
    mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        var bigEndian = (w0.bigEndian, w1.bigEndian, w2.bigEndian, w3.bigEndian)
        let result = try Swift.withUnsafeMutableBytes(of: &bigEndian) { try body($0) }
        w0 = UInt64(bigEndian: bigEndian.0)
        w1 = UInt64(bigEndian: bigEndian.1)
        w2 = UInt64(bigEndian: bigEndian.2)
        w3 = UInt64(bigEndian: bigEndian.3)
        return result
    }

    /// The digest as 64 lower-case hexadecimal digits, the form stored in manifests.
    public var hex: String {
        withUnsafeBytes { digest in
            String(unsafeUninitializedCapacity: Self.byteCount * 2) { out in
                let digits: StaticString = "0123456789abcdef"
                let table = digits.utf8Start
                for (index, byte) in digest.enumerated() {
                    out[2 * index] = table[Int(byte >> 4)]
                    out[2 * index + 1] = table[Int(byte & 0xF)]
                }
                return Self.byteCount * 2
            }
        }
    }

    /// The lower-case hex form.
    public var description: String { hex }

    /// Byte-wise order (the same as ordering the hex strings).
    public static func < (lhs: SHA256Digest, rhs: SHA256Digest) -> Bool {
        (lhs.w0, lhs.w1, lhs.w2, lhs.w3) < (rhs.w0, rhs.w1, rhs.w2, rhs.w3)
    }
}

/// The one place OpenSSL return codes are checked: the EVP digest calls return 1 on success and
/// 0 (or, for a few, a negative value) on failure.
///
/// The message names the call that failed. OpenSSL's own reason string is not included because the
/// `CCrypto` shim exposes only `evp.h`, not `err.h`.
private func checkOpenSSL(_ rc: Int32, _ function: String) throws(PGKeepError) {
    guard rc != 1 else { return }
    throw PGKeepError(.crypto, "SHA-256: OpenSSL \(function) failed (returned \(rc))",
                      hint: "the OpenSSL library (libcrypto) refused a SHA-256 operation; check that it is not in a restricted FIPS configuration without SHA-256, and report this if it persists")
}
