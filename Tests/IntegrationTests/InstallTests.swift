import Foundation
import Testing
import TestSupport

/// make install's script with the built binary, into a throwaway prefix.
@Suite("make install")
struct InstallTests {
    @Test("scripts/install.sh installs the binary, pgkeep(1), completions, the example config and systemd units whose schedules systemd accepts")
    func installsEverything() throws {
        let binary = try PGKeepBinary.shared()
        let root = try TemporaryDirectory("install")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../scripts/install.sh").standardized.path
        let result = try Shell.run("/bin/bash", [script, binary.path],
                                   environment: ["PREFIX": root.path("usr"), "SYSCONFDIR": root.path("etc"), "SYSTEMDUNITDIR": root.path("units")]).check()
        #expect(result.stdout.contains("installed pgkeep"), "\(result)")
        for file in ["usr/bin/pgkeep", "usr/share/man/man1/pgkeep.1", "usr/share/bash-completion/completions/pgkeep",
                     "usr/share/zsh/site-functions/_pgkeep", "etc/pgkeep/pgkeep.conf.example", "etc/pgkeep/pgkeep-backup.env",
                     "units/pgkeep-backup@.service", "units/pgkeep-backup@.timer", "units/pgkeep-backup@full.timer.d/schedule.conf",
                     "units/pgkeep-server.service"] {
            #expect(root.exists(file), "\(file) installed")
        }
        #expect(try Shell.run(root.path("usr/bin/pgkeep"), ["version"]).check().stdout.hasPrefix("pgkeep "))
        let service = String(decoding: try root.read("units/pgkeep-backup@.service") ?? [], as: UTF8.self)
        #expect(service.contains("ExecStart=\(root.path("usr"))/bin/pgkeep backup --type=%i") && !service.contains("@BINDIR@"), "\(service)")
        #expect(service.contains("EnvironmentFile=\(root.path("etc"))/pgkeep/pgkeep-backup.env"), "\(service)")
        let server = String(decoding: try root.read("units/pgkeep-server.service") ?? [], as: UTF8.self)
        #expect(server.contains("ExecStart=\(root.path("usr"))/bin/pgkeep --config=\(root.path("etc"))/pgkeep/pgkeep.conf server")
                && server.contains("ExecReload=/bin/kill -HUP $MAINPID"), "\(server)")

        // The example config is one every command accepts as it is.
        let info = try Shell.run(root.path("usr/bin/pgkeep"), ["--config=\(root.path("etc/pgkeep/pgkeep.conf.example"))", "--repo1-path=\(root.path("repo"))",
                                                              "--log-level-file=off", "--allow-root", "info"],
                                  unsetEnvironment: PGKeepBinary.harnessVariables)
        #expect(info.status == 0 && info.stderr.isEmpty, "the example config resolves without warnings: \(info)")

        // Each schedule is a calendar expression systemd understands.
        for type in ["full", "diff", "incr"] {
            let text = String(decoding: try root.read("units/pgkeep-backup@\(type).timer.d/schedule.conf") ?? [], as: UTF8.self)
            let calendar = try #require(text.split(separator: "\n").first { $0.hasPrefix("OnCalendar=") }?.dropFirst("OnCalendar=".count))
            let check = try Shell.run("systemd-analyze", ["calendar", String(calendar)])
            #expect(check.status == 0, "\(type): \(check)")
        }
    }
}
