import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What a raw exchange came to: the status of the first response (if any) and how the
/// connection ended, with the time it took.
struct RawReply: Sendable, CustomStringConvertible {
    var status: Int?
    var headers: [String: String] = [:]
    var body = ""
    /// The server closed (or reset) the connection.
    var closed = false
    var seconds = 0.0

    var description: String {
        (status.map { "\($0)" } ?? "no answer") + (closed ? ", closed" : ", open") + String(format: " after %.3f s", seconds)
    }
}

/// A blocking TCP client on plain sockets, run on a thread of its own (never on Swift's few
/// cooperative threads, which the server's routes need): sends bytes as given, however
/// malformed, and reads what comes back.
final class RawSocket: @unchecked Sendable {
    // `@unchecked Sendable`: used by one thread at a time (each call waits for the last).
    private let fd: Int32
    /// Bytes read past the last response returned.
    private var pending: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(fd) }

    /// Sends everything (false when the server closed the connection meanwhile).
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Reads the first response (or until the connection ends), waiting at most `timeout`.
    func reply(timeout: Double) -> RawReply {
        let began = Date()
        var data = pending
        pending = []
        var reply = RawReply()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        if let (parsed, used) = Self.parse(data) {
            pending = Array(data[used...])
            return parsed
        }
        while Date().timeIntervalSince(began) < timeout {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let remaining = Int32(max(1, (timeout - Date().timeIntervalSince(began)) * 1000))
            guard poll(&poller, 1, remaining) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 {
                reply.closed = true
                break
            }
            data += buffer[0..<n]
            if let (parsed, used) = Self.parse(data) {
                reply = parsed
                pending = Array(data[used...])
                break
            }
        }
        if reply.status == nil, let (parsed, _) = Self.parse(data, complete: true) { reply.status = parsed.status }
        reply.seconds = Date().timeIntervalSince(began)
        return reply
    }

    /// Whether the server closes the connection within `timeout` (reading and discarding).
    func closes(within timeout: Double) -> (closed: Bool, seconds: Double, data: String) {
        let began = Date()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var data: [UInt8] = []
        while Date().timeIntervalSince(began) < timeout {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return (true, Date().timeIntervalSince(began), String(decoding: data, as: UTF8.self)) }
            data += buffer[0..<n]
        }
        return (false, timeout, String(decoding: data, as: UTF8.self))
    }

    /// A whole response at the front of `data` (or its status line alone with `complete`),
    /// and the bytes it took.
    static func parse(_ data: [UInt8], complete: Bool = false) -> (RawReply, Int)? {
        guard let end = data.indices.dropLast(3).first(where: { data[$0...$0 + 3] == [13, 10, 13, 10] }) else { return nil }
        let lines = String(decoding: data[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        guard let status = lines.first?.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
        var reply = RawReply(status: status)
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            reply.headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = Int(reply.headers["content-length"] ?? "0") ?? 0
        guard complete || data.count >= end + 4 + length else { return nil }
        let used = min(data.count, end + 4 + length)
        reply.body = String(decoding: data[(end + 4)..<used], as: UTF8.self)
        return (reply, used)
    }
}

/// How much slower than a plain debug build these tests run: 10 under ThreadSanitizer (its
/// runtime is in the process), else 1. The server's timeouts in the tests, the waits and the
/// time bounds the tests expect are multiplied by it.
let timeScale: Double = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__tsan_init") != nil ? 10 : 1

/// Runs blocking socket work on a thread of its own.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// One exchange on a new connection: `bytes` sent, the first response (or the close) read.
func rawExchange(port: Int, _ bytes: [UInt8], timeout: Double = 5 * timeScale) async throws -> RawReply {
    try await onThread {
        let socket = try RawSocket(port: port)
        socket.send(bytes)
        return socket.reply(timeout: timeout)
    }
}

/// An HTTP/1.1 request as bytes, Host naming the loopback server unless `headers` has one.
func rawRequest(
    _ method: String, _ target: String, headers: [(String, String)] = [], body: String? = nil, port: Int
) -> [UInt8] {
    var head = "\(method) \(target) HTTP/1.1\r\n"
    if !headers.contains(where: { $0.0.lowercased() == "host" }) { head += "Host: 127.0.0.1:\(port)\r\n" }
    for (name, value) in headers { head += "\(name): \(value)\r\n" }
    if let body { head += "Content-Length: \(body.utf8.count)\r\n" }
    return Array((head + "\r\n" + (body ?? "")).utf8)
}
