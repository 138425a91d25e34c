/// Writes transactions and label events as JSON Lines or CSV into a byte buffer.
///
/// Hand-written for the same reason as the scanner: the generator's budget
/// (300,000 records/s) leaves no room for JSONEncoder's boxing. Numbers are
/// written so that reading them back gives the identical Double.
public enum TransactionEncoder {
    /// Appends one JSON object and a newline; absent optional fields are omitted.
    public static func appendJSONLine(_ t: Transaction, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"transaction_id":"#.utf8)
        appendJSONString(t.transactionID, to: &out)
        out.append(contentsOf: #","card_id":"#.utf8)
        appendJSONString(t.cardID, to: &out)
        out.append(contentsOf: #","amount":"#.utf8)
        appendNumber(t.amount, to: &out)
        out.append(contentsOf: #","timestamp":""#.utf8)
        t.timestamp.write(to: &out)
        out.append(contentsOf: #"","merchant_id":"#.utf8)
        appendJSONString(t.merchantID, to: &out)
        if let c = t.merchantCategory {
            out.append(contentsOf: #","merchant_category":"#.utf8)
            appendJSONString(c, to: &out)
        }
        out.append(contentsOf: #","currency":"#.utf8)
        appendJSONString(t.currency, to: &out)
        if let p = t.location {
            out.append(contentsOf: #","latitude":"#.utf8)
            appendNumber(p.latitude, to: &out)
            out.append(contentsOf: #","longitude":"#.utf8)
            appendNumber(p.longitude, to: &out)
        }
        if let c = t.country {
            out.append(contentsOf: #","country":"#.utf8)
            appendJSONString(c, to: &out)
        }
        if let c = t.channel {
            out.append(contentsOf: #","channel":"#.utf8)
            appendJSONString(c.rawValue, to: &out)
        }
        if let c = t.customerID {
            out.append(contentsOf: #","customer_id":"#.utf8)
            appendJSONString(c, to: &out)
        }
        if let f = t.isFraud {
            out.append(contentsOf: #","is_fraud":"#.utf8)
            out.append(f ? UInt8(ascii: "1") : UInt8(ascii: "0"))
        }
        if let p = t.fraudPattern {
            out.append(contentsOf: #","fraud_pattern":"#.utf8)
            appendJSONString(p, to: &out)
        }
        out.append(contentsOf: "}\n".utf8)
    }

    public static func jsonLine(_ t: Transaction) -> String {
        var out: [UInt8] = []
        appendJSONLine(t, to: &out)
        out.removeLast()
        return String(decoding: out, as: UTF8.self)
    }

    /// The CSV header: every schema column in canonical order.
    public static var csvHeader: String {
        TransactionField.written.map(\.name).joined(separator: ",") + "\n"
    }

    /// Appends one CSV row (columns as in `csvHeader`) and a newline.
    public static func appendCSVRow(_ t: Transaction, to out: inout [UInt8]) {
        appendCSVCell(t.transactionID, to: &out)
        out.append(UInt8(ascii: ","))
        appendCSVCell(t.cardID, to: &out)
        out.append(UInt8(ascii: ","))
        appendNumber(t.amount, to: &out)
        out.append(UInt8(ascii: ","))
        t.timestamp.write(to: &out)
        out.append(UInt8(ascii: ","))
        appendCSVCell(t.merchantID, to: &out)
        out.append(UInt8(ascii: ","))
        if let c = t.merchantCategory { appendCSVCell(c, to: &out) }
        out.append(UInt8(ascii: ","))
        appendCSVCell(t.currency, to: &out)
        out.append(UInt8(ascii: ","))
        if let p = t.location { appendNumber(p.latitude, to: &out) }
        out.append(UInt8(ascii: ","))
        if let p = t.location { appendNumber(p.longitude, to: &out) }
        out.append(UInt8(ascii: ","))
        if let c = t.country { appendCSVCell(c, to: &out) }
        out.append(UInt8(ascii: ","))
        if let c = t.channel { out.append(contentsOf: c.rawValue.utf8) }
        out.append(UInt8(ascii: ","))
        if let c = t.customerID { appendCSVCell(c, to: &out) }
        out.append(UInt8(ascii: ","))
        if let f = t.isFraud { out.append(f ? UInt8(ascii: "1") : UInt8(ascii: "0")) }
        out.append(UInt8(ascii: ","))
        if let p = t.fraudPattern { appendCSVCell(p, to: &out) }
        out.append(UInt8(ascii: "\n"))
    }

    /// Appends a label event as one JSON line.
    /// One label event as a JSON object, without the line break (a log record).
    public static func jsonRecord(_ l: LabelEvent) -> [UInt8] {
        var out: [UInt8] = []
        appendJSONLine(l, to: &out)
        if out.last == UInt8(ascii: "\n") { out.removeLast() }
        return out
    }

    public static func appendJSONLine(_ l: LabelEvent, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"transaction_id":"#.utf8)
        appendJSONString(l.transactionID, to: &out)
        out.append(contentsOf: #","is_fraud":"#.utf8)
        out.append(l.isFraud ? UInt8(ascii: "1") : UInt8(ascii: "0"))
        out.append(contentsOf: #","reported_at":""#.utf8)
        l.reportedAt.write(to: &out)
        out.append(contentsOf: "\"}\n".utf8)
    }

    // MARK: - Pieces

    public static func appendJSONString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(c)
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hex[Int(c >> 4)])
                out.append(hex[Int(c & 15)])
            default:
                out.append(c)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    public static func appendCSVCell(_ s: String, to out: inout [UInt8]) {
        let needsQuotes = s.utf8.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 < 0x20 }
        guard needsQuotes else {
            out.append(contentsOf: s.utf8)
            return
        }
        out.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            if c == UInt8(ascii: "\"") { out.append(c) }
            out.append(c)
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Writes a finite Double so that parsing the text gives it back exactly:
    /// fixed-point with up to six decimals when that is exact (amounts, degrees),
    /// the standard library's shortest round-trip form otherwise.
    public static func appendNumber(_ v: Double, to out: inout [UInt8]) {
        let scaled = (v * 1_000_000).rounded()
        if abs(scaled) < 9_007_199_254_740_992, scaled / 1_000_000 == v {
            var m = Int64(scaled)
            if v.sign == .minus {  // also for -0.0, which reads back as +0 without its sign
                out.append(UInt8(ascii: "-"))
                m = -m
            }
            appendInteger(m / 1_000_000, to: &out)
            var frac = Int(m % 1_000_000)
            if frac != 0 {
                out.append(UInt8(ascii: "."))
                var width = 6
                while frac % 10 == 0 {
                    frac /= 10
                    width -= 1
                }
                var div = 1
                for _ in 1..<width { div *= 10 }
                while div > 0 {
                    out.append(UInt8(48 + frac / div % 10))
                    div /= 10
                }
            }
            return
        }
        out.append(contentsOf: v.description.utf8)
    }

    public static func appendInteger(_ v: Int64, to out: inout [UInt8]) {
        if v < 10 {
            out.append(UInt8(48 + v))
            return
        }
        var digits:
            (
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
            ) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        var x = v
        withUnsafeMutableBytes(of: &digits) { d in
            while x > 0 {
                d[n] = UInt8(48 + x % 10)
                x /= 10
                n += 1
            }
            for k in stride(from: n - 1, through: 0, by: -1) { out.append(d[k]) }
        }
    }
}
