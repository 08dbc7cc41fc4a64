import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

private func parse(_ text: String) throws(PGKeepError) -> IniFile {
    try IniFile(parsing: text, path: "/etc/pgkeep/pgkeep.conf")
}

private func failure(_ text: String) -> PGKeepError? {
    do {
        _ = try parse(text)
        return nil
    } catch {
        return error
    }
}

@Suite("IniFile")
struct IniFileTests {
    @Test("sections, keys and values are read with whitespace around '=' trimmed, comments and blank lines skipped")
    func parsesSectionsAndEntries() throws {
        let file = try parse("""
            # pgkeep configuration

            [global]
            repo1-path = /var/lib/pgkeep
              process-max=4\t
            [main:backup]
            start-fast=y
            # a comment inside a section
            """)
        #expect(file.sections.map(\.name) == ["global", "main:backup"])
        let global = try #require(file.section("global"))
        #expect(global.line == 3)
        #expect(global.entries == [
            IniFile.Entry(key: "repo1-path", value: "/var/lib/pgkeep", line: 4),
            IniFile.Entry(key: "process-max", value: "4", line: 5),
        ])
        #expect(file.section("main:backup")?.entry("start-fast")?.value == "y")
        #expect(file.section("main") == nil)
    }

    @Test("a value keeps everything after the first '=', including '=' and '#'")
    func valueKeepsEqualsAndHash() throws {
        let file = try parse("[global]\nrecovery=a=b # not a comment\n")
        #expect(file.section("global")?.entry("recovery")?.value == "a=b # not a comment")
    }

    @Test("CRLF line endings are accepted")
    func crlf() throws {
        let file = try parse("[global]\r\nrepo1-path=/r\r\n\r\n[main]\r\npg1-path=/pg\r\n")
        #expect(file.section("global")?.entry("repo1-path")?.value == "/r")
        #expect(file.section("main")?.entry("pg1-path") == IniFile.Entry(key: "pg1-path", value: "/pg", line: 5))
    }

    @Test("an empty file and a file of comments have no sections")
    func emptyFiles() throws {
        #expect(try parse("").sections.isEmpty)
        #expect(try parse("# only\n\n   # comments\n").sections.isEmpty)
    }

    @Test("a line that is neither key=value, a section nor a comment is an error with file and line")
    func malformedLine() throws {
        let error = try #require(failure("[global]\nrepo1-path /r\n"))
        #expect(error.code == .configFileInvalid)
        #expect(error.message.contains("/etc/pgkeep/pgkeep.conf:2"))
        #expect(error.message.contains("repo1-path /r"))
    }

    @Test("a key before any section is an error")
    func keyOutsideSection() throws {
        let error = try #require(failure("# header\nrepo1-path=/r\n[global]\n"))
        #expect(error.code == .configFileInvalid)
        #expect(error.message.contains(":2") && error.message.contains("outside any section"))
    }

    @Test("a key set twice in one section is an error naming both lines; the same key in two sections is fine")
    func duplicateKey() throws {
        let error = try #require(failure("[global]\nprocess-max=1\n\nprocess-max=2\n"))
        #expect(error.code == .configFileInvalid)
        #expect(error.message.contains(":4") && error.message.contains("line 2") && error.message.contains("process-max"))
        #expect(failure("[global]\nprocess-max=1\n[main]\nprocess-max=2\n") == nil)
    }

    @Test("broken section headers are errors: unclosed, empty, repeated")
    func badHeaders() throws {
        #expect(failure("[global\n")?.message.contains(":1") == true)
        #expect(failure("[ ]\n")?.message.contains("empty section") == true)
        let repeated = try #require(failure("[global]\na=1\n[global]\nb=2\n"))
        #expect(repeated.message.contains(":3") && repeated.message.contains("line 1"))
    }

    @Test("a line with '=' but no key is an error")
    func missingKey() throws {
        #expect(failure("[global]\n=value\n")?.message.contains(":2") == true)
    }

    @Test("an empty value is kept for the option's kind to judge")
    func emptyValue() throws {
        #expect(try parse("[global]\nrepo1-path=\n").section("global")?.entry("repo1-path")?.value == "")
    }
}
