import PGKeepCore

/// One frame of pgkeep's remote protocol (protocol.md §2): a 12-byte header and a payload of at
/// most `Frame.maxPayload` bytes. Frames of every request share one connection; `request` says
/// which one a frame belongs to (0: the connection itself).
public struct Frame: Sendable, Equatable {
    public var type: FrameType
    public var flags: FrameFlags
    public var request: UInt32
    public var payload: [UInt8]

    public init(_ type: FrameType, request: UInt32, flags: FrameFlags = [], payload: [UInt8] = []) {
        self.type = type
        self.flags = flags
        self.request = request
        self.payload = payload
    }

    /// Bytes of the header: type, flags, two reserved zero bytes, request id, payload length.
    public static let headerSize = 12
    /// The largest payload a frame may carry (1 MiB): a receiver never buffers more than one
    /// frame's worth per connection before it acts on it.
    public static let maxPayload = 1 << 20

    /// The frame as sent: header (big-endian fields) then payload.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.headerSize + payload.count)
        append(to: &bytes)
        return bytes
    }

    /// Appends the frame as sent to `bytes`.
    public func append(to bytes: inout [UInt8]) {
        precondition(payload.count <= Self.maxPayload, "a frame payload of \(payload.count) bytes exceeds \(Self.maxPayload)")
        bytes.append(type.rawValue)
        bytes.append(flags.rawValue)
        bytes.append(0)
        bytes.append(0)
        Wire.append(request, to: &bytes)
        Wire.append(UInt32(payload.count), to: &bytes)
        bytes.append(contentsOf: payload)
    }
}

/// What a frame is (protocol.md §2.2).
public enum FrameType: UInt8, Sendable, CaseIterable {
    /// The greeting each side sends first, on request 0 (`Greeting`).
    case hello = 0x01
    /// A client opens a request: its operation and arguments (`Fields`).
    case request = 0x02
    /// Bytes of the request's stream, in one direction; `end` marks the last frame of it.
    case data = 0x03
    /// The receiver of a stream lets the sender send this many more bytes (`Credit`).
    case credit = 0x04
    /// The server ends a request that succeeded (`Fields`).
    case result = 0x05
    /// A request failed (or, on request 0, the connection): code, message, hint (`RemoteError`).
    case error = 0x06
    /// The client asks the server to stop a request; the server ends it with an error frame.
    case cancel = 0x07
    /// Keep-alive: either side, on request 0, with up to 8 opaque bytes the peer echoes (`pong`).
    case ping = 0x08
    case pong = 0x09
}

/// Frame flags (protocol.md §2.3). Only `end`, and only on data frames, is defined in 1.0.
public struct FrameFlags: OptionSet, Sendable, Equatable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The last data frame of a stream in this direction.
    public static let end = FrameFlags(rawValue: 0x01)
}

/// Big-endian integers on the wire.
enum Wire {
    static func append(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 24))
        bytes.append(UInt8(truncatingIfNeeded: value >> 16))
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    static func append(_ value: UInt16, to bytes: inout [UInt8]) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        append(UInt32(truncatingIfNeeded: value >> 32), to: &bytes)
        append(UInt32(truncatingIfNeeded: value), to: &bytes)
    }

    static func uint32<C: Collection<UInt8>>(_ bytes: C) -> UInt32 where C.Index == Int {
        let i = bytes.startIndex
        return UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3])
    }

    static func uint16<C: Collection<UInt8>>(_ bytes: C) -> UInt16 where C.Index == Int {
        let i = bytes.startIndex
        return UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1])
    }

    static func uint64<C: Collection<UInt8>>(_ bytes: C) -> UInt64 where C.Index == Int {
        let i = bytes.startIndex
        return UInt64(uint32(bytes[i..<(i + 4)])) << 32 | UInt64(uint32(bytes[(i + 4)..<(i + 8)]))
    }
}
