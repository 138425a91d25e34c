import Foundation
import Testing

@testable import CardwatchCore

/// Every string of `length` upper-case letters, AA… to ZZ….
func allCodes(length: Int) -> [String] {
    var codes = [""]
    for _ in 0..<length {
        codes = codes.flatMap { prefix in (UInt8(ascii: "A")...UInt8(ascii: "Z")).map { prefix + String(UnicodeScalar($0)) } }
    }
    return codes
}

@Suite struct ISOCodesTests {
    @Test func thereAre249Countries() {
        #expect(ISOCodes.countryCount == 249)
        #expect(allCodes(length: 2).filter { ISOCodes.isCountry($0.utf8) }.count == 249)
    }

    @Test func countriesAreExactlyICUsRegionsLessTheReservedCodes() {
        // ICU also knows exceptionally reserved and user-assigned codes that ISO 3166-1 does not assign.
        let notAssigned: Set = ["AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "QO", "TA", "UN", "XK"]
        let icu = Set(Locale.Region.isoRegions.map(\.identifier)).subtracting(notAssigned)
        for code in allCodes(length: 2) {
            #expect(ISOCodes.isCountry(code.utf8) == icu.contains(code), "\(code)")
        }
    }

    @Test(arguments: ["US", "GB", "DE", "FR", "JP", "AX", "ZW"])
    func knownCountriesAreAccepted(_ code: String) {
        #expect(ISOCodes.isCountry(code.utf8))
    }

    @Test(arguments: ["UK", "us", "Us", "XX", "EU", "U", "USA", "", "U1", "U ", "ÜS"])
    func otherCountryCodesAreRefused(_ code: String) {
        #expect(!ISOCodes.isCountry(code.utf8))
    }

    @Test(arguments: ["USD", "EUR", "JPY", "GBP", "CHF", "XAU", "ZWG"])
    func knownCurrenciesAreAccepted(_ code: String) {
        #expect(ISOCodes.isCurrency(code.utf8))
    }

    @Test(arguments: ["usd", "Usd", "ABC", "US", "USDX", "", "EU1", "€UR", "XYZ"])
    func otherCurrencyCodesAreRefused(_ code: String) {
        #expect(!ISOCodes.isCurrency(code.utf8))
    }

    @Test func currenciesAreICUsISOCurrencies() {
        let all = Set(Locale.Currency.isoCurrencies.map(\.identifier))
        let accepted = allCodes(length: 3).filter { ISOCodes.isCurrency($0.utf8) }
        #expect(accepted.count == ISOCodes.currencyCount)
        for code in accepted { #expect(all.contains(code), "\(code) is not an ISO 4217 code") }
        // Every code in common use is accepted, but VEF, replaced by VES and VED.
        for code in Locale.commonISOCurrencyCodes where code != "VEF" {
            #expect(ISOCodes.isCurrency(code.utf8), "\(code)")
        }
    }
}
