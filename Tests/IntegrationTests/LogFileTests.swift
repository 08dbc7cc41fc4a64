import Foundation
import Testing
import TestSupport

/// Every run logs its start (options) and its end (outcome, duration) to `<log-path>/<stanza>-<command>.log`,
/// one line per write so concurrent archive-push processes never interleave.
@Suite("Log files", .serialized)
struct LogFileTests {
    @Test("archive-push logs begin with its options and end with success or the error code, per process")
    func archivePushLogsBeginAndEnd() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                let segment = try await source.switchWALAndWaitForArchive()

                // A failing push: the file does not exist.
                let missing = scratch.path("no-such-dir/000000010000000000000042")
                let failed = try stanza.run(["archive-push", missing])
                #expect(failed.status != 0)

                let text = try String(contentsOfFile: stanza.logPath + "/main-archive-push.log", encoding: .utf8)
                let lines = text.split(separator: "\n").map(String.init)
                #expect(lines.contains { $0.contains("archive-push command begin") && $0.contains("--repo1-path=\(stanza.repository)") })
                #expect(lines.contains { $0.contains("archive-push command end: completed successfully") })
                #expect(lines.contains { $0.contains("ERROR:") && $0.contains(missing) }, "\(text)")
                #expect(lines.contains { $0.contains("command end: aborted with error [\(failed.status)]") }, "\(text)")
                #expect(text.contains(segment) || lines.filter { $0.contains("command begin") }.count >= 2)
                // Every line is whole: timestamp, process id, level.
                for line in lines {
                    #expect(line.range(of: #"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} P\d+ +[A-Z]+: "#,
                                       options: .regularExpression) != nil, "malformed log line: \(line)")
                }
            }
        }
    }

    @Test("an unwritable log path is a warning, never a failed archive-push")
    func unwritableLogPathOnlyWarns() async throws {
        try await withScratch { scratch in
            let stanza = try TestStanza(scratch: scratch)
            try await withCluster(name: "source", scratch: scratch, archiveCommand: stanza.archiveCommand) { source in
                try stanza.create(source)
                // A regular file where the log directory should be.
                let blocked = try scratch.writeFile("blocked", contents: "not a directory")
                let segment = try await source.switchWALAndWaitForArchive()
                // Re-push the archived segment (an identical duplicate: success) with the log blocked.
                let copy = try scratch.directory("copy", mode: 0o700) + "/" + segment
                try stanza.check(["archive-get", segment, copy])
                let options = stanza.common.filter { !$0.hasPrefix("--log-path=") } + ["--log-path=\(blocked)/sub"]
                let result = try stanza.binary.run(options + ["archive-push", copy])
                #expect(result.status == 0, "\(result)")
                #expect(result.stderr.contains("WARN") && result.stderr.contains(blocked), "\(result)")
            }
        }
    }
}
