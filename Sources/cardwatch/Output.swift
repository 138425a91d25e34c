import CardwatchCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A buffered writer to a file descriptor: the generator produces hundreds of
/// thousands of lines a second, so lines are batched into large writes.
struct ByteSink {
    let fd: Int32
    let path: String
    var buffer: [UInt8] = []
    static let flushThreshold = 1 << 20

    /// Opens (creating or truncating) `path`, or standard output for "-".
    init(path: String) throws {
        self.path = path
        if path == "-" {
            fd = 1
        } else {
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else { throw CLIError("cannot open \(path) for writing: \(String(cString: strerror(errno)))") }
        }
        buffer.reserveCapacity(Self.flushThreshold + 4096)
    }

    mutating func flushIfFull() throws {
        if buffer.count >= Self.flushThreshold { try flush() }
    }

    mutating func flush() throws {
        var offset = 0
        while offset < buffer.count {
            let n = buffer.withUnsafeBytes { p in write(fd, p.baseAddress! + offset, p.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CLIError("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        buffer.removeAll(keepingCapacity: true)
    }

    mutating func close() throws {
        try flush()
        if fd > 2 { _ = Glibc.close(fd) }
    }
}

/// Where `generate` sends its transactions instead of a file (a Kafka topic).
protocol TransactionOutlet {
    mutating func add(_ transaction: Transaction) throws
    /// Everything added is written when it returns.
    mutating func flush() throws
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Writes a line to standard error (progress and summaries never mix with data on stdout).
func printError(_ s: String, terminator: String = "\n") {
    let line = s + terminator
    _ = line.utf8CString.withUnsafeBufferPointer { p in write(2, p.baseAddress!, p.count - 1) }
}

/// Monotonic seconds, for rates and progress.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Wall-clock time as a `Timestamp`-compatible microsecond count.
func wallClockMicroseconds() -> Int64 { Timestamp.now.microseconds }

/// 1234567 → "1,234,567".
func grouped(_ n: Int) -> String {
    let s = String(n)
    var out = ""
    for (i, c) in s.enumerated() {
        if i > 0, (s.count - i) % 3 == 0, c != "-" { out.append(",") }
        out.append(c)
    }
    return out
}
