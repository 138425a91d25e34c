public import CardwatchCore
import HeapModule

/// How the generator's clock runs.
public enum GeneratorMode: Sendable {
    /// Simulated history from `start` to `end` (or until a count is reached), as fast as the machine allows.
    case backfill(start: Timestamp, end: Timestamp?)
    /// A stream at `tps` transactions per second on average, its clock starting at `start`;
    /// the caller paces emission against the wall clock.
    case live(start: Timestamp, tps: Double)
}

/// Running totals of what was generated.
public struct GeneratorCounts: Sendable, Equatable {
    public var legitimate = 0
    public var fraudulent = 0
    public var byPattern: [FraudPattern: Int] = [:]
    public var labelsEmitted = 0
    public var total: Int { legitimate + fraudulent }
}

/// The synthetic card network: a deterministic, time-ordered stream of transactions
/// with injected fraud, plus the delayed chargebacks that label it.
///
/// Legitimate spending is a superposition of one non-homogeneous Poisson process
/// per card (daily and weekly rhythm in the cardholder's local time), sampled by
/// thinning one merged process; follow-up events (trips, mall runs, fraud
/// incidents) wait in a time-ordered heap. Fraud incidents start after legitimate
/// transactions with a probability that makes each pattern's share of all
/// transactions come out at its setting.
public struct TransactionGenerator: Sendable {
    public let world: World
    public let config: GeneratorConfig
    public internal(set) var counts = GeneratorCounts()
    var rng: SeededRandom
    var cards: [CardState]
    var scheduled = Heap<ScheduledEvent>()
    var labels = Heap<PendingLabel>()
    var cardTable: AliasTable
    var nextArrival: Int64
    var eventSequence: UInt64 = 0
    var transactionSequence = 0
    let end: Int64
    let meanArrivalGap: Double
    let isLive: Bool
    let idPrefix: String
    /// Per legitimate transaction: probability of starting an incident of each pattern (`FraudPattern.allCases` order).
    let incidentProbability: [Double]
    let rhythm = Rhythm()

    public init(config: GeneratorConfig, mode: GeneratorMode, world: World? = nil) throws(ConfigError) {
        try config.validate()
        self.config = config
        let world = world ?? World(config: config)
        self.world = world
        rng = SeededRandom(seed: config.seed)
        cards = world.cards.map { CardState(lastTime: .min, lastLocation: $0.home) }
        cardTable = AliasTable(weights: world.cards.map(\.ratePerDay))

        let f = config.fraudRate
        let shareTotal = config.patternShares.values.reduce(0, +)
        incidentProbability = FraudPattern.allCases.map { p in
            f / (1 - f) * (config.patternShares[p] ?? 0) / shareTotal / FraudIncident.meanSize(p)
        }
        let start: Timestamp
        switch mode {
        case .backfill(let s, let e):
            start = s
            end = e?.microseconds ?? .max
            isLive = false
            idPrefix = "tx\(config.seed)_"
            let perDay = world.cards.reduce(0) { $0 + $1.ratePerDay } * rhythm.maximum
            meanArrivalGap = 86_400e6 / perDay
        case .live(let s, let tps):
            guard tps > 0, tps <= 1_000_000 else { throw ConfigError("tps must be in (0, 1000000], got \(tps)") }
            start = s
            end = .max
            isLive = true
            idPrefix = "lv\(s.microseconds / 1_000_000 % 100_000_000)_"
            // Follow-ups (trips, mall runs) and fraud ride on top of the spontaneous arrivals.
            meanArrivalGap = 1e6 / (tps * (1 - f) / (1 + Behaviour.followUpsPerTransaction))
        }
        nextArrival = start.microseconds
        nextArrival += Int64(rng.exponential(mean: meanArrivalGap))
    }

    /// The next transaction in event-time order, or nil at the end of a backfill.
    public mutating func next() -> Transaction? {
        while true {
            if let top = scheduled.min, top.time <= nextArrival {
                guard top.time < end else { return nil }
                let event = scheduled.removeMin()
                if let t = handle(event) { return t }
                continue
            }
            let t = nextArrival
            guard t < end else { return nil }
            nextArrival += max(1, Int64(rng.exponential(mean: meanArrivalGap)))
            if let card = pickCard(at: t) {
                return emitLegitimate(card: card, at: t, plan: nil)
            }
        }
    }

    /// Chargebacks reported up to and including `time`, in report order.
    public mutating func labels(reportedBy time: Timestamp) -> [LabelEvent] {
        var out: [LabelEvent] = []
        while let top = labels.min, top.label.reportedAt <= time {
            out.append(labels.removeMin().label)
        }
        counts.labelsEmitted += out.count
        return out
    }

