/// A pull parser for JSON read from a `ByteSource` through one fixed, reused buffer: the caller
/// asks for the value it expects next (`object`, `array`, `string`, `int64`, ...), so a document
/// is decoded straight into its final values without a tree of the whole document in memory.
///
/// Strict where decoding needs it: RFC 8259 syntax, UTF-8 validated strings (escapes including
/// surrogate pairs), integers only where integers are asked for (no fraction or exponent, range
/// checked). Unknown object members are skipped with `skipValue`, as `JSONDecoder` ignores them.
/// Every failure is a `PGKeepError(.formatInvalid)` naming the document and the byte offset.
///
/// `finishDocument` checks that only whitespace follows the value, up to the point the caller says
/// the document ends (a sealed file's trailer follows its body, `SealedFile`).
package struct JSONStreamReader: ~Copyable {
    private let source: ByteSource
    private let buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    /// Stream offset of `buffer[0]`.
    private var base = 0
    private var atEOF = false
    /// The document's name for messages.
    let name: String
    /// Longest string accepted: a damaged or hostile file must not make one value exhaust memory.
    static let maximumStringLength = 1 << 20
    private var scratch: [UInt8] = []

    package init(source: ByteSource, name: String, bufferSize: Int = 1 << 16) {
        self.source = source
        self.name = name
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Bytes consumed so far: the offset of the next byte.
    var offset: Int { base + start }

    // MARK: Containers

    /// Reads an object, calling `member` with each key; `member` must consume exactly one value
    /// (read it or `skipValue`).
    package mutating func object(_ member: (inout JSONStreamReader, String) throws -> Void) throws {
        try expect(UInt8(ascii: "{"), "an object")
        if try peekSignificant() == UInt8(ascii: "}") { start += 1; return }
        while true {
            guard try peekSignificant() == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let key = try stringValue()
            try expect(UInt8(ascii: ":"), "':' after a member name")
            try member(&self, key)
            switch try nextSignificant() {
            case UInt8(ascii: ","): continue
            case UInt8(ascii: "}"): return
            default: throw error("expected ',' or '}' in an object", back: 1)
            }
        }
    }

    /// Reads an array, calling `element` for each; `element` must consume exactly one value.
    package mutating func array(_ element: (inout JSONStreamReader) throws -> Void) throws {
        try expect(UInt8(ascii: "["), "an array")
        if try peekSignificant() == UInt8(ascii: "]") { start += 1; return }
        while true {
            try element(&self)
            switch try nextSignificant() {
            case UInt8(ascii: ","): continue
            case UInt8(ascii: "]"): return
            default: throw error("expected ',' or ']' in an array", back: 1)
            }
        }
    }

    /// Whether the next value is `null`; consumes it when it is. For optional members (`JSONDecoder`
    /// reads `null` as absent).
    package mutating func consumeNull() throws -> Bool {
        guard try peekSignificant() == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    /// Skips one value of any kind.
    package mutating func skipValue() throws {
        switch try peekSignificant() {
        case UInt8(ascii: "{"): try object { reader, _ in try reader.skipValue() }
        case UInt8(ascii: "["): try array { reader in try reader.skipValue() }
        case UInt8(ascii: "\""): _ = try stringValue()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default: try number()
        }
    }

    // MARK: Scalars

    package mutating func string() throws -> String {
        guard try peekSignificant() == UInt8(ascii: "\"") else { throw error("expected a string") }
        return try stringValue()
    }

    package mutating func bool() throws -> Bool {
        switch try peekSignificant() {
        case UInt8(ascii: "t"): try literal("true"); return true
        case UInt8(ascii: "f"): try literal("false"); return false
        default: throw error("expected true or false")
        }
    }

    package mutating func int64() throws -> Int64 {
        let (negative, magnitude) = try number()
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { throw error("number out of range") }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { throw error("number out of range") }
        return Int64(magnitude)
    }

    package mutating func uint64() throws -> UInt64 {
        let (negative, magnitude) = try number()
        guard !negative || magnitude == 0 else { throw error("expected a number of at least 0") }
        return magnitude
    }

    package mutating func int() throws -> Int { Int(try int64()) }

    package mutating func uint32() throws -> UInt32 {
        let value = try uint64()
        guard let narrow = UInt32(exactly: value) else { throw error("number \(value) out of range") }
        return narrow
    }

    /// A string converted by `make`, which returns nil for text it does not accept (`what` names it).
    package mutating func string<T>(as what: String, _ make: (String) -> T?) throws -> T {
        let at = offset
        let text = try string()
        guard let value = make(text) else { throw error("invalid \(what) '\(text)'", at: at) }
        return value
    }

    /// Checks that only whitespace follows the document's value up to stream offset `bodyEnd`
    /// (pass nil to read to the end of the source). Reads through to the end of the source.
    package mutating func finishDocument(bodyEnd: () -> Int?) throws {
        var firstOther: Int?
        while true {
            if start == end { try fill(); if start == end { break } }
            let c = buffer[start]
            if firstOther == nil && !Self.isWhitespace(c) { firstOther = offset }
            start += 1
        }
        if let firstOther, firstOther < (bodyEnd() ?? Int.max) {
            throw error("unexpected data after the document", at: firstOther)
        }
    }

    /// Reads the source to its end without parsing (after an error, to check a seal).
    package mutating func drain() throws {
        while true {
            start = end
            try fill()
            if start == end { return }
        }
    }

    /// A decoding error at the current offset (or `at`).
    package func error(_ what: String, at: Int? = nil, back: Int = 0) -> PGKeepError {
        PGKeepError(.formatInvalid, "'\(name)' cannot be decoded: \(what) at byte \(at ?? offset - back)")
    }

    // MARK: Private

    private static func isWhitespace(_ c: UInt8) -> Bool {
        c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09
    }

    /// Refills the buffer when it is consumed; at the end of the source `start == end` after it.
    private mutating func fill() throws {
        guard start == end, !atEOF else { return }
        base += end
        start = 0
        end = 0
        let n = try source.read(into: buffer)
        if n == 0 { atEOF = true }
        end = n
    }

    private mutating func peekByte() throws -> UInt8? {
        if start == end { try fill() }
        return start < end ? buffer[start] : nil
    }

    private mutating func nextByte() throws -> UInt8 {
        guard let c = try peekByte() else { throw error("unexpected end of the document") }
        start += 1
        return c
    }

    private mutating func peekSignificant() throws -> UInt8 {
        while true {
            guard let c = try peekByte() else { throw error("unexpected end of the document") }
            if !Self.isWhitespace(c) { return c }
            start += 1
        }
    }

    private mutating func nextSignificant() throws -> UInt8 {
        let c = try peekSignificant()
        start += 1
        return c
    }

    private mutating func expect(_ c: UInt8, _ what: String) throws {
        guard try peekSignificant() == c else { throw error("expected \(what)") }
        start += 1
    }

    private mutating func literal(_ word: StaticString) throws {
        let at = offset
        for expected in UnsafeRawBufferPointer(staticString: word) {
            guard try nextByte() == expected else { throw error("invalid literal", at: at) }
        }
    }

    /// An integer: optional '-', digits without a leading zero; fractions and exponents are refused
    /// (no manifest value has them).
    @discardableResult
    private mutating func number() throws -> (negative: Bool, magnitude: UInt64) {
        let at = offset
        var negative = false
        if try peekSignificant() == UInt8(ascii: "-") { negative = true; start += 1 }
        var magnitude: UInt64 = 0
        var count = 0
        while let c = try peekByte(), c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") {
            if count == 1 && magnitude == 0 { throw error("number with a leading zero", at: at) }
            let (times, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (plus, o2) = times.addingReportingOverflow(UInt64(c - UInt8(ascii: "0")))
            if o1 || o2 { throw error("number out of range", at: at) }
            magnitude = plus
            count += 1
            start += 1
        }
        guard count > 0 else { throw error("expected a value", at: at) }
        if let c = try peekByte(), c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            throw error("expected an integer", at: at)
        }
        return (negative, magnitude)
    }

    /// The string starting at the opening quote.
    private mutating func stringValue() throws -> String {
        let at = offset
        start += 1  // the opening quote (peeked by the caller)
        scratch.removeAll(keepingCapacity: true)
        while true {
            if start == end { try fill() }
            guard start < end else { throw error("unterminated string", at: at) }
            // Copy the run of plain bytes at once.
            var i = start
            while i < end {
                let c = buffer[i]
                if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") || c < 0x20 { break }
                i += 1
            }
            scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[start..<i]))
            start = i
            if scratch.count > Self.maximumStringLength { throw error("string longer than \(Self.maximumStringLength) bytes", at: at) }
            guard i < end else { continue }
            let c = buffer[i]
            start += 1
            if c == UInt8(ascii: "\"") { break }
            if c < 0x20 { throw error("control character in a string", back: 1) }
            try escape()
        }
        guard let text = String(validating: scratch, as: UTF8.self) else { throw error("invalid UTF-8 in a string", at: at) }
        return text
    }

    /// After a backslash: one escape, appended to `scratch` as UTF-8.
    private mutating func escape() throws {
        let c = try nextByte()
        switch c {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scratch.append(c)
        case UInt8(ascii: "b"): scratch.append(0x08)
        case UInt8(ascii: "f"): scratch.append(0x0C)
        case UInt8(ascii: "n"): scratch.append(0x0A)
        case UInt8(ascii: "r"): scratch.append(0x0D)
        case UInt8(ascii: "t"): scratch.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = UInt32(try hex4())
            if (0xD800...0xDBFF).contains(scalar) {
                guard try nextByte() == UInt8(ascii: "\\"), try nextByte() == UInt8(ascii: "u") else {
                    throw error("unpaired surrogate in a string")
                }
                let low = UInt32(try hex4())
                guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate in a string") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
            guard let unicode = Unicode.Scalar(scalar) else { throw error("unpaired surrogate in a string") }
            scratch.append(contentsOf: UTF8.encode(unicode)!)
        default:
            throw error("invalid escape in a string", back: 1)
        }
    }

    private mutating func hex4() throws -> UInt16 {
        var value: UInt16 = 0
        for _ in 0..<4 {
            let c = try nextByte()
            let digit: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = c - UInt8(ascii: "A") + 10
            default: throw error("invalid \\u escape", back: 1)
            }
            value = value << 4 | UInt16(digit)
        }
        return value
    }
}
