#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock time and its human forms, without Foundation.
public enum Clock {
    /// Seconds since the epoch, from the same clock as `nowPrecise`. (`time(2)` reads the kernel's
    /// coarse clock, which lags CLOCK_REALTIME by up to a tick: mixing the two made a label loop
    /// believe the next second had not begun when it had.)
    public static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec)
    }

    /// Seconds since the epoch, with a fraction.
    public static func nowPrecise() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Monotonic seconds, for timeouts and durations.
    public static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    public static func sleep(seconds: Double) {
        guard seconds > 0 else { return }
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    public enum Style { case logLine, iso8601 }

    /// Formats a time in local time: `2026-11-26 23:05:01` (log lines) or with the UTC offset
    /// `2026-11-26 23:05:01+00` (what `info` shows, and what PostgreSQL accepts as a timestamptz).
    public static func format(seconds: Int64, style: Style) -> String {
        var t = time_t(seconds)
        var parts = tm()
        localtime_r(&t, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let pattern = style == .logLine ? "%Y-%m-%d %H:%M:%S" : "%Y-%m-%d %H:%M:%S%z"
        let n = strftime(&buffer, buffer.count, pattern, &parts)
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
