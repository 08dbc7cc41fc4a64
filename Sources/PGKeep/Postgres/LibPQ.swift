import CPQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PGKeepCore

/// libpq, loaded with `dlopen` the first time a command connects to PostgreSQL.
///
/// Why not link it: libpq pulls in some twenty libraries (GSSAPI, Kerberos, LDAP, SASL, GnuTLS,
/// ...) whose loading, relocation and constructors cost about 2.5 ms of CPU at every start of
/// the process, measured with an empty C program linked with and without `-lpq`. PostgreSQL
/// starts `archive-push` and `archive-get` once per WAL file and they never connect, so only the
/// commands that do (backup, stanza-create) pay for it now. The `CPQ` module provides only the
/// types and constants of `libpq-fe.h`: it has no link directive and no pkg-config (Package.swift).
///
/// The function types below restate the declarations of `libpq-fe.h` (PostgreSQL 15) for the
/// few functions `PGSession` calls; their C ABI has been stable since libpq.so.5.
// @unchecked: immutable C function pointers resolved once by dlsym; libpq's functions are thread-safe per connection.
struct LibPQ: @unchecked Sendable {
    typealias StringArray = UnsafePointer<UnsafePointer<CChar>?>?

    let connectdbParams: @convention(c) (StringArray, StringArray, Int32) -> OpaquePointer?
    let finish: @convention(c) (OpaquePointer?) -> Void
    let status: @convention(c) (OpaquePointer?) -> ConnStatusType
    let serverVersion: @convention(c) (OpaquePointer?) -> Int32
    let errorMessage: @convention(c) (OpaquePointer?) -> UnsafeMutablePointer<CChar>?
    let execParams: @convention(c) (OpaquePointer?, UnsafePointer<CChar>?, Int32, UnsafePointer<Oid>?, StringArray,
                                    UnsafePointer<Int32>?, UnsafePointer<Int32>?, Int32) -> OpaquePointer?
    let resultStatus: @convention(c) (OpaquePointer?) -> ExecStatusType
    let resultErrorMessage: @convention(c) (OpaquePointer?) -> UnsafeMutablePointer<CChar>?
    let ntuples: @convention(c) (OpaquePointer?) -> Int32
    let nfields: @convention(c) (OpaquePointer?) -> Int32
    let getvalue: @convention(c) (OpaquePointer?, Int32, Int32) -> UnsafeMutablePointer<CChar>?
    let getisnull: @convention(c) (OpaquePointer?, Int32, Int32) -> Int32
    let clear: @convention(c) (OpaquePointer?) -> Void

    /// The library, loaded once per process; the same failure on every call when it cannot be.
    static func load() throws -> LibPQ {
        try loaded.get()
    }

    private static let loaded: Result<LibPQ, PGKeepError> = Result { () throws(PGKeepError) in try LibPQ(names: libraryNames) }

    #if os(macOS)
    private static let libraryNames = ["libpq.5.dylib", "/opt/homebrew/opt/libpq/lib/libpq.5.dylib", "/usr/local/opt/libpq/lib/libpq.5.dylib"]
    #else
    private static let libraryNames = ["libpq.so.5"]
    #endif

    private init(names: [String]) throws(PGKeepError) {
        var handle: UnsafeMutableRawPointer?
        var reasons: [String] = []
        for name in names {
            // Never unloaded: the handle lives as long as the process.
            handle = dlopen(name, RTLD_NOW | RTLD_LOCAL)
            if handle != nil { break }
            reasons.append(dlerror().map { String(cString: $0) } ?? name)
        }
        guard let handle else {
            throw PGKeepError(.dbConnect, "unable to load libpq: \(reasons.joined(separator: "; "))",
                              hint: "install the PostgreSQL client library (Debian: apt-get install libpq5)")
        }
        func symbol<F>(_ name: String) throws(PGKeepError) -> F {
            guard let address = dlsym(handle, name) else {
                throw PGKeepError(.dbConnect, "unable to load libpq: it has no function \(name)",
                                  hint: "install the PostgreSQL client library of PostgreSQL 10 or later (libpq.so.5)")
            }
            return unsafeBitCast(address, to: F.self)
        }
        connectdbParams = try symbol("PQconnectdbParams")
        finish = try symbol("PQfinish")
        status = try symbol("PQstatus")
        serverVersion = try symbol("PQserverVersion")
        errorMessage = try symbol("PQerrorMessage")
        execParams = try symbol("PQexecParams")
        resultStatus = try symbol("PQresultStatus")
        resultErrorMessage = try symbol("PQresultErrorMessage")
        ntuples = try symbol("PQntuples")
        nfields = try symbol("PQnfields")
        getvalue = try symbol("PQgetvalue")
        getisnull = try symbol("PQgetisnull")
        clear = try symbol("PQclear")
    }
}
