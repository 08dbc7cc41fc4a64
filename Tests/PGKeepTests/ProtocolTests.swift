import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepProtocol

/// The remote protocol's wire format (protocol.md): every frame type through the decoder whole,
/// byte by byte and in random splits, and each malformed header refused before its payload.
@Suite("Remote protocol frames")
struct ProtocolFrameTests {
    static let peer = "agent db1:8432"

    /// One frame of every type, each with a payload its type allows.
    static func everyType() -> [Frame] {
        var request = Fields()
        request.set(1, "read-file")
        request.set(2, "base/5/16384")
        request.set(3, UInt64(8192))
        request.set(4, true)
        var result = Fields()
        result.set(1, UInt64.max)
        return [
            Greeting(role: .client).frame(),
            Frame(.request, request: 1, payload: request.encoded()),
            Frame(.data, request: 1, payload: Array(repeating: 0xAB, count: 70_000)),
            Frame(.data, request: 1, flags: .end, payload: []),
            Credit(bytes: 1 << 20).frame(request: 1),
            Frame(.result, request: 1, payload: result.encoded()),
            RemoteError(PGKeepError(.fileMissing, "'base/5/1' is missing", hint: "it was dropped")).frame(request: 3),
            Frame(.cancel, request: 3),
            Frame(.ping, request: 0, payload: [1, 2, 3, 4, 5, 6, 7, 8]),
            Frame(.pong, request: 0, payload: [1, 2, 3, 4, 5, 6, 7, 8]),
        ]
    }

    /// Feeds `bytes` in pieces of the given sizes (the last piece takes the rest) and collects
    /// every frame.
    static func decode(_ bytes: [UInt8], pieces: [Int]) throws -> [Frame] {
        var decoder = FrameDecoder(peer: peer)
        var frames: [Frame] = []
        var offset = 0
        var sizes = pieces.makeIterator()
        while offset < bytes.count {
            let size = min(sizes.next() ?? bytes.count, bytes.count - offset)
            decoder.feed(bytes[offset..<(offset + size)])
            offset += size
            while let frame = try decoder.next() { frames.append(frame) }
        }
        #expect(decoder.buffered == 0)
        return frames
    }

    @Test("every frame type decodes to itself when the stream arrives whole")
    func wholeStream() throws {
        let frames = Self.everyType()
        #expect(try Self.decode(frames.flatMap { $0.encoded() }, pieces: []) == frames)
    }

    @Test("every frame type decodes to itself when the stream arrives one byte at a time")
    func byteByByte() throws {
        let frames = Self.everyType()
        let bytes = frames.flatMap { $0.encoded() }
        #expect(try Self.decode(bytes, pieces: Array(repeating: 1, count: bytes.count)) == frames)
    }

    @Test("every frame type decodes to itself at arbitrary split points (200 seeded splittings)")
    func randomSplits() throws {
        let frames = Self.everyType()
        let bytes = frames.flatMap { $0.encoded() }
        var random = SeededGenerator(seed: 0x9E37_79B9_7F4A_7C15)
        for _ in 0..<200 {
            let pieces = (0..<64).map { _ in Int.random(in: 1...300, using: &random) }
            #expect(try Self.decode(bytes, pieces: pieces) == frames)
        }
    }

    @Test("the header is big-endian: type, flags, two zero bytes, request id, payload length")
    func headerLayout() {
        let bytes = Frame(.data, request: 0x0102_0304, flags: .end, payload: [9, 9, 9]).encoded()
        #expect(bytes == [0x03, 0x01, 0, 0, 1, 2, 3, 4, 0, 0, 0, 3, 9, 9, 9])
    }

    /// The error `next()` throws once `header` (and nothing after it) is fed.
    static func refusal(_ header: [UInt8]) -> PGKeepError? {
        var decoder = FrameDecoder(peer: peer)
        decoder.feed(header)
        do {
            _ = try decoder.next()
            return nil
        } catch {
            return error
        }
    }

