import Testing
import TestSupport
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepEngine

/// `restore --recovery-option=KEY=VALUE` against a scripted host.
@Suite("restore --recovery-option")
struct RecoveryOptionTests {
    func restore(_ recoveryOptions: [String: String]) throws -> String {
        let setup = try ScriptedRestoreTests.Setup()
        _ = try setup.restore { $0.recoveryOptions = recoveryOptions }
        return String(decoding: try #require(setup.file("postgresql.auto.conf")).bytes, as: UTF8.self)
    }

    @Test("each --recovery-option is written into the recovery block after restore_command, quoted, in key order")
    func writesTheSettings() throws {
        let text = try restore(["recovery_min_apply_delay": "5min", "primary_conninfo": "host=db1 user=rep password='x'"])
        let conninfo = try #require(text.range(of: "primary_conninfo = 'host=db1 user=rep password=''x'''"), "\(text)")
        let delay = try #require(text.range(of: "recovery_min_apply_delay = '5min'"), "\(text)")
        let command = try #require(text.range(of: "restore_command = "))
        #expect(command.lowerBound < conninfo.lowerBound && conninfo.lowerBound < delay.lowerBound)
    }

    @Test("a key restore derives from its own options (recovery_target_time, restore_command) is refused with the option to use, before writing",
          arguments: [("recovery_target_time", "--type=time"), ("restore_command", "archive-get"), ("recovery_target_action", "--target-action")])
    func refusesDerivedKeys(_ key: String, _ hint: String) throws {
        let setup = try ScriptedRestoreTests.Setup()
        let error = #expect(throws: PGKeepError.self) { _ = try setup.restore { $0.recoveryOptions = [key: "x"] } }
        #expect(error?.code == .optionInvalid && error?.message.contains(key) == true && error?.hint?.contains(hint) == true,
                "\(String(describing: error))")
        #expect(setup.file("PG_VERSION") == nil, "nothing was restored")
    }

    @Test("a key that is not a setting name is refused")
    func refusesBadKeys() {
        #expect(throws: PGKeepError.self) { try RestoreRun.checkedRecoveryOptions(["Primary-Conninfo": "x"]) }
        #expect(throws: PGKeepError.self) { try RestoreRun.checkedRecoveryOptions(["": "x"]) }
    }
}
