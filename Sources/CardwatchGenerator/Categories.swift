import CardwatchCore

/// A merchant category: its ISO 18245 code and how people spend there.
public struct MerchantCategory: Sendable {
    public var mcc: String
    public var name: String
    /// Median ticket in USD and the log-normal spread around it.
    public var medianAmount: Double
    public var amountSpread: Double
    /// Fixed price points instead of a continuous amount (app stores, ATMs).
    public var pricePoints: [Double]
    /// Share of this category's purchases made online.
    public var onlineShare: Double
    /// One of `MerchantRisk.highRiskMCCs`: gambling, money transfer, crypto, gift cards.
    public var isHighRisk: Bool
    /// Base weight of the category in legitimate spending.
    public var weight: Double
    public var isATM: Bool { mcc == "6011" }
}

extension MerchantCategory {
    init(
        _ mcc: String, _ name: String, _ median: Double, _ spread: Double, online: Double, weight: Double,
        prices: [Double] = []
    ) {
        self.init(
            mcc: mcc, name: name, medianAmount: median, amountSpread: spread, pricePoints: prices,
            onlineShare: online, isHighRisk: MerchantRisk.highRiskMCCs.contains(mcc), weight: weight)
    }

    /// Indices into `catalog`, named for the generator's own choices.
    enum Index {
        static let grocery = 0, restaurant = 1, fastFood = 2, convenience = 3, fuel = 4, department = 5
        static let electronics = 6, clothing = 7, pharmacy = 8, transit = 9, taxi = 10, airline = 11, hotel = 12
        static let digitalMedia = 13, games = 14, books = 15, movies = 16, furniture = 17, utilities = 18
        static let jewelry = 19, miscRetail = 20, gambling = 21, moneyTransfer = 22, crypto = 23, giftCards = 24
        static let atm = 25, charity = 26
    }

    public static let catalog: [MerchantCategory] = [
        MerchantCategory("5411", "grocery stores", 55, 0.6, online: 0.05, weight: 18),
        MerchantCategory("5812", "restaurants", 38, 0.5, online: 0.02, weight: 10),
        MerchantCategory("5814", "fast food and coffee", 11, 0.5, online: 0.05, weight: 12),
        MerchantCategory("5499", "convenience and vending", 6, 0.75, online: 0, weight: 9),
        MerchantCategory("5541", "service stations", 42, 0.35, online: 0, weight: 8),
        MerchantCategory("5311", "department stores", 70, 0.8, online: 0.35, weight: 5),
        MerchantCategory("5732", "electronics stores", 180, 0.9, online: 0.45, weight: 2),
        MerchantCategory("5651", "clothing stores", 65, 0.6, online: 0.4, weight: 4),
        MerchantCategory("5912", "drug stores and pharmacies", 25, 0.7, online: 0.1, weight: 5),
        MerchantCategory("4111", "local commuter transport", 4.5, 0.5, online: 0.2, weight: 4),
        MerchantCategory("4121", "taxicabs and ride hailing", 22, 0.6, online: 0.6, weight: 3),
        MerchantCategory("4511", "airlines", 420, 0.6, online: 0.9, weight: 0.3),
        MerchantCategory("7011", "hotels and lodging", 260, 0.6, online: 0.5, weight: 0.3),
        MerchantCategory(
            "5815", "digital media", 0, 0, online: 1, weight: 4, prices: [0.99, 1.99, 2.99, 4.99, 9.99, 14.99]),
        MerchantCategory("5816", "digital games", 0, 0, online: 1, weight: 1.5, prices: [0.99, 1.99, 4.99, 9.99, 19.99, 59.99]),
        MerchantCategory("5942", "book stores", 22, 0.5, online: 0.5, weight: 1),
        MerchantCategory("7832", "movie theaters", 28, 0.4, online: 0.3, weight: 1.2),
        MerchantCategory("5712", "furniture stores", 350, 0.8, online: 0.3, weight: 0.4),
        MerchantCategory("4900", "utilities", 120, 0.4, online: 0.95, weight: 1.5),
        MerchantCategory("5944", "jewelry stores", 300, 0.9, online: 0.25, weight: 0.3),
        MerchantCategory("5999", "miscellaneous retail", 40, 0.9, online: 0.6, weight: 4),
        MerchantCategory("7995", "betting and gambling", 60, 1.0, online: 0.7, weight: 0.3),
        MerchantCategory("4829", "money transfer", 250, 0.8, online: 0.8, weight: 0.6),
        MerchantCategory("6051", "crypto and quasi-cash", 300, 1.0, online: 1, weight: 0.15),
        MerchantCategory("5947", "gift cards and novelty", 50, 0.6, online: 0.5, weight: 0.6),
        MerchantCategory(
            "6011", "ATM cash withdrawals", 0, 0, online: 0, weight: 3, prices: [20, 40, 60, 80, 100, 200, 300, 400]),
        MerchantCategory("8398", "charitable organizations", 30, 0.8, online: 0.9, weight: 0.4),
    ]
}

/// A spending archetype: multipliers over the categories' base weights.
struct Archetype: Sendable {
    var name: String
    var multipliers: [Int: Double]

    typealias I = MerchantCategory.Index
    static let all: [Archetype] = [
        Archetype(name: "commuter", multipliers: [I.transit: 4, I.fastFood: 1.5, I.convenience: 1.5]),
        Archetype(name: "family", multipliers: [I.grocery: 1.6, I.department: 1.5, I.pharmacy: 1.4, I.fuel: 1.3]),
        Archetype(
            name: "young online",
            multipliers: [I.digitalMedia: 3, I.games: 4, I.taxi: 2, I.fastFood: 1.3, I.crypto: 4, I.giftCards: 2]),
        Archetype(
            name: "affluent traveller",
            multipliers: [I.restaurant: 1.8, I.airline: 4, I.hotel: 4, I.jewelry: 3, I.electronics: 1.5]),
        Archetype(name: "gambler", multipliers: [I.gambling: 15, I.moneyTransfer: 3, I.atm: 2]),
        Archetype(name: "frugal", multipliers: [I.grocery: 1.3, I.convenience: 1.5, I.fuel: 1.2, I.atm: 1.3]),
    ]

    /// Category weights for this archetype, in catalog order.
    var weights: [Double] {
        MerchantCategory.catalog.enumerated().map { i, c in c.weight * (multipliers[i] ?? 1) }
    }
}
