#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One record of a text file: a line, or for CSV a row whose quoted cells may span lines.
public struct RawLine {
    /// 1-based number of the line the record starts on.
    public var lineNumber: Int
    public var bytes: UnsafeRawBufferPointer
    /// The record was longer than `RecordReader.maxRecordBytes`; `bytes` is its start.
    public var oversized: Bool
}

public struct FileError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Reads records from a file descriptor in large chunks, without a copy per line.
public struct RecordReader {
    public static let maxRecordBytes = 1 << 20
    let fd: Int32
    let ownsDescriptor: Bool
    let csv: Bool
    var buffer: [UInt8]
    var start = 0
    var end = 0
    var eof = false
    var line = 1

    public init(fileDescriptor: Int32, csv: Bool) {
        self.init(fd: fileDescriptor, owns: false, csv: csv)
    }

    init(fd: Int32, owns: Bool, csv: Bool) {
        self.fd = fd
        self.ownsDescriptor = owns
        self.csv = csv
        // One byte more than the longest record, so a record of exactly that length finds its newline.
        self.buffer = [UInt8](repeating: 0, count: Self.maxRecordBytes + 1)
    }

    /// Opens `path`, or standard input for "-".
    public init(path: String, csv: Bool) throws(FileError) {
        if path == "-" {
            self.init(fileDescriptor: 0, csv: csv)
            return
        }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw FileError("cannot open \(path): \(String(cString: strerror(errno)))") }
        self.init(fd: fd, owns: true, csv: csv)
    }

    public mutating func close() {
        if ownsDescriptor { _ = Glibc.close(fd) }
    }

    /// Calls `body` with each non-blank record in file order.
    public mutating func forEachRecord(_ body: (RawLine) throws -> Void) throws {
        while true {
            // Find the end of the next record in what is buffered.
            var scan = start
            var inQuotes = false
            var found = -1
            var newlines = 0
            while scan < end {
                if csv {
                    let c = buffer[scan]
                    if c == UInt8(ascii: "\"") {
                        inQuotes.toggle()
                    } else if c == UInt8(ascii: "\n") {
                        if !inQuotes {
                            found = scan
                            break
                        }
                        newlines += 1
                    }
                    scan += 1
                } else {
                    let hit = buffer.withUnsafeBytes { p in memchr(p.baseAddress! + scan, 0x0A, end - scan) }
                    if let hit {
                        found = buffer.withUnsafeBytes { p in p.baseAddress!.distance(to: UnsafeRawPointer(hit)) }
                    }
                    break
                }
            }
            if found < 0 && !eof {
                if end - start > Self.maxRecordBytes {
                    try deliverOversized(body)
                    continue
                }
                try fill()
                continue
            }
            let recordEnd = found >= 0 ? found : end
            if recordEnd == start && found < 0 { return }  // end of input
            var last = recordEnd
            if last > start, buffer[last - 1] == UInt8(ascii: "\r") { last -= 1 }
            let lineNumber = line
            line += 1 + newlines
            let from = start
            start = found >= 0 ? found + 1 : end
            if !isBlank(from, last) {
                try buffer.withUnsafeBytes { p in
                    try body(
                        RawLine(lineNumber: lineNumber, bytes: UnsafeRawBufferPointer(rebasing: p[from..<last]), oversized: false)
                    )
                }
            }
            if found < 0 { return }
        }
    }

    func isBlank(_ from: Int, _ to: Int) -> Bool {
        for k in from..<to where buffer[k] != 0x20 && buffer[k] != 0x09 { return false }
        return true
    }

    /// Hands over the first `maxRecordBytes` of an over-long record and skips the rest of it.
    mutating func deliverOversized(_ body: (RawLine) throws -> Void) throws {
        let from = start
        try buffer.withUnsafeBytes { p in
            try body(
                RawLine(
                    lineNumber: line, bytes: UnsafeRawBufferPointer(rebasing: p[from..<from + Self.maxRecordBytes]),
                    oversized: true))
        }
        line += 1
        // Discard until the next newline (CSV quoting is not trusted in a record this broken).
        while true {
            if let nl = buffer[start..<end].firstIndex(of: UInt8(ascii: "\n")) {
                start = nl + 1
                return
            }
            start = end
            if eof { return }
            try fill()
        }
    }

    /// Moves the unread tail to the front and reads more; grows the buffer when a record needs it.
    mutating func fill() throws {
        if start > 0 {
            let tail = end - start
            if tail > 0 {
                buffer.withUnsafeMutableBytes { p in _ = memmove(p.baseAddress!, p.baseAddress! + start, tail) }
            }
            start = 0
            end = tail
        }
        if end == buffer.count { buffer.append(contentsOf: repeatElement(0, count: buffer.count)) }
        let n = buffer.withUnsafeMutableBytes { p in read(fd, p.baseAddress! + end, p.count - end) }
        if n < 0 {
            if errno == EINTR { return }
            throw FileError("read failed: \(String(cString: strerror(errno)))")
        }
        if n == 0 { eof = true }
        end += n
    }
}
