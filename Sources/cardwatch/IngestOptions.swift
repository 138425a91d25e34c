import ArgumentParser
import CardwatchCore
import Foundation

/// Where the secret comes from that turns a card number (PAN) into its card_id.
struct PANSecretOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "File holding the secret that derives card_id from a card_number: HMAC-SHA256, at least 16 bytes.",
            discussion: "Default: the CARDWATCH_PAN_SECRET variable; without either, records with a card_number are refused.",
            valueName: "file"))
    var panSecretFile: String?

    /// The key, from the file or else the variable; nil when neither is given.
    func key() throws -> PANKey? {
        let secret: [UInt8]
        if let panSecretFile {
            guard let data = FileManager.default.contents(atPath: panSecretFile) else {
                throw ValidationError("--pan-secret-file: cannot read \(panSecretFile)")
            }
            secret = Array(data)
        } else if let value = ProcessInfo.processInfo.environment[PANKey.environmentVariable], !value.isEmpty {
            secret = Array(value.utf8)
        } else {
            return nil
        }
        do { return try PANKey(secret: secret) } catch {
            let from = panSecretFile.map { "--pan-secret-file \($0)" } ?? PANKey.environmentVariable
            throw ValidationError("\(from): \(error)")
        }
    }

    /// The schema's rules with this key, no wall-clock bound: for tools that read history.
    func offlinePolicy() throws -> IngestPolicy { IngestPolicy(panKey: try key()) }
}

/// How records entering the live log (HTTP, `import`) are checked beyond the schema: the
/// PAN secret, and how far from the wall clock their event times may be. The built-in live
/// generator is exempt: its simulated clock runs ahead of the wall clock by design.
struct LiveIngestOptions: ParsableArguments {
    @OptionGroup var pan: PANSecretOptions
    @Option(
        help: ArgumentHelp(
            "How far ahead of the wall clock an event time may be (90s, 15m, 12h, 1d; none: no bound).", valueName: "duration"
        ))
    var maxEventLead = "1d"
    @Option(
        help: ArgumentHelp(
            "How far behind the wall clock an event time may be (none: no bound, for a historical import).",
            valueName: "duration"))
    var maxEventAge = "30d"

    func validate() throws { _ = try bounds() }

    func bounds() throws -> EventTimeBounds {
        do {
            return EventTimeBounds(
                ahead: try EventTimeBounds.parseDuration(maxEventLead, setting: "--max-event-lead"),
                behind: try EventTimeBounds.parseDuration(maxEventAge, setting: "--max-event-age"))
        } catch { throw ValidationError(error.description) }
    }

    func policy() throws -> IngestPolicy { IngestPolicy(panKey: try pan.key(), eventTimes: try bounds()) }

    /// The bounds in words, for messages.
    var described: String {
        guard let b = try? bounds() else { return "" }
        let ahead = b.ahead.map { "at most \(EventTimeBounds.describe($0))" } ?? "any time"
        let behind = b.behind.map { "at most \(EventTimeBounds.describe($0))" } ?? "any time"
        return "\(ahead) ahead of the wall clock and \(behind) behind it"
    }
}
