import Foundation
import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig
@testable import PGKeepFuzz

/// `Fixtures/fuzz/<target>/`: the seeds `make fuzz` starts from (top level: real artefacts every
/// parser must accept), `rejected/` (seeds that must be refused) and `regressions/` (inputs that
/// once crashed a parser or broke its contract; they must now go through without a trap or a finding).
private enum FuzzCorpus {
    static let directory = PostgresFixture.directory.appendingPathComponent("fuzz")

    /// Every regular file below `url`, sorted, as (path relative to `directory`, bytes).
    static func files(below url: URL) throws -> [(name: String, bytes: [UInt8])] {
        let enumerator = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey])
        var found: [(String, [UInt8])] = []
        while let file = enumerator?.nextObject() as? URL {
            guard try file.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true else { continue }
            let name = String(file.standardizedFileURL.path.dropFirst(directory.standardizedFileURL.path.count + 1))
            found.append((name, [UInt8](try Data(contentsOf: file))))
        }
        return found.sorted { $0.0 < $1.0 }
    }
}

@Suite("Parser fuzz corpus")
struct ParserFuzzCorpusTests {
    @Test("every fuzz target has a seed directory and every seed directory is a target")
    func directoriesMatchTargets() throws {
        let directories = try FileManager.default.contentsOfDirectory(atPath: FuzzCorpus.directory.path).sorted()
        #expect(directories == ParserFuzzTarget.allCases.map(\.rawValue).sorted())
    }

    @Test("seeds are accepted, rejected seeds are refused with a PGKeepError, crash regressions pass without a finding",
          arguments: ParserFuzzTarget.allCases)
    func replaysCorpus(_ target: ParserFuzzTarget) throws {
        let files = try FuzzCorpus.files(below: FuzzCorpus.directory.appendingPathComponent(target.rawValue))
        let seeds = files.filter { !$0.name.contains("/rejected/") && !$0.name.contains("/regressions/") }
        #expect(!seeds.isEmpty, "no seed for \(target.rawValue)")
        for file in files {
            let outcome: ParserFuzzTarget.Outcome
            do {
                outcome = try target.run(file.bytes)
            } catch {
                Issue.record("\(file.name): \(error)")
                continue
            }
            if file.name.contains("/rejected/") {
                #expect(outcome != .accepted, "\(file.name)")
            } else if !file.name.contains("/regressions/") {
                #expect(outcome == .accepted, "\(file.name)")
            }
        }
    }
}
