import PGKeepCore

/// Turns the bytes read from a connection, in pieces of any size, into frames (protocol.md §2).
///
/// A header is judged as soon as its 12 bytes are in, before any of its payload is kept: an
/// unknown type, a reserved byte that is not zero, a flag the type does not define, a request id
/// the type does not allow, or a length over `Frame.maxPayload` (or the type's own bound) is a
/// `protocolInvalid` error, and the connection is not to be read further. So the decoder never
/// holds more than one frame and the piece that was fed last: feed what one read returned, then
/// take frames with `next()` until it returns nil.
public struct FrameDecoder: Sendable {
    /// Who sent the bytes, for error messages ("agent db1.example:8432").
    public let peer: String
    private var buffer: [UInt8] = []
    private var start = 0

    public init(peer: String) {
        self.peer = peer
    }

    /// Bytes fed and not yet returned as frames.
    public var buffered: Int { buffer.count - start }

    /// Keeps `bytes` for `next()`.
    public mutating func feed<Bytes: Sequence<UInt8>>(_ bytes: Bytes) {
        if start > 0, start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole frame, or nil when more bytes are needed.
    public mutating func next() throws(PGKeepError) -> Frame? {
        guard buffered >= Frame.headerSize else { return nil }
        let header = buffer[start..<(start + Frame.headerSize)]
        let (type, flags, request, length) = try Self.judge(header, peer: peer)
        guard buffered >= Frame.headerSize + length else { return nil }
        let payloadStart = start + Frame.headerSize
        let frame = Frame(type, request: request, flags: flags, payload: Array(buffer[payloadStart..<(payloadStart + length)]))
        start = payloadStart + length
        // Keep the buffer from growing with what was already returned.
        if start > Frame.maxPayload {
            buffer.removeFirst(start)
            start = 0
        }
        return frame
    }

    /// The checks of protocol.md §2.2-2.4 on one header.
    static func judge(_ header: ArraySlice<UInt8>, peer: String) throws(PGKeepError) -> (FrameType, FrameFlags, UInt32, Int) {
        let i = header.startIndex
        func refuse(_ what: String) -> PGKeepError {
            PGKeepError(.protocolInvalid, "\(peer) sent a malformed frame: \(what)",
                        hint: "the peer is not a pgkeep agent or client of a compatible version, or the connection is damaged; the connection is closed")
        }
        guard let type = FrameType(rawValue: header[i]) else {
            throw refuse("unknown frame type 0x\(String(header[i], radix: 16))")
        }
        guard header[i + 2] == 0, header[i + 3] == 0 else { throw refuse("reserved header bytes are not zero") }
        let flags = FrameFlags(rawValue: header[i + 1])
        let allowed: FrameFlags = type == .data ? .end : []
        guard allowed.isSuperset(of: flags) else {
            throw refuse("flags 0x\(String(flags.rawValue, radix: 16)) on a \(type) frame")
        }
        let request = Wire.uint32(header[(i + 4)..<(i + 8)])
        let length = Int(Wire.uint32(header[(i + 8)..<(i + 12)]))
        switch type {
        case .hello, .ping, .pong:
            guard request == 0 else { throw refuse("a \(type) frame on request \(request), not on the connection (request 0)") }
        case .request, .data, .credit, .result, .cancel:
            guard request != 0 else { throw refuse("a \(type) frame on request 0") }
        case .error:
            break
        }
        let bound: Int
        switch type {
        case .credit: bound = 4
        case .ping, .pong: bound = 8
        case .cancel: bound = 0
        default: bound = Frame.maxPayload
        }
        guard length <= bound, type != .credit || length == 4 else {
            throw refuse("a \(type) frame of \(length) payload bytes (\(type == .credit ? "exactly 4" : "at most \(bound)"))")
        }
        return (type, flags, request, length)
    }
}
