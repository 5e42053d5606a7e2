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

    /// The rows of `tree`. Both passes go without recursion, and a row's branch lines stop at `maximumIndent`
    /// levels: a layer may be deeper than any stack or screen.
    func rows(of tree: StackedTree) -> [Row] {
        let shows = visible(tree)
        var rows: [Row] = []
        var lastAt: [Bool] = [] // for each level above the row: whether that ancestor is its parent's last child
        var pending: [(node: TreeNode, depth: Int, last: Bool)] = children(tree.root, shows).reversed().map { ($0.node, 0, $0.last) }
        while let (node, depth, last) = pending.popLast() {
            lastAt.removeLast(lastAt.count - depth)
            let shown = children(node, shows)
            let branches = lastAt.suffix(Self.maximumIndent).map { $0 ? "    " : "│   " }.joined()
            rows.append(Row(node: node, prefix: (depth > Self.maximumIndent ? "…" : "") + branches + (last ? "└── " : "├── "),
                            hasChildren: !shown.isEmpty))
            guard !shown.isEmpty, !collapsed.contains(node.path) else { continue }
            lastAt.append(last)
            pending.append(contentsOf: shown.reversed().map { ($0.node, depth + 1, $0.last) })
        }
        return rows
    }

    static let maximumIndent = 40

    private func children(_ node: TreeNode, _ shows: Set<ObjectIdentifier>) -> [(node: TreeNode, last: Bool)] {
        let shown = node.sortedChildren.filter { shows.contains(ObjectIdentifier($0)) }
        return shown.enumerated().map { ($0.element, $0.offset == shown.count - 1) }
    }

    /// The nodes that show: those matching every filter themselves, and those with such a node below them.
    private func visible(_ tree: StackedTree) -> Set<ObjectIdentifier> {
        var order: [TreeNode] = []
        var pending = [tree.root]
        while let node = pending.popLast() {
            order.append(node)
            pending.append(contentsOf: node.children.values)
        }
        var shows: Set<ObjectIdentifier> = []
        for node in order.reversed() {
            let matches = node.name != nil && (aggregate || node.changedBy == tree.top) && shownMarks.contains(mark(node))
                && (search.isEmpty || Self.contains(node.name?.bytes ?? [], search))
            if matches || node.children.values.contains(where: { shows.contains(ObjectIdentifier($0)) }) {
                shows.insert(ObjectIdentifier(node))
            }
        }
        return shows
    }

    static func contains(_ name: [UInt8], _ text: [UInt8]) -> Bool {
        guard text.count <= name.count else { return false }
        let lower = { (byte: UInt8) in (0x41...0x5A).contains(byte) ? byte | 0x20 : byte }
        return (0...(name.count - text.count)).contains { start in
            (0..<text.count).allSatisfy { lower(name[start + $0]) == lower(text[$0]) }
        }
    }
}
