import Foundation
import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepProtocol
@testable import PGKeepTransport

/// The remote transport (protocol.md §7): TLS 1.3 with certificates on both sides, over loopback,
/// between this process's own agent and client ends. Certificates come from throwaway CAs made
/// with openssl.
@Suite("TLS transport", .serialized)
struct TLSTransportTests {
    /// What the agent end of one connection saw.
    final class AgentEnd: @unchecked Sendable {  // @unchecked: written by the agent thread before `join`, read after
        var error: PGKeepError?
        var clientName = ""
        var greeting: Greeting?
    }

    /// Listens on 127.0.0.1, accepts one connection on a thread, shakes hands, reads the client's
    /// greeting and answers with its own; `body` runs the client against the port. Returns what
    /// the agent end saw once its thread has ended.
    static func withAgent(_ context: TLSContext, _ body: (UInt16) throws -> Void) throws -> AgentEnd {
        let (listener, port) = try TCP.listen(address: "127.0.0.1", port: 0)
        defer { close(listener) }
        let end = AgentEnd()
        let thread = try OSThread.start {
            do {
                let (fd, peer) = try TCP.accept(listener)
                let connection = try TLSConnection.accept(fd: fd, peer: peer, context: context, timeout: 5)
                end.clientName = connection.peerCommonName
                let frame = try readFrame(connection)
                end.greeting = try Greeting(frame, peer: connection.peer)
                try send(Greeting(role: .agent).frame(), on: connection)
                connection.close()
            } catch {
                end.error = error as? PGKeepError
            }
        }
        defer { pthread_join(thread, nil) }
        try body(port)
        return end
    }

