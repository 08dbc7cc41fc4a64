import PGKeepCore

/// The protocol's version (protocol.md §1): peers of different majors refuse each other; within
/// a major the lower minor is spoken.
public struct ProtocolVersion: Sendable, Equatable, Comparable, CustomStringConvertible {
    public var major: UInt16
    public var minor: UInt16

    public init(major: UInt16, minor: UInt16) {
        self.major = major
        self.minor = minor
    }

    /// What this build speaks.
    public static let current = ProtocolVersion(major: 1, minor: 0)

    public var description: String { "\(major).\(minor)" }

    public static func < (lhs: ProtocolVersion, rhs: ProtocolVersion) -> Bool {
        (lhs.major, lhs.minor) < (rhs.major, rhs.minor)
    }
}

/// The hello frame each side sends first (protocol.md §4): an 8-byte magic, the protocol version,
/// then fields: 1 role, 2 software version.
public struct Greeting: Sendable, Equatable {
    public enum Role: String, Sendable {
        case client, agent
    }

    public var version: ProtocolVersion
    public var role: Role
    /// The pgkeep release of the sender ("0.5.0"), for the log.
    public var software: String

    /// `PGKEEP` and two bytes that make a stray HTTP or TLS client fail at once.
    public static let magic: [UInt8] = Array("PGKEEP".utf8) + [0x0D, 0x0A]

    public init(role: Role, version: ProtocolVersion = .current, software: String = PGKeepVersion.current) {
        self.role = role
        self.version = version
        self.software = software
    }

    public func frame() -> Frame {
        var payload = Self.magic
        Wire.append(version.major, to: &payload)
        Wire.append(version.minor, to: &payload)
        var fields = Fields()
        fields.set(1, role.rawValue)
        fields.set(2, software)
        payload += fields.encoded()
        return Frame(.hello, request: 0, payload: payload)
    }

    /// The peer's greeting from its first frame.
    public init(_ frame: Frame, peer: String) throws(PGKeepError) {
        guard frame.type == .hello else {
            throw PGKeepError(.protocolInvalid, "\(peer) sent a \(frame.type) frame before its greeting",
                              hint: "the peer is not a pgkeep agent or client; check the host and port")
        }
        let payload = frame.payload
        guard payload.count >= Self.magic.count + 4, Array(payload.prefix(Self.magic.count)) == Self.magic else {
            throw PGKeepError(.protocolInvalid, "\(peer) is not a pgkeep peer: its greeting lacks the pgkeep magic",
                              hint: "check the host and port; pgkeep agents listen on 8432 by default")
        }
        let m = Self.magic.count
        version = ProtocolVersion(major: Wire.uint16(payload[m..<(m + 2)]), minor: Wire.uint16(payload[(m + 2)..<(m + 4)]))
        let fields = try Fields(decoding: Array(payload[(m + 4)...]), what: "the greeting", peer: peer)
        guard let roleText = fields.string(1), let role = Role(rawValue: roleText) else {
            throw PGKeepError(.protocolInvalid, "the greeting from \(peer) names no role (client or agent)",
                              hint: "the peer is not a pgkeep agent or client of a compatible version")
        }
        self.role = role
        software = fields.string(2) ?? "unknown"
    }

    /// The version both speak, after `self` (this side) received `peer`'s greeting; refuses
    /// another major and a peer in the same role, naming both sides.
    public func agree(with peer: Greeting, peerName: String) throws(PGKeepError) -> ProtocolVersion {
        guard peer.role != role else {
            throw PGKeepError(.protocolInvalid, "\(peerName) greets as a \(peer.role.rawValue), as this side does",
                              hint: peer.role == .agent ? "point the client at an agent (pgkeep server), not the other way round" : "this side must be the agent")
        }
        guard peer.version.major == version.major else {
            throw PGKeepError(.protocolVersion,
                              "\(peerName) (pgkeep \(peer.software)) speaks pgkeep protocol \(peer.version), this \(role.rawValue) (pgkeep \(software)) speaks \(version): different major versions cannot talk",
                              hint: "run the same pgkeep major release on every host")
        }
        return ProtocolVersion(major: version.major, minor: min(version.minor, peer.version.minor))
    }
}

/// An error frame's content (protocol.md §5): fields 1 code, 2 message, 3 hint. A code this
/// build does not know arrives as `internal` with its number in the message.
public struct RemoteError: Sendable {
    public var error: PGKeepError

    public init(_ error: PGKeepError) { self.error = error }

    public func frame(request: UInt32) -> Frame {
        var fields = Fields()
        fields.set(1, UInt64(error.code.rawValue))
        fields.set(2, error.message)
        if let hint = error.hint { fields.set(3, hint) }
        return Frame(.error, request: request, payload: fields.encoded())
    }

    public init(_ frame: Frame, peer: String) throws(PGKeepError) {
        let fields = try Fields(decoding: frame.payload, what: "the error frame", peer: peer)
        guard let number = fields.unsigned(1), let message = fields.string(2) else {
            throw PGKeepError(.protocolInvalid, "the error frame from \(peer) lacks its code or message",
                              hint: "the peer is not a pgkeep agent or client of a compatible version")
        }
        if let code = Int32(exactly: number).flatMap(ErrorCode.init(rawValue:)) {
            error = PGKeepError(code, message, hint: fields.string(3))
        } else {
            error = PGKeepError(.internal, "\(message) (error \(number) of \(peer), unknown here)", hint: fields.string(3))
        }
    }
}

/// A credit frame's content (protocol.md §6): the bytes of data the receiver of a stream lets
/// its sender send on top of what it allowed before.
public struct Credit: Sendable, Equatable {
    public var bytes: UInt32

    /// What each side may send on a new request before any credit: 4 MiB.
    public static let initialWindow: UInt32 = 4 << 20

    public init(bytes: UInt32) { self.bytes = bytes }

    public func frame(request: UInt32) -> Frame {
        var payload: [UInt8] = []
        Wire.append(bytes, to: &payload)
        return Frame(.credit, request: request, payload: payload)
    }

    /// The decoder has checked the length (exactly 4).
    public init(_ frame: Frame) {
        bytes = Wire.uint32(frame.payload[0..<4])
    }
}
