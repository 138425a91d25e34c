import CardwatchCore

/// Consumer groups for logs without a broker (the SQLite log, the memory log): Kafka's group
/// protocol reduced to one process. Members join and leave; partitions are spread over the
/// members by Kafka's range assignor (members in join order, each a contiguous run, the first
/// ones one more); a partition moves only after its old owner released it (cooperative
/// rebalancing), so no partition is ever held by two members. A member taken for dead
/// (`expel`, Kafka's session timeout) loses its partitions at once, without being asked.
public final class ConsumerGroups: Sendable {
    struct Group {
        var members: [Int] = []
        /// Partition → the member holding it.
        var owners: [Int: Int] = [:]
        var partitions = 0
    }
    private let groups = Locked<(next: Int, byName: [String: Group])>((1, [:]))

    public init() {}

    /// Joins `group` over `partitions` partitions; the new member's id.
    func join(_ group: String, partitions: Int) throws -> Int {
        try groups.withLock { g in
            var state = g.byName[group] ?? Group(partitions: partitions)
            guard state.members.isEmpty || state.partitions == partitions else {
                throw ConsumerGroupError(
                    "group \(group) consumes \(state.partitions) partitions, a member asked for \(partitions)")
            }
            state.partitions = partitions
            let id = g.next
            g.next += 1
            state.members.append(id)
            g.byName[group] = state
            return id
        }
    }

    /// Leaves the group, releasing whatever the member holds.
    func leave(_ group: String, member: Int) {
        groups.withLock { g in
            guard var state = g.byName[group] else { return }
            state.members.removeAll { $0 == member }
            state.owners = state.owners.filter { $0.value != member }
            g.byName[group] = state
        }
    }

    /// Takes a member for dead: it leaves, and its next call is refused.
    public func expel(group: String, member: Int) { leave(group, member: member) }

    /// The members of a group, in join order.
    public func members(of group: String) -> [Int] { groups.withLock { $0.byName[group]?.members ?? [] } }

    /// The partitions `member` holds beyond its share: to revoke, then `release`.
    func surplus(_ group: String, member: Int, holding: Set<Int>) throws -> [Int] {
        try groups.withLock { g in
            let target = try Self.target(g.byName[group], group: group, member: member).1
            return holding.subtracting(target).sorted()
        }
    }

    /// Gives partitions back to the group (after the member's listener was told).
    func release(_ group: String, member: Int, partitions: [Int]) {
        groups.withLock { g in
            for p in partitions where g.byName[group]?.owners[p] == member { g.byName[group]?.owners[p] = nil }
        }
    }

    /// Takes the free partitions of the member's share: the ones now its own.
    func claim(_ group: String, member: Int, holding: Set<Int>) throws -> [Int] {
        try groups.withLock { g in
            var (state, target) = try Self.target(g.byName[group], group: group, member: member)
            var gained: [Int] = []
            for p in target.sorted() where !holding.contains(p) && state.owners[p] == nil {
                state.owners[p] = member
                gained.append(p)
            }
            g.byName[group] = state
            return gained
        }
    }

    private static func target(_ state: Group?, group: String, member: Int) throws -> (Group, Set<Int>) {
        guard let state, let rank = state.members.firstIndex(of: member) else {
            throw ConsumerGroupError("member \(member) is no longer in group \(group) (it was taken for dead)")
        }
        return (state, range(rank: rank, members: state.members.count, partitions: state.partitions))
    }

    /// Kafka's range assignor over one set of co-partitioned topics.
    static func range(rank: Int, members: Int, partitions: Int) -> Set<Int> {
        let base = partitions / members
        let extra = partitions % members
        let start = rank * base + min(rank, extra)
        let count = base + (rank < extra ? 1 : 0)
        return Set(start..<start + count)
    }
}

/// A member of an in-process consumer group reading any `LogReader` (the SQLite log, the
/// memory log): what Kafka's consumer does against a broker.
public final class GroupConsumer: LogConsumer {
    public let group: String
    public let log: any LogReader
    public let groups: ConsumerGroups
    public private(set) var member: Int?
    private var topics: [Topic] = []
    private weak var listener: (any RebalanceListener)?
    /// Next offset per topic, per held partition.
    private var positions: [Int: [Topic: Int64]] = [:]
    /// Where the next poll starts its round over the held partitions, so none starves.
    private var turn = 0

    public init(group: String, log: any LogReader, groups: ConsumerGroups) {
        self.group = group
        self.log = log
        self.groups = groups
    }

    deinit {
        if let member { groups.leave(group, member: member) }
    }

    public var assignment: [Int] { positions.keys.sorted() }

    public func subscribe(_ topics: [Topic], listener: any RebalanceListener) throws {
        guard member == nil else { throw ConsumerGroupError("this consumer already subscribed to group \(group)") }
        self.topics = topics
        self.listener = listener
        member = try groups.join(group, partitions: log.partitions)
    }

    public func poll(maxRecords: Int) throws -> [LogRecord] {
        guard let member else { throw ConsumerGroupError("poll before subscribe, or after close") }
        let lost = try groups.surplus(group, member: member, holding: Set(positions.keys))
        if !lost.isEmpty {
            for p in lost { positions[p] = nil }
            // Released even when the listener fails: the next owner resumes from the sink.
            defer { groups.release(group, member: member, partitions: lost) }
            try listener?.revoked(lost)
        }
        let gained = try groups.claim(group, member: member, holding: Set(positions.keys))
        if !gained.isEmpty {
            for p in gained {
                var start: [Topic: Int64] = [:]
                for t in topics { start[t] = 0 }
                positions[p] = start
            }
            do {
                try listener?.assigned(gained)
            } catch {
                // Not taken after all: given back, and claimed again at the next poll.
                for p in gained { positions[p] = nil }
                groups.release(group, member: member, partitions: gained)
                throw error
            }
        }
        let held = assignment
        guard !held.isEmpty, maxRecords > 0 else { return [] }
        // An even share per topic-partition first, then whatever is left to whoever has more.
        var out: [LogRecord] = []
        let share = max(1, maxRecords / (held.count * topics.count))
        turn = (turn + 1) % held.count
        for round in 0..<2 {
            for i in 0..<held.count {
                let p = held[(turn + i) % held.count]
                for t in topics {
                    let room = maxRecords - out.count
                    guard room > 0, let at = positions[p]?[t] else { continue }
                    let records = try log.read(t, partition: p, from: at, limit: round == 0 ? min(share, room) : room)
                    if let last = records.last { positions[p]?[t] = last.offset + 1 }
                    out += records
                }
            }
        }
        return out
    }

    public func seek(_ topic: Topic, partition: Int, to offset: Int64) throws {
        guard positions[partition] != nil, topics.contains(topic) else {
            throw ConsumerGroupError("seek in \(topic.rawValue)[\(partition)], which this member does not hold")
        }
        positions[partition]?[topic] = offset
    }

    public func close() throws {
        guard let member else { return }
        let held = assignment
        positions = [:]
        self.member = nil
        defer { groups.leave(group, member: member) }
        if !held.isEmpty { try listener?.revoked(held) }
    }
}
