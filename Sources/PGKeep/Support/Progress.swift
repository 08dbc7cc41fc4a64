#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FoundationEssentials

/// Where a long copy (backup, restore) stands: bytes and files done out of the total.
///
/// `bytesAtStart` is what was done before any byte moved (files a diff/incr references, files a
/// resumed backup reuses): they count towards the percentage but not towards the rate, or a
/// backup that references 99% of its files would claim an absurd speed and a wrong ETA.
public struct ProgressSnapshot: Sendable, Equatable {
    public var bytesDone: UInt64
    public var bytesTotal: UInt64
    public var filesDone: Int
    public var filesTotal: Int
    public var bytesAtStart: UInt64 = 0
    /// Seconds since the copy began.
    public var elapsed: Double

    public init(bytesDone: UInt64, bytesTotal: UInt64, filesDone: Int, filesTotal: Int, bytesAtStart: UInt64 = 0, elapsed: Double) {
        self.bytesDone = bytesDone
        self.bytesTotal = bytesTotal
        self.filesDone = filesDone
        self.filesTotal = filesTotal
        self.bytesAtStart = bytesAtStart
        self.elapsed = elapsed
    }

    /// Whole percent done, by bytes (by files when there are no bytes), never above 100.
    public var percent: Int {
        if bytesTotal > 0 { return Int(min(100, Double(bytesDone) * 100 / Double(bytesTotal))) }
        if filesTotal > 0 { return min(100, filesDone * 100 / filesTotal) }
        return 100
    }

    /// Bytes per second moved by this run; nil until a second has passed and something moved.
    public var rate: Double? {
        let moved = bytesDone > bytesAtStart ? bytesDone - bytesAtStart : 0
        guard elapsed >= 1, moved > 0 else { return nil }
        return Double(moved) / elapsed
    }

    /// Seconds left at the average rate so far; nil when there is no rate yet.
    public var eta: Double? {
        guard let rate else { return nil }
        let left = bytesTotal > bytesDone ? bytesTotal - bytesDone : 0
        return Double(left) / rate
    }
}

/// The human forms of progress, shared by the console line, the log and `info`.
public enum ProgressFormat {
    /// `812B`, `1.2KB`, `45.3MB`, `2.9GB` (powers of 1024, as `info` prints sizes).
    public static func bytes(_ value: UInt64) -> String {
        let units = ["B", "KB", "MB", "GB", "TB", "PB"]
        var scaled = Double(value)
        var unit = 0
        while scaled >= 1024 && unit < units.count - 1 { scaled /= 1024; unit += 1 }
        if unit == 0 { return "\(value)B" }
        let tenths = Int((scaled * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)\(units[unit])"
    }

    /// Writes a byte count in the largest binary unit that divides it exactly (`1MiB`, `1536KiB`), as options are written.
    public static func exactBytes(_ bytes: Int) -> String {
        for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] where bytes != 0 && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(unit)"
        }
        return String(bytes)
    }

    /// `42s`, `3m05s`, `2h07m`.
    public static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded(.up))
        if total < 60 { return "\(total)s" }
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        if total < 3600 { return "\(total / 60)m\(two(total % 60))s" }
        return "\(total / 3600)h\(two((total % 3600) / 60))m"
    }

    /// `backup 42% 1.2GB/2.9GB, 340/1012 files, 45.3MB/s, ETA 38s`.
    public static func line(_ operation: String, _ p: ProgressSnapshot) -> String {
        var text = "\(operation) \(p.percent)% \(bytes(p.bytesDone))/\(bytes(p.bytesTotal)), \(p.filesDone)/\(p.filesTotal) files"
        if let rate = p.rate { text += ", \(bytes(UInt64(rate)))/s" }
        if p.bytesDone >= p.bytesTotal && p.filesDone >= p.filesTotal {
            text += ", done in \(duration(p.elapsed))"
        } else if let eta = p.eta {
            text += ", ETA \(duration(eta))"
        }
        return text
    }
}

/// What a running backup records for `info` (`<lock-path>/<stanza>-backup.progress`): only read
/// while the stanza's backup lock is held, so a file a killed backup left behind is never shown.
public struct BackupProgressRecord: Codable, Sendable, Equatable {
    public var label: String
    public var pid: Int32
    public var size: UInt64
    public var sizeComplete: UInt64
    public var files: Int
    public var filesComplete: Int
    public var updated: Int64

    public static func path(lockPath: String, stanza: String) -> String {
        Posix.join(lockPath, "\(stanza)-backup.progress")
    }

