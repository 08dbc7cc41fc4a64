import FoundationEssentials

/// The container of every metadata file (archive.info, backup.info, backup.manifest): a JSON body
/// followed by one trailer line that seals it,
///
///     <JSON body>\n
///     sha256 <64 lower-case hex digits of the body bytes>\n
///
/// and a `.copy` twin written the same way. Readers verify the seal before decoding; a torn or
/// edited file is detected, and the loader falls back to the twin (see `load`).
public enum SealedFile {
    static let trailerPrefix = Array("sha256 ".utf8)

    /// Encodes `value` as sorted, pretty-printed JSON and appends the seal.
    public static func seal<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let body: [UInt8]
        do { body = Array(try encoder.encode(value)) } catch {
            throw PGKeepError(.internal, "unable to encode metadata: \(error)")
        }
        var bytes = body
        bytes.append(UInt8(ascii: "\n"))
        bytes.append(contentsOf: trailerPrefix)
        bytes.append(contentsOf: Array(try SHA256Digest.of(body).hex.utf8))
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// Checks the seal of `bytes` and decodes the body. `name` is used in error messages.
    public static func open<T: Decodable>(_ type: T.Type, from bytes: [UInt8], name: String) throws -> T {
        // The trailer is the last line: "sha256 " + 64 hex + "\n".
        let trailerLength = trailerPrefix.count + 64 + 1
        guard bytes.count > trailerLength, bytes.last == UInt8(ascii: "\n"),
              bytes[bytes.count - trailerLength - 1] == UInt8(ascii: "\n") else {
            throw PGKeepError(.formatInvalid, "'\(name)' has no checksum trailer (truncated or not a pgkeep file)")
        }
        let bodyEnd = bytes.count - trailerLength - 1
        let trailer = bytes[(bodyEnd + 1)...]
        guard trailer.starts(with: trailerPrefix) else {
            throw PGKeepError(.formatInvalid, "'\(name)' has a malformed checksum trailer")
        }
        let recorded = String(decoding: trailer.dropFirst(trailerPrefix.count).dropLast(), as: UTF8.self)
        let body = Array(bytes[..<bodyEnd])
        let actual = try SHA256Digest.of(body).hex
        guard recorded == actual else {
            throw PGKeepError(.checksumMismatch, "'\(name)' checksum mismatch: recorded \(recorded), computed \(actual)")
        }
        let value: T
        do {
            value = try JSONDecoder().decode(T.self, from: Data(body))
        } catch {
            throw PGKeepError(.formatInvalid, "'\(name)' cannot be decoded: \(error)")
        }
        if let versioned = value as? FormatVersioned, !(1...RepositoryFormat.current).contains(versioned.format) {
            throw PGKeepError(.repositoryInvalid,
                              "'\(name)' is in repository format \(versioned.format); this pgkeep reads formats 1 to \(RepositoryFormat.current)",
                              hint: "use the pgkeep version that wrote the repository, or a newer one")
        }
        return value
    }

    /// Writes `value` to `path` and then to `path.copy`, each atomically. A crash between the two
    /// leaves one good file, which is what `load` needs.
    public static func save<T: Encodable>(_ value: T, to path: StoragePath, in storage: Storage) throws {
        let bytes = try seal(value)
        try storage.writeSmallFile(path, bytes)
        try storage.writeSmallFile(try copyPath(of: path), bytes)
    }

    /// Loads `path`, falling back to `path.copy` when the main file is missing or damaged. Returns
    /// nil when neither exists. `warn` receives a message when the twin had to be used.
    public static func load<T: Decodable>(_ type: T.Type, from path: StoragePath, in storage: Storage,
                                          warn: (String) -> Void = { _ in }) throws -> T? {
        let copy = try copyPath(of: path)
        var mainError: PGKeepError?
        if let bytes = try storage.readSmallFile(path) {
            do { return try open(type, from: bytes, name: storage.describe(path)) } catch let error as PGKeepError {
                mainError = error
            }
        }
        guard let copyBytes = try storage.readSmallFile(copy) else {
            if let mainError {
                throw PGKeepError(mainError.code, mainError.message + "; the copy '\(storage.describe(copy))' is missing",
                                  hint: "restore the file from a backup of the repository; do not edit metadata files by hand")
            }
            return nil
        }
        do {
            let value = try open(type, from: copyBytes, name: storage.describe(copy))
            warn(mainError.map { "\($0.message); using the copy '\(storage.describe(copy))'" }
                 ?? "'\(storage.describe(path))' is missing; using the copy '\(storage.describe(copy))'")
            return value
        } catch let copyError as PGKeepError {
            guard let mainError else {
                // repo-layout.md §3: when both fail, name both problems (here: the main file is missing).
                throw PGKeepError(copyError.code, "'\(storage.describe(path))' is missing; and the copy: \(copyError.message)",
                                  hint: "restore the file from a backup of the repository; do not edit metadata files by hand")
            }
            throw PGKeepError(mainError.code, "\(mainError.message); and the copy: \(copyError.message)",
                              hint: "both copies are damaged: restore them from a backup of the repository")
        }
    }

    static func copyPath(of path: StoragePath) throws -> StoragePath {
        try path.parent.appending(path.name + ".copy")
    }
}
