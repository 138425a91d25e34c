import Foundation

/// A value shared between threads, behind a pthread mutex (`NSLock`).
///
/// `Synchronization.Mutex` is just as correct, but on Linux ThreadSanitizer does not see its
/// futex: every access under it is reported as a race (two threads incrementing one
/// `Mutex<Int>`: 3 reports; the same under an `NSLock`: none), which would bury real races in
/// `scripts/tsan.sh`. Pthread mutexes are intercepted, so TSan checks what this one guards.
public final class Locked<Value: Sendable>: @unchecked Sendable {
    // `@unchecked Sendable`: `value` is read and written only inside `withLock`, while `lock` is held.
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) { self.value = value }

    /// Runs `body` with the value, holding the lock.
    public func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
