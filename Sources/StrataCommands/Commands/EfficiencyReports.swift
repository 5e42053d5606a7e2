import Foundation
import Overlay

/// `strata layers` (the stack from top to bottom, then its efficiency) and `strata check` (dive's CI rules).
public enum EfficiencyReports {
    public static func layers(_ origin: AnalyzedStack.Origin, style: OutputStyle) throws(Inspection.Failure) -> String {
        let stack = try AnalyzedStack.open(origin)
        let (tree, figures) = StackedTree.withEfficiency(stack)
        let summaries: [LayerSummary]
        if case .directories(let options, let path) = origin {
            summaries = try Inspection.open(options: options, paths: path.map { [$0] } ?? []).layerSummaries()
        } else {
            summaries = stack.layers.map { summary($0, in: tree) }
        }
        if style.json { return style.json(LayersJSON(layers: summaries, history: stack.layers.map(\.createdBy), efficiency: figures)) }
        let rows = summaries.map { (layer: LayerSummary) -> [String] in
            let name = layer.isUpper ? "\(layer.index) (upper)" : "\(layer.index)"
            let counts = [layer.entries, layer.whiteouts, layer.opaqueDirectories, layer.redirectedDirectories].map(String.init)
            return [name, layer.directory, counts[0], style.size(layer.bytes), counts[1], counts[2], counts[3],
                    style.size(layer.shadowedBytes)]
        }
        return style.table(["LAYER", "DIRECTORY", "ENTRIES", "BYTES", "WHITEOUTS", "OPAQUE", "REDIRECTS", "SHADOWED"], rows)
            + summaryLine(figures, style: style)
    }

    static func summaryLine(_ figures: Efficiency, style: OutputStyle) -> String {
        "efficiency \(percent(figures.efficiency)), wasted \(style.size(figures.wastedBytes)) bytes in "
            + "\(figures.inefficientFiles.count) paths, user wasted \(percent(figures.userWastedPercent)) of "
            + "\(style.size(figures.userBytes)) bytes above the base layer\n"
    }

    static func percent(_ ratio: Double) -> String { String(format: "%.2f%%", ratio * 100) }

    /// A layer's summary from its items, for an image (whose tarballs have no directory to survey).
    private static func summary(_ layer: AnalyzedStack.Layer, in tree: StackedTree) -> LayerSummary {
        var summary = LayerSummary(index: layer.index, directory: layer.label, isUpper: layer.isUpper)
        summary.entries = layer.entries
        summary.whiteouts = layer.whiteouts
        summary.bytes = layer.bytes
        summary.opaqueDirectories = layer.items.count { $0.opaque }
        summary.redirectedDirectories = layer.items.count { $0.redirect != nil }
        summary.shadowedBytes = layer.items.reduce(0) { total, item in
            guard item.kind == .file, let node = tree.node(at: item.path), !node.isRemoved, node.servedBy.first == layer.index else {
                return total + item.storedBytes
            }
            return total
        }
        return summary
    }

    private struct LayersJSON: Encodable {
        var layers: [LayerSummary]
        var history: [String?]
        var efficiency: Efficiency
    }

    /// The outcome of `strata check`: the report to print and whether every rule passed.
    public struct CheckOutcome {
        public var report: String
        public var passed: Bool
    }

    public static func check(_ origin: AnalyzedStack.Origin, rules: CheckRules, configFile: String?,
                             style: OutputStyle) throws(Inspection.Failure) -> CheckOutcome {
        let figures = Efficiency(of: try AnalyzedStack.open(origin))
        let results = rules.evaluate(figures)
        let passed = !results.contains { $0.status == .fail }
        if style.json {
            struct CheckJSON: Encodable {
                var result: String
                var rules: [CheckRules.Result]
                var efficiency: Efficiency
            }
            return CheckOutcome(report: style.json(CheckJSON(result: passed ? "PASS" : "FAIL", rules: results, efficiency: figures)),
                                passed: passed)
        }
        var lines: [String] = []
        if let configFile { lines.append("  Using CI config: \(configFile)") }
        lines.append("  efficiency: \(String(format: "%.4f", figures.efficiency * 100)) %")
        lines.append("  wastedBytes: \(figures.wastedBytes) bytes (\(OutputStyle(humanSizes: true).size(figures.wastedBytes)))")
        lines.append("  userWastedPercent: \(String(format: "%.4f", figures.userWastedPercent * 100)) %")
        lines.append("Inefficient Files:")
        let human = OutputStyle(aligned: true, humanSizes: true)
        let rows = figures.inefficientFiles.map { [String($0.copies), human.size($0.wastedBytes), $0.path] }
        lines.append(rows.isEmpty ? "None" : human.table(["Count", "Wasted Space", "File Path"], rows).dropLast().description)
        lines.append("Results:")
        for result in results {
            lines.append("  \(result.status.rawValue): \(result.rule)" + (result.message.map { ": \($0)" } ?? ""))
        }
        let count = { (status: CheckRules.Result.Status) in results.count { $0.status == status } }
        lines.append("Result:\(passed ? "PASS" : "FAIL") [Total:\(results.count)] [Passed:\(count(.pass))] [Failed:\(count(.fail))] [Warn:0] [Skipped:\(count(.skip))]")
        return CheckOutcome(report: lines.joined(separator: "\n") + "\n", passed: passed)
    }
}
