// Byte sources and sinks over memory: the ends of a filter chain that touch no file system.
// Files are read and written by `FileSource` and `FileSink` (Storage/Posix/FileStreams.swift).

/// A byte source over an array in memory.
public final class MemorySource: ByteSource {
    private let bytes: [UInt8]
    private var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - offset)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + offset, byteCount: n)
        }
        offset += n
        return n
    }
}

/// Keeps what it is given, up to a limit (for small metadata objects).
package final class CollectingSink: ByteSink {
    package private(set) var bytes: [UInt8] = []
    let limit: Int
    /// What is collected, for the error when it is too large ("an archived history file").
    let what: String

    package init(limit: Int, what: String) {
        self.limit = limit
        self.what = what
    }

    package func write(_ chunk: UnsafeRawBufferPointer) throws {
        guard bytes.count + chunk.count <= limit else {
            throw PGKeepError(.formatInvalid, "\(what) is larger than \(limit) bytes",
                              hint: "the file is damaged or is not \(what)")
        }
        bytes.append(contentsOf: chunk)
    }
}

/// A source that hands everything it reads to `copy` as well: a stored object copied verbatim
/// while a read chain measures and decodes it.
public final class CopyingSource: ByteSource {
    private let source: ByteSource
    private let copy: ByteSink

    public init(_ source: ByteSource, copyingTo copy: ByteSink) {
        self.source = source
        self.copy = copy
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try source.read(into: buffer)
        if n > 0 { try copy.write(UnsafeRawBufferPointer(rebasing: buffer[..<n])) }
        return n
    }
}

/// A sink that discards its input: for hashing or verifying a stream without storing it.
public final class DiscardSink: ByteSink {
    public init() {}
    public func write(_ bytes: UnsafeRawBufferPointer) throws {}
}
