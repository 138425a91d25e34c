import CardwatchCore
import HeapModule

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One fraud incident on a compromised card: a pattern and how many transactions are left.
struct FraudIncident: Sendable {
    var pattern: FraudPattern
    var remaining: Int
    var online: Bool
    /// Where the fraudster is (for geo_jump it is chosen when the transaction happens).
    var city: Int

    static func meanSize(_ p: FraudPattern) -> Double {
        switch p {
        case .geoJump, .highAmount: 1
        case .velocityBurst: 7.5  // 5…10
        case .cardTesting: 2.5  // 1…4
        }
    }

    static func size(_ p: FraudPattern, _ rng: inout SeededRandom) -> Int {
        switch p {
        case .geoJump, .highAmount: 1
        case .velocityBurst: rng.int(5...10)
        case .cardTesting: rng.int(1...4)
        }
    }

    /// Seconds from the triggering legitimate transaction to the first fraudulent one.
    static func delay(_ p: FraudPattern, _ rng: inout SeededRandom) -> Double {
        switch p {
        case .geoJump: rng.uniform(180, 3 * 3600)
        case .velocityBurst: rng.uniform(60, 2 * 3600)
        case .highAmount: rng.uniform(300, 12 * 3600)
        case .cardTesting: rng.uniform(60, 6 * 3600)
        }
    }

    /// Microseconds between consecutive transactions of one incident. A burst's
    /// nine gaps of at most a minute keep all of it inside ten minutes.
    static func gap(_ p: FraudPattern, _ rng: inout SeededRandom) -> Int64 {
        switch p {
        case .velocityBurst: Int64(rng.uniform(15, 60) * 1e6)
        case .cardTesting: Int64(rng.uniform(10, 300) * 1e6)
        case .geoJump, .highAmount: Int64(rng.uniform(600, 3600) * 1e6)
        }
    }
}

/// Legitimate habits and fraud tactics; the knobs are here so the story is in one place.
enum Behaviour {
    typealias C = MerchantCategory.Index
    /// Chance a purchase at home is at one of the cardholder's regular shops.
    static let favoriteShare = 0.4
    /// Chance of a rare big legitimate purchase (40–99.5 % of the limit): people do max out their cards.
    static let largePurchaseChance = 0.004
    static let largePurchaseCategories = [C.electronics, C.furniture, C.jewelry, C.airline]
    /// Chance a purchase at a shop starts a mall run of 3–6 more within the hour.
    static let mallRunChance = 0.01
    static let mallCategories = [
        C.clothing, C.department, C.fastFood, C.electronics, C.restaurant, C.giftCards, C.books, C.miscRetail,
    ]
    /// Average follow-up purchases per spontaneous one (mall runs and trips), for live pacing.
    static let followUpsPerTransaction = mallRunChance * 4.5 + 0.004

    static let fraudCategories: [FraudPattern: [(Int, Double)]] = [
        .geoJump: [
            (C.electronics, 0.35), (C.jewelry, 0.15), (C.department, 0.15), (C.atm, 0.2), (C.fuel, 0.05), (C.giftCards, 0.1),
        ],
        .velocityBurst: [
            (C.giftCards, 0.3), (C.electronics, 0.2), (C.games, 0.15), (C.fastFood, 0.1), (C.department, 0.15),
            (C.moneyTransfer, 0.1),
        ],
        .highAmount: [(C.electronics, 0.4), (C.jewelry, 0.2), (C.moneyTransfer, 0.15), (C.crypto, 0.1), (C.airline, 0.15)],
        .cardTesting: [(C.digitalMedia, 0.3), (C.games, 0.15), (C.charity, 0.25), (C.miscRetail, 0.2), (C.fastFood, 0.1)],
    ]

    static func pick(_ weighted: [(Int, Double)], _ rng: inout SeededRandom) -> Int {
        var u = rng.unit() * weighted.reduce(0) { $0 + $1.1 }
        for (value, w) in weighted {
            u -= w
            if u < 0 { return value }
        }
        return weighted[weighted.count - 1].0
    }

    static func cents(_ v: Double) -> Double { (v * 100).rounded() / 100 }
}

extension TransactionGenerator {
    /// Where the card's holder is at `t`: home, or the trip's destination.
    func currentCity(card c: Int, at t: Int64) -> Int {
        if let trip = cards[c].trip, trip.arrive <= t, t < trip.departBack { return trip.destination }
        return world.cards[c].homeCity
    }

