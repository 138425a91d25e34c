/// ISO 4217 currency codes and ISO 3166-1 alpha-2 country codes, as bitsets over
/// their letters so a lookup is a shift and a mask.
public enum ISOCodes {
    /// Active ISO 4217 codes, plus the few withdrawn ones still seen in card data (HRK, SLL, ZWL).
    static let currencies = """
        AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN \
        BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD \
        FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS \
        KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN \
        MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR \
        SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD \
        USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU \
        XTS XUA XXX YER ZAR ZMW ZWG ZWL
        """
    /// All 249 officially assigned ISO 3166-1 alpha-2 codes.
    static let countries = """
        AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV \
        BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES \
        ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE \
        IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY \
        MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU \
        NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM \
        SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE \
        VG VI VN VU WF WS YE YT ZA ZM ZW
        """

    static let currencyBits = bitset(currencies, letters: 3)
    static let countryBits = bitset(countries, letters: 2)
    public static var currencyCount: Int { currencies.split(separator: " ").count }
    /// Every code, for documents that list them (the OpenAPI schema).
    public static var allCurrencies: [String] { currencies.split(whereSeparator: \.isWhitespace).map(String.init) }
    public static var allCountries: [String] { countries.split(whereSeparator: \.isWhitespace).map(String.init) }
    public static var countryCount: Int { countries.split(separator: " ").count }

    static func bitset(_ list: String, letters: Int) -> [UInt64] {
        var bits = [UInt64](repeating: 0, count: (Int(pow26(letters)) + 63) / 64)
        for code in list.split(separator: " ") {
            let k = index(Array(code.utf8))!
            bits[k >> 6] |= 1 << UInt64(k & 63)
        }
        return bits
    }

    static func pow26(_ n: Int) -> Int { n == 0 ? 1 : 26 * pow26(n - 1) }

    /// Position of an upper-case code in the bitset, nil if it has other characters.
    static func index<C: Collection<UInt8>>(_ code: C) -> Int? {
        var k = 0
        for c in code {
            guard c >= UInt8(ascii: "A"), c <= UInt8(ascii: "Z") else { return nil }
            k = k * 26 + Int(c - UInt8(ascii: "A"))
        }
        return k
    }

    static func contains<C: Collection<UInt8>>(_ bits: [UInt64], _ code: C, letters: Int) -> Bool {
        guard code.count == letters, let k = index(code) else { return false }
        return bits[k >> 6] & (1 << UInt64(k & 63)) != 0
    }

    /// ISO 4217 minor-unit exponents other than 2 (a cent): 0 where the currency has no
    /// minor unit, 3 for the dinars and rials counted in thousandths, 4 for the units of account.
    static let exponents: [String: Int] = [
        "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0, "RWF": 0, "UGX": 0,
        "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
        "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
        "CLF": 4, "UYW": 4,
    ]
    /// The exponent of every three-letter code, by its bitset index: one load per record
    /// instead of hashing the code.
    static let exponentByIndex: [UInt8] = {
        var table = [UInt8](repeating: 2, count: pow26(3))
        for (code, e) in exponents { table[index(Array(code.utf8))!] = UInt8(e) }
        return table
    }()
    static let unitOfExponent = [1.0, 0.1, 0.01, 0.001, 0.0001]

    /// The minor-unit exponent of a currency code (2 for a code this table does not know).
    static func exponent(_ currency: String) -> Int {
        var code = currency
        let k = code.withUTF8 { $0.count == 3 ? index($0) : nil }
        return k.map { Int(exponentByIndex[$0]) } ?? 2
    }

    /// The smallest amount of a currency (its minor unit: 0.01 USD, 1 JPY, 0.001 BHD).
    public static func minorUnit(_ currency: String) -> Double { unitOfExponent[exponent(currency)] }

    /// The minor unit as written: `0.01`, `1`, `0.001`.
    public static func minorUnitText(_ currency: String) -> String {
        let e = exponent(currency)
        return e == 0 ? "1" : "0." + String(repeating: "0", count: e - 1) + "1"
    }

    public static func isCurrency<C: Collection<UInt8>>(_ code: C) -> Bool { contains(currencyBits, code, letters: 3) }
    public static func isCountry<C: Collection<UInt8>>(_ code: C) -> Bool { contains(countryBits, code, letters: 2) }
}
