import CardwatchCore
import CardwatchModel
import CardwatchPipeline
import Foundation
import Testing

// Issue 14, item 11: a table's unreadable rows are skipped and counted by reason, so `train`
// can say what it left out (and refuse when that is too much), instead of stopping at the first.
@Suite struct FeatureTableTests {
    @Test func badRowsAreSkippedAndCountedByColumn() throws {
        try withDirectory { dir in
            let path = dir + "/table.csv"
            try writeLines(
                [
                    "Time,V1,V2,Amount,Class", "0,1.5,2,10,0", "1,x,2,10,0", "2,1,2,10,maybe", "3,1,2,10,1",
                    "4,1,2", "5,1,,12,", "soon,1,2,3,0", "7,1,2,1e999,0", "8,0.5,1,7,1",
                ], to: path)
            let t = try FeatureTable.read(path: path, label: "Class", timeColumn: "Time")
            #expect(t.rowsRead == 9 && t.data.rows == 3 && t.unlabelled == 1)
            #expect(t.invalid.count == 5)
            let counts = t.invalid.byReason.mapValues(\.count)
            #expect(counts == ["V1": 1, "Class": 1, "row": 1, "Time": 1, "Amount": 1], "\(counts)")
            #expect(t.invalid.byReason["V1"]?.line == 3 && t.invalid.byReason["V1"]?.problem.contains("not a number") == true)
        }
    }
}
