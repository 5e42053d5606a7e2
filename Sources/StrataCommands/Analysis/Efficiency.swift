import Overlay

/// The stored copies of each path, bottom layer first, as the stacking found them: each file a layer carries
/// (a metadata-only copy carries no data and is no copy), and each copy a whiteout or an opaque directory hides.
struct EfficiencyTally {
    struct Copies {
        var count = 0
        var first: Int64 = 0
        var total: Int64 = 0
        var smallest: Int64 = 0
    }

    var paths: [LayerPath: Copies] = [:]

    mutating func record(_ path: LayerPath, _ bytes: Int64) {
        var copies = paths[path] ?? Copies()
        if copies.count == 0 {
            copies.first = bytes
            copies.smallest = bytes
        }
        copies.count += 1
        copies.total += bytes
        copies.smallest = min(copies.smallest, bytes)
        paths[path] = copies
    }
}

/// dive's image efficiency, over layer directories or an image's tarballs alike:
/// - wasted bytes: every path present in two or more layers, counted for each copy beyond the first;
/// - efficiency: for each path its smallest copy over all its copies, taken together over all paths;
/// - user wasted: the wasted bytes as a share of the bytes the layers above the base add.
public struct Efficiency: Sendable, Encodable, Equatable {
    public struct WastedPath: Sendable, Encodable, Equatable {
        public var path: String
        public var copies: Int
        public var wastedBytes: Int64
        public var totalBytes: Int64
    }

    public var efficiency: Double
    public var wastedBytes: Int64
    /// A ratio, as dive's `highestUserWastedPercent` takes it (0.1 is 10%).
    public var userWastedPercent: Double
    public var totalBytes: Int64
    public var userBytes: Int64
    /// The paths stored more than once, most wasted first.
    public var inefficientFiles: [WastedPath]

    init(_ tally: EfficiencyTally, stack: AnalyzedStack) {
        var smallest: Int64 = 0
        var total: Int64 = 0
        var wasted: Int64 = 0
        var files: [WastedPath] = []
        for (path, copies) in tally.paths {
            smallest += copies.smallest
            total += copies.total
            guard copies.count > 1 else { continue }
            wasted += copies.total - copies.first
            files.append(WastedPath(path: path.description, copies: copies.count, wastedBytes: copies.total - copies.first,
                                    totalBytes: copies.total))
        }
        efficiency = total == 0 ? 1 : Double(smallest) / Double(total)
        wastedBytes = wasted
        totalBytes = stack.layers.reduce(0) { $0 + $1.bytes }
        userBytes = stack.layers.dropLast().reduce(0) { $0 + $1.bytes }
        userWastedPercent = userBytes == 0 ? 0 : Double(wasted) / Double(userBytes)
        inefficientFiles = files.sorted { ($0.wastedBytes, $1.path) > ($1.wastedBytes, $0.path) }
    }

    public init(of stack: AnalyzedStack) {
        self = StackedTree.withEfficiency(stack).1
    }
}
