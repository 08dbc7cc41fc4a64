/// Writes JSON as a stream of tokens into a fixed, reused buffer that is handed to a sink whenever
/// it fills, so a document of any size costs one buffer of memory.
///
/// The bytes are exactly those of Foundation's `JSONEncoder` with
/// `[.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]`, the layout every sealed repository
/// file has had since format 1 (repo-layout.md §3):
///
///     {
///       "key" : "value",
///       "list" : [
///         1
///       ],
///       "none" : [
///
///       ]
///     }
///
/// - two spaces of indentation per level; `"key" : value` with a space on each side of the colon;
/// - an empty array or object still opens a line and closes on the next: `[\n\n<indent>]`;
/// - strings escape `"`, `\`, `\b`, `\f`, `\n`, `\r`, `\t` and other bytes below 0x20 as `\u00xx`;
///   `/` and all other bytes (UTF-8 included) are written as they are;
/// - integers in decimal.
///
/// Sorting keys is the caller's duty: it writes them in byte order (`ManifestJSON` does).
/// `SealedFileTests`/`ManifestJSONTests` prove the byte identity against `JSONEncoder`.
@usableFromInline
package struct JSONStreamWriter: ~Copyable {
    private let buffer: UnsafeMutableRawBufferPointer
    private var used = 0
    /// Members written so far in each open container, innermost last.
    private var counts: [Int] = []
    private let sink: (UnsafeRawBufferPointer) throws -> Void

    /// A writer with a `bufferSize`-byte buffer; `sink` receives each full buffer and, on `finish`,
    /// the rest. The memory passed to `sink` is only valid for the call.
    package init(bufferSize: Int = 1 << 16, sink: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        precondition(bufferSize >= 16, "the buffer must hold at least a few bytes")
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 16)
        self.sink = sink
    }

    deinit { buffer.deallocate() }

    // MARK: Structure

    /// Opens an object, as the value of the current key or array element (or the document).
    package mutating func beginObject() throws { try open(UInt8(ascii: "{")) }
    /// Closes the innermost object.
    package mutating func endObject() throws { try close(UInt8(ascii: "}")) }
    /// Opens an array.
    package mutating func beginArray() throws { try open(UInt8(ascii: "[")) }
    /// Closes the innermost array.
    package mutating func endArray() throws { try close(UInt8(ascii: "]")) }

    /// Starts a member of the innermost object: `"name" : `, to be followed by exactly one value.
    package mutating func key(_ name: StaticString) throws {
        try separate()
        try byte(UInt8(ascii: "\""))
        try raw(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        try raw(Self.keyValueSeparator)
    }

    /// A member whose name is data (an annotation's key), escaped like a string value.
    package mutating func key(named name: String) throws {
        try separate()
        var name = name
        try name.withUTF8 { try string($0) }
        // `string` closed the quote; the separator's leading quote is not wanted here.
        try raw(UnsafeRawBufferPointer(rebasing: Self.keyValueSeparator[1...]))
    }

    /// Starts an element of the innermost array; follow it with exactly one value.
    package mutating func element() throws { try separate() }

    /// Writes whatever is still buffered to the sink. The document must be complete.
    package mutating func finish() throws {
        precondition(counts.isEmpty, "JSON document finished with \(counts.count) open containers")
        try flush()
    }

    // MARK: Values

    package mutating func value(_ text: String) throws {
        var text = text
        try text.withUTF8 { try string($0) }
    }

    package mutating func value(_ number: Int64) throws {
        if number < 0 {
            try byte(UInt8(ascii: "-"))
            try digits(number.magnitude)
        } else {
            try digits(UInt64(number))
        }
    }

    package mutating func value(_ number: UInt64) throws { try digits(number) }
    package mutating func value(_ number: Int) throws { try value(Int64(number)) }
    package mutating func value(_ number: UInt32) throws { try digits(UInt64(number)) }

    package mutating func value(_ flag: Bool) throws {
        try raw(flag ? Self.trueText : Self.falseText)
    }

    /// A SHA-256 digest as its 64 lower-case hex digits, without building a `String`.
    package mutating func value(_ digest: SHA256Digest) throws {
        var text = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        try withUnsafeMutableBytes(of: &text) { out in
            digest.withUnsafeBytes { bytes in
                for (i, b) in bytes.enumerated() {
                    out[2 * i] = Self.hexDigits[Int(b >> 4)]
                    out[2 * i + 1] = Self.hexDigits[Int(b & 0xF)]
                }
            }
            try byte(UInt8(ascii: "\""))
            try raw(UnsafeRawBufferPointer(out))
            try byte(UInt8(ascii: "\""))
        }
    }

    // MARK: Private

    // `nonisolated(unsafe)`: each points at a string literal's bytes, which are read-only data of
    // the binary, so sharing them between threads is safe although the pointer type is not Sendable.
    nonisolated(unsafe) private static let keyValueSeparator = UnsafeRawBufferPointer(staticString: "\" : ")
    nonisolated(unsafe) private static let trueText = UnsafeRawBufferPointer(staticString: "true")
    nonisolated(unsafe) private static let falseText = UnsafeRawBufferPointer(staticString: "false")
    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private mutating func open(_ bracket: UInt8) throws {
        try byte(bracket)
        try byte(UInt8(ascii: "\n"))
        counts.append(0)
    }

    private mutating func close(_ bracket: UInt8) throws {
        precondition(!counts.isEmpty, "JSON container closed that was never opened")
        counts.removeLast()
        try byte(UInt8(ascii: "\n"))
        try indent()
        try byte(bracket)
    }

    // The helpers below run per token of every manifest entry. `@inline(__always)`: the callers
    // are this module's package methods, called from other modules, and without it the
    // optimizer left each helper a call per byte (seen as ~4% of a small-file backup's CPU).

    /// Before a member or element: a comma after the previous one, then the indentation.
    @inline(__always)
    private mutating func separate() throws {
        precondition(!counts.isEmpty, "JSON member outside a container")
        if counts[counts.count - 1] > 0 { try raw(Self.commaNewline) }
        counts[counts.count - 1] += 1
        try indent()
    }

    // `nonisolated(unsafe)`: read-only bytes of a string literal, as `keyValueSeparator`.
    nonisolated(unsafe) private static let commaNewline = UnsafeRawBufferPointer(staticString: ",\n")

    @inline(__always)
    private mutating func indent() throws {
        var spaces = 2 * counts.count
        while spaces > 0 {
            let n = min(spaces, Self.spaces.count)
            try raw(UnsafeRawBufferPointer(rebasing: Self.spaces[..<n]))
            spaces -= n
        }
    }

    // `nonisolated(unsafe)`: read-only bytes of a string literal, as `keyValueSeparator`.
    nonisolated(unsafe) private static let spaces = UnsafeRawBufferPointer(staticString: "                                ")

    private mutating func digits(_ number: UInt64) throws {
        var scratch = (UInt64(0), UInt64(0), UInt64(0))  // 24 bytes: UInt64.max has 20 digits
        try withUnsafeMutableBytes(of: &scratch) { out in
            var n = number
            var start = out.count
            repeat {
                start -= 1
                out[start] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
            } while n > 0
            try raw(UnsafeRawBufferPointer(rebasing: out[start...]))
        }
    }

    private mutating func string(_ utf8: UnsafeBufferPointer<UInt8>) throws {
        try byte(UInt8(ascii: "\""))
        var plainStart = 0
        for (i, c) in utf8.enumerated() where c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") {
            try raw(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: utf8[plainStart..<i])))
            plainStart = i + 1
            switch c {
            case UInt8(ascii: "\""): try raw(UnsafeRawBufferPointer(staticString: "\\\""))
            case UInt8(ascii: "\\"): try raw(UnsafeRawBufferPointer(staticString: "\\\\"))
            case 0x08: try raw(UnsafeRawBufferPointer(staticString: "\\b"))
            case 0x0C: try raw(UnsafeRawBufferPointer(staticString: "\\f"))
            case UInt8(ascii: "\n"): try raw(UnsafeRawBufferPointer(staticString: "\\n"))
            case UInt8(ascii: "\r"): try raw(UnsafeRawBufferPointer(staticString: "\\r"))
            case UInt8(ascii: "\t"): try raw(UnsafeRawBufferPointer(staticString: "\\t"))
            default:
                try raw(UnsafeRawBufferPointer(staticString: "\\u00"))
                try byte(Self.hexDigits[Int(c >> 4)])
                try byte(Self.hexDigits[Int(c & 0xF)])
            }
        }
        try raw(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: utf8[plainStart...])))
        try byte(UInt8(ascii: "\""))
    }

    @inline(__always)
    private mutating func byte(_ b: UInt8) throws {
        if used == buffer.count { try flush() }
        buffer[used] = b
        used += 1
    }

    @inline(__always)
    private mutating func raw(_ bytes: UnsafeRawBufferPointer) throws {
        if bytes.count <= buffer.count - used {  // the usual case: it fits
            UnsafeMutableRawBufferPointer(rebasing: buffer[used..<used + bytes.count]).copyMemory(from: bytes)
            used += bytes.count
            return
        }
        var rest = bytes
        while !rest.isEmpty {
            if used == buffer.count { try flush() }
            let n = min(rest.count, buffer.count - used)
            UnsafeMutableRawBufferPointer(rebasing: buffer[used..<used + n]).copyMemory(from: UnsafeRawBufferPointer(rebasing: rest[..<n]))
            used += n
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
        }
    }

    private mutating func flush() throws {
        guard used > 0 else { return }
        try sink(UnsafeRawBufferPointer(rebasing: buffer[..<used]))
        used = 0
    }
}

extension UnsafeRawBufferPointer {
    /// The UTF-8 bytes of a string literal (static storage, valid for the program's life).
    init(staticString: StaticString) {
        self.init(start: staticString.utf8Start, count: staticString.utf8CodeUnitCount)
    }
}
