#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Logging at pgBackRest's levels, to the console and optionally to a file. Console lines go to
/// stderr, so stdout carries only a command's output (`info`, `--output=json`) and stays
/// machine-readable. File lines carry the process id: PostgreSQL runs many `archive-push`
/// processes that append to the same file, each line in one `write(2)` on an `O_APPEND` descriptor
/// so lines never interleave.
// @unchecked: `consoleLevel` is set before threads start; everything else is in `output` or atomic.
public final class Log: @unchecked Sendable {
    public enum Level: Int, Comparable, Sendable, CaseIterable {
        case off = 0, error, warn, info, detail, debug, trace

        public init?(name: String) {
            switch name {
            case "off": self = .off
            case "error": self = .error
            case "warn": self = .warn
            case "info": self = .info
            case "detail": self = .detail
            case "debug": self = .debug
            case "trace": self = .trace
            default: return nil
            }
        }

        var tag: String {
            switch self {
            case .off: return ""
            case .error: return "ERROR"
            case .warn: return " WARN"
            case .info: return " INFO"
            case .detail: return "DETAIL"
            case .debug: return "DEBUG"
            case .trace: return "TRACE"
            }
        }

        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    public var consoleLevel: Level
    /// Read on every message (`isEnabled`), so it is an atomic, not behind the lock.
    private let fileLevelValue = Atomic<Int>(Level.off.rawValue)
    public var fileLevel: Level { Level(rawValue: fileLevelValue.load(ordering: .acquiring)) ?? .off }
    public var filePath: String? { output.withLock { $0.filePath } }

    /// Where lines go, changed and written only under the lock: one line at a time on the console
    /// and in the file.
    private struct Output {
        var fileDescriptor: Int32 = -1
        var filePath: String?
        /// The status line (progress) shown on a terminal console below the log lines, if any.
        var status: String?
    }
    private let output = Mutex(Output())

    public init(consoleLevel: Level = .warn) { self.consoleLevel = consoleLevel }

    deinit { output.withLock { if $0.fileDescriptor >= 0 { close($0.fileDescriptor) } } }

    /// Starts logging to `<directory>/<name>` at `level`, creating the directory. A log file that
    /// cannot be opened is a warning, not an error: a full or read-only log disk must never stop
    /// archiving or a backup.
    public func openFile(directory: String, name: String, level: Level) {
        guard level != .off else { return }
        let path = Posix.join(directory, name)
        do {
            try Posix.mkdirs(directory, mode: 0o750)
        } catch {
            warn("unable to create log directory '\(directory)': \(error); logging to the console only")
            return
        }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            warn("unable to open log file '\(path)': \(String(cString: strerror(errno))); logging to the console only")
            return
        }
        output.withLock {
            $0.fileDescriptor = fd
            $0.filePath = path
        }
        fileLevelValue.store(level.rawValue, ordering: .releasing)
    }

    /// Whether a message at `level` goes anywhere; lets callers skip building costly messages.
    public func isEnabled(_ level: Level) -> Bool {
        level != .off && (level <= consoleLevel || level <= fileLevel)
    }

    public func log(_ level: Level, _ message: @autoclosure () -> String) {
        guard isEnabled(level) else { return }
        let stamp = Log.timestamp()
        let text = message()
        output.withLock { output in
            if level <= consoleLevel {
                // A log line goes above the status line: clear it, print, draw it again.
                let clear = output.status == nil ? "" : "\r\u{1B}[K"
                let redraw = output.status.map { "\r\($0)\u{1B}[K" } ?? ""
                Posix.writeStandardError("\(clear)\(stamp) \(level.tag): \(text)\n\(redraw)")
            }
            writeFile(level, stamp: stamp, text: text, to: output.fileDescriptor)
        }
    }

    /// Logs to the file only (for lines the console already shows another way).
    public func fileOnly(_ level: Level, _ message: @autoclosure () -> String) {
        guard level != .off, level <= fileLevel else { return }
        let stamp = Log.timestamp()
        let text = message()
        output.withLock { writeFile(level, stamp: stamp, text: text, to: $0.fileDescriptor) }
    }

    private func writeFile(_ level: Level, stamp: String, text: String, to fileDescriptor: Int32) {
        if level <= fileLevel, fileDescriptor >= 0 {
            var line = "\(stamp) P\(getpid()) \(level.tag): \(text)\n"
            line.withUTF8 { bytes in _ = write(fileDescriptor, bytes.baseAddress, bytes.count) }
        }
    }

    /// Shows `text` as the status line at the bottom of a terminal console (redrawn in place), or
    /// removes it (nil). Callers decide whether the console is a terminal.
    public func setStatus(_ text: String?) {
        output.withLock { output in
            if let text {
                Posix.writeStandardError("\r\(text)\u{1B}[K")
            } else if output.status != nil {
                Posix.writeStandardError("\r\u{1B}[K")
            }
            output.status = text
        }
    }

    public func error(_ message: String) { log(.error, message) }
    public func warn(_ message: String) { log(.warn, message) }
    public func info(_ message: String) { log(.info, message) }
    public func detail(_ message: String) { log(.detail, message) }
    public func debug(_ message: String) { log(.debug, message) }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Clock.format(seconds: Int64(now.tv_sec), style: .logLine) + "." + threeDigits(Int(now.tv_nsec / 1_000_000))
    }
}

private func threeDigits(_ value: Int) -> String {
    let text = String(value)
    return String(repeating: "0", count: max(0, 3 - text.count)) + text
}
