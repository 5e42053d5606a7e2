import CCurses
import Overlay

/// Everything `strata explore` shows and where the user is in it; keys change it, `ExplorerScreen` draws it.
struct ExplorerState {
    enum Pane: CaseIterable {
        case layers, tree, wasted
    }

    let stack: AnalyzedStack
    let efficiency: Efficiency
    var pane = Pane.tree
    /// The layer selected in the layers pane (0 is the top): the tree shows the stack through it.
    private(set) var layer = 0
    private(set) var view = TreeView()
    private(set) var rows: [TreeView.Row] = []
    var cursor = 0
    var wastedCursor = 0
    private(set) var searching = false
    private(set) var quit = false
    private var trees: [Int: StackedTree] = [:]

    init(stack: AnalyzedStack) {
        self.stack = stack
        let (tree, efficiency) = StackedTree.withEfficiency(stack)
        self.efficiency = efficiency
        trees[0] = tree
        view.base = stack.layers.count - 1
        rebuild()
    }

    var tree: StackedTree {
        if let tree = trees[layer] { return tree }
        return StackedTree(stack, through: layer)
    }

    var selected: TreeNode? { rows.indices.contains(cursor) ? rows[cursor].node : nil }

    private mutating func rebuild() {
        if trees[layer] == nil {
            if trees.count > 3 { trees = trees.filter { $0.key == 0 } }
            trees[layer] = StackedTree(stack, through: layer)
        }
        let path = selected?.path
        rows = view.rows(of: tree)
        cursor = path.flatMap { path in rows.firstIndex { $0.node.path == path } } ?? min(cursor, max(0, rows.count - 1))
    }

    /// `page` is how many rows the focused list shows, for Page Up and Page Down.
    mutating func handle(_ key: Int32, page: Int) {
        if searching { return search(key) }
        switch key {
        case 113, 3: quit = true // q, Ctrl-C
        case 9: pane = Pane.allCases[((Pane.allCases.firstIndex(of: pane) ?? 0) + 1) % Pane.allCases.count]
        case KEY_BTAB: pane = Pane.allCases[((Pane.allCases.firstIndex(of: pane) ?? 0) + Pane.allCases.count - 1) % Pane.allCases.count]
        case 1: toggle(.added)
        case 18: toggle(.removed)
        case 13, KEY_ENTER: toggle(.modified)
        case 21: toggle(.unchanged)
        case 12:
            view.aggregate.toggle()
            rebuild()
        case 6:
            searching = true
            view.search = []
            rebuild()
        case 32:
            guard pane == .tree, let row = rows.indices.contains(cursor) ? rows[cursor] : nil, row.hasChildren else { return }
            if view.collapsed.remove(row.node.path) == nil { view.collapsed.insert(row.node.path) }
            rebuild()
        case KEY_UP, 107: move(-1)
        case KEY_DOWN, 106: move(1)
        case KEY_PPAGE: move(-max(1, page))
        case KEY_NPAGE: move(max(1, page))
        case KEY_HOME: move(Int.min / 2)
        case KEY_END: move(Int.max / 2)
        default: break
        }
    }

    private mutating func toggle(_ mark: ChangeMark) {
        if view.shownMarks.remove(mark) == nil { view.shownMarks.insert(mark) }
        rebuild()
    }

    private mutating func move(_ step: Int) {
        let clamp = { (value: Int, count: Int) in max(0, min(count - 1, value)) }
        switch pane {
        case .layers:
            let chosen = clamp(layer + step, stack.layers.count)
            guard chosen != layer else { return }
            layer = chosen
            rebuild()
        case .tree: cursor = clamp(cursor + step, rows.count)
        case .wasted: wastedCursor = clamp(wastedCursor + step, efficiency.inefficientFiles.count)
        }
    }

    /// Typing a search: every key narrows the tree at once; Enter keeps it, Escape drops it.
    private mutating func search(_ key: Int32) {
        switch key {
        case 13, 10, KEY_ENTER: searching = false
        case 27, 3:
            searching = false
            view.search = []
        case KEY_BACKSPACE, 127, 8: _ = view.search.popLast()
        case 32...126: view.search.append(UInt8(key))
        default: return
        }
        rebuild()
    }
}
