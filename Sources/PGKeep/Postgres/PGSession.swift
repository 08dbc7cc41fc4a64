import CPQ
import PGKeepCore

/// How to reach the database: the `pg1-*` options.
public struct PGConnectionOptions: Sendable {
    public var socketPath: String
    public var port: Int
    public var user: String?
    public var database: String

    public init(socketPath: String, port: Int, user: String?, database: String) {
        self.socketPath = socketPath
        self.port = port
        self.user = user
        self.database = database
    }

    var where_: String { "socket '\(socketPath)', port \(port), database '\(database)'" + (user.map { ", user '\($0)'" } ?? "") }
}

/// One libpq connection: the only owner of a `PGconn`, closed in `deinit`. Every libpq failure
/// becomes a `PGKeepError` through `check`.
///
/// A backup runs `pg_backup_start` and `pg_backup_stop` in the same session: if the connection
/// dies in between, the server silently aborts the backup (docs/postgres-internals.md §1.1), so a lost
/// connection is a failed backup, never a retry on a new session.
public final class PGSession {
    private let connection: OpaquePointer
    private let libpq: LibPQ
    public let options: PGConnectionOptions

    public init(_ options: PGConnectionOptions, applicationName: String = "pgkeep") throws {
        let libpq = try LibPQ.load()
        self.libpq = libpq
        self.options = options
        var keys = ["host", "port", "dbname", "application_name", "connect_timeout", "client_encoding"]
        var values = [options.socketPath, String(options.port), options.database, applicationName, "30", "UTF8"]
        if let user = options.user { keys.append("user"); values.append(user) }
        let conn: OpaquePointer? = withCStrings(keys) { k in
            withCStrings(values) { v in libpq.connectdbParams(k, v, 0) }
        }
        guard let conn else {
            throw PGKeepError(.dbConnect, "unable to allocate a libpq connection")
        }
        connection = conn
        if libpq.status(conn) != CONNECTION_OK {
            // No PQfinish here: every stored property is set, so throwing runs deinit, which finishes it.
            let message = errorText(conn)
            throw PGKeepError(.dbConnect, "unable to connect to PostgreSQL (\(options.where_)): \(message)",
                              hint: "check that PostgreSQL is running and that --pg1-socket-path and --pg1-port point at it")
        }
    }

    deinit { libpq.finish(connection) }

    /// The server's version, e.g. 150018.
    public var serverVersionNumber: Int { Int(libpq.serverVersion(connection)) }

    /// Runs `sql` with text parameters and returns the rows as optional strings (nil = SQL NULL).
    @discardableResult
    public func query(_ sql: String, _ parameters: [String] = []) throws -> [[String?]] {
        let result: OpaquePointer? = withCStrings(parameters) { params in
            libpq.execParams(connection, sql, Int32(parameters.count), nil, params, nil, nil, 0)
        }
        guard let result else {
            throw PGKeepError(.dbQuery, "query failed (\(options.where_)): \(errorText(connection))")
        }
        defer { libpq.clear(result) }
        let status = libpq.resultStatus(result)
        guard status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK else {
            var message = libpq.resultErrorMessage(result).map { String(cString: $0) } ?? "unknown error"
            message = message.trimmingTrailingNewlines()
            throw PGKeepError(.dbQuery, "query '\(sql)' failed: \(message)",
                              hint: libpq.status(connection) != CONNECTION_OK ? "the connection to PostgreSQL was lost" : nil)
        }
        var rows: [[String?]] = []
        let rowCount = libpq.ntuples(result), columnCount = libpq.nfields(result)
        rows.reserveCapacity(Int(rowCount))
        for r in 0..<rowCount {
            var row: [String?] = []
            for c in 0..<columnCount {
                // PQgetvalue is never NULL for a cell in range.
                row.append(libpq.getisnull(result, r, c) != 0 ? nil : libpq.getvalue(result, r, c).map { String(cString: $0) })
            }
            rows.append(row)
        }
        return rows
    }

    /// The single value of a one-row, one-column query.
    public func value(_ sql: String, _ parameters: [String] = []) throws -> String? {
        let rows = try query(sql, parameters)
        guard rows.count == 1, rows[0].count == 1 else {
            throw PGKeepError(.dbQuery, "query '\(sql)' returned \(rows.count) rows, expected one")
        }
        return rows[0][0]
    }

    private func errorText(_ conn: OpaquePointer) -> String {
        (libpq.errorMessage(conn).map { String(cString: $0) } ?? "unknown error").trimmingTrailingNewlines()
    }
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var s = self
        while s.hasSuffix("\n") || s.hasSuffix(" ") { s.removeLast() }
        return s
    }
}

/// Calls `body` with a NULL-free array of C strings that stay valid for the call.
func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { pointers.forEach { free($0) } }
    pointers.append(nil)
    return body(pointers.map { $0.map { UnsafePointer($0) } })
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
