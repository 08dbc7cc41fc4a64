#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSSL
import PGKeepCore

/// A TLS configuration: TLS 1.3 only, this side's certificate and key, and the CA that must have
/// signed the peer's certificate (protocol.md §7). One per agent or client process, shared by
/// its connections; libssl is used here and nowhere else.
public final class TLSContext: @unchecked Sendable {  // @unchecked: an SSL_CTX is immutable once set up and libssl locks its internal state
    public enum Side: Sendable { case server, client }

    let context: OpaquePointer
    public let side: Side
    /// The CA file, for hints.
    public let caFile: String

    /// - Parameters:
    ///   - certificate, key: this side's; a client without them can only ping (server-ping).
    ///   - ca: the CA the peer's certificate must be signed by; nil (a client only): the peer is
    ///     not verified, for server-ping asking whether an agent runs.
    ///   - requirePeerCertificate: a server refuses a client without a certificate in the
    ///     handshake; the agent does not, and lets such a client only ping.
    public init(side: Side, certificate: String?, key: String?, ca: String?, requirePeerCertificate: Bool = true) throws(PGKeepError) {
        guard let context = SSL_CTX_new(side == .server ? TLS_server_method() : TLS_client_method()) else {
            throw Self.failure("unable to create a TLS context", hint: nil)
        }
        self.context = context
        self.side = side
        caFile = ca ?? "(none)"
        guard pgkeep_ssl_ctx_tls13_only(context) == 1 else { throw Self.failure("unable to restrict TLS to version 1.3", hint: nil) }
        pgkeep_ssl_ctx_auto_retry(context)
        if let certificate, let key { try use(certificate: certificate, key: key) }
        guard let ca else {
            precondition(side == .client, "an agent always verifies its clients")
            pgkeep_ssl_ctx_verify_none(context)
            return
        }
        guard SSL_CTX_load_verify_locations(context, ca, nil) == 1 else {
            throw Self.failure("unable to load the CA file '\(ca)'", hint: "the file must hold the PEM certificate(s) of the CA that signs the peers' certificates")
        }
        pgkeep_ssl_ctx_verify_peer(context, requirePeerCertificate ? 1 : 0)
    }

    private func use(certificate: String, key: String) throws(PGKeepError) {
        guard SSL_CTX_use_certificate_chain_file(context, certificate) == 1 else {
            throw Self.failure("unable to load the certificate '\(certificate)'", hint: "the file must hold a PEM certificate (and its chain) readable by \(PGKeepError.runningUser)")
        }
        guard SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1 else {
            throw Self.failure("unable to load the private key '\(key)' for the certificate '\(certificate)'", hint: "the file must hold the PEM key the certificate was made for, readable by \(PGKeepError.runningUser) only")
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            throw Self.failure("the private key '\(key)' does not belong to the certificate '\(certificate)'", hint: "give the key the certificate was made for")
        }
    }

    deinit { SSL_CTX_free(context) }

    static func failure(_ message: String, hint: String?) -> PGKeepError {
        PGKeepError(.tlsConfig, message + Self.pendingError(), hint: hint)
    }

    /// `: <libssl's reason>` for the oldest queued error, or nothing.
    static func pendingError() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        pgkeep_ssl_error_text(&buffer, buffer.count)
        let text = String(cString: buffer)
        return text.isEmpty ? "" : ": \(text)"
    }
}

/// One TLS connection over a blocking socket: the handshake, then bytes both ways. Reads and
/// writes time out after the socket's timeout (`TCP.setTimeouts`).
public final class TLSConnection {
    private let ssl: OpaquePointer
    private let fd: Int32
    private var closed = false
    private let failure: UnsafeMutablePointer<pgkeep_verify_failure>
    /// The peer's address, `host:port`, and what it is ("agent", "client"), for messages.
    public let peer: String
    /// The common name of the peer's verified certificate.
    public private(set) var peerCommonName = ""

    private init(fd: Int32, context: TLSContext, peer: String) throws(PGKeepError) {
        guard let ssl = SSL_new(context.context) else {
            Glibc.close(fd)
            throw TLSContext.failure("unable to create a TLS session", hint: nil)
        }
        self.ssl = ssl
        self.fd = fd
        self.peer = peer
        failure = .allocate(capacity: 1)
        failure.initialize(to: pgkeep_verify_failure())
        _ = pgkeep_ssl_record_failures(ssl, failure)
        SSL_set_fd(ssl, fd)
    }

    deinit {
        close()
        SSL_free(ssl)
        failure.deallocate()
    }

    /// The agent's side of a connection `TCP.accept` returned: the handshake, which requires a
    /// client certificate signed by the context's CA.
    public static func accept(fd: Int32, peer: String, context: TLSContext, timeout: Double) throws(PGKeepError) -> TLSConnection {
        TCP.setTimeouts(fd, seconds: timeout)
        let connection = try TLSConnection(fd: fd, context: context, peer: "client \(peer)")
        try connection.handshake(SSL_accept(connection.ssl), context: context, expected: nil)
        return connection
    }

