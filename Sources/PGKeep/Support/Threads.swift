#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// OS threads for blocking work, which must not sit on Swift's cooperative pool.
package enum OSThread {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Starts a thread running `body`; the caller joins it (`pthread_join`). `body` and what it
    /// captures stay alive until it returns.
    package static func start(_ body: @escaping () -> Void) throws -> pthread_t {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box)
        if rc != 0 {
            Unmanaged<Box>.fromOpaque(box).release()
            throw PGKeepError(.internal, "unable to start a thread: \(String(cString: strerror(rc)))")
        }
        return thread
    }
}

/// Runs `body` every `interval` seconds on a thread of its own until `stop`, which waits for it.
// @unchecked: `thread` is written once, by `init`, and read only by `stop` (never by the thread).
package final class PeriodicThread: @unchecked Sendable {
    private let stopping = Atomic(false)
    private var thread = pthread_t()
    private let interval: Double
    private let body: () -> Void

    package init(interval: Double, _ body: @escaping () -> Void) throws {
        self.interval = interval
        self.body = body
        thread = try OSThread.start { self.loop() }
    }

    package func stop() {
        stopping.store(true, ordering: .releasing)
        pthread_join(thread, nil)
    }

    /// Sleeps in slices of at most 50 ms, so `stop` never waits long for a sleeping thread.
    private func loop() {
        var next = Clock.monotonic() + interval
        while true {
            let left = next - Clock.monotonic()
            if stopping.load(ordering: .acquiring) { return }
            if left > 0 {
                Clock.sleep(seconds: min(left, 0.05))
                continue
            }
            body()
            next = Clock.monotonic() + interval
        }
    }
}