    mutating func emitLegitimate(card c: Int, at t: Int64, plan: PurchasePlan?) -> Transaction {
        if let trip = cards[c].trip, t >= trip.arriveHome { cards[c].trip = nil }
        let holder = world.cards[c]
        let city = plan?.city ?? currentCity(card: c, at: t)
        let atHome = city == holder.homeCity
        var category: Int
        var merchant: Int
        var online = false
        var amount: Double
        if plan == nil, atHome, rng.chance(Behaviour.favoriteShare) {
            merchant = Int(world.favorites[c * World.favoritesPerCard + rng.index(World.favoritesPerCard)])
            category = world.merchants[merchant].category
            amount = legitimateAmount(for: holder, category: category)
        } else if plan == nil, rng.chance(Behaviour.largePurchaseChance) {
            category = Behaviour.largePurchaseCategories[rng.index(Behaviour.largePurchaseCategories.count)]
            online = rng.chance(0.5)
            merchant = world.merchant(category: category, city: city, online: online, &rng)
            amount = Behaviour.cents(holder.creditLimit * rng.uniform(0.4, 0.995))
        } else {
            category = plan?.category ?? world.archetypeCategories[holder.archetype].draw(&rng)
            let share = world.categories[category].onlineShare
            online = plan == nil && !world.categories[category].isATM && rng.chance(min(1, share * holder.onlineAffinity))
            merchant = world.merchant(category: category, city: city, online: online, &rng)
            amount = legitimateAmount(for: holder, category: category)
        }
        online = world.merchants[merchant].isOnline
        // An online purchase is placed where the buyer's device is.
        let location =
            online
            ? (atHome ? holder.home : World.jitter(world.cities[city].location, km: 5, &rng))
            : world.merchants[merchant].location
        let tx = makeTransaction(card: c, at: t, merchant: merchant, amount: amount, location: location, fraud: nil)

        if plan == nil, atHome, !online {
            if rng.chance(Behaviour.mallRunChance) { planMallRun(card: c, city: city, from: t) }
            if cards[c].trip == nil, rng.chance(holder.tripsPerYear / 365 / holder.ratePerDay) { planTrip(card: c, from: t) }
        }
        maybeStartFraud(card: c, at: t)
        counts.legitimate += 1
        return tx
    }

    mutating func legitimateAmount(for holder: Cardholder, category k: Int) -> Double {
        let category = world.categories[k]
        if !category.pricePoints.isEmpty {
            // Cash and app-store prices come in steps; richer holders pick the higher ones more often.
            let n = category.pricePoints.count
            let bias = min(1, holder.spendingLevel * 0.5)
            let i = min(n - 1, Int(Double(n) * pow(rng.unit(), 1.5 - bias)))
            return category.pricePoints[i]
        }
        let sigma =
            (category.amountSpread * category.amountSpread + holder.spendingSpread * holder.spendingSpread).squareRoot() / 1.2
        let raw = rng.logNormal(median: category.medianAmount * holder.spendingLevel, sigma: sigma)
        return Behaviour.cents(min(holder.creditLimit * 0.6, max(0.5, raw)))
    }

    mutating func planMallRun(card c: Int, city: Int, from t: Int64) {
        var time = t
        for _ in 0..<rng.int(3...6) {
            time += Int64(rng.uniform(120, 720) * 1e6)
            let k = Behaviour.mallCategories[rng.index(Behaviour.mallCategories.count)]
            schedule(ScheduledEvent(time: time, card: Int32(c), kind: .legitimate(PurchasePlan(category: k, city: city))))
        }
    }

    /// A real journey: an airport purchase before departure, one soon after landing,
    /// and the same on the way back. Long flights make these look like impossible travel.
    mutating func planTrip(card c: Int, from t: Int64) {
        let home = world.cards[c].homeCity
        var destination = home
        while destination == home { destination = world.destinationTable.draw(&rng) }
        let km = world.cities[home].location.distanceKm(to: world.cities[destination].location)
        let travelHours = km > 300 ? km / 800 + 0.75 : km / 85
        let hour = 3_600e6
        let depart = t + Int64(rng.uniform(2, 72) * hour)
        let arrive = depart + Int64(travelHours * hour)
        let departBack = arrive + Int64(rng.uniform(2, 10) * 24 * hour)
        let arriveHome = departBack + Int64(travelHours * hour)
        cards[c].trip = Trip(
            destination: destination, depart: depart, arrive: arrive, departBack: departBack, arriveHome: arriveHome)
        let before = { (rng: inout SeededRandom) in Int64(rng.uniform(10, 90) * 60e6) }
        let after = { (rng: inout SeededRandom) in Int64(rng.uniform(15, 180) * 60e6) }
        let plans: [(Int64, Int, Int)] = [
            (depart - before(&rng), MerchantCategory.Index.fastFood, home),
            (arrive + after(&rng), MerchantCategory.Index.taxi, destination),
            (arrive + after(&rng) + Int64(hour), MerchantCategory.Index.hotel, destination),
            (departBack - before(&rng), MerchantCategory.Index.convenience, destination),
            (arriveHome + after(&rng), MerchantCategory.Index.taxi, home),
        ]
        for (time, category, city) in plans {
            schedule(ScheduledEvent(time: time, card: Int32(c), kind: .legitimate(PurchasePlan(category: category, city: city))))
        }
    }

