import Foundation
import Overlay
import SystemPackage

/// How a debugging command prints: aligned columns for a terminal, tab-separated lines for a pipe, or JSON;
/// sizes in bytes, or human-readable.
public struct OutputStyle: Sendable {
    public var json = false
    public var aligned = false
    public var humanSizes = false

    public init(json: Bool = false, aligned: Bool = false, humanSizes: Bool = false) {
        self.json = json
        self.aligned = aligned
        self.humanSizes = humanSizes
    }

    func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = aligned ? [header] + rows : rows
        guard aligned else { return all.map { $0.joined(separator: "\t") + "\n" }.joined() }
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
        }.joined()
    }

    func size(_ bytes: Int64) -> String {
        guard humanSizes, bytes >= 1024 else { return String(bytes) }
        var value = Double(bytes)
        for unit in ["K", "M", "G", "T", "P"] {
            value /= 1024
            if value < 1024 || unit == "P" { return value < 10 ? String(format: "%.1f%@", value, unit) : "\(Int(value.rounded()))\(unit)" }
        }
        return String(bytes)
    }

    func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)).map { $0 + "\n" } ?? "null\n"
    }
}

/// A path in JSON: the text itself when its bytes are UTF-8; otherwise escaped as a terminal shows it, with
/// the exact bytes beside it in base64 (`…Bytes`), so that every name comes out exactly.
struct JSONPath: Encodable {
    let path: LayerPath?
    let key: String

    func encode(into container: inout KeyedEncodingContainer<DynamicKey>) throws {
        guard let path else { return try container.encodeNil(forKey: DynamicKey(key)) }
        let bytes = path.bytes
        if let text = Escaping.exactText(bytes) {
            try container.encode(text, forKey: DynamicKey(key))
        } else {
            try container.encode(Escaping.escape(bytes), forKey: DynamicKey(key))
            try container.encode(Data(bytes).base64EncodedString(), forKey: DynamicKey(key + "Bytes"))
        }
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: DynamicKey.self)
        try encode(into: &container)
    }
}

struct DynamicKey: CodingKey {
    let stringValue: String
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    var intValue: Int? { nil }
    init?(intValue: Int) { nil }
}

/// `strata which` and `strata ls` in JSON: paths relative to the merged root, without a leading slash.
struct PathReportJSON: Encodable {
    let report: PathReport

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: DynamicKey.self)
        try JSONPath(path: report.path, key: "path").encode(into: &container)
        try container.encode(report.state, forKey: DynamicKey("state"))
        try container.encodeIfPresent(report.type, forKey: DynamicKey("type"))
        try container.encode(report.servedBy, forKey: DynamicKey("servedBy"))
        try container.encode(report.shadows, forKey: DynamicKey("shadows"))
        try container.encode(report.copiedUp, forKey: DynamicKey("copiedUp"))
        try container.encode(report.metadataOnly, forKey: DynamicKey("metadataOnly"))
        try container.encodeIfPresent(report.hiddenBy, forKey: DynamicKey("hiddenBy"))
        if let marker = report.marker { try JSONPath(path: marker, key: "marker").encode(into: &container) }
        if let renamed = report.renamedFrom {
            if let text = Escaping.exactText(renamed) {
                try container.encode(text, forKey: DynamicKey("renamedFrom"))
            } else {
                try container.encode(Escaping.escape(renamed), forKey: DynamicKey("renamedFrom"))
                try container.encode(Data(renamed).base64EncodedString(), forKey: DynamicKey("renamedFromBytes"))
            }
        }
    }
}

struct ChangeJSON: Encodable {
    let change: Change

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: DynamicKey.self)
        try container.encode(change.kind, forKey: DynamicKey("kind"))
        try JSONPath(path: change.path, key: "path").encode(into: &container)
    }
}

extension Inspection {
    private func run<T>(_ body: () throws(Errno) -> T) throws(Failure) -> T {
        do { return try body() } catch { throw Failure(description: "\(error)") }
    }

    /// `strata which`: the serving layer of each path, what it shadows, or what hides it.
    public func which(style: OutputStyle) throws(Failure) -> String {
        try which(paths, style: style)
    }

    private func which(_ paths: [LayerPath], style: OutputStyle) throws(Failure) -> String {
        var reports: [PathReport] = []
        for path in paths { reports.append(try run { () throws(Errno) in try stack.report(path) }) }
        if style.json { return style.json(reports.map(PathReportJSON.init)) }
        let rows = reports.map { report in
            [report.path.description, report.servedBy.isEmpty ? "-" : PathReport.layerList(report.servedBy), report.sentence]
        }
        return style.table(["PATH", "LAYER", "WHAT"], rows) + legend(reports.flatMap { $0.servedBy + $0.shadows + ($0.hiddenBy.map { [$0] } ?? []) }, style)
    }

