/// The figures a model is judged by, on one test window.
public struct EvaluationMetrics: Codable, Sendable, Equatable {
    public var rows: Int
    public var positives: Int
    public var rocAUC: Double
    public var averagePrecision: Double
    /// The probability threshold the confusion figures below are taken at.
    public var threshold: Double
    public var precision: Double
    public var recall: Double
    public var f1: Double
    public var truePositives: Int
    public var falsePositives: Int
    public var trueNegatives: Int
    public var falseNegatives: Int
    /// The highest recall reachable while at most 1 % of legitimate rows are flagged.
    public var recallAt1PctFPR: Double
    /// The Fraud Detection Handbook's card precision@100, averaged over the test days; nil without days and cards.
    public var cardPrecisionAt100: Double?
    /// Recall at `threshold` per fraud pattern, when the data names patterns.
    public var perPatternRecall: [String: Double]
    /// Mean squared difference between probability and outcome (lower is better); nil in artifacts older than it.
    public var brierScore: Double?

    /// Names that survive the artifact's snake_case conversion both ways (`rocAUC` would come back as `rocAuc`).
    enum CodingKeys: String, CodingKey {
        case rows, positives, threshold, precision, recall, f1, truePositives, falsePositives, trueNegatives, falseNegatives
        case rocAUC = "rocAuc"
        case averagePrecision, cardPrecisionAt100, perPatternRecall, brierScore
        case recallAt1PctFPR = "recallAt1PctFpr"
    }

    public init(
        rows: Int, positives: Int, rocAUC: Double, averagePrecision: Double, threshold: Double, precision: Double,
        recall: Double, f1: Double, truePositives: Int, falsePositives: Int, trueNegatives: Int, falseNegatives: Int,
        recallAt1PctFPR: Double, cardPrecisionAt100: Double?, perPatternRecall: [String: Double], brierScore: Double? = nil
    ) {
        self.rows = rows
        self.positives = positives
        self.rocAUC = rocAUC
        self.averagePrecision = averagePrecision
        self.threshold = threshold
        self.precision = precision
        self.recall = recall
        self.f1 = f1
        self.truePositives = truePositives
        self.falsePositives = falsePositives
        self.trueNegatives = trueNegatives
        self.falseNegatives = falseNegatives
        self.recallAt1PctFPR = recallAt1PctFPR
        self.cardPrecisionAt100 = cardPrecisionAt100
        self.perPatternRecall = perPatternRecall
        self.brierScore = brierScore
    }
}
