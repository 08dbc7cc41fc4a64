import Foundation

/// A throwaway certificate authority made with the `openssl` command, for tests of the remote
/// transport: a CA and the certificates it signs, each with a common name and subjectAltNames.
public final class TestCertificates {
    public let directory: TemporaryDirectory
    public let name: String
    public var caFile: String { directory.path("\(name)-ca.crt") }
    private var caKey: String { directory.path("\(name)-ca.key") }

    /// A new CA named `name` ("pgkeep test CA <name>").
    public init(name: String = "main") throws {
        self.name = name
        directory = try TemporaryDirectory("certs-\(name)")
        try Self.openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                          "-keyout", caKey, "-out", caFile, "-days", "2", "-subj", "/CN=pgkeep test CA \(name)"])
    }

    /// A certificate and key signed by this CA, for `commonName`, naming `names` (DNS names or
    /// IP addresses) in its subjectAltName, valid for `days` (-1: it expired a day ago). Returns
    /// the certificate and key paths.
    public func issue(_ commonName: String, names: [String] = [], days: Int = 2) throws -> (certificate: String, key: String) {
        let base = directory.path("\(name)-\(commonName)")
        try Self.openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                          "-keyout", base + ".key", "-out", base + ".csr", "-subj", "/CN=\(commonName)"])
        var arguments = ["x509", "-req", "-in", base + ".csr", "-CA", caFile, "-CAkey", caKey, "-CAcreateserial",
                         "-out", base + ".crt", "-days", String(days)]
        if !names.isEmpty {
            let alternatives = names.map { $0.first?.isNumber == true || $0.contains(":") ? "IP:\($0)" : "DNS:\($0)" }
            try "subjectAltName=\(alternatives.joined(separator: ","))\n".write(toFile: base + ".ext", atomically: true, encoding: .utf8)
            arguments += ["-extfile", base + ".ext"]
        }
        try Self.openssl(arguments)
        return (base + ".crt", base + ".key")
    }

    private static func openssl(_ arguments: [String]) throws {
        _ = try Shell.run("openssl", arguments, timeout: .seconds(60)).check()
    }
}
