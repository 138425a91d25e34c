public import CardwatchCore

/// The features of a transaction scored from the online store (`POST /predict?mode=online`):
/// the card's and the merchant's profiles (their latest decided transaction) carried forward
/// to this transaction, without the stream. The original systems' API works this way: a
/// cached profile plus the request.
///
/// | features | from |
/// |---|---|
/// | `amount`, `hour_of_day`, `is_weekend`, `is_night`, `is_online`, `is_high_risk_merchant` | this transaction, exactly as the engine |
/// | windowed counts, means, maxima of the card (5 min, 1 h, 24 h exact; 7 and 30 days in day buckets) | the profile's value plus this transaction when the profile's transaction lies in the window, else this transaction alone |
/// | `time_since_last_tx_s` | since the profile's transaction (30-day cap) |
/// | `amount_vs_avg_ratio` | amount ÷ the profile's `card_avg_amount_30d` (1 outside 30 days) |
/// | `geo_velocity_kmh`, `distance_from_home_km` | from the profile's coordinates (the home stands in as the latest location); 0 without |
/// | `is_new_merchant` | 0 when the merchant is the profile's, else 1 |
/// | merchant counts | the merchant profile's plus this transaction, per window as for the card |
/// | merchant fraud rates | the merchant profile's |
///
/// Exact (equal to the engine's) for a card with one earlier transaction, in order, and its
/// merchant's with one; an approximation otherwise: events that left a window since the
/// profile was written still count, and only the latest location and merchant are known.
/// Without a profile (a new card, or the store unreachable: `fallback`) every history feature
/// takes the engine's value for a first transaction.
public enum OnlineFeatures {
    public static func vector(_ tx: Transaction, card: CardProfile?, merchant: MerchantProfile?) -> FeatureVector {
        var f = firstTransaction(tx)
        let t = tx.timestamp.microseconds
        let day = bucket(t, FeatureConfig.day)
        if let p = card, t - p.eventTime.microseconds <= FeatureConfig.cardHorizon {
            let dt = max(0, t - p.eventTime.microseconds)
            let pf = p.features
            let amount = tx.amount
            func carried(_ count: Feature, _ inWindow: Bool) -> Double { inWindow ? pf[count] + 1 : 1 }
            func mean(_ avg: Feature, _ count: Feature, _ inWindow: Bool) -> Double {
                inWindow ? (pf[avg] * pf[count] + amount) / (pf[count] + 1) : amount
            }
            let in5m = dt < 5 * FeatureConfig.minute
            let in1h = dt < FeatureConfig.hour
            let in1d = dt < FeatureConfig.day
            let pday = bucket(p.eventTime.microseconds, FeatureConfig.day)
            let in7d = pday >= day - 6
            let in30d = pday >= day - 29
            f[.txCount5min] = carried(.txCount5min, in5m)
            f[.avgAmount1hr] = mean(.avgAmount1hr, .txCount1hr, in1h)
            f[.txCount1hr] = carried(.txCount1hr, in1h)
            f[.maxAmount1hr] = in1h ? max(pf[.maxAmount1hr], amount) : amount
            if in1h {
                f[.highRiskMerchantCount1hr] += pf[.highRiskMerchantCount1hr]
                f[.smallAmountCount1hr] += pf[.smallAmountCount1hr]
            }
            f[.cardAvgAmount1d] = mean(.cardAvgAmount1d, .cardTxCount1d, in1d)
            f[.cardTxCount1d] = carried(.cardTxCount1d, in1d)
            f[.cardAvgAmount7d] = mean(.cardAvgAmount7d, .cardTxCount7d, in7d)
            f[.cardTxCount7d] = carried(.cardTxCount7d, in7d)
            f[.amountVsAvgRatio] = in30d && pf[.cardAvgAmount30d] > 0 ? amount / pf[.cardAvgAmount30d] : 1
            f[.cardAvgAmount30d] = mean(.cardAvgAmount30d, .cardTxCount30d, in30d)
            f[.cardTxCount30d] = carried(.cardTxCount30d, in30d)
            f[.timeSinceLastTxS] = Double(min(dt, FeatureConfig.cardHorizon)) / 1e6
            if let here = tx.location, let there = p.location {
                let km = here.distanceKm(to: there)
                f[.geoVelocityKmh] = km / (Double(max(dt, FeatureConfig.minute)) / Double(FeatureConfig.hour))
                f[.distanceFromHomeKm] = km
            }
            f[.isNewMerchant] = in30d && p.merchantID == tx.merchantID ? 0 : 1
        }
        if let m = merchant {
            let mt = m.eventTime.microseconds
            let hour = bucket(t, FeatureConfig.hour)
            let counts: [(Feature, Bool)] = [
                (.merchantTxCount1d, bucket(mt, FeatureConfig.hour) >= hour - 23),
                (.merchantTxCount7d, bucket(mt, FeatureConfig.day) >= day - 6),
                (.merchantTxCount30d, bucket(mt, FeatureConfig.day) >= day - 29),
            ]
            for (feature, inWindow) in counts where inWindow { f[feature] = (m[feature] ?? 0) + 1 }
            for feature in [Feature.merchantFraudRate1d, .merchantFraudRate7d, .merchantFraudRate30d] {
                f[feature] = m[feature] ?? 0
            }
        }
        return f
    }

    /// The engine's features for `tx` as its card's and merchant's first transaction: every
    /// history feature at its "no data" value (the fallback's safe defaults).
    public static func firstTransaction(_ tx: Transaction) -> FeatureVector {
        var engine = try! FeatureEngine(config: FeatureConfig())  // the default config is valid
        return engine.process(tx)
    }
}
