import CardwatchCore
public import CardwatchFeatures
public import Foundation

/// Rules next to the model: conditions over the feature names that force a review or a
/// decline, each hit recorded among the decision's reasons. The file is JSON:
///
/// ```json
/// {"rules": [
///   {"name": "far-and-large", "when": "amount > 5000 and geo_velocity_kmh > 900", "action": "decline"},
///   {"name": "card-testing", "when": "small_amount_count_1hr >= 4 or tx_count_5min >= 8", "action": "review"}
/// ]}
/// ```
///
/// `when` is conditions `FEATURE OP NUMBER` (OP one of `>`, `>=`, `<`, `<=`, `==`, `!=`) joined by
/// `and`, and groups of those joined by `or` (`and` binds tighter). A missing feature value
/// satisfies no condition. A rule's action only ever raises the model's action.
public struct RuleBook: Sendable, Equatable {
    public struct Condition: Sendable, Equatable {
        public enum Operator: String, Sendable, CaseIterable {
            case greaterOrEqual = ">="
            case lessOrEqual = "<="
            case equal = "=="
            case notEqual = "!="
            case greater = ">"
            case less = "<"
        }
        public var feature: Feature
        public var op: Operator
        public var value: Double

        @inline(__always) func holds(_ x: Double) -> Bool {
            switch op {
            case .greater: x > value
            case .greaterOrEqual: x >= value
            case .less: x < value
            case .lessOrEqual: x <= value
            case .equal: x == value
            case .notEqual: !x.isNaN && x != value
            }
        }
    }

    public struct Rule: Sendable, Equatable {
        public var name: String
        /// Any group whose conditions all hold fires the rule.
        public var groups: [[Condition]]
        public var action: Action
        public var text: String

        public func fires(_ f: FeatureVector) -> Bool {
            groups.contains { group in group.allSatisfy { $0.holds(f[$0.feature]) } }
        }
    }

    public var rules: [Rule]

    public init(rules: [Rule] = []) { self.rules = rules }

    /// The rules that fire for `features`, in file order.
    public func hits(_ features: FeatureVector) -> [Rule] { rules.filter { $0.fires(features) } }

    /// Parses a rule file's text; the error names the rule and what is wrong with it.
    public init(json: Data) throws(PipelineError) {
        struct File: Decodable {
            struct Entry: Decodable {
                var name: String?
                var when: String?
                var action: String?
            }
            var rules: [Entry]
        }
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: json) } catch {
            throw PipelineError("rule file is not {\"rules\": [{\"name\", \"when\", \"action\"}, …]}: \(error)")
        }
        var rules: [Rule] = []
        var names = Set<String>()
        for (i, entry) in file.rules.enumerated() {
            let label = "rule \(i + 1)" + (entry.name.map { " ('\($0)')" } ?? "")
            guard let name = entry.name, !name.isEmpty else { throw PipelineError("\(label): needs a non-empty \"name\"") }
            guard names.insert(name).inserted else { throw PipelineError("\(label): the name is used twice") }
            guard let when = entry.when else { throw PipelineError("\(label): needs a \"when\" condition") }
            guard let actionText = entry.action, let action = Action(rawValue: actionText), action != .approve else {
                throw PipelineError(
                    "\(label): \"action\" must be \"review\" or \"decline\", not \(entry.action.map { "'\($0)'" } ?? "missing")")
            }
            let groups = try Self.parse(when, label: label)
            rules.append(Rule(name: name, groups: groups, action: action, text: when))
        }
        self.rules = rules
    }

    static func parse(_ text: String, label: String) throws(PipelineError) -> [[Condition]] {
        let words = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard !words.isEmpty else { throw PipelineError("\(label): the condition is empty") }
        var groups: [[Condition]] = [[]]
        var i = 0
        while i < words.count {
            guard i + 2 < words.count else {
                throw PipelineError("\(label): '\(words[i...].joined(separator: " "))' is not FEATURE OP NUMBER")
            }
            guard let feature = Feature(name: words[i]) else {
                throw PipelineError(
                    "\(label): unknown feature '\(words[i])' (features: \(Feature.names.joined(separator: ", ")))")
            }
            guard let op = Condition.Operator(rawValue: words[i + 1]) else {
                throw PipelineError(
                    "\(label): unknown operator '\(words[i + 1])' (use \(Condition.Operator.allCases.map(\.rawValue).joined(separator: " ")))"
                )
            }
            guard let value = Double(words[i + 2]), value.isFinite else {
                throw PipelineError("\(label): '\(words[i + 2])' is not a number")
            }
            groups[groups.count - 1].append(Condition(feature: feature, op: op, value: value))
            i += 3
            if i < words.count {
                switch words[i].lowercased() {
                case "and": break
                case "or": groups.append([])
                default: throw PipelineError("\(label): expected 'and' or 'or', found '\(words[i])'")
                }
                i += 1
                guard i < words.count else { throw PipelineError("\(label): the condition ends with '\(words[i - 1])'") }
            }
        }
        return groups
    }
}

/// A rule file that is reloaded when it changes (its modification time or size), checked
/// at most once per `interval`. A file that no longer parses keeps the last good rules and
/// reports the error once. Every mutable field lives behind one lock (`Locked`), so the
/// processor's thread, the API and tests may read the rules, the error and the reload count at once.
public final class RuleFile: Sendable {
    public let path: String
    private let interval: TimeInterval
    private let state = Locked(Loaded())

    /// What the file last gave, and when it was last looked at.
    private struct Loaded: Sendable {
        var book = RuleBook()
        var stamp: (modified: Date, size: Int)?
        var lastCheck = Date.distantPast
        var error: String?
        var loads = 0
    }

    /// The last reload error, if the file on disk does not parse.
    public var error: String? { state.withLock { $0.error } }
    /// How many times the rules were (re)loaded.
    public var loads: Int { state.withLock { $0.loads } }

    public init(path: String, checkEvery interval: TimeInterval = 1) throws(PipelineError) {
        self.path = path
        self.interval = interval
        guard FileManager.default.fileExists(atPath: path) else { throw PipelineError("rule file \(path) does not exist") }
        reload(force: true)
        if let error { throw PipelineError(error) }
    }

    /// The current rules, reloading first when the file changed.
    public func current(now: Date = Date()) -> RuleBook {
        state.withLock { loaded in
            if now.timeIntervalSince(loaded.lastCheck) >= interval {
                loaded.lastCheck = now
                Self.reload(path, into: &loaded, force: false)
            }
            return loaded.book
        }
    }

    /// Reads the file again (`force`: even when its stamp did not change); a failure is kept in `error`.
    public func reload(force: Bool) {
        state.withLock { Self.reload(path, into: &$0, force: force) }
    }

    private static func reload(_ path: String, into loaded: inout Loaded, force: Bool) {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let modified = attributes?[.modificationDate] as? Date ?? .distantPast
        let size = (attributes?[.size] as? NSNumber)?.intValue ?? -1
        if !force, let stamp = loaded.stamp, stamp.modified == modified, stamp.size == size { return }
        loaded.stamp = (modified, size)
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            loaded.book = try RuleBook(json: data)
            loaded.error = nil
            loaded.loads += 1
        } catch let e as PipelineError {
            loaded.error = "rule file \(path): \(e.message)"
        } catch {
            loaded.error = "rule file \(path) cannot be read: \(error)"
        }
    }
}
