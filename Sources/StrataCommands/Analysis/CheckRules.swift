import Foundation
import Yams

/// dive's CI rules, with dive's names, defaults and comparisons, from flags or a `.dive-ci` file:
/// `lowestEfficiency` (0.9), `highestWastedBytes` (disabled), `highestUserWastedPercent` (0.1). A value is a
/// number, a byte size for `highestWastedBytes` ("20MB", "1.5GiB"), or "disabled".
public struct CheckRules: Sendable, Equatable {
    public enum Rule: String, Sendable, CaseIterable {
        case highestUserWastedPercent, highestWastedBytes, lowestEfficiency
    }

    /// A rule's threshold; nil: disabled.
    public var thresholds: [Rule: Double] = [.lowestEfficiency: 0.9, .highestUserWastedPercent: 0.1]

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public init() {}

    /// Sets a rule from its text, as a flag or the config file gives it; `source` names where it came from.
    public mutating func set(_ rule: Rule, _ text: String, source: String) throws(Failure) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed == "disabled" {
            thresholds[rule] = nil
            return
        }
        let value = rule == .highestWastedBytes ? Self.bytes(trimmed) : Double(trimmed)
        guard let value, value.isFinite, value >= 0 else {
            let expected = rule == .highestWastedBytes ? "a size such as 20MB, or disabled" : "a ratio such as 0.9, or disabled"
            throw Failure(description: "\(source): \(rule.rawValue): \(text.debugDescription) is not \(expected)")
        }
        thresholds[rule] = value
    }

    /// Reads a `.dive-ci` file: a `rules:` map of rule names to values.
    public mutating func load(file path: String) throws(Failure) {
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure(description: "\(path): cannot read") }
        let document: Any?
        do { document = try Yams.load(yaml: String(decoding: data, as: UTF8.self)) } catch {
            throw Failure(description: "\(path): not YAML: \(error)")
        }
        guard let top = document as? [String: Any] else {
            if document == nil { return }
            throw Failure(description: "\(path): expected a map with `rules:`")
        }
        guard let rules = top["rules"] else { return }
        guard let map = rules as? [String: Any] else { throw Failure(description: "\(path): `rules:` is not a map") }
        for (key, value) in map.sorted(by: { $0.key < $1.key }) {
            guard let rule = Rule(rawValue: key) else {
                throw Failure(description: "\(path): unknown rule \(key.debugDescription) (known: \(Rule.allCases.map(\.rawValue).sorted().joined(separator: ", ")))")
            }
            try set(rule, "\(value)", source: path)
        }
    }

    /// A byte size as dive's humanize reads it: decimal units (kB, MB, GB, TB) and binary ones (KiB, MiB, ...).
    static func bytes(_ text: String) -> Double? {
        let digits = text.prefix { $0.isNumber || $0 == "." }
        guard let number = Double(digits) else { return nil }
        let unit = text.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).lowercased()
        let units: [String: Double] = ["": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
                                       "t": 1e12, "tb": 1e12, "kib": 1024, "mib": 1_048_576, "gib": 1_073_741_824, "tib": 1_099_511_627_776]
        return units[unit].map { number * $0 }
    }

    public struct Result: Sendable, Encodable, Equatable {
        public enum Status: String, Sendable, Encodable {
            case pass = "PASS", fail = "FAIL", skip = "SKIP"
        }

        public var rule: String
        public var status: Status
        public var threshold: Double?
        public var message: String?
    }

    /// Each rule's verdict, in dive's order (by name), with dive's messages.
    public func evaluate(_ figures: Efficiency) -> [Result] {
        Rule.allCases.map { rule in
            guard let threshold = thresholds[rule] else {
                return Result(rule: rule.rawValue, status: .skip, threshold: nil, message: "rule disabled")
            }
            let failure: String?
            switch rule {
            case .lowestEfficiency:
                failure = figures.efficiency < threshold
                    ? "image efficiency is too low (efficiency=\(figures.efficiency) < threshold=\(threshold))" : nil
            case .highestWastedBytes:
                failure = Double(figures.wastedBytes) > threshold
                    ? "too many bytes wasted (wasted-bytes=\(figures.wastedBytes) > threshold=\(Int64(threshold)))" : nil
            case .highestUserWastedPercent:
                failure = figures.userWastedPercent > threshold
                    ? "too many bytes wasted, relative to the user bytes added (%-user-wasted-bytes=\(figures.userWastedPercent) > threshold=\(threshold))" : nil
            }
            return Result(rule: rule.rawValue, status: failure == nil ? .pass : .fail, threshold: threshold, message: failure)
        }
    }
}