    static func readFrame(_ connection: TLSConnection) throws -> Frame {
        var decoder = FrameDecoder(peer: connection.peer)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            if let frame = try decoder.next() { return frame }
            let n = try buffer.withUnsafeMutableBytes { try connection.read(into: $0) }
            guard n > 0 else { throw PGKeepError(.remoteUnreachable, "\(connection.peer) closed the connection") }
            decoder.feed(buffer[0..<n])
        }
    }

    static func send(_ frame: Frame, on connection: TLSConnection) throws {
        try frame.encoded().withUnsafeBytes { try connection.write($0) }
    }

    /// The client's side: connect, greet, read the agent's greeting.
    static func client(port: UInt16, context: TLSContext, expectedName: String? = nil) throws -> (Greeting, String) {
        let connection = try TLSConnection.connect(host: "127.0.0.1", port: port, expectedName: expectedName, context: context, timeout: 5)
        defer { connection.close() }
        try send(Greeting(role: .client).frame(), on: connection)
        return (try Greeting(try readFrame(connection), peer: connection.peer), connection.peerCommonName)
    }

    @Test("client and agent with certificates of one CA complete a TLS 1.3 handshake, see each other's names and exchange greetings")
    func mutualHandshake() throws {
        let ca = try TestCertificates()
        let agent = try ca.issue("db1", names: ["db1", "127.0.0.1"])
        let client = try ca.issue("backup1")
        let agentContext = try TLSContext(side: .server, certificate: agent.certificate, key: agent.key, ca: ca.caFile)
        let clientContext = try TLSContext(side: .client, certificate: client.certificate, key: client.key, ca: ca.caFile)
        var answer: (Greeting, String)?
        let end = try Self.withAgent(agentContext) { port in answer = try Self.client(port: port, context: clientContext) }
        #expect(end.error == nil, "\(String(describing: end.error))")
        #expect(end.clientName == "backup1")
        #expect(end.greeting?.role == .client)
        #expect(answer?.0.role == .agent && answer?.1 == "db1")
    }

    @Test("a client certificate of another CA is refused by the agent, which names what was presented and why; the client hears it was refused")
    func clientOfAnotherCARefused() throws {
        let ca = try TestCertificates()
        let other = try TestCertificates(name: "other")
        let agent = try ca.issue("db1", names: ["127.0.0.1"])
        let stranger = try other.issue("intruder")
        let agentContext = try TLSContext(side: .server, certificate: agent.certificate, key: agent.key, ca: ca.caFile)
        // The stranger trusts the agent's CA: only its own certificate is wrong.
        let clientContext = try TLSContext(side: .client, certificate: stranger.certificate, key: stranger.key, ca: ca.caFile)
        var clientError: PGKeepError?
        let end = try Self.withAgent(agentContext) { port in
            do { _ = try Self.client(port: port, context: clientContext) } catch { clientError = error as? PGKeepError }
        }
        #expect(end.error?.code == .tlsRefused)
        #expect(end.error?.message.contains("CN=intruder") == true && end.error?.message.contains("CN=pgkeep test CA other") == true,
                "\(String(describing: end.error))")
        #expect(end.error?.hint?.contains(ca.caFile) == true)
        #expect(clientError?.code == .tlsRefused && clientError?.message.contains("alert") == true, "\(String(describing: clientError))")
    }

    @Test("an agent whose certificate does not name the host the client expects is refused by the client, naming the expected name")
    func agentNameMismatchRefused() throws {
        let ca = try TestCertificates()
        let agent = try ca.issue("db1", names: ["db1", "127.0.0.1"])
        let client = try ca.issue("backup1")
        let agentContext = try TLSContext(side: .server, certificate: agent.certificate, key: agent.key, ca: ca.caFile)
        let clientContext = try TLSContext(side: .client, certificate: client.certificate, key: client.key, ca: ca.caFile)
        var clientError: PGKeepError?
        _ = try Self.withAgent(agentContext) { port in
            do { _ = try Self.client(port: port, context: clientContext, expectedName: "db2") } catch { clientError = error as? PGKeepError }
        }
        #expect(clientError?.code == .tlsRefused)
        #expect(clientError?.message.contains("CN=db1") == true && clientError?.hint?.contains("'db2'") == true, "\(String(describing: clientError))")
    }

    @Test("a client speaking only TLS 1.2 (openssl s_client -tls1_2) is refused: TLS 1.3 only")
    func tls12Refused() throws {
        let ca = try TestCertificates()
        let agent = try ca.issue("db1", names: ["127.0.0.1"])
        let client = try ca.issue("backup1")
        let agentContext = try TLSContext(side: .server, certificate: agent.certificate, key: agent.key, ca: ca.caFile)
        var shell: ShellResult?
        let end = try Self.withAgent(agentContext) { port in
            shell = try Shell.run("openssl", ["s_client", "-tls1_2", "-connect", "127.0.0.1:\(port)", "-cert", client.certificate,
                                              "-key", client.key, "-CAfile", ca.caFile], stdin: "", timeout: .seconds(30))
        }
        #expect(end.error?.code == .tlsRefused, "\(String(describing: end.error))")
        #expect(shell?.status != 0)
    }

    @Test("an expired client certificate of the right CA is refused by the agent, which says it expired")
    func expiredClientRefused() throws {
        let ca = try TestCertificates()
        let agent = try ca.issue("db1", names: ["127.0.0.1"])
        let old = try ca.issue("backup1", days: -1)
        let agentContext = try TLSContext(side: .server, certificate: agent.certificate, key: agent.key, ca: ca.caFile)
        let clientContext = try TLSContext(side: .client, certificate: old.certificate, key: old.key, ca: ca.caFile)
        let end = try Self.withAgent(agentContext) { port in _ = try? Self.client(port: port, context: clientContext) }
        #expect(end.error?.code == .tlsRefused)
        #expect(end.error?.message.contains("CN=backup1") == true && end.error?.message.contains("expired") == true, "\(String(describing: end.error))")
    }

    @Test("a TLS 1.3 client without a certificate (openssl s_client) is refused by the agent, which says none was presented")
    func clientWithoutCertificateRefused() throws {
        let ca = try TestCertificates()
        let agent = try ca.issue("db1", names: ["127.0.0.1"])
        let agentContext = try TLSContext(side: .server, certificate: agent.certificate, key: agent.key, ca: ca.caFile)
        let end = try Self.withAgent(agentContext) { port in
            _ = try Shell.run("openssl", ["s_client", "-tls1_3", "-connect", "127.0.0.1:\(port)", "-CAfile", ca.caFile],
                              stdin: "hello\n", timeout: .seconds(30))
        }
        #expect(end.error?.code == .tlsRefused)
        #expect(end.error?.message.contains("presented no certificate") == true, "\(String(describing: end.error))")
    }

    @Test("connecting to a port nobody listens on fails with remote-unreachable naming host and port")
    func nobodyListening() throws {
        let (listener, port) = try TCP.listen(address: "127.0.0.1", port: 0)
        close(listener)
        let error = #expect(throws: PGKeepError.self) { _ = try TCP.connect(host: "127.0.0.1", port: port, timeout: 2) }
        #expect(error?.code == .remoteUnreachable)
        #expect(error?.message.contains("127.0.0.1:\(port)") == true && error?.message.contains("refused") == true, "\(String(describing: error))")
    }

    @Test("a key that is not the certificate's is refused when the context is made, naming both files")
    func mismatchedKeyRefused() throws {
        let ca = try TestCertificates()
        let one = try ca.issue("db1")
        let two = try ca.issue("db2")
        let error = #expect(throws: PGKeepError.self) {
            _ = try TLSContext(side: .server, certificate: one.certificate, key: two.key, ca: ca.caFile)
        }
        #expect(error?.code == .tlsConfig)
        #expect(error?.message.contains(two.key) == true && error?.message.contains(one.certificate) == true, "\(String(describing: error))")
    }
}