    mutating func maybeStartFraud(card c: Int, at t: Int64) {
        var u = rng.unit()
        for (i, p) in FraudPattern.allCases.enumerated() {
            u -= incidentProbability[i]
            guard u < 0 else { continue }
            let online: Bool
            switch p {
            case .geoJump: online = false
            case .velocityBurst: online = rng.chance(0.5)
            case .highAmount: online = rng.chance(0.6)
            case .cardTesting: online = rng.chance(0.85)
            }
            // Card-not-present fraud comes from anywhere; a cloned card is used where it was skimmed.
            let city = online ? rng.index(world.cities.count) : world.cards[c].homeCity
            let incident = FraudIncident(pattern: p, remaining: FraudIncident.size(p, &rng), online: online, city: city)
            let start = t + Int64(FraudIncident.delay(p, &rng) * 1e6)
            schedule(ScheduledEvent(time: start, card: Int32(c), kind: .fraud(incident)))
            return
        }
    }

    mutating func emitFraud(card c: Int, at t: Int64, incident: FraudIncident) -> Transaction {
        let holder = world.cards[c]
        var city = incident.city
        if incident.pattern == .geoJump { city = impossibleTravelCity(card: c, at: t) }
        let category = Behaviour.pick(Behaviour.fraudCategories[incident.pattern]!, &rng)
        let merchant = world.merchant(category: category, city: city, online: incident.online, &rng)
        let amount: Double
        switch incident.pattern {
        case .geoJump:
            amount =
                world.categories[category].isATM
                ? [200.0, 300, 400, 500][rng.index(4)]
                : Behaviour.cents(min(holder.creditLimit * 0.75, rng.logNormal(median: 250 * holder.spendingLevel, sigma: 0.7)))
        case .velocityBurst:
            amount = Behaviour.cents(min(400, max(3, rng.logNormal(median: 40, sigma: 0.7))))
        case .highAmount:
            let floor = (holder.creditLimit * 0.8 * 100).rounded(.up) / 100
            amount = max(floor, Behaviour.cents(holder.creditLimit * rng.uniform(0.8, 0.999)))
        case .cardTesting:
            amount = Behaviour.cents(rng.uniform(0.5, 2.0))
        }
        let online = world.merchants[merchant].isOnline
        let location = online ? World.jitter(world.cities[city].location, km: 5, &rng) : world.merchants[merchant].location
        let tx = makeTransaction(card: c, at: t, merchant: merchant, amount: amount, location: location, fraud: incident.pattern)
        let delayDays = min(
            config.labelDelayMaxDays,
            max(config.labelDelayMinDays, rng.logNormal(median: config.labelDelayMedianDays, sigma: 0.6)))
        labels.insert(
            PendingLabel(
                label: LabelEvent(
                    transactionID: tx.transactionID, isFraud: true,
                    reportedAt: Timestamp(microseconds: (tx.timestamp + delayDays * 86_400).microseconds / 1_000 * 1_000)),
                sequence: transactionSequence))
        counts.fraudulent += 1
        counts.byPattern[incident.pattern, default: 0] += 1
        return tx
    }

    /// A city far from home and far enough from the card's last transaction that
    /// reaching it in the time since would take more than 550 km/h.
    mutating func impossibleTravelCity(card c: Int, at t: Int64) -> Int {
        let last = cards[c].lastLocation
        let hours = cards[c].lastTime == .min ? 0 : Double(t - cards[c].lastTime) / 3_600e6
        let needed = max(2_000, 550 * hours + 100)
        let home = world.cards[c].home
        var farthest = 0
        var farthestKm = -1.0
        for _ in 0..<40 {
            let k = rng.index(world.cities.count)
            let km = world.cities[k].location.distanceKm(to: last)
            if km >= needed, world.cities[k].location.distanceKm(to: home) >= 1_500 { return k }
            if km > farthestKm {
                farthest = k
                farthestKm = km
            }
        }
        for (k, city) in world.cities.enumerated() where city.location.distanceKm(to: last) > farthestKm {
            farthest = k
            farthestKm = city.location.distanceKm(to: last)
        }
        return farthest
    }

    mutating func makeTransaction(
        card c: Int, at t: Int64, merchant m: Int, amount: Double, location: GeoPoint, fraud: FraudPattern?
    )
        -> Transaction
    {
        let time = t / 1_000 * 1_000  // millisecond timestamps
        cards[c].lastTime = time
        cards[c].lastLocation = location
        let holder = world.cards[c]
        let merchant = world.merchants[m]
        let category = world.categories[merchant.category]
        let channel: Channel = category.isATM ? .atm : (merchant.isOnline ? .online : .pos)
        return Transaction(
            transactionID: nextTransactionID(), cardID: holder.cardID, amount: amount, timestamp: Timestamp(microseconds: time),
            merchantID: merchant.merchantID, merchantCategory: category.mcc, currency: "USD", location: location,
            country: merchant.country, channel: channel, customerID: holder.customerID, isFraud: fraud != nil,
            fraudPattern: fraud?.rawValue)
    }
}
