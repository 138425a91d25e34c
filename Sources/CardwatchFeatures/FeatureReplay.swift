public import CardwatchCore

/// Runs stored history through the live engine in event-time order: the one way
/// training tables are made, so a feature can never differ between training and serving.
public enum FeatureReplay {
    /// What a replay did with the labels it was given.
    public struct LabelSummary: Sendable, Equatable {
        public var applied = 0
        /// Label events naming a transaction that is not in the history.
        public var unknownTransaction = 0
        /// Further labels for a transaction already labelled.
        public var repeated = 0
    }

    /// Sorts `transactions` by event time (stable) and calls `body` with each one and its features.
    ///
    /// Labels become known to the engine as they would have live: label events at
    /// their `reported_at`; without label events, each `is_fraud` = 1 transaction's
    /// label one label delay after the transaction.
    @discardableResult
    public static func run(
        _ transactions: [Transaction], labels: [LabelEvent]? = nil, config: FeatureConfig = FeatureConfig(),
        _ body: (Transaction, FeatureVector) throws -> Void
    ) throws -> LabelSummary {
        var engine = try FeatureEngine(config: config)
        let ordered = transactions.indices.sorted { (transactions[$0].timestamp, $0) < (transactions[$1].timestamp, $1) }
        var summary = LabelSummary()

        // Label facts in the order they become known.
        var facts: [(known: Timestamp, fact: LabelFact)] = []
        if let labels {
            var byID: [String: Int] = [:]
            for (i, t) in transactions.enumerated() { byID[t.transactionID] = byID[t.transactionID] ?? i }
            var seen = Set<String>()
            for l in labels.sorted(by: { $0.reportedAt < $1.reportedAt }) {
                guard let i = byID[l.transactionID] else {
                    summary.unknownTransaction += 1
                    continue
                }
                guard seen.insert(l.transactionID).inserted else {
                    summary.repeated += 1
                    continue
                }
                let t = transactions[i]
                facts.append(
                    (l.reportedAt, LabelFact(merchantID: t.merchantID, transactionTime: t.timestamp, isFraud: l.isFraud)))
            }
        } else {
            let delay = Double(config.labelDelay) / 1e6
            for i in ordered where transactions[i].isFraud == true {
                let t = transactions[i]
                facts.append(
                    (t.timestamp + delay, LabelFact(merchantID: t.merchantID, transactionTime: t.timestamp, isFraud: true)))
            }
        }

        var next = 0
        for i in ordered {
            let t = transactions[i]
            while next < facts.count, facts[next].known <= t.timestamp {
                engine.apply(facts[next].fact)
                if facts[next].fact.isFraud { summary.applied += 1 }
                next += 1
            }
            try body(t, engine.process(t))
        }
        return summary
    }
}
