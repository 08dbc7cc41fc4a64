import PGKeepCore

/// The parsed content of a timeline history file, `<TLI %08X>.history`.
///
/// Format (`writeTimeLineHistory` and `readTimeLineHistory` in
/// `src/backend/access/transam/timeline.c`, docs/postgres-internals.md §4.3): the parent's history copied
/// verbatim, then one line `"%u\t%X/%X\t%s\n"` per ancestor: parent TLI (decimal), switch point
/// (the LSN where the child timeline begins) and a free-text reason. Reading rules, as the server's:
/// 1. Skip lines that are empty, all white space, or whose first non-blank character is `#`.
///    Blank lines are normal: a time-target reason ends in its own `\n`, and a copied parent
///    history is followed by a separating newline.
/// 2. Parse `%u`, white space, `%X/%X`; a missing TLI or switch point is a syntax error.
/// 3. The reason is the rest of the line after the white space following the LSN; it may be empty.
/// 4. TLIs must strictly increase, and all must be below the file's own TLI.
public struct TimelineHistory: Hashable, Sendable {
    /// One ancestor timeline and where it ended.
    public struct Entry: Hashable, Sendable {
        /// The ancestor timeline.
        public let parent: TimelineID
        /// The LSN where `parent` ended and the next timeline began.
        public let switchPoint: LSN
        /// Why recovery stopped there, e.g. `at restore point "rp1"` or `no recovery target specified`.
        public let reason: String

        /// An entry from its parts.
        public init(parent: TimelineID, switchPoint: LSN, reason: String) {
            self.parent = parent
            self.switchPoint = switchPoint
            self.reason = reason
        }
    }

    /// The timeline this history belongs to (the file name's TLI).
    public let timeline: TimelineID
    /// Ancestors, oldest first.
    public let entries: [Entry]

    /// The history of a timeline without ancestors, such as timeline 1 (which has no history file).
    public init(timeline: TimelineID) {
        self.timeline = timeline
        self.entries = []
    }

