import Overlay

/// What the tree pane shows: the stack through the selected layer (the aggregate) or only what that layer
/// changed, narrowed by the mark filters and a name search, with collapsed directories folded. Rows are
/// flattened once per change of those, so that moving the cursor over 60k entries costs nothing.
struct TreeView {
    struct Row {
        let node: TreeNode
        /// The branch lines before the name ("│   ├── ").
        let prefix: String
        let hasChildren: Bool
    }

    var aggregate = true
    var shownMarks: Set<ChangeMark> = Set(ChangeMark.allCases)
    /// Bytes the name must contain (ASCII letters in any case); empty: every name.
    var search: [UInt8] = []
    var collapsed: Set<LayerPath> = []

    /// The base layer: in the aggregate what it holds is the baseline, unchanged, as in dive.
    var base = 0

    /// How the pane marks `node`.
    func mark(_ node: TreeNode) -> ChangeMark {
        aggregate && node.changedBy == base && node.mark == .added ? .unchanged : node.mark
    }

    /// The rows of `tree`.
    func rows(of tree: StackedTree) -> [Row] {
        var rows: [Row] = []
        var shows: [ObjectIdentifier: Bool] = [:]
        _ = visible(tree.root, layer: tree.top, memo: &shows)
        append(children: tree.root, prefix: "", into: &rows, shows: shows)
        return rows
    }

    /// Whether `node` shows: it matches every filter itself, or something below it does.
    private func visible(_ node: TreeNode, layer: Int, memo: inout [ObjectIdentifier: Bool]) -> Bool {
        var below = false
        for child in node.children.values where visible(child, layer: layer, memo: &memo) { below = true }
        let matches = node.name != nil && (aggregate || node.changedBy == layer) && shownMarks.contains(mark(node))
            && (search.isEmpty || Self.contains(node.name?.bytes ?? [], search))
        let shows = matches || below
        memo[ObjectIdentifier(node)] = shows
        return shows
    }

    private func append(children node: TreeNode, prefix: String, into rows: inout [Row], shows: [ObjectIdentifier: Bool]) {
        let children = node.sortedChildren.filter { shows[ObjectIdentifier($0)] == true }
        for (position, child) in children.enumerated() {
            let last = position == children.count - 1
            let hasChildren = child.children.values.contains { shows[ObjectIdentifier($0)] == true }
            rows.append(Row(node: child, prefix: prefix + (last ? "└── " : "├── "), hasChildren: hasChildren))
            if hasChildren, !collapsed.contains(child.path) {
                append(children: child, prefix: prefix + (last ? "    " : "│   "), into: &rows, shows: shows)
            }
        }
    }

    static func contains(_ name: [UInt8], _ text: [UInt8]) -> Bool {
        guard text.count <= name.count else { return false }
        let lower = { (byte: UInt8) in (0x41...0x5A).contains(byte) ? byte | 0x20 : byte }
        return (0...(name.count - text.count)).contains { start in
            (0..<text.count).allSatisfy { lower(name[start + $0]) == lower(text[$0]) }
        }
    }
}
