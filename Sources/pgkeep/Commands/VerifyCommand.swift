import PGKeepCore
import PGKeepEngine

/// `pgkeep --stanza=main verify [--set=LABEL] [--since-last] [--process-max=N] [--output=json]`
enum VerifyCommand {
    static func run(_ context: CommandContext) throws {
        let options = VerifyOptions(set: try context.setLabel(), sinceLast: context.config.bool(.sinceLast),
                                    processMax: context.processMax, bufferSize: context.bufferSize)
        let report = try VerifyRun(storage: context.storage, layout: try context.layout(), options: options, log: context.log).run()
        if context.config.string(.output) == "json" {
            print(try report.json(), terminator: "")
        } else {
            print(report.text(), terminator: "")
        }
        for warning in report.warnings { context.log.warn("\(warning.kind): \(warning.path): \(warning.message)") }
        guard report.problems.isEmpty else {
            let first = report.problems[0]
            let affected = Set(report.problems.flatMap(\.backups)).sorted()
            throw PGKeepError(.verifyFailed,
                              "verify found \(report.problems.count) problem\(report.problems.count == 1 ? "" : "s") in stanza '\(report.stanza)'"
                                  + (affected.isEmpty ? "" : " affecting backup\(affected.count == 1 ? "" : "s") \(affected.joined(separator: ", "))")
                                  + "; first: \(first.kind) \(first.path): \(first.message)",
                              hint: "the report lists every damaged file and the backups it affects; take a new backup, and restore damaged WAL or files from another copy of the repository if you have one")
        }
    }
}