    /// Parses the text of the history file of `timeline`.
    ///
    /// - Parameters:
    ///   - timeline: the timeline in the file name.
    ///   - text: the file's content.
    ///   - path: the file, for error messages.
    /// - Throws: `PGKeepError(.formatInvalid)` naming the file and the line, for a syntax error or
    ///   a TLI that does not increase or is not below `timeline`.
    public init(timeline: TimelineID, text: String, path: String) throws(PGKeepError) {
        var entries: [Entry] = []
        var lineNumber = 0
        // "\r\n" is one Character in Swift, so it must be named as a separator too.
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            // readTimeLineHistory: skip leading white space, then blank and comment lines.
            let line = rawLine.drop { Self.isSpace($0) }
            if line.isEmpty || line.first == "#" { continue }

            let tliText = line.prefix { $0.isASCII && $0.isNumber }
            guard !tliText.isEmpty, let tliValue = UInt32(tliText) else {
                throw Self.syntaxError(path, lineNumber, rawLine, "expected a numeric timeline ID")
            }
            let afterTLI = line.dropFirst(tliText.count)
            let lsnStart = afterTLI.drop { Self.isSpace($0) }
            let lsnText = lsnStart.prefix { !Self.isSpace($0) }
            // sscanf's "\t" matches a run of white space; at least one separates the fields.
            guard lsnStart.count < afterTLI.count, let switchPoint = LSN(String(lsnText)) else {
                throw Self.syntaxError(path, lineNumber, rawLine, "expected a write-ahead log switch point location (%X/%X) after the timeline ID")
            }
            let reason = lsnStart.dropFirst(lsnText.count).drop { Self.isSpace($0) }
            let parent = TimelineID(rawValue: tliValue)
            if let last = entries.last, parent <= last.parent {
                throw PGKeepError(.formatInvalid,
                                  "history file '\(path)' line \(lineNumber): timeline \(parent) does not follow timeline \(last.parent); timeline IDs must increase",
                                  hint: "the history file is corrupt; PostgreSQL would refuse it too")
            }
            entries.append(Entry(parent: parent, switchPoint: switchPoint, reason: Self.trimTrailingSpace(reason)))
        }
        if let last = entries.last, last.parent >= timeline {
            throw PGKeepError(.formatInvalid,
                              "history file '\(path)' lists timeline \(last.parent), which is not below its own timeline \(timeline)",
                              hint: "the history file is corrupt or stored under the wrong name")
        }
        self.timeline = timeline
        self.entries = entries
    }

    /// Parses the bytes of the history file of `timeline` (decoded as UTF-8, repairing invalid
    /// sequences; only the reasons can contain non-ASCII text).
    public init(timeline: TimelineID, bytes: UnsafeRawBufferPointer, path: String) throws(PGKeepError) {
        try self.init(timeline: timeline, text: String(decoding: bytes, as: UTF8.self), path: path)
    }

    /// The file name of the history of `timeline`, `%08X.history`.
    public static func fileName(for timeline: TimelineID) -> String {
        timeline.fileNameComponent + ".history"
    }

    /// Every timeline in this history, oldest first, ending with `timeline` itself.
    public var ancestry: [TimelineID] {
        entries.map(\.parent) + [timeline]
    }

    /// The LSN where `timeline` ended in this history: nil when it is this history's own (still
    /// open) timeline or not in the history at all.
    public func switchPoint(for timeline: TimelineID) -> LSN? {
        entries.first { $0.parent == timeline }?.switchPoint
    }

    /// The LSN where `timeline` began in this history (the previous timeline's switch point), 0
    /// for the oldest; nil when `timeline` is not in the history.
    public func beginning(of timeline: TimelineID) -> LSN? {
        guard let index = ancestry.firstIndex(of: timeline) else { return nil }
        return index == 0 ? .invalid : entries[index - 1].switchPoint
    }

    /// The timeline that wrote the byte at `lsn`, following this history (`tliOfPointInHistory` in
    /// `timeline.c`): the first ancestor whose switch point is after `lsn`, else `timeline`.
    public func timeline(at lsn: LSN) -> TimelineID {
        entries.first { lsn < $0.switchPoint }?.parent ?? timeline
    }

    /// The timeline whose file recovery reads for segment number `segmentNumber`: the newest
    /// timeline in the history that began at or before that segment (`XLogFileReadAnyTLI` in
    /// `xlogrecovery.c` skips timelines whose `begin` segment is after the wanted one). The segment
    /// holding a switch point therefore comes from the child timeline.
    public func timeline(forSegmentNumber segmentNumber: UInt64, segmentSize: WALSegmentSize) -> TimelineID {
        var result = ancestry[0]
        for (index, tli) in ancestry.enumerated() {
            let begin = index == 0 ? 0 : entries[index - 1].switchPoint.value
            if begin / segmentSize.bytes <= segmentNumber { result = tli }
        }
        return result
    }

    // isspace() in the C locale: space, \t, \n, \v, \f, \r.
    private static func isSpace(_ character: Character) -> Bool {
        character == " " || character == "\t" || character == "\r" || character == "\u{0B}" || character == "\u{0C}"
    }

    private static func trimTrailingSpace(_ text: Substring) -> String {
        var end = text.endIndex
        while end > text.startIndex, isSpace(text[text.index(before: end)]) {
            end = text.index(before: end)
        }
        return String(text[text.startIndex..<end])
    }

    private static func syntaxError(_ path: String, _ lineNumber: Int, _ line: Substring, _ expected: String) -> PGKeepError {
        PGKeepError(.formatInvalid,
                    "history file '\(path)' line \(lineNumber): syntax error in '\(line.prefix(80))': \(expected)",
                    hint: "the history file is corrupt; PostgreSQL would refuse it too")
    }
}