    static func header(type: UInt8, flags: UInt8 = 0, reserved: UInt8 = 0, request: UInt32, length: UInt32) -> [UInt8] {
        var bytes = [type, flags, reserved, 0]
        Wire.append(request, to: &bytes)
        Wire.append(length, to: &bytes)
        return bytes
    }

    @Test("a payload length over 1 MiB is refused from the header alone, before any payload is buffered")
    func oversizedPayloadRefused() throws {
        let error = try #require(Self.refusal(Self.header(type: 0x03, request: 1, length: UInt32(Frame.maxPayload) + 1)))
        #expect(error.code == .protocolInvalid)
        #expect(error.message.contains(Self.peer) && error.message.contains("1048577"), "\(error.message)")
    }

    @Test("an unknown frame type is refused, naming it")
    func unknownTypeRefused() throws {
        let error = try #require(Self.refusal(Self.header(type: 0x7F, request: 1, length: 0)))
        #expect(error.code == .protocolInvalid && error.message.contains("0x7f"))
    }

    @Test("reserved header bytes that are not zero are refused")
    func reservedBytesRefused() {
        #expect(Self.refusal(Self.header(type: 0x03, reserved: 1, request: 1, length: 0))?.code == .protocolInvalid)
    }

    @Test("a flag on a frame type that defines none (end on a result) is refused")
    func undefinedFlagRefused() {
        #expect(Self.refusal(Self.header(type: 0x05, flags: 0x01, request: 1, length: 0))?.code == .protocolInvalid)
        #expect(Self.refusal(Self.header(type: 0x03, flags: 0x02, request: 1, length: 0))?.code == .protocolInvalid)
    }

    @Test("connection frames on a request and request frames on request 0 are refused")
    func requestIDsRefused() {
        #expect(Self.refusal(Self.header(type: 0x01, request: 5, length: 0))?.code == .protocolInvalid)
        #expect(Self.refusal(Self.header(type: 0x08, request: 2, length: 0))?.code == .protocolInvalid)
        #expect(Self.refusal(Self.header(type: 0x02, request: 0, length: 0))?.code == .protocolInvalid)
        #expect(Self.refusal(Self.header(type: 0x03, request: 0, length: 0))?.code == .protocolInvalid)
    }

    @Test("a credit frame of other than 4 bytes, a ping over 8 and a cancel with a payload are refused")
    func typeBoundsRefused() {
        #expect(Self.refusal(Self.header(type: 0x04, request: 1, length: 3))?.code == .protocolInvalid)
        #expect(Self.refusal(Self.header(type: 0x04, request: 1, length: 5))?.code == .protocolInvalid)
        #expect(Self.refusal(Self.header(type: 0x08, request: 0, length: 9))?.code == .protocolInvalid)
        #expect(Self.refusal(Self.header(type: 0x07, request: 1, length: 1))?.code == .protocolInvalid)
    }

    @Test("a decoder holds at most one frame and the last piece fed: returned frames are let go")
    func decoderStaysBounded() throws {
        var decoder = FrameDecoder(peer: Self.peer)
        let frame = Frame(.data, request: 1, payload: Array(repeating: 1, count: Frame.maxPayload)).encoded()
        for _ in 0..<5 {
            decoder.feed(frame)
            #expect(try decoder.next() != nil)
            #expect(decoder.buffered == 0)
        }
    }
}

@Suite("Remote protocol messages")
struct ProtocolMessageTests {
    static let peer = "client backup1"

    @Test("fields of every kind round-trip; unknown tags are kept and ignored by readers")
    func fieldsRoundTrip() throws {
        var fields = Fields()
        fields.set(1, UInt64(0x0102_0304_0506_0708))
        fields.set(2, "tab\tand ünïcode")
        fields.set(3, false)
        fields.set(200, .bytes([0, 255]))
        let decoded = try Fields(decoding: fields.encoded(), what: "a request", peer: Self.peer)
        #expect(decoded == fields)
        #expect(decoded.unsigned(1) == 0x0102_0304_0506_0708 && decoded.string(2) == "tab\tand ünïcode" && decoded.bool(3) == false)
        #expect(decoded.string(1) == nil, "a field of another kind reads as absent")
    }

