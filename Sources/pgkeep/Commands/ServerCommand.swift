import PGKeepCore
import PGKeepConfig
import PGKeepProtocol
import PGKeepTransport
import PGKeepAgent

/// `pgkeep server`: the agent, with every path and option from its own configuration
/// (protocol.md §7). SIGHUP reloads the configuration file's certificates and authorizations.
enum ServerCommand {
    static func run(_ context: CommandContext) throws {
        let settings = try self.settings(context.config)
        let arguments = Array(CommandLine.arguments.dropFirst())
        let environment = Configuration.processEnvironment()
        let server = try AgentServer(settings: settings, log: context.log) {
            // The command line and environment as started, the file as it is now.
            try self.settings(try Configuration.resolve(arguments: arguments, environment: environment))
        }
        AgentSignals.install()
        try server.run()
    }

    static func settings(_ config: Configuration) throws -> AgentSettings {
        AgentSettings(address: config.string(.tlsServerAddress) ?? "localhost", port: UInt16(config.int(.tlsServerPort) ?? 8432),
                      certificate: try required(config, .tlsServerCertFile), key: try required(config, .tlsServerKeyFile),
                      ca: try required(config, .tlsServerCAFile),
                      authorizations: try AgentSettings.authorizations(config.map(.tlsServerAuth)),
                      timeout: config.seconds(.protocolTimeout) ?? 60)
    }

    private static func required(_ config: Configuration, _ name: OptionName) throws -> String {
        guard let value = config.string(name) else {
            throw PGKeepError(.optionRequired, "server requires option --\(name.rawValue)")
        }
        return value
    }
}

/// `pgkeep server-ping [host]`: whether an agent answers there (TLS; no client certificate, so it
/// only pings). With --tls-server-ca-file, the agent's certificate is verified too.
enum ServerPingCommand {
    static func run(_ context: CommandContext) throws {
        let config = context.config
        let host = config.arguments.first ?? config.string(.tlsServerAddress) ?? "localhost"
        let port = UInt16(config.int(.tlsServerPort) ?? 8432)
        let timeout = config.seconds(.protocolTimeout) ?? 60
        let tls = try TLSContext(side: .client, certificate: nil, key: nil, ca: config.string(.tlsServerCAFile))
        let connection = try TLSConnection.connect(host: host, port: port, context: tls, timeout: timeout)
        defer { connection.close() }
        var channel = FrameChannel(connection)
        try channel.send(Greeting(role: .client).frame())
        let agent = try Greeting(try channel.receive(), peer: connection.peer)
        let version = try Greeting(role: .client).agree(with: agent, peerName: connection.peer)
        let started = Clock.monotonic()
        try channel.send(Frame(.ping, request: 0, payload: Array("pgkeep!!".utf8)))
        let answer = try channel.receive()
        guard answer.type == .pong, answer.payload == Array("pgkeep!!".utf8) else {
            throw PGKeepError(.protocolInvalid, "\(connection.peer) answered the ping with a \(answer.type) frame")
        }
        let milliseconds = Int((Clock.monotonic() - started) * 1000)
        print("\(connection.peer) answers: pgkeep \(agent.software), protocol \(version), \(milliseconds) ms\(config.string(.tlsServerCAFile) == nil ? " (its certificate was not verified: no --tls-server-ca-file)" : "")")
    }
}
