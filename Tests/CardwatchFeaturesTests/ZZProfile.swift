import CardwatchCore
import CardwatchFeatures
import Foundation
import Testing

@Test func zzProfile() {
    guard ProcessInfo.processInfo.environment["ZZPROF"] != nil else { return }
    let clock = ContinuousClock()
    for seed in UInt64(0x00C0_FFEE)..<UInt64(0x00C0_FFEE + 30) {
        let s = Streams.make(seed: seed)
        var e = try! FeatureEngine(config: s.config)
        var r = ReferenceEngine(config: s.config)
        var ids = Set<String>()
        var txn = 0
        for st in s.steps { if case .tx(let t) = st { ids.insert(t.cardID); txn += 1 } }
        let te = clock.measure { for st in s.steps { switch st { case .tx(let t): _ = e.process(t); case .label(let l): e.apply(l) } } }
        let tr = clock.measure { for st in s.steps { switch st { case .tx(let t): _ = r.process(t); case .label(let l): r.apply(l) } } }
        let tg = clock.measure { _ = Streams.make(seed: seed) }
        print("seed \(seed) steps \(s.steps.count) tx \(txn) cards \(ids.count) merchants \(r.byMerchant.count) gen \(tg) engine \(te) ref \(tr)")
    }
}
