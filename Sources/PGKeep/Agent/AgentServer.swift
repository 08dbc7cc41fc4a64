#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization
import PGKeepCore
import PGKeepProtocol
import PGKeepTransport

/// What the agent runs with, from its own configuration: a client never chooses any of it.
public struct AgentSettings: Sendable {
    public var address: String
    public var port: UInt16
    public var certificate: String
    public var key: String
    public var ca: String
    /// Client certificate common name → the stanzas it may work on (`*`: every stanza).
    public var authorizations: [String: Set<String>]
    /// Seconds a client may stay silent (`--protocol-timeout`).
    public var timeout: Double

    public init(address: String, port: UInt16, certificate: String, key: String, ca: String,
                authorizations: [String: Set<String>], timeout: Double) {
        self.address = address
        self.port = port
        self.certificate = certificate
        self.key = key
        self.ca = ca
        self.authorizations = authorizations
        self.timeout = timeout
    }

    /// `--tls-server-auth` values (`CN` → `stanza,stanza` or `*`) as authorizations; a value
    /// naming no stanza is refused.
    public static func authorizations(_ values: [String: String]) throws(PGKeepError) -> [String: Set<String>] {
        var result: [String: Set<String>] = [:]
        for (name, list) in values {
            let stanzas = Set(list.split(separator: ",").map { String($0).trimmingCharacters(in: " ") }.filter { !$0.isEmpty })
            guard !stanzas.isEmpty else {
                throw PGKeepError(.optionInvalid, "--tls-server-auth for client '\(name)' names no stanza",
                                  hint: "give --tls-server-auth=\(name)=<stanza>[,<stanza>...], or =* for every stanza")
            }
            result[name] = stanzas
        }
        return result
    }

    /// Whether a client with certificate name `name` may work on `stanza`.
    public func allows(_ name: String, stanza: String) -> Bool {
        guard let stanzas = authorizations[name] else { return false }
        return stanzas.contains("*") || stanzas.contains(stanza)
    }
}

/// `pgkeep server`: accepts TLS connections (protocol.md §7), greets, answers pings, and serves
/// requests of authorized clients, one thread per connection. SIGHUP reloads the certificates
/// and authorizations for the connections that follow; SIGTERM (or SIGINT) stops accepting,
/// lets the open connections finish, and returns.
public final class AgentServer: @unchecked Sendable {  // @unchecked: `current` and `connections` are guarded by `state`
    private let log: Log
    /// Reads the configuration again (SIGHUP).
    private let reload: @Sendable () throws -> AgentSettings
    private struct Current {
        var settings: AgentSettings
        var context: TLSContext
        var connections = 0
    }
    private let state: Mutex<Current>
    private let listener: Int32
    /// The port it listens on (the configured one, or the one the system chose for port 0).
    public let port: UInt16

    public init(settings: AgentSettings, log: Log, reload: @escaping @Sendable () throws -> AgentSettings) throws(PGKeepError) {
        self.log = log
        self.reload = reload
        let context = try Self.context(settings)
        state = Mutex(Current(settings: settings, context: context))
        (listener, port) = try TCP.listen(address: settings.address, port: settings.port)
    }

    deinit { close(listener) }

    private static func context(_ settings: AgentSettings) throws(PGKeepError) -> TLSContext {
        // A client without a certificate gets through the handshake to ping (server-ping); every
        // request needs a certificate the CA signed and an authorization.
        try TLSContext(side: .server, certificate: settings.certificate, key: settings.key, ca: settings.ca, requirePeerCertificate: false)
    }

