/// How a valid JSON record that carried a card number, or something that reads as one, is
/// stored: its bytes as they came, but for the `card_number` member (gone; the record keeps
/// the `card_id` derived from it) and card-number look-alikes in members the schema does not
/// know (masked in place, so the text stays valid JSON). The log, read back by the
/// processor, then holds no PAN and still decodes to the same transaction.
enum PANRedaction {
    /// The record to store, or nil when its bytes can be stored as they came.
    static func storable(_ line: UnsafeRawBufferPointer, record: RawRecord, cardID: String) -> [UInt8]? {
        var bytes: [UInt8]?
        for value in record.unknownValues where mayHoldCardNumber(line, value) {
            if bytes == nil { bytes = Array(line) }
            CardNumber.maskLookalikes(in: &bytes!, range: value, json: true)
        }
        guard let member = record.cardNumberMember else { return bytes }
        var out = bytes ?? Array(line)
        var edits: [(Range<Int>, [UInt8])] = []
        var derived: [UInt8] = []
        TransactionEncoder.appendJSONString(cardID, to: &derived)
        if let idValue = record.cardIDValue {
            // card_id given (equal to the derived one, or null): it takes the derived one; card_number goes.
            edits.append((idValue, derived))
            edits.append((removal(of: member, in: out), []))
        } else {
            edits.append((member, Array(#""card_id":"#.utf8) + derived))
        }
        for (range, replacement) in edits.sorted(by: { $0.0.lowerBound > $1.0.lowerBound }) {
            out.replaceSubrange(range, with: replacement)
        }
        return out
    }

    /// Whether a value has at least 13 digits at all (most have none): only then is it scanned.
    static func mayHoldCardNumber(_ line: UnsafeRawBufferPointer, _ value: Range<Int>) -> Bool {
        var digits = 0
        for i in value where line[i] &- 48 < 10 {
            digits += 1
            if digits >= CardNumber.lookalikeLengths.lowerBound { return true }
        }
        return false
    }

    /// The bytes to remove with a member so that the object stays valid: the comma before
    /// it, or (the first member) the comma after it.
    static func removal(of member: Range<Int>, in b: [UInt8]) -> Range<Int> {
        var i = member.lowerBound - 1
        while i >= 0, isSpace(b[i]) { i -= 1 }
        if i >= 0, b[i] == UInt8(ascii: ",") { return i..<member.upperBound }
        var j = member.upperBound
        while j < b.count, isSpace(b[j]) { j += 1 }
        if j < b.count, b[j] == UInt8(ascii: ",") { return member.lowerBound..<j + 1 }
        return member
    }

    static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }
}
