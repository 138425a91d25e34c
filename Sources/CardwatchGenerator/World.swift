public import CardwatchCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the synthetic world looks like and how it behaves. Every default is the
/// one issue #2 names; `seed` makes the whole stream reproducible.
public struct GeneratorConfig: Sendable {
    public var seed: UInt64 = 1
    public var cards: Int = 500
    /// Share of all transactions that are fraudulent.
    public var fraudRate: Double = 0.02
    /// Share of fraudulent transactions per pattern (normalised when used).
    public var patternShares: [FraudPattern: Double] = [
        .geoJump: 0.35, .velocityBurst: 0.30, .highAmount: 0.25, .cardTesting: 0.10,
    ]
    /// Mean legitimate transactions per card per day (each card draws its own rate around it).
    public var transactionsPerCardPerDay: Double = 3
    /// Chargeback delay: log-normal with this median, clamped to [min, max] days.
    public var labelDelayMedianDays: Double = 5
    public var labelDelayMinDays: Double = 1
    public var labelDelayMaxDays: Double = 30
    /// Merchants per city and category scale with the population; this many in all, roughly.
    public var merchants: Int? = nil

    public init() {}

    /// Checks every setting, naming the first one that is out of range.
    public func validate() throws(ConfigError) {
        guard cards >= 1, cards <= 10_000_000 else { throw ConfigError("cards must be between 1 and 10,000,000, got \(cards)") }
        guard fraudRate >= 0, fraudRate <= 0.5 else {
            throw ConfigError("fraud rate must be between 0 and 0.5, got \(fraudRate)")
        }
        guard patternShares.values.allSatisfy({ $0 >= 0 }), patternShares.values.reduce(0, +) > 0 else {
            throw ConfigError("pattern shares must be non-negative and not all zero")
        }
        guard transactionsPerCardPerDay > 0, transactionsPerCardPerDay <= 1000 else {
            throw ConfigError("transactions per card per day must be in (0, 1000], got \(transactionsPerCardPerDay)")
        }
        guard labelDelayMinDays >= 0, labelDelayMinDays <= labelDelayMedianDays, labelDelayMedianDays <= labelDelayMaxDays
        else { throw ConfigError("label delay must satisfy 0 ≤ min ≤ median ≤ max days") }
    }
}

public struct ConfigError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// A cardholder: who they are and how they spend.
public struct Cardholder: Sendable {
    public var cardID: String
    public var customerID: String
    public var homeCity: Int
    public var home: GeoPoint
    public var creditLimit: Double
    /// Multiplier on every category's median ticket.
    public var spendingLevel: Double
    /// Log-normal spread of this person's amounts.
    public var spendingSpread: Double
    /// Legitimate transactions per day on average.
    public var ratePerDay: Double
    /// Multiplier on the categories' online shares.
    public var onlineAffinity: Double
    public var tripsPerYear: Double
    var archetype: Int
    var utcOffsetMinutes: Int
}

/// A merchant: a shop in a city, or an online business (`city` = its head office).
public struct Merchant: Sendable {
    public var merchantID: String
    public var category: Int
    public var city: Int
    public var location: GeoPoint
    public var isOnline: Bool
    public var country: String
}

/// The population the generator draws from: cities, merchants, cardholders.
public struct World: Sendable {
    public let cities = City.catalog
    public let categories = MerchantCategory.catalog
    public private(set) var merchants: [Merchant] = []
    public private(set) var cards: [Cardholder] = []
    /// `posMerchants[city * categories.count + category]` = merchant indices there.
    var posMerchants: [[Int32]] = []
    var onlineMerchants: [[Int32]] = []
    /// `favorites[card * favoritesPerCard + k]`: the shops a cardholder returns to.
    var favorites: [Int32] = []
    static let favoritesPerCard = 6
    var archetypeCategories: [AliasTable] = []
    /// Cities people live in (the US) and cities anyone may visit, as draw tables.
    var homeCities: [Int] = []
    var homeCityTable: AliasTable
    var destinationTable: AliasTable

    public init(config: GeneratorConfig) {
        var rng = SeededRandom(seed: config.seed ^ 0x5EED_0F_3011D)
        let cities = City.catalog
        homeCities = cities.indices.filter { cities[$0].country == "US" }
        homeCityTable = AliasTable(weights: homeCities.map { cities[$0].weight })
        // Travellers mostly stay in the country; the weights favour big US cities, then the world's.
        destinationTable = AliasTable(weights: cities.map { $0.country == "US" ? $0.weight * 1.5 : $0.weight * 0.5 })
        archetypeCategories = Archetype.all.map { AliasTable(weights: $0.weights) }
        buildMerchants(config: config, rng: &rng)
        buildCards(config: config, rng: &rng)
    }

    /// The index of a generated card id (`card_000042` → 42).
    public func cardIndex(of cardID: String) -> Int? {
        guard cardID.hasPrefix("card_"), let i = Int(cardID.dropFirst(5)), cards.indices.contains(i) else { return nil }
        return i
    }

