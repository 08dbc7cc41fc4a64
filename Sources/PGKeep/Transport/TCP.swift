#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PGKeepCore

/// Blocking TCP sockets for the remote protocol's transport (protocol.md §7): listen, accept,
/// connect with a timeout, and per-socket read and write timeouts, so that a silent peer fails
/// a read instead of blocking a worker thread for ever.
public enum TCP {
    /// A listening socket on `address` (a name or an IP address; `*` for every address) and
    /// `port` (0: one the system picks), and the port it listens on.
    public static func listen(address: String, port: UInt16, backlog: Int32 = 64) throws(PGKeepError) -> (fd: Int32, port: UInt16) {
        let (fd, lastErrno) = try firstSocket(host: address == "*" ? nil : address, port: port, passive: true,
                                              unresolved: { "unable to resolve '\(address)' to listen on: \($0)" },
                                              hint: "set --tls-server-address to an address of this host") { fd, info in
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            return bind(fd, info.ai_addr, info.ai_addrlen) == 0 && Glibc.listen(fd, backlog) == 0
        }
        guard let fd else {
            throw PGKeepError.system(.remoteUnreachable, "unable to listen on", path: "\(address):\(port)", errno: lastErrno,
                                     hint: "another process may listen on the port (ss -ltnp), or the address is not this host's")
        }
        return (fd, boundPort(fd))
    }

    /// The next connection on `listener`, and the peer's address as `host:port`.
    public static func accept(_ listener: Int32) throws(PGKeepError) -> (fd: Int32, peer: String) {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(listener, $0, &length) }
        }
        guard fd >= 0 else { throw PGKeepError.system(.remoteUnreachable, "unable to accept a connection on", path: "the agent's socket", errno: errno) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)  // never inherited by a child the agent starts
        return (fd, describe(&storage))
    }

    /// A connection to `host`:`port`, trying each address the name resolves to, each for at most
    /// `timeout` seconds.
    public static func connect(host: String, port: UInt16, timeout: Double) throws(PGKeepError) -> Int32 {
        let (fd, lastErrno) = try firstSocket(host: host, port: port, passive: false,
                                              unresolved: { "unable to resolve host '\(host)': \($0)" },
                                              hint: "check the host option (--pg1-host, --repo1-host) and this host's name resolution") { fd, info in
            setTimeouts(fd, seconds: timeout)  // connect(2) honours SO_SNDTIMEO on Linux
            return Glibc.connect(fd, info.ai_addr, info.ai_addrlen) == 0
        }
        if let fd { return fd }
        let reason = lastErrno == EINPROGRESS || lastErrno == EAGAIN ? "timed out after \(timeout) seconds" : String(cString: strerror(lastErrno))
        throw PGKeepError(.remoteUnreachable, "unable to connect to \(host):\(port): \(reason)",
                          hint: "check that 'pgkeep server' runs there and listens on that port (pgkeep server-ping), and that no firewall is in the way")
    }

    /// Resolves `host`:`port` and returns the first socket for which `use` succeeds (the others
    /// are closed), or nil and the errno of the last attempt.
    private static func firstSocket(host: String?, port: UInt16, passive: Bool, unresolved: (String) -> String, hint: String,
                                    _ use: (Int32, addrinfo) -> Bool) throws(PGKeepError) -> (fd: Int32?, errno: Int32) {
        var hints = addrinfo()
        hints.ai_flags = passive ? AI_PASSIVE : 0
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw PGKeepError(.remoteUnreachable, unresolved(String(cString: gai_strerror(status))), hint: hint)
        }
        defer { freeaddrinfo(list) }
        var lastErrno: Int32 = 0
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.pointee.ai_protocol)
            guard fd >= 0 else { lastErrno = errno; continue }
            if use(fd, info.pointee) { return (fd, 0) }
            lastErrno = errno
            close(fd)
        }
        return (nil, lastErrno)
    }

    /// Read and write timeouts: a blocking call on the socket fails with EAGAIN after `seconds`.
    public static func setTimeouts(_ fd: Int32, seconds: Double) {
        var value = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    private static func boundPort(_ fd: Int32) -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return port(&storage)
    }

    private static func port(_ storage: inout sockaddr_storage) -> UInt16 {
        switch Int32(storage.ss_family) {
        case AF_INET: return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) } }
        case AF_INET6: return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) } }
        default: return 0
        }
    }

    /// `host:port` of a socket address (`[v6]:port` for IPv6).
    static func describe(_ storage: inout sockaddr_storage) -> String {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let length = socklen_t(Int32(storage.ss_family) == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
        let status = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getnameinfo($0, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) }
        }
        let name = status == 0 ? String(cString: host) : "?"
        return Int32(storage.ss_family) == AF_INET6 ? "[\(name)]:\(port(&storage))" : "\(name):\(port(&storage))"
    }
}
