public import CardwatchCore
public import CardwatchModel

/// A numeric feature table from CSV: `cardwatch features` output, or any table of
/// numbers a user brings. Every column is a feature except the label, the time
/// column and the identifying columns (`transaction_id`, `card_id`, `fraud_pattern`).
public struct FeatureTable: Sendable {
    public var featureNames: [String]
    public var data: TimedDataset
    /// Rows skipped because their label cell was empty.
    public var unlabelled: Int
    /// Rows skipped because a cell could not be read (a label, a feature or the time), by column.
    public var invalid: InvalidRecords
    /// Data rows read (the header aside).
    public var rowsRead: Int
    /// Whether the rows had real times (else row order stands in for time).
    public var hasTimes: Bool

    static let identifying: Set<String> = ["transaction_id", "card_id", "fraud_pattern"]

    public static func read(path: String, label: String, timeColumn: String?) throws -> FeatureTable {
        var reader = try RecordReader(path: path, csv: true)
        defer { reader.close() }
        var header: [String]?
        var labelIndex = -1
        var timeIndex: Int?
        var featureIndices: [Int] = []
        var idIndex: Int?
        var cardIndex: Int?
        var patternIndex: Int?
        var matrix = FeatureMatrix(columns: 0)
        var times: [Int64] = []
        var cards: [String] = []
        var patterns: [String?] = []
        var ids: [String] = []
        var unlabelled = 0
        var invalid = InvalidRecords()
        var rowsRead = 0
        var row: [Double] = []
        try reader.forEachRecord { line in
            let cells: [String]
            do { cells = try CSVLine.cells(line.bytes) } catch { throw ModelError("\(path):\(line.lineNumber): \(error)") }
            guard let columns = header else {
                header = cells
                guard let l = cells.firstIndex(of: label) else {
                    throw ModelError("\(path): no column '\(label)' for the label; columns are \(cells.joined(separator: ", "))")
                }
                labelIndex = l
                let time = timeColumn ?? (cells.contains("timestamp") ? "timestamp" : nil)
                if let time {
                    guard let t = cells.firstIndex(of: time) else { throw ModelError("\(path): no time column '\(time)'") }
                    timeIndex = t
                }
                idIndex = cells.firstIndex(of: "transaction_id")
                cardIndex = cells.firstIndex(of: "card_id")
                patternIndex = cells.firstIndex(of: "fraud_pattern")
                featureIndices = cells.indices.filter { $0 != labelIndex && $0 != timeIndex && !identifying.contains(cells[$0]) }
                guard !featureIndices.isEmpty else { throw ModelError("\(path): no feature columns") }
                matrix = FeatureMatrix(columns: featureIndices.count)
                row = [Double](repeating: 0, count: featureIndices.count)
                return
            }
            rowsRead += 1
            // A row that cannot be read is skipped and counted by the column at fault (the caller
            // decides whether that many may be left out: `train --max-invalid`).
            guard cells.count == columns.count else {
                invalid.add(line: line.lineNumber, reason: "row", "\(cells.count) cells, the header has \(columns.count)")
                return
            }
            let labelText = cells[labelIndex]
            guard !labelText.isEmpty else {
                unlabelled += 1
                return
            }
            guard let y = ["0": false, "1": true, "false": false, "true": true][labelText.lowercased()] else {
                invalid.add(
                    line: line.lineNumber, reason: label,
                    "'\(CardNumber.masked(text: labelText).prefix(40))' is not 0, 1, true or false")
                return
            }
            var time = Int64(times.count)
            if let t = timeIndex {
                let text = cells[t]
                if let ts = Timestamp(rfc3339: text) {
                    time = ts.microseconds
                } else if let seconds = Double(text), seconds.isFinite, abs(seconds) < 1e12 {
                    time = Int64(seconds * 1e6)
                } else {
                    invalid.add(
                        line: line.lineNumber, reason: columns[t],
                        "'\(CardNumber.masked(text: text).prefix(40))' is neither RFC 3339 nor a number of seconds")
                    return
                }
            }
            for (k, j) in featureIndices.enumerated() {
                let text = cells[j]
                if text.isEmpty {
                    row[k] = .nan
                } else if let v = Double(text), v.isFinite {
                    row[k] = v
                } else {
                    invalid.add(
                        line: line.lineNumber, reason: columns[j],
                        "'\(CardNumber.masked(text: text).prefix(40))' is not a number")
                    return
                }
            }
            matrix.append(row, label: y)
            times.append(time)
            ids.append(idIndex.map { cells[$0] } ?? "row\(line.lineNumber)")
            cards.append(cardIndex.map { cells[$0] } ?? "")
            patterns.append(patternIndex.flatMap { cells[$0].isEmpty ? nil : cells[$0] })
        }
        guard let header else { throw ModelError("\(path) is empty") }
        return FeatureTable(
            featureNames: featureIndices.map { header[$0] },
            data: TimedDataset(matrix: matrix, times: times, cards: cards, patterns: patterns, transactionIDs: ids),
            unlabelled: unlabelled, invalid: invalid, rowsRead: rowsRead, hasTimes: timeIndex != nil)
    }
}
