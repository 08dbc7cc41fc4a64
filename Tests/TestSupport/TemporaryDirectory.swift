import Foundation
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository
import PGKeepMover
import PGKeepEngine
import PGKeepConfig

/// A fresh directory under `/tmp` for one test, removed with everything below it when the value
/// is released (swift-testing creates one suite instance per test, so a stored property lives
/// exactly as long as its test).
public final class TemporaryDirectory: @unchecked Sendable {
    /// Absolute path of the directory.
    public let path: String

    /// Creates `/tmp/pgkeep-<label>.XXXXXX`.
    public init(_ label: String = "test") throws {
        var template = Array("/tmp/pgkeep-\(label).XXXXXX".utf8CString)
        let made: String? = template.withUnsafeMutableBufferPointer { buffer in
            mkdtemp(buffer.baseAddress!).map { String(cString: $0) }
        }
        guard let made else {
            throw PGKeepError.system(.pathCreate, "unable to create temporary directory", path: "/tmp", errno: errno)
        }
        path = made
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// The absolute path of `relative` inside the directory.
    public func path(_ relative: String) -> String {
        relative.isEmpty ? path : path + "/" + relative
    }

    /// Writes `bytes` to `relative`, creating parent directories; returns the absolute path.
    @discardableResult
    public func write(_ relative: String, _ bytes: [UInt8]) throws -> String {
        let full = path(relative)
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: full))
        return full
    }

    /// Creates the directory `relative` (and its parents); returns the absolute path.
    @discardableResult
    public func makeDirectory(_ relative: String) throws -> String {
        let full = path(relative)
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        return full
    }

    /// The bytes of `relative`, or nil when it does not exist.
    public func read(_ relative: String) throws -> [UInt8]? {
        let full = path(relative)
        guard FileManager.default.fileExists(atPath: full) else { return nil }
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: full)))
    }

    /// Whether anything (file, directory or link) exists at `relative`.
    public func exists(_ relative: String) -> Bool {
        var st = stat()
        return lstat(path(relative), &st) == 0
    }

    /// Every regular file below `relative`, as sorted paths relative to it, hidden and temporary
    /// files included (tests use this to prove nothing was left behind).
    public func files(under relative: String = "") -> [String] {
        let base = path(relative)
        guard let enumerator = FileManager.default.enumerator(atPath: base) else { return [] }
        var found: [String] = []
        while let name = enumerator.nextObject() as? String {
            var st = stat()
            if lstat(base + "/" + name, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { found.append(name) }
        }
        return found.sorted()
    }
}
