/// An ordered list of filters ending in a sink. Built once per worker and reused per file: only
/// the terminal sink changes (`run(from:into:buffer:)` takes it as an argument).
public final class FilterChain {
    public let filters: [Filter]
    private var links: [Link] = []
    private let terminal = Terminal()

    public init(_ filters: [Filter]) {
        self.filters = filters
        // links[i] feeds filters[i]; the link after the last filter feeds the terminal sink.
        var next: ByteSink = terminal
        var built: [Link] = []
        for filter in filters.reversed() {
            let link = Link(filter: filter, next: next)
            built.append(link)
            next = link
        }
        links = built.reversed()
    }

    /// The sink that feeds the first filter (or the terminal when the chain is empty).
    private var head: ByteSink { links.first ?? terminal }

    /// Resets every filter for a new stream.
    public func reset() throws {
        for filter in filters { try filter.reset() }
    }

    /// Pushes bytes into the chain; output lands in `sink`.
    public func write(_ bytes: UnsafeRawBufferPointer, into sink: ByteSink) throws {
        terminal.target = sink
        defer { terminal.target = nil }
        try head.write(bytes)
    }

    /// Finishes every filter in order, so each one's flushed output passes through the rest.
    public func finish(into sink: ByteSink) throws {
        terminal.target = sink
        defer { terminal.target = nil }
        try finishFilters(from: 0)
    }

    /// `write(bytes)` then `finish`, for a stream that is all in `bytes` (a block): the first
    /// filter gets it with `processLast`, the others are finished in order as `finish` does.
    public func writeLast(_ bytes: UnsafeRawBufferPointer, into sink: ByteSink) throws {
        guard let first = filters.first else { return try write(bytes, into: sink) }
        terminal.target = sink
        defer { terminal.target = nil }
        try first.processLast(bytes, next: output(of: 0))
        try finishFilters(from: 1)
    }

    /// Finishes filters `start...` in order, each one's flushed output passing through the rest.
    private func finishFilters(from start: Int) throws {
        for index in filters.indices.dropFirst(start) {
            try filters[index].finish(next: output(of: index))
        }
    }

    /// Where the output of filter `index` goes: the link feeding the next filter, or the terminal.
    private func output(of index: Int) -> ByteSink {
        index + 1 < links.count ? links[index + 1] : terminal
    }

    /// Resets the chain, then streams `source` through it into `sink` using `buffer`, reading at
    /// most `limit` bytes (nil: to the end). Returns the number of bytes read from the source.
    @discardableResult
    public func run(from source: ByteSource, into sink: ByteSink, buffer: IOBuffer, limit: UInt64? = nil) throws -> UInt64 {
        try reset()
        var total: UInt64 = 0
        while true {
            var want = buffer.count
            if let limit {
                if total >= limit { break }
                want = Int(min(UInt64(want), limit - total))
            }
            let n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<want]))
            if n == 0 { break }
            total += UInt64(n)
            try write(UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<n]), into: sink)
        }
        try finish(into: sink)
        return total
    }

    private final class Link: ByteSink {
        let filter: Filter
        let next: ByteSink
        init(filter: Filter, next: ByteSink) { self.filter = filter; self.next = next }
        func write(_ bytes: UnsafeRawBufferPointer) throws { try filter.process(bytes, next: next) }
    }

    private final class Terminal: ByteSink {
        var target: ByteSink?
        func write(_ bytes: UnsafeRawBufferPointer) throws { try target?.write(bytes) }
    }
}

