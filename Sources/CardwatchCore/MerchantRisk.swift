/// Merchant categories that fraud rings favour, shared by the generator (which
/// sends fraud there) and the feature engine (which counts visits there).
public enum MerchantRisk {
    /// ISO 18245 codes: 7995 betting and gambling, 4829 money transfer,
    /// 6051 quasi-cash and crypto, 5947 gift cards.
    public static let highRiskMCCs: Set<String> = ["7995", "4829", "6051", "5947"]
    /// The same categories by name, for feeds that send names instead of codes (compared lower-cased).
    public static let highRiskNames: Set<String> = [
        "gambling", "betting", "money transfer", "money_transfer", "crypto", "quasi-cash", "gift cards", "gift_cards",
    ]

    public static func isHighRisk(category: String?) -> Bool {
        guard let c = category else { return false }
        if highRiskMCCs.contains(c) { return true }
        // An MCC (four digits) is decided by the code alone; only names need lower-casing.
        if c.utf8.count == 4 && c.utf8.allSatisfy({ $0 &- 48 < 10 }) { return false }
        return highRiskNames.contains(c.lowercased())
    }
}
