import Foundation
import Testing
import TestSupport
import PGKeepCore
import PGKeepProtocol
import PGKeepTransport

/// `pgkeep server` as the process an operator runs (as the postgres user, from a config file):
/// server-ping, authorization from its own configuration, SIGHUP reloading it, SIGTERM stopping it.
@Suite("pgkeep server", .serialized)
struct AgentProcessTests {
    /// An agent process and what it needs: certificates the postgres user can read, a config file
    /// in a scratch directory, its log directory.
    final class Agent {
        let scratch: Scratch
        let binary: PGKeepBinary
        let ca: TestCertificates
        let port: UInt16
        let configFile: String
        let logDirectory: String
        let files: [String: String]
        private(set) var pid: Int32 = 0

        init(scratch: Scratch, authorizations: [String]) throws {
            self.scratch = scratch
            binary = try PGKeepBinary.shared()
            ca = try TestCertificates()
            let agent = try ca.issue("db1", names: ["127.0.0.1"])
            var files: [String: String] = [:]
            let certificates = try scratch.directory("tls", mode: 0o700)
            for (name, source) in [("ca.crt", ca.caFile), ("agent.crt", agent.certificate), ("agent.key", agent.key)] {
                let target = certificates + "/" + name
                try FileManager.default.copyItem(atPath: source, toPath: target)
                try PostgresUser.takeOwnership(of: target)
                chmod(target, 0o600)
                files[name] = target
            }
            self.files = files
            let (listener, free) = try TCP.listen(address: "127.0.0.1", port: 0)
            close(listener)
            port = free
            logDirectory = try scratch.directory("log", mode: 0o700)
            configFile = scratch.path("pgkeep.conf")
            try writeConfig(authorizations: authorizations)
        }

        func writeConfig(authorizations: [String]) throws {
            let lines = ["[global]", "tls-server-address=127.0.0.1", "tls-server-port=\(port)",
                         "tls-server-cert-file=\(files["agent.crt"]!)", "tls-server-key-file=\(files["agent.key"]!)",
                         "tls-server-ca-file=\(files["ca.crt"]!)", "log-path=\(logDirectory)", "log-level-file=info",
                         "protocol-timeout=10"] + authorizations.map { "tls-server-auth=\($0)" }
            try scratch.writeFile("pgkeep.conf", contents: lines.joined(separator: "\n") + "\n", mode: 0o600)
        }

        /// Starts `pgkeep server` in the background as postgres (setpriv execs it: the pid is the agent's).
        func start() throws {
            let runAs = getuid() == 0 ? "setpriv --reuid=postgres --regid=postgres --init-groups " : ""
            let command = "\(runAs)\(Shell.shellQuote([binary.path, "--config=\(configFile)", "server"])) > \(Shell.shellQuote([scratch.path("server.out")])) 2>&1 & echo $!"
            let started = try Shell.run("/bin/sh", ["-c", command], unsetEnvironment: PGKeepBinary.harnessVariables).check()
            pid = Int32(started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            let deadline = Date().addingTimeInterval(15)
            while Date() < deadline {
                if (try? ping())?.status == 0 { return }
                Thread.sleep(forTimeInterval: 0.1)
            }
            throw HarnessError("pgkeep server did not answer server-ping within 15 s: \(log())")
        }

        func ping() throws -> ShellResult {
            try binary.run(["--tls-server-address=127.0.0.1", "--tls-server-port=\(port)", "--tls-server-ca-file=\(files["ca.crt"]!)",
                            "--log-path=\(logDirectory)", "server-ping"], timeout: .seconds(30))
        }

        var isRunning: Bool { pid > 0 && kill(pid, 0) == 0 }

        func signal(_ signal: Int32) { if pid > 0 { kill(pid, signal) } }

        /// Waits until the process is gone; false after `seconds`.
        func waitForExit(seconds: Double) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if !isRunning { return true }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return false
        }

        func stop() {
            guard isRunning else { return }
            signal(SIGKILL)
            _ = waitForExit(seconds: 5)
        }

        func log() -> String {
            let file = (try? FileManager.default.contentsOfDirectory(atPath: logDirectory))?.first { $0.hasSuffix("server.log") }
            return file.flatMap { try? String(contentsOfFile: logDirectory + "/" + $0, encoding: .utf8) } ?? "(no server log)"
        }

        /// A request for stanza `main` by a client with a certificate of common name `name`; the error the agent answers.
        func request(as name: String) throws -> PGKeepError {
            let client = try ca.issue(name)
            let context = try TLSContext(side: .client, certificate: client.certificate, key: client.key, ca: ca.caFile)
            let connection = try TLSConnection.connect(host: "127.0.0.1", port: port, context: context, timeout: 10)
            defer { connection.close() }
            var channel = FrameChannel(connection)
            try channel.send(Greeting(role: .client).frame())
            _ = try Greeting(try channel.receive(), peer: connection.peer)
            var fields = Fields()
            fields.set(1, "read-file")
            fields.set(2, "main")
            try channel.send(Frame(.request, request: 1, payload: fields.encoded()))
            return try RemoteError(try channel.receive(), peer: connection.peer).error
        }
    }

    @Test("server-ping answers for a running agent; authorization follows the agent's config file, which SIGHUP reloads; SIGTERM stops it")
    func serverLifecycle() async throws {
        try await withScratch { scratch in
            let agent = try Agent(scratch: scratch, authorizations: ["backup1=main"])
            defer { agent.stop() }
            try agent.start()
            let ping = try agent.ping()
            #expect(ping.status == 0 && ping.stdout.contains("answers: pgkeep \(PGKeepVersion.current), protocol 1.0"), "\(ping)")

            #expect(try agent.request(as: "backup1").code == .protocolInvalid, "authorized: past authorization to the (absent) operation")
            #expect(try agent.request(as: "ops").code == .remoteDenied)

            try agent.writeConfig(authorizations: ["backup1=main", "ops=*"])
            agent.signal(SIGHUP)
            var reloaded = false
            for _ in 0..<50 where !reloaded {
                try await Task.sleep(for: .milliseconds(100))
                reloaded = try agent.request(as: "ops").code == .protocolInvalid
            }
            #expect(reloaded, "SIGHUP made the new authorization effective: \(agent.log())")

            agent.signal(SIGTERM)
            #expect(agent.waitForExit(seconds: 10), "SIGTERM stops the agent")
            let log = agent.log()
            #expect(log.contains("configuration reloaded (SIGHUP)") && log.contains("pgkeep server stopped"), "\(log)")
            #expect(log.contains("refused a request") && log.contains("CN=ops"), "the refusal is logged with the name presented: \(log)")
        }
    }

    @Test("server-ping to a port where no agent listens fails with remote-unreachable (83)")
    func pingWithoutAgent() async throws {
        try await withScratch { scratch in
            let agent = try Agent(scratch: scratch, authorizations: [])
            let ping = try agent.ping()
            #expect(ping.status == 83 && ping.stderr.contains("unable to connect to 127.0.0.1:\(agent.port)"), "\(ping)")
        }
    }
}