    /// The client's side: connects to `host`:`port` and makes sure the agent's certificate is
    /// signed by the context's CA and names `expectedName` (the host, or an extra name the
    /// operator allows for a service address).
    public static func connect(host: String, port: UInt16, expectedName: String? = nil, context: TLSContext,
                               timeout: Double) throws(PGKeepError) -> TLSConnection {
        let fd = try TCP.connect(host: host, port: port, timeout: timeout)
        let connection = try TLSConnection(fd: fd, context: context, peer: "agent \(host):\(port)")
        let name = expectedName ?? host
        guard pgkeep_ssl_expect_host(connection.ssl, name) == 1 else {
            throw TLSContext.failure("unable to set the expected server name '\(name)'", hint: nil)
        }
        try connection.handshake(SSL_connect(connection.ssl), context: context, expected: name)
        return connection
    }

    private func handshake(_ status: Int32, context: TLSContext, expected: String?) throws(PGKeepError) {
        guard status != 1 else {
            var name = [CChar](repeating: 0, count: 256)
            pgkeep_ssl_peer_common_name(ssl, &name, Int32(name.count))
            peerCommonName = String(cString: name)
            return
        }
        let reason = TLSContext.pendingError()
        if context.side == .server { lingerAfterRefusal() }
        let recorded = failure.pointee
        if recorded.error != 0 {
            let subject = withUnsafeBytes(of: recorded.subject) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            let issuer = withUnsafeBytes(of: recorded.issuer) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            let why = String(cString: pgkeep_x509_error_text(recorded.error))
            let hint: String
            if let expected, recorded.error == X509_V_ERR_HOSTNAME_MISMATCH || recorded.error == X509_V_ERR_IP_ADDRESS_MISMATCH {
                hint = "the agent's certificate must name '\(expected)' (subjectAltName DNS or IP); for a service address, allow its name with the host's extra-names option"
            } else {
                hint = "the certificate must be signed by the CA in '\(context.caFile)' and be valid now"
            }
            throw PGKeepError(.tlsRefused, "refused the TLS connection with \(peer): its certificate (subject \(subject), issuer \(issuer)) failed verification: \(why)",
                              hint: hint)
        }
        let presented = context.side == .server ? " (it presented no certificate, or one this side could not read)" : ""
        throw PGKeepError(.tlsRefused, "the TLS handshake with \(peer) failed\(reason.isEmpty ? "" : reason)\(presented)",
                          hint: context.side == .server
                            ? "the client needs a certificate signed by the CA in '\(context.caFile)', and TLS 1.3"
                            : "the agent refused this side or speaks no TLS 1.3; its log says why")
    }

    /// After refusing a handshake: stop sending, then read what the client still sends until it
    /// closes (at most a second). Closing with its bytes unread would reset the connection, and
    /// the reset can overtake the alert that tells the client why it was refused.
    private func lingerAfterRefusal() {
        _ = shutdown(fd, Int32(SHUT_WR))
        TCP.setTimeouts(fd, seconds: 1)
        var scratch = [UInt8](repeating: 0, count: 4096)
        let deadline = Clock.monotonic() + 1
        while Clock.monotonic() < deadline, Glibc.read(fd, &scratch, scratch.count) > 0 {}
    }

    /// Up to `buffer.count` bytes; 0 when the peer closed the connection cleanly.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(PGKeepError) -> Int {
        guard !closed, buffer.count > 0 else { return 0 }
        let n = SSL_read(ssl, buffer.baseAddress, Int32(min(buffer.count, Int(Int32.max))))
        if n > 0 { return Int(n) }
        return try ended(n, doing: "reading from")
    }

    /// Writes all of `bytes`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(PGKeepError) {
        var offset = 0
        while offset < bytes.count {
            let n = SSL_write(ssl, bytes.baseAddress! + offset, Int32(min(bytes.count - offset, 1 << 20)))
            guard n > 0 else {
                _ = try ended(n, doing: "writing to")
                throw PGKeepError(.remoteUnreachable, "\(peer) closed the connection while this side was writing")
            }
            offset += Int(n)
        }
    }

    /// What a read or write that returned `status` means: 0 for a clean close by the peer, an
    /// error otherwise (a timeout, a reset, a TLS alert such as the agent refusing a certificate).
    private func ended(_ status: Int32, doing: String) throws(PGKeepError) -> Int {
        let code = SSL_get_error(ssl, status)
        let savedErrno = errno
        if code == SSL_ERROR_ZERO_RETURN { return 0 }
        let reason = TLSContext.pendingError()
        if code == SSL_ERROR_SYSCALL, savedErrno == EAGAIN || savedErrno == EWOULDBLOCK {
            throw PGKeepError(.remoteUnreachable, "timed out \(doing) \(peer)",
                              hint: "the peer sent nothing within --protocol-timeout; check that it still runs and the network between")
        }
        if code == SSL_ERROR_SSL, reason.contains("alert") {
            throw PGKeepError(.tlsRefused, "\(peer) ended the TLS session\(reason)",
                              hint: "it refused this side's certificate or name; its log says what it was presented and why")
        }
        if code == SSL_ERROR_SYSCALL, savedErrno == 0, reason.isEmpty {
            throw PGKeepError(.remoteUnreachable, "\(peer) closed the connection without ending the TLS session")
        }
        throw PGKeepError(.remoteUnreachable, "error \(doing) \(peer)\(reason.isEmpty ? ": \(String(cString: strerror(savedErrno)))" : reason)")
    }

    /// Ends the TLS session (a close notify to the peer) and closes the socket; a second call does nothing.
    public func close() {
        guard !closed else { return }
        closed = true
        _ = SSL_shutdown(ssl)
        Glibc.close(fd)
    }
}
