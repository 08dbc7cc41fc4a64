import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("StoragePath")
struct StoragePathTests {
    @Test("paths that could escape the root or name nothing are rejected",
          arguments: ["/", "/a", "/a/b", "..", "../a", "a/..", "a/../b", ".", "./a", "a/.", "a/./b",
                      "a//b", "a/", "//", "a\u{0}b", "\u{0}", "a/b\u{0}/c"])
    func rejects(_ text: String) {
        let error = #expect(throws: PGKeepError.self) { try StoragePath(text) }
        #expect(error?.code == .pathInvalid)
    }

    @Test("ordinary relative paths are accepted and keep their components",
          arguments: ["a", "a/b/c", "a.b", "..a", "a..", ".hidden", "...", "a b", "é/ü", "archive/main/000000010000000000000001.gz"])
    func accepts(_ text: String) throws {
        let path = try StoragePath(text)
        #expect(path.components == text.split(separator: "/").map(String.init))
        #expect(path.description == text)
        #expect(try StoragePath(path.description) == path)
        #expect(!path.isRoot)
    }

    @Test("the empty string is the root")
    func emptyIsRoot() throws {
        let root = try StoragePath("")
        #expect(root == .root)
        #expect(root.isRoot)
        #expect(root.components.isEmpty)
        #expect(root.description == "")
        #expect(root.name == "")
        #expect(root.parent == .root)
    }

    @Test("name is the last component and parent drops it, down to the root")
    func nameAndParent() throws {
        let path = try StoragePath("archive/main/file")
        #expect(path.name == "file")
        #expect(path.parent == (try StoragePath("archive/main")))
        #expect(path.parent.name == "main")
        #expect(path.parent.parent == (try StoragePath("archive")))
        #expect(path.parent.parent.parent == .root)
        #expect(path.description == "archive/main/file")
        #expect("\(path)" == "archive/main/file")
    }

    @Test("appending one component validates it", arguments: ["", ".", "..", "a/b", "/a", "x\u{0}"])
    func appendingRejects(_ component: String) throws {
        let base = try StoragePath("base")
        let error = #expect(throws: PGKeepError.self) { try base.appending(component) }
        #expect(error?.code == .pathInvalid)
    }

    @Test("appending a relative path validates every component", arguments: ["/a", "../a", "a/..", "a//b", "a/", "a/\u{0}"])
    func appendingPathRejects(_ relative: String) throws {
        let base = try StoragePath("base")
        let error = #expect(throws: PGKeepError.self) { try base.appending(path: relative) }
        #expect(error?.code == .pathInvalid)
    }

    @Test("appending builds the same path as parsing")
    func appendingBuilds() throws {
        let built = try StoragePath.root.appending("a").appending("b").appending(path: "c/d")
        #expect(built == (try StoragePath("a/b/c/d")))
        #expect(built.description == "a/b/c/d")
        #expect(try StoragePath.root.appending(path: "x/y") == (try StoragePath("x/y")))
        #expect(try built.appending(path: "") == built)
    }

    @Test("paths order byte-wise on their text, as object stores list keys")
    func ordering() throws {
        let texts = ["b", "a/b", "a", "B", "a-c", "é", "z", "Z", "a/a", "10", "9", "_", "e\u{301}"]
        let sorted = try texts.map(StoragePath.init).sorted().map(\.description)
        let expected = texts.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        #expect(sorted.map { Array($0.utf8) } == expected.map { Array($0.utf8) })
        #expect(try StoragePath("a") < StoragePath("a/b"))
        #expect(try StoragePath("a-c") < StoragePath("a/b"))   // '-' (0x2D) sorts before '/' (0x2F)
        #expect(try StoragePath("Z") < StoragePath("a"))
        #expect(try !(StoragePath("a") < StoragePath("a")))
    }

    @Test("paths that differ only in Unicode normalization are distinct, as they are on disk")
    func normalizationDistinct() throws {
        let composed = try StoragePath("caf\u{E9}")
        let decomposed = try StoragePath("cafe\u{301}")
        #expect(composed != decomposed)
        #expect(Set([composed, decomposed]).count == 2)
        // Consistent with the order: exactly one is less than the other.
        #expect((composed < decomposed) != (decomposed < composed))
        #expect(composed == (try StoragePath("caf\u{E9}")))
        #expect(Set([composed, try StoragePath("caf\u{E9}")]).count == 1)
    }
}
