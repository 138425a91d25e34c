import Foundation

/// A value behind a lock, like `Synchronization.Mutex` but on `NSLock` (pthread), which
/// ThreadSanitizer follows: Mutex's futex on Linux is invisible to it, and every access under
/// it is reported as a race. Used where a test run under ThreadSanitizer must stay quiet.
final class Locked<Value>: @unchecked Sendable {
    // `@unchecked Sendable`: `value` is touched only inside `withLock`, under `lock`.
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
