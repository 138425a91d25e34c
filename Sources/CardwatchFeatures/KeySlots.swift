/// Slot numbers for keys (card or merchant ids): the tables keep their state in flat
/// arrays indexed by slot, and a freed slot is reused before the arrays grow.
struct KeySlots: Sendable {
    var slots: [String: Int32] = [:]
    /// The key of each slot; "" marks a free slot (ids are never empty).
    var keys: [String] = []
    var free: [Int32] = []

    var count: Int { slots.count }

    /// The key's slot, and whether it is a new slot the tables must append state for.
    mutating func slot(for key: String) -> (slot: Int, appended: Bool) {
        if let s = slots[key] { return (Int(s), false) }
        if let reused = free.popLast() {
            let s = Int(reused)
            keys[s] = key
            slots[key] = reused
            return (s, false)
        }
        keys.append(key)
        slots[key] = Int32(keys.count - 1)
        return (keys.count - 1, true)
    }

    /// Frees a slot; its state must already be reset.
    mutating func release(_ s: Int) {
        slots[keys[s]] = nil
        keys[s] = ""
        free.append(Int32(s))
    }
}
