import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("libpq session")
struct PGSessionTests {
    @Test("libpq is loaded on demand, and a server that is not there is a connection error naming where it looked")
    func noServer() throws {
        _ = try LibPQ.load()
        let directory = try TemporaryDirectory("pgsession")
        let options = PGConnectionOptions(socketPath: directory.path("nothing-here"), port: 5999, user: nil, database: "postgres")
        let error = try #require(#expect(throws: PGKeepError.self) { try PGSession(options) })
        #expect(error.code == .dbConnect)
        #expect(error.message.contains("nothing-here") && error.message.contains("5999"), "\(error.message)")
        #expect(!error.message.contains("unable to load libpq"))
    }
}
