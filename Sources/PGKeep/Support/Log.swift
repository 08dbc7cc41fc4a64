#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Console logging at pgBackRest's levels. Log lines go to stderr, so stdout carries only a
/// command's output (`info`, `--output=json`) and stays machine-readable.
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
    private let lock = Mutex()

    public init(consoleLevel: Level = .warn) { self.consoleLevel = consoleLevel }

    public func log(_ level: Level, _ message: @autoclosure () -> String) {
        guard level != .off, level <= consoleLevel else { return }
        let line = "\(Log.timestamp()) \(level.tag): \(message())\n"
        lock.withLock { _ = line.withCString { fputs($0, stderr) } }
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