    /// Labels generated but not yet reported.
    public var pendingLabels: Int { labels.count }

    /// Thinning: a card drawn by its base rate is kept with the probability of its
    /// current rhythm; live mode keeps drawing so the stream holds its rate.
    mutating func pickCard(at t: Int64) -> Int? {
        for _ in 0..<(isLive ? 64 : 1) {
            let c = cardTable.draw(&rng)
            if cards[c].isInFlight(at: t) { continue }
            let w = rhythm.weight(at: t, offsetMinutes: world.cards[c].utcOffsetMinutes)
            if rng.unit() * rhythm.maximum < w { return c }
        }
        return nil
    }

    mutating func schedule(_ e: ScheduledEvent) {
        var e = e
        eventSequence += 1
        e.sequence = eventSequence
        scheduled.insert(e)
    }

    mutating func handle(_ e: ScheduledEvent) -> Transaction? {
        switch e.kind {
        case .legitimate(let plan):
            return emitLegitimate(card: Int(e.card), at: e.time, plan: plan)
        case .fraud(let incident):
            if incident.remaining > 1 {
                var follow = e
                var rest = incident
                rest.remaining -= 1
                follow.kind = .fraud(rest)
                follow.time = e.time + FraudIncident.gap(incident.pattern, &rng)
                schedule(follow)
            }
            return emitFraud(card: Int(e.card), at: e.time, incident: incident)
        }
    }

    mutating func nextTransactionID() -> String {
        transactionSequence += 1
        return idPrefix + String(transactionSequence)
    }
}

/// What the generator remembers about a card between its transactions.
struct CardState: Sendable {
    var lastTime: Int64
    var lastLocation: GeoPoint
    var trip: Trip? = nil

    func isInFlight(at t: Int64) -> Bool {
        guard let trip else { return false }
        return (trip.depart <= t && t < trip.arrive) || (trip.departBack <= t && t < trip.arriveHome)
    }
}

/// A legitimate journey: out, a stay, and back.
struct Trip: Sendable {
    var destination: Int
    var depart: Int64
    var arrive: Int64
    var departBack: Int64
    var arriveHome: Int64
}

/// A planned legitimate purchase: a mall run's next shop or a traveller's airport coffee.
struct PurchasePlan: Sendable {
    var category: Int
    var city: Int
}

struct ScheduledEvent: Comparable, Sendable {
    enum Kind: Sendable {
        case legitimate(PurchasePlan)
        case fraud(FraudIncident)
    }
    var time: Int64
    var sequence: UInt64 = 0
    var card: Int32
    var kind: Kind

    static func < (a: Self, b: Self) -> Bool { (a.time, a.sequence) < (b.time, b.sequence) }
    static func == (a: Self, b: Self) -> Bool { a.time == b.time && a.sequence == b.sequence }
}

struct PendingLabel: Comparable, Sendable {
    var label: LabelEvent
    var sequence: Int
    static func < (a: Self, b: Self) -> Bool {
        (a.label.reportedAt.microseconds, a.sequence) < (b.label.reportedAt.microseconds, b.sequence)
    }
    static func == (a: Self, b: Self) -> Bool { a.sequence == b.sequence }
}

/// When people spend: hour of day and day of week in their local time, each with mean 1.
struct Rhythm: Sendable {
    let hours: [Double]
    let days: [Double]
    let maximum: Double

    init() {
        let h: [Double] = [
            0.15, 0.08, 0.05, 0.04, 0.05, 0.12, 0.35, 0.7, 1.0, 1.1, 1.2, 1.45,
            1.7, 1.5, 1.25, 1.2, 1.35, 1.6, 1.75, 1.6, 1.3, 1.0, 0.65, 0.35,
        ]
        let d: [Double] = [0.92, 0.93, 0.95, 0.98, 1.1, 1.15, 0.97]  // Monday first
        let hm = h.reduce(0, +) / 24
        let dm = d.reduce(0, +) / 7
        hours = h.map { $0 / hm }
        days = d.map { $0 / dm }
        maximum = hours.max()! * days.max()!
    }

    func weight(at t: Int64, offsetMinutes: Int) -> Double {
        let time = Timestamp(microseconds: t)
        let offset = Int64(offsetMinutes * 60)
        return hours[time.hourOfDay(offsetSeconds: offset)] * days[time.dayOfWeek(offsetSeconds: offset)]
    }
}
