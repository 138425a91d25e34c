import CardwatchCore
import CardwatchGenerator
import Testing

@Suite struct DeterminismTests {
    func bytes(seed: UInt64, count: Int, csv: Bool) -> [UInt8] {
        var config = GeneratorConfig()
        config.seed = seed
        let (_, txs) = Fixtures.generate(config, count: count)
        var out: [UInt8] = []
        for t in txs {
            if csv { TransactionEncoder.appendCSVRow(t, to: &out) } else { TransactionEncoder.appendJSONLine(t, to: &out) }
        }
        return out
    }

    @Test(arguments: [false, true]) func sameSeedGivesIdenticalBytes(csv: Bool) {
        let a = bytes(seed: 7, count: 30_000, csv: csv)
        let b = bytes(seed: 7, count: 30_000, csv: csv)
        #expect(a.count > 30_000 * 100)
        #expect(a == b)
    }

    @Test func differentSeedsDiffer() {
        #expect(bytes(seed: 1, count: 2_000, csv: false) != bytes(seed: 2, count: 2_000, csv: false))
    }

    @Test func labelsAreDeterministicToo() {
        func labels() -> [LabelEvent] {
            var (g, txs) = Fixtures.generate(count: 50_000)
            return g.labels(reportedBy: txs.last!.timestamp + 60 * 86_400)
        }
        let a = labels()
        #expect(!a.isEmpty)
        #expect(a == labels())
    }
}

@Suite struct FraudMixTests {
    @Test func fraudShareIsWithinPointThreeOfTheSettingOverAMillion() {
        let txs = Fixtures.million.transactions
        #expect(txs.count == 1_000_000)
        let fraud = txs.filter { $0.isFraud == true }.count
        let share = Double(fraud) / Double(txs.count) * 100
        print("fraud share over 1,000,000 transactions: \(share) % (setting 2 %)")
        #expect(abs(share - 2.0) <= 0.3)
    }

    @Test func eachPatternShareIsWithinFivePointsOfItsSetting() {
        let fraud = Fixtures.million.transactions.filter { $0.isFraud == true }
        let settings = GeneratorConfig().patternShares
        for p in FraudPattern.allCases {
            let share = Double(fraud.filter { $0.fraudPattern == p.rawValue }.count) / Double(fraud.count) * 100
            print("\(p.rawValue): \(share) % of fraud (setting \(settings[p]! * 100) %)")
            #expect(abs(share - settings[p]! * 100) <= 5, "\(p.rawValue)")
        }
    }

    @Test func otherSettingsAreHonoured() {
        var config = GeneratorConfig()
        config.fraudRate = 0.1
        config.patternShares = [.cardTesting: 1]
        config.seed = 3
        let (_, txs) = Fixtures.generate(config, count: 200_000)
        let fraud = txs.filter { $0.isFraud == true }
        let share = Double(fraud.count) / Double(txs.count)
        #expect(abs(share - 0.1) < 0.01)
        #expect(fraud.allSatisfy { $0.fraudPattern == FraudPattern.cardTesting.rawValue })
    }

    @Test func noFraudWhenTheRateIsZero() {
        var config = GeneratorConfig()
        config.fraudRate = 0
        let (g, txs) = Fixtures.generate(config, count: 50_000)
        #expect(txs.allSatisfy { $0.isFraud == false && $0.fraudPattern == nil })
        #expect(g.counts.fraudulent == 0)
    }

    @Test func badSettingsAreRefusedWithTheirName() {
        var config = GeneratorConfig()
        config.fraudRate = 0.7
        #expect(throws: ConfigError.self) { try config.validate() }
        config = GeneratorConfig()
        config.cards = 0
        do {
            try config.validate()
            Issue.record("zero cards accepted")
        } catch {
            #expect(error.description.contains("cards"))
        }
    }
}

@Suite struct SchemaTests {
    @Test func everyGeneratedRecordIsValidUnderSchemaV1AndRoundTrips() {
        var json = TransactionJSONDecoder()
        var bad = 0
        var buffer: [UInt8] = []
        for t in Fixtures.million.transactions {
            buffer.removeAll(keepingCapacity: true)
            TransactionEncoder.appendJSONLine(t, to: &buffer)
            let result = buffer.withUnsafeBytes { json.decode(UnsafeRawBufferPointer(rebasing: $0.dropLast())) }
            if case .success(let back) = result, back == t { continue }
            bad += 1
            if bad < 5 { Issue.record("not valid or not equal after a round trip: \(result)") }
        }
        #expect(bad == 0)
    }

    @Test func transactionIDsAreUnique() {
        let ids = Set(Fixtures.million.transactions.map(\.transactionID))
        #expect(ids.count == Fixtures.million.transactions.count)
    }

    @Test func timestampsNeverGoBackwards() {
        let txs = Fixtures.million.transactions
        #expect(zip(txs, txs.dropFirst()).allSatisfy { $0.timestamp <= $1.timestamp })
    }
}
