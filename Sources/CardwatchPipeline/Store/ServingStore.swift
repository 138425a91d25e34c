/// An alert as the warehouse keeps it.
public struct AlertRecord: Sendable, Equatable, Codable {
    public var transactionID: String
    public var cardID: String
    public var merchantID: String
    public var amount: Double
    public var timestamp: String
    public var fraudProbability: Double
    public var riskTier: String
    public var action: String
    public var modelVersion: Int
    /// The reasons as stored: a JSON array of {kind, name, value?, contribution?, detail?}.
    public var reasonsJSON: String
    public var fraudPattern: String?
    /// `fraud` or `legitimate`, once an analyst said.
    public var feedback: String?
    /// When it was decided (µs since 1970, wall clock).
    public var decidedAt: Int64

    public init(
        transactionID: String, cardID: String, merchantID: String, amount: Double, timestamp: String,
        fraudProbability: Double, riskTier: String, action: String, modelVersion: Int, reasonsJSON: String,
        fraudPattern: String?, feedback: String?, decidedAt: Int64
    ) {
        self.transactionID = transactionID
        self.cardID = cardID
        self.merchantID = merchantID
        self.amount = amount
        self.timestamp = timestamp
        self.fraudProbability = fraudProbability
        self.riskTier = riskTier
        self.action = action
        self.modelVersion = modelVersion
        self.reasonsJSON = reasonsJSON
        self.fraudPattern = fraudPattern
        self.feedback = feedback
        self.decidedAt = decidedAt
    }
}

/// A stored decision (for a repeated transaction id: the answer it got the first time).
public struct StoredDecision: Sendable, Equatable {
    public var transactionID: String
    public var fraudProbability: Double
    public var riskTier: String
    public var action: String
    public var modelVersion: Int
    public var ruleHits: [String]
    public var reasonsJSON: String?
    public var latencyMicros: Int64
    /// The transaction's own time and when it was decided (µs since 1970; the latter wall clock).
    public var eventTime: Int64 = 0
    public var decidedAt: Int64 = 0

    public init(
        transactionID: String, fraudProbability: Double, riskTier: String, action: String, modelVersion: Int,
        ruleHits: [String], reasonsJSON: String?, latencyMicros: Int64
    ) {
        self.transactionID = transactionID
        self.fraudProbability = fraudProbability
        self.riskTier = riskTier
        self.action = action
        self.modelVersion = modelVersion
        self.ruleHits = ruleHits
        self.reasonsJSON = reasonsJSON
        self.latencyMicros = latencyMicros
    }
}

/// Counts over a window of processing time.
public struct WindowStats: Sendable, Equatable {
    public var transactions = 0
    public var alerts = 0
    public var reviews = 0
    public var declines = 0
    /// Of the window's transactions: those with a known outcome (a label or feedback), those
    /// confirmed as fraud and their amount (µ-units of their currency), and among the
    /// alerts, those with a known outcome and those confirmed.
    public var labelled = 0
    public var confirmedFrauds = 0
    public var fraudAmountMicros: Int64 = 0
    public var alertsLabelled = 0
    public var alertsConfirmed = 0
    public var meanProbability: Double?
    public var meanLatencyMicros: Double?
    public var maxLatencyMicros: Int64 = 0
    public var alertsByTier: [String: Int] = [:]
    public var alertsByPattern: [String: Int] = [:]
    public init() {}
}

/// One bucket of a time series over processing time.
public struct TimeBucket: Sendable, Equatable {
    /// Start of the bucket, µs since 1970.
    public var start: Int64
    public var transactions: Int
    public var alerts: Int
    public var meanLatencyMicros: Double?
    public init(start: Int64, transactions: Int, alerts: Int, meanLatencyMicros: Double?) {
        self.start = start
        self.transactions = transactions
        self.alerts = alerts
        self.meanLatencyMicros = meanLatencyMicros
    }
}

/// What the HTTP API reads from the warehouse, and the analyst's feedback it writes.
public protocol ServingStore: Sendable {
    func recentAlerts(limit: Int) throws -> [AlertRecord]
    func alert(transactionID: String) throws -> AlertRecord?
    func alerts(cardID: String, limit: Int) throws -> [AlertRecord]
    func decision(transactionID: String) throws -> StoredDecision?
    /// Records an analyst's verdict on a decided transaction (on its alert too, when it raised
    /// one) and appends it to the `labels` log (silver label, confirmed-fraud aggregates,
    /// merchant fraud rates, the next training). Returns whether the transaction raised an
    /// alert; nil, with nothing written, when it was never decided (or, `alertsOnly`, raised no alert).
    func recordFeedback(_ feedback: AnalystFeedback, alertsOnly: Bool) throws -> Bool?
    /// Processing-time window [from, now).
    func stats(from: Int64) throws -> WindowStats
    func timeseries(from: Int64, bucketMicros: Int64) throws -> [TimeBucket]
}

/// An analyst's verdict on a decided transaction.
public struct AnalystFeedback: Sendable, Equatable {
    public var transactionID: String
    public var fraud: Bool
    public var analyst: String?
    public var note: String?
    /// When it was given (µs since 1970, wall clock).
    public var at: Int64

    public init(transactionID: String, fraud: Bool, analyst: String?, note: String?, at: Int64) {
        self.transactionID = transactionID
        self.fraud = fraud
        self.analyst = analyst
        self.note = note
        self.at = at
    }
}
