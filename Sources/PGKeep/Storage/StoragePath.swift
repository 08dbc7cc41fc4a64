/// A path inside a storage root: relative, made of non-empty components, never `.` or `..`, so it
/// cannot escape the repository root whatever a caller or a damaged manifest supplies.
public struct StoragePath: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let components: [String]

    /// The root of the storage itself.
    public static let root = StoragePath(trusted: [])

    /// Parses `a/b/c`; rejects absolute paths, empty components, `.`/`..` and NUL bytes.
    public init(_ text: String) throws {
        if text.isEmpty { self.init(trusted: []); return }
        if text.hasPrefix("/") {
            throw PGKeepError(.pathInvalid, "repository path '\(text)' is absolute",
                              hint: "repository paths are relative to the repository root")
        }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for part in parts { try StoragePath.validate(component: part, in: text) }
        self.init(trusted: parts)
    }

    private init(trusted components: [String]) { self.components = components }

    static func validate(component: String, in text: String) throws {
        if component.isEmpty || component == "." || component == ".." || component.contains("/") || component.utf8.contains(0) {
            throw PGKeepError(.pathInvalid, "repository path '\(text)' has an invalid component '\(component)'",
                              hint: "a repository path may not be empty, contain '.', '..' or NUL, or escape the repository root")
        }
    }

    /// This path with one more component.
    public func appending(_ component: String) throws -> StoragePath {
        try StoragePath.validate(component: component, in: component)
        return StoragePath(trusted: components + [component])
    }

    /// This path with a relative path (several components) appended.
    public func appending(path relative: String) throws -> StoragePath {
        let tail = try StoragePath(relative)
        return StoragePath(trusted: components + tail.components)
    }

    public var isRoot: Bool { components.isEmpty }
    public var name: String { components.last ?? "" }
    public var parent: StoragePath { StoragePath(trusted: Array(components.dropLast())) }
    public var description: String { components.joined(separator: "/") }

    /// Equality and hashing compare bytes, like `<` and like the file system: `String`'s own `==`
    /// treats canonically equivalent text (precomposed "é" and "e" + U+0301) as equal, which would
    /// merge two distinct files in a `Set` or `Dictionary` and contradict the byte-wise order.
    public static func == (lhs: StoragePath, rhs: StoragePath) -> Bool {
        lhs.components.count == rhs.components.count
            && zip(lhs.components, rhs.components).allSatisfy { $0.utf8.elementsEqual($1.utf8) }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(components.count)
        for component in components {
            hasher.combine(component.utf8.count)
            if component.utf8.withContiguousStorageIfAvailable({ hasher.combine(bytes: UnsafeRawBufferPointer($0)) }) == nil {
                for byte in component.utf8 { hasher.combine(byte) }
            }
        }
    }

    public static func < (lhs: StoragePath, rhs: StoragePath) -> Bool {
        lhs.description.utf8.lexicographicallyPrecedes(rhs.description.utf8)
    }
}