    private func legend(_ used: [Int], _ style: OutputStyle) -> String {
        guard style.aligned else { return "" }
        let layers = Set(used).sorted().map { index in
            "  layer \(index): \(stack.layers[index].path)\(stack.layers[index].isUpper ? " (upper)" : "")"
        }
        return layers.isEmpty ? "" : layers.joined(separator: "\n") + "\n"
    }

    /// `strata ls`: the merged listing of the (first) path with each entry's layer, and the names it hides.
    public func list(long: Bool, all: Bool, style: OutputStyle) throws(Failure) -> String {
        let path = paths.first ?? .root
        let directory = try run { () throws(Errno) in try stack.report(path) }
        guard directory.state == .present else { throw Failure(description: "\(path): \(directory.sentence)") }
        guard directory.type == "directory" else { return try which([path], style: style) }
        let names = try run { () throws(Errno) in try stack.listNames(path) }
        var reports: [(name: Name, report: PathReport)] = []
        for name in names where all || name.bytes.first != 0x2E {
            reports.append((name, try run { () throws(Errno) in try stack.report(path.appending(name)) }))
        }
        for hidden in try run({ () throws(Errno) in try stack.hiddenNames(in: path) }) {
            guard let name = hidden.path.name else { continue }
            if all || name.bytes.first != 0x2E { reports.append((name, hidden)) }
        }
        reports.sort { $0.name < $1.name }
        if style.json { return style.json(reports.map { PathReportJSON(report: $0.report) }) }
        let header = long ? ["LAYER", "TYPE", "MODE", "SIZE", "NAME", "NOTE"] : ["LAYER", "NAME", "NOTE"]
        let rows = reports.map { name, report -> [String] in
            let layer = report.state == .present ? PathReport.layerList(report.servedBy) : PathReport.layerList(report.shadows)
            let hider = report.hiddenBy.map(String.init) ?? "?"
            let note: String
            switch report.state {
            case .present: note = report.metadataOnly ? "metadata copied up" : report.copiedUp && report.type != "directory" ? "copied up" : ""
            case .whitedOut: note = "(whited out in layer \(hider))"
            case .behindOpaque: note = "(behind opaque directory in layer \(hider))"
            case .absent: note = ""
            }
            guard long else { return [layer, name.escaped, note] }
            let info = report.state == .present ? try? stack.attributes(at: report.path) : nil
            return [layer, report.type ?? "-", info.map { String(format: "%04o", $0.mode) } ?? "-",
                    info.map { style.size($0.size) } ?? "-", name.escaped, note]
        }
        return style.table(header, rows) + legend(reports.flatMap { $0.report.servedBy + $0.report.shadows }, style)
    }

    /// `strata layers`' table: the stack from top to bottom, with what each layer holds and how much of it is hidden.
    func layerSummaries() throws(Failure) -> [LayerSummary] {
        try run { () throws(Errno) in try stack.survey() }
    }

    /// `strata diff`: the upper layer's changes, as `podman diff` prints them.
    public func diff(style: OutputStyle) throws(Failure) -> String {
        let changes = try run { () throws(Errno) in try stack.changes() }
        if style.json { return style.json(changes.map(ChangeJSON.init)) }
        return changes.map { "\($0.kind) \($0.path)\n" }.joined()
    }
}

extension PathReport {
    static func layerList(_ indexes: [Int]) -> String {
        indexes.map(String.init).joined(separator: ",")
    }

    /// A marker's path inside its layer, as `which` prints it: relative, "." for the layer root.
    private static func shown(_ marker: LayerPath?) -> String {
        guard let marker, !marker.isRoot else { return "." }
        return String(marker.description.dropFirst())
    }

    /// What `strata which` says of the path: its type, serving layers and what it shadows, or what hides it.
    public var sentence: String {
        let report = self
        let shadows = report.shadows.isEmpty ? "" : ", shadows layer \(Self.layerList(report.shadows))"
        let hider = report.hiddenBy.map(String.init) ?? "?"
        switch report.state {
        case .present:
            var words = [report.type ?? "file"]
            if report.servedBy.count > 1 { words.append("merged from \(report.servedBy.count) layers") }
            if report.metadataOnly {
                words.append("metadata copied up")
            } else if report.copiedUp, report.type != "directory" {
                words.append("copied up")
            }
            if let from = report.renamedFrom { words.append("renamed from \(Escaping.escape(from))") }
            return words.joined(separator: ", ") + shadows
        case .whitedOut:
            return "whited out by layer \(hider) (\(Self.shown(report.marker)))" + (report.shadows.isEmpty ? "" : ", hides layer \(Self.layerList(report.shadows))")
        case .behindOpaque:
            return "hidden by opaque directory \(Self.shown(report.marker)) in layer \(hider), hides layer \(Self.layerList(report.shadows))"
        case .absent:
            return "not in any layer"
        }
    }
}
