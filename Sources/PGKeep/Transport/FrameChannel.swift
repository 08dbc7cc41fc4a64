import PGKeepCore
import PGKeepProtocol

/// Frames over a TLS connection: a fixed read buffer, a `FrameDecoder`, and writes of whole frames.
public struct FrameChannel {
    public let connection: TLSConnection
    private var decoder: FrameDecoder
    private var buffer = [UInt8](repeating: 0, count: 64 << 10)

    public init(_ connection: TLSConnection) {
        self.connection = connection
        decoder = FrameDecoder(peer: connection.peer)
    }

    public func send(_ frame: Frame) throws {
        let bytes = frame.encoded()
        try bytes.withUnsafeBytes { try connection.write($0) }
    }

    /// The next frame; the peer closing the connection is an error here.
    public mutating func receive() throws -> Frame {
        guard let frame = try receiveOrEnd() else {
            throw PGKeepError(.remoteUnreachable, "\(connection.peer) closed the connection")
        }
        return frame
    }

    /// The next frame, or nil when the peer closed the connection between frames.
    public mutating func receiveOrEnd() throws -> Frame? {
        while true {
            if let frame = try decoder.next() { return frame }
            let n = try buffer.withUnsafeMutableBytes { try connection.read(into: $0) }
            guard n > 0 else {
                guard decoder.buffered == 0 else {
                    throw PGKeepError(.protocolInvalid, "\(connection.peer) closed the connection in the middle of a frame")
                }
                return nil
            }
            decoder.feed(buffer[0..<n])
        }
    }
}
