import CardwatchCore
import CardwatchGenerator

/// Streams shared by several tests, generated once (the static initialisers are lazy and thread-safe).
enum Fixtures {
    static let start = Timestamp(rfc3339: "2026-01-01T00:00:00Z")!

    static func generate(_ config: GeneratorConfig = GeneratorConfig(), count: Int) -> (TransactionGenerator, [Transaction]) {
        var g = try! TransactionGenerator(config: config, mode: .backfill(start: start, end: nil))
        var out: [Transaction] = []
        out.reserveCapacity(count)
        while out.count < count, let t = g.next() { out.append(t) }
        return (g, out)
    }

    /// One million transactions of the default world, seed 1.
    static let million: (generator: TransactionGenerator, transactions: [Transaction]) = generate(count: 1_000_000)

    /// Indices of each card's transactions, in stream order.
    static let millionByCard: [String: [Int]] = {
        var byCard: [String: [Int]] = [:]
        for (i, t) in million.transactions.enumerated() { byCard[t.cardID, default: []].append(i) }
        return byCard
    }()
}