    /// Replaces the file (temporary name, then rename: a reader never sees half a record). Not
    /// synced: it describes the moment, and a crash makes it moot.
    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = Array(try encoder.encode(self))
        let temporary = path + ".pgkeep-tmp.\(getpid())"
        let sink = try FileSink(creating: temporary, mode: 0o640, temporaryFor: path)
        do {
            try bytes.withUnsafeBytes { try sink.write($0) }
            try sink.close()
            try Posix.rename(temporary, path)
        } catch {
            try? sink.close()
            _ = try? Posix.unlink(temporary)
            throw error
        }
    }

    /// The record at `path`; nil when missing or unreadable (it is advisory).
    public static func read(from path: String) -> BackupProgressRecord? {
        guard let source = try? FileSource.open(path) else { return nil }
        let buffer = IOBuffer(size: 4096)
        guard let n = try? source.read(into: buffer.bytes), n > 0 else { return nil }
        let bytes = Array(UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<n]))
        return try? JSONDecoder().decode(BackupProgressRecord.self, from: Data(bytes))
    }
}

/// Shows a copy's progress and keeps it out of the way: on a terminal a status line redrawn at
/// most four times a second; otherwise an info log line every 10 seconds or each 10% (the console
/// stays quiet at the default level, the log file records it). A backup also refreshes its
/// progress record for `info` at most twice a second while files complete (`recordInterval`):
/// each refresh is a file written and renamed, which per file or per percent cost a small-file
/// backup a sixth of its time.
///
/// Not thread-safe by itself: the mover calls `advance` under its own lock.
public final class ProgressReporter {
    public let operation: String
    let log: Log
    let clock: () -> Double
    let onTerminal: Bool
    let record: (path: String, label: String)?
    private let started: Double
    private var snapshot: ProgressSnapshot
    private var lastDraw = -Double.infinity
    private var lastLog: Double
    private var lastLoggedDecile: Int
    private var lastRecord = -Double.infinity
    /// Seconds between refreshes of the progress record: `info` polled by an operator or a
    /// monitor sees it move; a backup of many small files does not pay a rename per file.
    static let recordInterval = 0.5
    /// Why the progress record could not be written, once (it is advisory: never fail a backup for it).
    private var recordFailed = false

    /// - Parameters:
    ///   - onTerminal: draw a status line (default: stderr is a terminal and the console logs anything).
    ///   - record: a backup's progress record path and label.
    public init(operation: String, bytesTotal: UInt64, filesTotal: Int, bytesDone: UInt64 = 0, filesDone: Int = 0,
                log: Log, onTerminal: Bool? = nil, record: (path: String, label: String)? = nil,
                clock: @escaping () -> Double = Clock.monotonic) {
        self.operation = operation
        self.log = log
        self.clock = clock
        self.onTerminal = onTerminal ?? (isatty(STDERR_FILENO) == 1 && log.consoleLevel != .off)
        self.record = record
        started = clock()
        lastLog = started
        snapshot = ProgressSnapshot(bytesDone: bytesDone, bytesTotal: max(bytesTotal, bytesDone), filesDone: filesDone,
                                    filesTotal: max(filesTotal, filesDone), bytesAtStart: bytesDone, elapsed: 0)
        lastLoggedDecile = snapshot.percent / 10
        update(force: true)
    }

    public var current: ProgressSnapshot { snapshot }

    /// One more file done, `bytes` of the total with it.
    public func advance(bytes: UInt64, files: Int = 1) {
        snapshot.bytesDone = min(snapshot.bytesTotal, snapshot.bytesDone + bytes)
        snapshot.filesDone = min(snapshot.filesTotal, snapshot.filesDone + files)
        update(force: false)
    }

    /// Clears the status line, logs the final line and removes the progress record.
    public func finish(success: Bool) {
        snapshot.elapsed = clock() - started
        if onTerminal { log.setStatus(nil) }
        if success { log.info(ProgressFormat.line(operation, snapshot)) }
        if let record { _ = try? Posix.unlink(record.path) }
    }

    private func update(force: Bool) {
        let now = clock()
        snapshot.elapsed = now - started
        if onTerminal, force || now - lastDraw >= 0.25 {
            lastDraw = now
            log.setStatus(ProgressFormat.line(operation, snapshot))
        }
        let decile = snapshot.percent / 10
        // 100% is the line `finish` logs, once, with the elapsed time.
        if !force, snapshot.percent < 100, now - lastLog >= 10 || decile > lastLoggedDecile {
            lastLog = now
            lastLoggedDecile = decile
            // On a terminal the status line already shows it: keep the console clean.
            if onTerminal { log.fileOnly(.info, ProgressFormat.line(operation, snapshot)) } else { log.info(ProgressFormat.line(operation, snapshot)) }
        }
        if let record, force || now - lastRecord >= Self.recordInterval {
            lastRecord = now
            let entry = BackupProgressRecord(label: record.label, pid: getpid(), size: snapshot.bytesTotal,
                                             sizeComplete: snapshot.bytesDone, files: snapshot.filesTotal,
                                             filesComplete: snapshot.filesDone, updated: Clock.now())
            do { try entry.write(to: record.path) } catch {
                if !recordFailed { log.warn("unable to write the progress record for info: \(error)") }
                recordFailed = true
            }
        }
    }
}
