public import CardwatchCore
public import CardwatchFeatures
import CardwatchModel

/// The transactions and label events a log holds, read back for a bootstrap: a data
/// directory without a model learns its first one from what was stored in it.
public struct StoredHistory: Sendable {
    public var transactions: [Transaction]
    public var labels: [LabelEvent]

    public init(transactions: [Transaction], labels: [LabelEvent]) {
        self.transactions = transactions
        self.labels = labels
    }

    /// Every transaction and label event of every partition, in log order per partition.
    public static func read(from log: some EventLog, chunk: Int = 65_536) throws -> StoredHistory {
        var transactions: [Transaction] = []
        var labels: [LabelEvent] = []
        // The log holds records accepted by the rules of their day: read back as such.
        var transactionDecoder = TransactionJSONDecoder(policy: .log)
        var labelDecoder = LabelJSONDecoder()
        for p in 0..<log.partitions {
            for topic in [Topic.transactions, .labels] {
                var offset: Int64 = 0
                while true {
                    let records = try log.read(topic, partition: p, from: offset, limit: chunk)
                    for r in records {
                        if topic == .transactions {
                            switch r.payload.withUnsafeBytes({ transactionDecoder.decode($0) }) {
                            case .success(let t): transactions.append(t)
                            case .failure(let e):
                                throw PipelineError("transactions[\(p)] offset \(r.offset) does not decode: \(e)")
                            }
                        } else {
                            switch r.payload.withUnsafeBytes({ labelDecoder.decode($0) }) {
                            case .success(let l): labels.append(l)
                            case .failure: throw PipelineError("labels[\(p)] offset \(r.offset) does not decode")
                            }
                        }
                    }
                    guard let last = records.last else { break }
                    offset = last.offset + 1
                }
            }
        }
        return StoredHistory(transactions: transactions, labels: labels)
    }

    /// Transactions known to be fraud and known to be legitimate: a label event's verdict (the
    /// latest reported) where there is one, else the transaction's own is_fraud.
    public var labelCounts: (fraud: Int, legitimate: Int) {
        var verdict: [String: (at: Timestamp, isFraud: Bool)] = [:]
        for l in labels where verdict[l.transactionID].map({ $0.at <= l.reportedAt }) ?? true {
            verdict[l.transactionID] = (l.reportedAt, l.isFraud)
        }
        var fraud = 0
        var legitimate = 0
        for t in transactions {
            guard let isFraud = verdict[t.transactionID]?.isFraud ?? t.isFraud else { continue }
            if isFraud { fraud += 1 } else { legitimate += 1 }
        }
        return (fraud, legitimate)
    }
}

extension StoredHistory {
    /// Whether a first model must do without labels: the history has rows enough to learn
    /// from (`minimumRows`) but fewer than `minimumPerClass` fraud or legitimate labels, the
    /// retraining gate's defaults, below which no supervised model is trained.
    public func callsForUnsupervisedModel(minimumRows: Int = 1_000, minimumPerClass: Int = 10) -> Bool {
        let (fraud, legitimate) = labelCounts
        return transactions.count >= minimumRows && min(fraud, legitimate) < minimumPerClass
    }

    /// An isolation forest over the stored transactions, replayed through the feature engine:
    /// trained on the earliest 80 % (every row, labelled or not), tested on the latest 20 %
    /// (evaluated where labels exist, else "not evaluated").
    public func trainUnsupervised(config: FeatureConfig = FeatureConfig(), request: TrainingRequest? = nil) throws
        -> TrainingOutcome
    {
        let dataset = try ModelTraining.dataset(history: transactions, labels: labels, config: config, keepUnlabelled: true)
        var r = request ?? TrainingRequest()
        if request == nil {
            r.testFraction = 0.2
            r.delay = 0
        }
        r.kind = .isolationForest
        return try ModelTraining.train(dataset, featureNames: Feature.names, request: r)
    }
}