    static func jitter(_ p: GeoPoint, km: Double, _ rng: inout SeededRandom) -> GeoPoint {
        let dLat = rng.normal() * km / 111.0
        let dLon = rng.normal() * km / (111.0 * max(0.2, cos(p.latitude * Double.pi / 180)))
        return GeoPoint(latitude: rounded(min(89.9, max(-89.9, p.latitude + dLat))), longitude: rounded(p.longitude + dLon))
    }

    /// Four decimals (about 11 m): precise enough, and short in the output.
    static func rounded(_ v: Double) -> Double { (v * 10_000).rounded() / 10_000 }

    mutating func buildMerchants(config: GeneratorConfig, rng: inout SeededRandom) {
        let target = Double(config.merchants ?? max(1_500, config.cards / 10))
        let totalCityWeight = cities.reduce(0) { $0 + $1.weight }
        let totalCategoryWeight = categories.reduce(0) { $0 + $1.weight }
        posMerchants = Array(repeating: [], count: cities.count * categories.count)
        onlineMerchants = Array(repeating: [], count: categories.count)
        for (c, city) in cities.enumerated() {
            for (k, category) in categories.enumerated() where category.onlineShare < 1 {
                let expected = target * 0.85 * city.weight / totalCityWeight * category.weight / totalCategoryWeight
                let count = max(1, Int(expected.rounded()))
                for _ in 0..<count {
                    posMerchants[c * categories.count + k].append(Int32(merchants.count))
                    merchants.append(
                        Merchant(
                            merchantID: Self.merchantID(merchants.count), category: k, city: c,
                            location: Self.jitter(city.location, km: 6, &rng), isOnline: false, country: city.country))
                }
            }
        }
        for (k, category) in categories.enumerated() where category.onlineShare > 0 {
            let count = max(2, Int((target * 0.15 * category.weight / totalCategoryWeight).rounded()))
            for _ in 0..<count {
                // Most online merchants are American; some are abroad.
                let c = rng.chance(0.85) ? homeCities[homeCityTable.draw(&rng)] : rng.index(cities.count)
                onlineMerchants[k].append(Int32(merchants.count))
                merchants.append(
                    Merchant(
                        merchantID: Self.merchantID(merchants.count), category: k, city: c,
                        location: cities[c].location, isOnline: true, country: cities[c].country))
            }
        }
    }

    static func merchantID(_ i: Int) -> String { "mer_" + padded(i, 6) }

    static func padded(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    mutating func buildCards(config: GeneratorConfig, rng: inout SeededRandom) {
        let width = max(6, String(config.cards - 1).count)
        cards.reserveCapacity(config.cards)
        favorites.reserveCapacity(config.cards * Self.favoritesPerCard)
        for i in 0..<config.cards {
            let homeCity = homeCities[homeCityTable.draw(&rng)]
            let archetype = rng.index(Archetype.all.count)
            let limitSteps = (rng.logNormal(median: 5_000, sigma: 0.6) / 500).rounded()
            let creditLimit = min(50_000, max(1_000, limitSteps * 500))
            let card = Cardholder(
                cardID: "card_" + Self.padded(i, width), customerID: "cust_" + Self.padded(i, width),
                homeCity: homeCity, home: Self.jitter(cities[homeCity].location, km: 8, &rng), creditLimit: creditLimit,
                spendingLevel: (creditLimit / 5_000).squareRoot() * rng.logNormal(median: 1, sigma: 0.25),
                spendingSpread: rng.uniform(0.25, 0.6),
                ratePerDay: min(40, config.transactionsPerCardPerDay * rng.logNormal(median: 0.85, sigma: 0.55)),
                onlineAffinity: rng.uniform(0.5, 1.6), tripsPerYear: rng.logNormal(median: 3, sigma: 0.7),
                archetype: archetype, utcOffsetMinutes: cities[homeCity].utcOffsetMinutes)
            cards.append(card)
            for _ in 0..<Self.favoritesPerCard {
                favorites.append(Int32(posMerchant(city: homeCity, archetype: archetype, &rng)))
            }
        }
    }

    /// A shop in `city` of a category this archetype buys from (online-only categories are skipped).
    func posMerchant(city: Int, archetype: Int, _ rng: inout SeededRandom) -> Int {
        while true {
            let k = archetypeCategories[archetype].draw(&rng)
            let list = posMerchants[city * categories.count + k]
            if !list.isEmpty { return Int(list[rng.index(list.count)]) }
        }
    }

    func merchant(category k: Int, city: Int, online: Bool, _ rng: inout SeededRandom) -> Int {
        let list = online ? onlineMerchants[k] : posMerchants[city * categories.count + k]
        if list.isEmpty {  // online-only or shop-only category: use the other kind
            let other = online ? posMerchants[city * categories.count + k] : onlineMerchants[k]
            return Int(other[rng.index(other.count)])
        }
        return Int(list[rng.index(list.count)])
    }
}
