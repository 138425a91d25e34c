public import CardwatchPipeline
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One writer process per data directory: `cardwatch run` and `cardwatch import` hold an
/// exclusive `flock` on `DATA_DIR/lock` (with their PID and command written in it) for as
/// long as they run. A second writer is refused at once, naming the holder; the kernel
/// drops the lock when the holder exits, however it dies (SIGKILL included), so a stale
/// file never blocks anyone. Readers and the registry's own writers (`models promote`,
/// `train`) take no lock: SQLite serialises their writes, and a running pipeline follows
/// the registry.
public final class DataDirectoryLock: Sendable {
    public static let fileName = "lock"
    public let path: String
    private let fd: Int32

    /// Takes the lock of `directory` (created if needed) for `command`, or throws
    /// `DataDirectoryInUse` naming the process that holds it.
    public init(directory: String, command: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = URL(fileURLWithPath: directory).appendingPathComponent(Self.fileName).path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw DataDirectoryError("cannot open the lock file \(path): \(String(cString: strerror(errno)))")
        }
        var result: Int32
        repeat { result = flock(fd, LOCK_EX | LOCK_NB) } while result != 0 && errno == EINTR
        guard result == 0 else {
            let reason = errno
            let holder = Self.holder(fd)
            close(fd)
            if reason == EWOULDBLOCK {
                throw DataDirectoryInUse(directory: directory, holder: holder)
            }
            throw DataDirectoryError("cannot lock \(path): \(String(cString: strerror(reason)))")
        }
        self.fd = fd
        // Ours now: say who holds it (the file's old contents belong to a process that is gone).
        let text = "\(getpid())\n\(command)\n"
        _ = ftruncate(fd, 0)
        _ = text.utf8CString.withUnsafeBufferPointer { pwrite(fd, $0.baseAddress!, $0.count - 1, 0) }
    }

    deinit { close(fd) }  // closing the only descriptor releases the lock

    /// The PID and command written by the holder, when it wrote them.
    static func holder(_ fd: Int32) -> (pid: Int32, command: String)? {
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, 0) }
        guard n > 0 else { return nil }
        let lines = String(decoding: buffer[..<n], as: UTF8.self).split(separator: "\n")
        guard let first = lines.first, let pid = Int32(first) else { return nil }
        return (pid, lines.dropFirst().first.map(String.init) ?? "")
    }
}

/// Another process writes to the data directory.
public struct DataDirectoryInUse: Error, CustomStringConvertible {
    public var directory: String
    public var holder: (pid: Int32, command: String)?

    public var description: String {
        let who = holder.map { "PID \($0.pid)" + ($0.command.isEmpty ? "" : " (\($0.command))") } ?? "another process"
        return "data directory \(directory) in use by \(who): one process writes to a data directory at a time. "
            + "Feed the running pipeline over HTTP instead (POST /v1/transactions, see README.md), or stop it first"
    }
}

public struct DataDirectoryError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// The thresholds the last pipeline on a data directory applied (`DATA_DIR/scoring-policy.json`),
/// written by `run` and `import` when they start, so `models show` can tell the thresholds
/// in force from a model's own.
public enum ScoringPolicyRecord {
    public static let fileName = "scoring-policy.json"

    public struct Entry: Codable, Sendable, Equatable {
        public var policy: ScoringPolicy
        /// The command that set it, and when (RFC 3339).
        public var setBy: String
        public var setAt: String

        public init(policy: ScoringPolicy, setBy: String, setAt: String) {
            self.policy = policy
            self.setBy = setBy
            self.setAt = setAt
        }
    }

    public static func write(_ entry: Entry, directory: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        try encoder.encode(entry).write(
            to: URL(fileURLWithPath: directory).appendingPathComponent(fileName), options: .atomic)
    }

    /// The recorded policy, nil when none was recorded (or the file cannot be read).
    public static func read(directory: String) -> Entry? {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent(fileName)) else {
            return nil
        }
        return try? decoder.decode(Entry.self, from: data)
    }
}
