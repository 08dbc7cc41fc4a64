import Foundation
import Synchronization
import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepProtocol
@testable import PGKeepTransport
@testable import PGKeepAgent

/// The agent (`AgentServer`) in this process on loopback, with clients of this process: who may
/// ping, who may ask what, and what a refusal says.
@Suite("Agent server", .serialized)
struct AgentServerTests {
    /// A CA, the agent's certificate for 127.0.0.1, and client certificates `backup1` and `intruder`.
    struct Setup {
        let ca: TestCertificates
        let agent: (certificate: String, key: String)
        let backup1: (certificate: String, key: String)
        let intruder: (certificate: String, key: String)

        init() throws {
            ca = try TestCertificates()
            agent = try ca.issue("db1", names: ["127.0.0.1"])
            backup1 = try ca.issue("backup1")
            intruder = try ca.issue("intruder")
        }

        func settings(_ authorizations: [String: Set<String>]) -> AgentSettings {
            AgentSettings(address: "127.0.0.1", port: 0, certificate: agent.certificate, key: agent.key, ca: ca.caFile,
                          authorizations: authorizations, timeout: 5)
        }

        /// Runs an agent on a thread while `body` runs, then stops it.
        func withAgent(_ authorizations: [String: Set<String>], log: Log = Log(consoleLevel: .off), _ body: (UInt16) throws -> Void) throws {
            let fixed = settings(authorizations)
            let server = try AgentServer(settings: fixed, log: log) { fixed }
            let stopping = Atomic<Bool>(false)
            let thread = try OSThread.start { try? server.run { stopping.load(ordering: .acquiring) } }
            defer {
                stopping.store(true, ordering: .releasing)
                pthread_join(thread, nil)
            }
            try body(server.port)
        }

        /// Connects (with `client`'s certificate, or none), greets, and sends `frame`; returns the answer.
        func ask(_ port: UInt16, as client: (certificate: String, key: String)?, _ frame: Frame) throws -> Frame {
            let context = try TLSContext(side: .client, certificate: client?.certificate, key: client?.key, ca: ca.caFile)
            let connection = try TLSConnection.connect(host: "127.0.0.1", port: port, context: context, timeout: 5)
            defer { connection.close() }
            var channel = FrameChannel(connection)
            try channel.send(Greeting(role: .client).frame())
            _ = try Greeting(try channel.receive(), peer: connection.peer)
            try channel.send(frame)
            return try channel.receive()
        }
    }

    static func request(_ operation: String, stanza: String) -> Frame {
        var fields = Fields()
        fields.set(1, operation)
        fields.set(2, stanza)
        return Frame(.request, request: 1, payload: fields.encoded())
    }

    static func refusal(_ frame: Frame) throws -> PGKeepError {
        #expect(frame.type == .error && frame.request == 1)
        return try RemoteError(frame, peer: "agent").error
    }

    @Test("a client without a certificate may ping: the agent answers with the same bytes")
    func pingWithoutCertificate() throws {
        let setup = try Setup()
        try setup.withAgent([:]) { port in
            let answer = try setup.ask(port, as: nil, Frame(.ping, request: 0, payload: [1, 2, 3]))
            #expect(answer.type == .pong && answer.payload == [1, 2, 3])
        }
    }

    @Test("a request from a client without a certificate is refused with remote-denied")
    func requestWithoutCertificateRefused() throws {
        let setup = try Setup()
        try setup.withAgent(["backup1": ["main"]]) { port in
            let error = try Self.refusal(try setup.ask(port, as: nil, Self.request("read-file", stanza: "main")))
            #expect(error.code == .remoteDenied && error.message.contains("presented none"), "\(error)")
        }
    }

    @Test("a client whose certificate name is not authorized for the stanza is refused, the message naming both and the hint the option")
    func unauthorizedClientRefused() throws {
        let setup = try Setup()
        try setup.withAgent(["backup1": ["main"]]) { port in
            let error = try Self.refusal(try setup.ask(port, as: setup.intruder, Self.request("read-file", stanza: "main")))
            #expect(error.code == .remoteDenied)
            #expect(error.message == "the agent does not authorize client 'intruder' for stanza 'main'")
            #expect(error.hint?.contains("--tls-server-auth=intruder=main") == true)
            let other = try Self.refusal(try setup.ask(port, as: setup.backup1, Self.request("read-file", stanza: "other")))
            #expect(other.code == .remoteDenied, "backup1 is authorized for main only")
        }
    }

    @Test("an authorized client gets past authorization: protocol 1.0 offers no operation, which the agent says naming its release")
    func authorizedClientReachesTheOperation() throws {
        let setup = try Setup()
        try setup.withAgent(["backup1": ["*"]]) { port in
            let error = try Self.refusal(try setup.ask(port, as: setup.backup1, Self.request("read-file", stanza: "main")))
            #expect(error.code == .protocolInvalid && error.message.contains("operation 'read-file' is not one this agent offers"), "\(error)")
        }
    }

    @Test("a client of another protocol major is refused with protocol-version on request 0")
    func otherMajorRefused() throws {
        let setup = try Setup()
        try setup.withAgent([:]) { port in
            let context = try TLSContext(side: .client, certificate: setup.backup1.certificate, key: setup.backup1.key, ca: setup.ca.caFile)
            let connection = try TLSConnection.connect(host: "127.0.0.1", port: port, context: context, timeout: 5)
            defer { connection.close() }
            var channel = FrameChannel(connection)
            try channel.send(Greeting(role: .client, version: ProtocolVersion(major: 2, minor: 0)).frame())
            let answer = try channel.receive()
            #expect(answer.type == .error && answer.request == 0)
            let error = try RemoteError(answer, peer: "agent").error
            #expect(error.code == .protocolVersion && error.message.contains("protocol 2.0") && error.message.contains("speaks 1.0"), "\(error)")
        }
    }

    @Test("--tls-server-auth values: a list of stanzas or *, a value naming none refused")
    func authorizationValues() throws {
        let parsed = try AgentSettings.authorizations(["backup1": "main, second", "ops": "*"])
        #expect(parsed == ["backup1": ["main", "second"], "ops": ["*"]])
        #expect(throws: PGKeepError.self) { _ = try AgentSettings.authorizations(["backup1": " , "]) }
    }
}
