import FoundationEssentials
import PGKeepCore

/// The container of every metadata file (archive.info, backup.info, backup.manifest): a JSON body
/// followed by one trailer line that seals it,
///
///     <JSON body>\n
///     sha256 <64 lower-case hex digits of the body bytes>\n
///
/// and a `.copy` twin written the same way. Readers verify the seal before decoding; a torn or
/// edited file is detected, and the loader falls back to the twin (see `load`).
public enum SealedFile {
    package static let trailerPrefix = Array("sha256 ".utf8)

    /// Encodes `value` as sorted, pretty-printed JSON and appends the seal.
    public static func seal<T: Encodable>(_ value: T) throws -> [UInt8] {
        if let streamed = value as? StreamSealed {
            let sink = CollectingSink(limit: Int.max, what: "a sealed file")
            try write(sink) { try streamed.writeJSONBody(to: &$0) }
            return sink.bytes
        }
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

    /// Streams a sealed file into `sink`: the body `writeBody` produces, through SHA-256 on its way,
    /// then the trailer. Memory is the writer's one buffer, whatever the size of the body.
    static func write(_ sink: ByteSink, body writeBody: (inout JSONStreamWriter) throws -> Void) throws {
        let hasher = try SHA256Hasher()
        var writer = JSONStreamWriter { bytes in
            try hasher.update(bytes)
            try sink.write(bytes)
        }
        try writeBody(&writer)
        try writer.finish()
        var trailer = [UInt8(ascii: "\n")] + trailerPrefix
        trailer.append(contentsOf: try hasher.finalize().hex.utf8)
        trailer.append(UInt8(ascii: "\n"))
        try trailer.withUnsafeBytes { try sink.write($0) }
    }

    /// Writes a streamed sealed file to `path` atomically (no `.copy`: callers that need the twin
    /// call it twice).
    package static func write(to path: StoragePath, in storage: Storage, body: (inout JSONStreamWriter) throws -> Void) throws {
        let writer = try storage.openWrite(path)
        do {
            try write(writer, body: body)
            try writer.commit()
        } catch {
            writer.abort()
            throw error
        }
    }

    /// Checks the seal of `bytes` and decodes the body. `name` is used in error messages.
    public static func open<T: Decodable>(_ type: T.Type, from bytes: [UInt8], name: String) throws -> T {
        if let streamed = T.self as? StreamSealed.Type {
            return try open(streamed, from: MemorySource(bytes), name: name) as! T
        }
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
        try checkFormat(value, name: name)
        return value
    }

    /// Reads a streamed sealed file from `source`, checking the seal as the bytes pass: the body is
    /// decoded as it arrives, and the value is returned only after the trailer verified (a seal
    /// problem is reported before any decoding problem, as `open(_:from:name:)` does).
    package static func open(_ type: StreamReadable.Type, from source: ByteSource, name: String) throws -> StreamReadable {
        let sealed = try SealedSource(source)
        var reader = JSONStreamReader(source: sealed, name: name)
        var value: StreamReadable?
        var decodeError: (any Error)?
        do {
            value = try type.readJSONBody(from: &reader)
            try reader.finishDocument { sealed.bodyEnd }
        } catch {
            decodeError = error
            try reader.drain()
        }
        try sealed.verify(name: name)
        if let decodeError { throw decodeError }
        try checkFormat(value!, name: name)
        return value!
    }

    /// The one place a sealed file's format and features are judged (`FormatVersioned.judge`),
    /// for the access of the running command (`RepositoryFormat.access`).
    private static func checkFormat(_ value: Any, name: String) throws {
        try (value as? FormatVersioned)?.judge(name: name, access: RepositoryFormat.access)
    }

    /// Reads and opens `path`; nil when it is missing. Streamed types never hold the whole file.
    static func read<T: Decodable>(_ type: T.Type, from path: StoragePath, in storage: Storage) throws -> T? {
        if let streamed = T.self as? StreamSealed.Type {
            guard let reader = try storage.openRead(path) else { return nil }
            return try open(streamed, from: reader, name: storage.describe(path)) as? T
        }
        guard let bytes = try storage.readSmallFile(path) else { return nil }
        return try open(type, from: bytes, name: storage.describe(path))
    }

    /// Writes `value` to `path` and then to `path.copy`, each atomically. A crash between the two
    /// leaves one good file, which is what `load` needs.
    public static func save<T: Encodable>(_ value: T, to path: StoragePath, in storage: Storage) throws {
        if let streamed = value as? StreamSealed {
            for target in [path, try copyPath(of: path)] {
                try write(to: target, in: storage) { try streamed.writeJSONBody(to: &$0) }
            }
            return
        }
        let bytes = try seal(value)
        try storage.writeSmallFile(path, bytes)
        try storage.writeSmallFile(try copyPath(of: path), bytes)
    }

    /// Loads `path`, falling back to `path.copy` when the main file is missing or damaged. Returns
    /// nil when neither exists. `warn` receives a message when the twin had to be used.
    public static func load<T: Decodable>(_ type: T.Type, from path: StoragePath, in storage: Storage,
                                          warn: (String) -> Void = { _ in }) throws -> T? {
        try load(from: path, in: storage, warn: warn) { try read(type, from: $0, in: storage) }
    }

    /// `load` for a type only ever read as a stream (a compact form of a manifest).
    package static func loadStreamed<T: StreamReadable>(_ type: T.Type, from path: StoragePath, in storage: Storage,
                                                warn: (String) -> Void = { _ in }) throws -> T? {
        try load(from: path, in: storage, warn: warn) { path in
            guard let reader = try storage.openRead(path) else { return nil }
            return try open(type, from: reader, name: storage.describe(path)) as? T
        }
    }

    private static func load<T>(from path: StoragePath, in storage: Storage, warn: (String) -> Void,
                                read: (StoragePath) throws -> T?) throws -> T? {
        let copy = try copyPath(of: path)
        var mainError: PGKeepError?
        do {
            if let value = try read(path) { return value }
        } catch let error as PGKeepError {
            mainError = error
        }
        guard try storage.info(copy) != nil else {
            if let mainError {
                throw PGKeepError(mainError.code, mainError.message + "; the copy '\(storage.describe(copy))' is missing",
                                  hint: "restore the file from a backup of the repository; do not edit metadata files by hand")
            }
            return nil
        }
        do {
            guard let value = try read(copy) else {
                throw PGKeepError(.fileMissing, "'\(storage.describe(copy))' vanished while it was read")
            }
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

    package static func copyPath(of path: StoragePath) throws -> StoragePath {
        try path.parent.appending(path.name + ".copy")
    }
}

/// A sealed value read as a stream, never as a whole document or a `Codable` tree in memory.
package protocol StreamReadable {
    /// Reads the JSON body.
    static func readJSONBody(from reader: inout JSONStreamReader) throws -> Self
}

/// A sealed value written and read as a stream (the manifest, which lists every file of a cluster).
protocol StreamSealed: StreamReadable {
    /// Writes the JSON body, byte for byte what `JSONEncoder` would write for the value's
    /// `Encodable` conformance with `SealedFile`'s options.
    func writeJSONBody(to writer: inout JSONStreamWriter) throws
}

extension Manifest: StreamSealed {
    func writeJSONBody(to writer: inout JSONStreamWriter) throws { try writeJSON(to: &writer) }
    package static func readJSONBody(from reader: inout JSONStreamReader) throws -> Manifest { try readJSON(from: &reader) }
}

/// Passes a sealed file's bytes through, hashing all but the last 73 (the newline before the
/// trailer and the trailer line), which it keeps to check the seal at the end.
final class SealedSource: ByteSource {
    private let inner: ByteSource
    private let hasher: SHA256Hasher
    private var held: [UInt8] = []
    private(set) var total = 0
    /// "\n" + "sha256 " + 64 hex digits + "\n"
    static let heldLength = 1 + SealedFile.trailerPrefix.count + 64 + 1

    init(_ inner: ByteSource) throws {
        self.inner = inner
        hasher = try SHA256Hasher()
        held.reserveCapacity(Self.heldLength * 2)
    }

    /// Where the trailer line begins (its "sha256"); meaningful once the source is at its end.
    var bodyEnd: Int { total - Self.heldLength + 1 }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try inner.read(into: buffer)
        total += n
        let chunk = UnsafeRawBufferPointer(rebasing: buffer[..<n])
        if n >= Self.heldLength {
            try held.withUnsafeBytes { try hasher.update($0) }
            try hasher.update(UnsafeRawBufferPointer(rebasing: chunk[..<(n - Self.heldLength)]))
            held.removeAll(keepingCapacity: true)
            held.append(contentsOf: chunk[(n - Self.heldLength)...])
        } else {
            held.append(contentsOf: chunk)
            if held.count > Self.heldLength {
                let extra = held.count - Self.heldLength
                try held.withUnsafeBytes { try hasher.update(UnsafeRawBufferPointer(rebasing: $0[..<extra])) }
                held.removeFirst(extra)
            }
        }
        return n
    }

    /// Checks the trailer against the hash of the body (the source must be at its end), with the
    /// messages of `SealedFile.open`.
    func verify(name: String) throws {
        guard held.count == Self.heldLength, total > Self.heldLength - 1, held.last == UInt8(ascii: "\n"),
              held.first == UInt8(ascii: "\n") else {
            throw PGKeepError(.formatInvalid, "'\(name)' has no checksum trailer (truncated or not a pgkeep file)")
        }
        let trailer = held.dropFirst()
        guard trailer.starts(with: SealedFile.trailerPrefix) else {
            throw PGKeepError(.formatInvalid, "'\(name)' has a malformed checksum trailer")
        }
        let recorded = String(decoding: trailer.dropFirst(SealedFile.trailerPrefix.count).dropLast(), as: UTF8.self)
        let actual = try hasher.finalize().hex
        guard recorded == actual else {
            throw PGKeepError(.checksumMismatch, "'\(name)' checksum mismatch: recorded \(recorded), computed \(actual)")
        }
    }
}