    @Test("a field given twice, tag 0, an unknown kind, a boolean of 2 and a cut-short value are refused")
    func malformedFieldsRefused() {
        func refused(_ bytes: [UInt8]) -> Bool {
            (try? Fields(decoding: bytes, what: "a request", peer: Self.peer)) == nil
        }
        #expect(refused([1, 3, 1, 1, 3, 0]))                 // tag 1 twice
        #expect(refused([0, 3, 1]))                          // tag 0
        #expect(refused([1, 9, 0]))                          // kind 9
        #expect(refused([1, 3, 2]))                          // boolean 2
        #expect(refused([1, 1, 0, 0, 0]))                    // unsigned cut short
        #expect(refused([1, 2, 0, 0, 0, 5, 1, 2]))           // 5 bytes claimed, 2 follow
        #expect(refused([1]))                                // header cut short
    }

    @Test("a greeting round-trips; peers agree on the lower minor of one major")
    func greetingAgreesOnMinor() throws {
        let client = Greeting(role: .client, version: ProtocolVersion(major: 1, minor: 3), software: "0.7.0")
        let agent = try Greeting(Greeting(role: .agent, version: ProtocolVersion(major: 1, minor: 1), software: "0.6.0").frame(), peer: "agent db1")
        #expect(agent.role == .agent && agent.software == "0.6.0" && agent.version == ProtocolVersion(major: 1, minor: 1))
        #expect(try client.agree(with: agent, peerName: "agent db1") == ProtocolVersion(major: 1, minor: 1))
    }

    @Test("another major is refused with protocol-version, naming both versions and both releases")
    func majorMismatchRefused() throws {
        let client = Greeting(role: .client, version: ProtocolVersion(major: 1, minor: 0), software: "0.5.0")
        let agent = Greeting(role: .agent, version: ProtocolVersion(major: 2, minor: 0), software: "1.0.0")
        let error = #expect(throws: PGKeepError.self) { _ = try client.agree(with: agent, peerName: "agent db1:8432") }
        #expect(error?.code == .protocolVersion)
        #expect(error?.message == "agent db1:8432 (pgkeep 1.0.0) speaks pgkeep protocol 2.0, this client (pgkeep 0.5.0) speaks 1.0: different major versions cannot talk")
    }

    @Test("a greeting without the magic (an HTTP client, say) and a peer in the same role are refused")
    func strangersRefused() throws {
        let http = Frame(.hello, request: 0, payload: Array("GET / HTTP/1.1\r\n".utf8))
        #expect(throws: PGKeepError.self) { _ = try Greeting(http, peer: Self.peer) }
        let request = Frame(.request, request: 1, payload: [])
        #expect(throws: PGKeepError.self) { _ = try Greeting(request, peer: Self.peer) }
        let other = try Greeting(Greeting(role: .client).frame(), peer: Self.peer)
        #expect(throws: PGKeepError.self) { _ = try Greeting(role: .client).agree(with: other, peerName: Self.peer) }
    }

    @Test("an error frame carries code, message and hint; a code unknown here arrives as internal with its number")
    func errorRoundTrip() throws {
        let sent = PGKeepError(.diskFull, "unable to write '/repo/x': No space left on device", hint: "free space")
        let received = try RemoteError(RemoteError(sent).frame(request: 7), peer: "agent repo1").error
        #expect(received.code == .diskFull && received.message == sent.message && received.hint == "free space")
        var fields = Fields()
        fields.set(1, UInt64(87))
        fields.set(2, "something new")
        let unknown = try RemoteError(Frame(.error, request: 7, payload: fields.encoded()), peer: "agent repo1").error
        #expect(unknown.code == .internal && unknown.message.contains("error 87"))
    }

    @Test("a credit frame carries its byte count")
    func creditRoundTrip() throws {
        var decoder = FrameDecoder(peer: Self.peer)
        decoder.feed(Credit(bytes: 123_456).frame(request: 9).encoded())
        let frame = try #require(try decoder.next())
        #expect(Credit(frame).bytes == 123_456 && frame.request == 9)
    }
}