    /// Serves until SIGTERM or SIGINT (once `AgentSignals.install` ran), or until `stop` says so.
    public func run(stop: () -> Bool = { false }) throws {
        log.info("pgkeep server \(PGKeepVersion.current) listening on \(state.withLock { $0.settings.address }):\(port) (TLS 1.3, protocol \(ProtocolVersion.current))")
        while !stop() && !AgentSignals.terminate.load(ordering: .acquiring) {
            if AgentSignals.hangup.exchange(false, ordering: .acquiringAndReleasing) { reloadSettings() }
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 250) > 0 else { continue }
            let accepted: (fd: Int32, peer: String)
            do {
                accepted = try TCP.accept(listener)
            } catch {
                // Out of descriptors (EMFILE) leaves the connection pending and poll readable: back
                // off instead of spinning until a connection ends.
                log.warn("\(error.message); retrying in a second")
                Clock.sleep(seconds: 1)
                continue
            }
            let (fd, peer) = accepted
            let context = state.withLock { current -> TLSContext in
                current.connections += 1
                return current.context
            }
            do {
                let thread = try OSThread.start { [self] in
                    serve(fd: fd, peer: peer, context: context)
                    state.withLock { $0.connections -= 1 }
                }
                pthread_detach(thread)
            } catch {
                close(fd)
                state.withLock { $0.connections -= 1 }
                log.error("unable to start a thread for the connection from \(peer): \(error)")
            }
        }
        close(listener)
        log.info("pgkeep server stopping: no new connections; waiting for \(state.withLock { $0.connections }) open")
        while state.withLock({ $0.connections }) > 0 { Clock.sleep(seconds: 0.05) }
        log.info("pgkeep server stopped")
    }

    private func reloadSettings() {
        do {
            let settings = try reload()
            let context = try Self.context(settings)
            state.withLock {
                $0.settings = settings
                $0.context = context
            }
            log.info("configuration reloaded (SIGHUP): certificate '\(settings.certificate)', \(settings.authorizations.count) client name(s) authorized")
        } catch {
            log.error("configuration not reloaded, the previous one stays in force: \(error)")
        }
    }

    /// One connection: handshake, greetings, then frames until the client closes.
    private func serve(fd: Int32, peer: String, context: TLSContext) {
        let settings = state.withLock { $0.settings }
        let connection: TLSConnection
        do {
            connection = try TLSConnection.accept(fd: fd, peer: peer, context: context, timeout: settings.timeout)
        } catch {
            log.warn("refused a connection: \(error.message)")
            return
        }
        defer { connection.close() }
        let client = connection.peerCommonName.isEmpty ? nil : connection.peerCommonName
        var channel = FrameChannel(connection)
        do {
            let greeting = try Greeting(try channel.receive(), peer: connection.peer)
            let version = try Greeting(role: .agent).agree(with: greeting, peerName: connection.peer)
            try channel.send(Greeting(role: .agent).frame())
            log.info("\(connection.peer) connected: \(client.map { "certificate CN=\($0)" } ?? "no certificate (ping only)"), pgkeep \(greeting.software), protocol \(version)")
            while let frame = try channel.receiveOrEnd() {
                switch frame.type {
                case .ping:
                    try channel.send(Frame(.pong, request: 0, payload: frame.payload))
                case .request:
                    let fields = try Fields(decoding: frame.payload, what: "the request", peer: connection.peer)
                    let refusal = answer(fields, client: client, peer: connection.peer, settings: state.withLock { $0.settings })
                    try channel.send(RemoteError(refusal).frame(request: frame.request))
                case .cancel:
                    break  // nothing of this agent's runs long enough to be cancelled yet
                default:
                    throw PGKeepError(.protocolInvalid, "\(connection.peer) sent a \(frame.type) frame for no open request",
                                      hint: "the client is not a pgkeep of a compatible version")
                }
            }
            log.info("\(connection.peer) disconnected")
        } catch let error as PGKeepError {
            log.warn("connection from \(connection.peer) ended: \(error.message)")
            if error.code == .protocolInvalid || error.code == .protocolVersion {
                try? channel.send(RemoteError(error).frame(request: 0))
            }
        } catch {
            log.warn("connection from \(connection.peer) ended: \(error)")
        }
    }

    /// The answer to a request: who may ask, then what. No operation exists in protocol 1.0
    /// (protocol.md §8), so every request ends in an error frame; the checks come first so that
    /// a refusal names its real cause.
    private func answer(_ fields: Fields, client: String?, peer: String, settings: AgentSettings) -> PGKeepError {
        guard let client else {
            log.warn("refused a request from \(peer): it presented no certificate")
            return PGKeepError(.remoteDenied, "this agent serves requests only to clients with a certificate; \(peer) presented none",
                               hint: "give the client a certificate signed by the agent's CA (--pg1-host-cert-file, --repo1-host-cert-file)")
        }
        let stanza = fields.string(2) ?? ""
        guard settings.allows(client, stanza: stanza) else {
            log.warn("refused a request of \(peer) (certificate CN=\(client)) for stanza '\(stanza)': not authorized by --tls-server-auth")
            return PGKeepError(.remoteDenied, "the agent does not authorize client '\(client)' for stanza '\(stanza)'",
                               hint: "on the agent, add --tls-server-auth=\(client)=\(stanza) (or extend that client's list) and send it SIGHUP")
        }
        let operation = fields.string(1) ?? ""
        return PGKeepError(.protocolInvalid, "operation '\(operation)' is not one this agent offers (pgkeep \(PGKeepVersion.current), protocol \(ProtocolVersion.current))",
                           hint: "run the same pgkeep release on every host")
    }
}

/// SIGHUP and SIGTERM/SIGINT for the agent, as flags its accept loop reads.
public enum AgentSignals {
    public static let hangup = Atomic<Bool>(false)
    public static let terminate = Atomic<Bool>(false)

    /// The handlers, for the process that is the agent (`pgkeep server`).
    public static func install() {
        signal(SIGHUP) { _ in AgentSignals.hangup.store(true, ordering: .releasing) }
        signal(SIGTERM) { _ in AgentSignals.terminate.store(true, ordering: .releasing) }
        signal(SIGINT) { _ in AgentSignals.terminate.store(true, ordering: .releasing) }
        signal(SIGPIPE, SIG_IGN)
    }
}
