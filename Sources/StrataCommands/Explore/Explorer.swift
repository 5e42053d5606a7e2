import Overlay

/// `strata explore`: the full-screen browser. Left, the layers (top first, as Strata numbers them) and the
/// image's efficiency with its wasted space; right, the tree through the selected layer; below, what `strata
/// which` says of the selected path, and the keys.
public enum Explorer {
    public static func run(_ origin: AnalyzedStack.Origin) throws(Inspection.Failure) {
        let stack = try AnalyzedStack.open(origin)
        let terminal: Terminal
        do { terminal = try Terminal() } catch { throw Inspection.Failure(description: error.description) }
        var state = ExplorerState(stack: stack)
        var screen = ExplorerScreen()
        while !state.quit {
            screen.draw(state, on: terminal)
            let key = terminal.key()
            state.handle(key, page: screen.page(for: state.pane))
        }
    }
}

/// Lays the state out on the terminal's current size (read again at every frame, so a resize just redraws).
struct ExplorerScreen {
    private var treeScroll = 0
    private var wastedScroll = 0
    private var layerScroll = 0
    private var treeRows = 1
    private var wastedRows = 1
    private var layerRows = 1
    private let human = OutputStyle(humanSizes: true)

    func page(for pane: ExplorerState.Pane) -> Int {
        switch pane {
        case .layers: layerRows
        case .tree: treeRows
        case .wasted: wastedRows
        }
    }

    mutating func draw(_ state: ExplorerState, on terminal: borrowing Terminal) {
        terminal.clear()
        let width = terminal.columns
        let height = terminal.rows
        let left = max(24, min(width / 2, width * 2 / 5))
        let right = width - left - 1
        let body = max(1, height - 3)
        terminal.draw(" strata explore  \(state.stack.title)", row: 0, column: 0, width: width, style: .title)
        let layerHeight = min(state.stack.layers.count + 2, max(3, body / 2))
        drawLayers(state, terminal, top: 1, height: layerHeight, width: left)
        drawDetails(state, terminal, top: 1 + layerHeight, height: body - layerHeight, width: left)
        for row in 1...body { terminal.draw("│", row: row, column: left, width: 1, style: .dim) }
        drawTree(state, terminal, top: 1, height: body, column: left + 1, width: right)
        terminal.draw(detailsLine(state), row: height - 2, column: 0, width: width, style: .bold)
        terminal.draw(helpLine(state), row: height - 1, column: 0, width: width, style: .reverse)
        terminal.show()
    }

    private func header(_ title: String, focused: Bool, _ terminal: borrowing Terminal, row: Int, column: Int, width: Int) {
        let text = "┃ " + title
        terminal.draw(text + String(repeating: " ", count: max(0, width - text.count)), row: row, column: column,
                      width: width, style: focused ? .reverse : .bold)
    }

    private mutating func drawLayers(_ state: ExplorerState, _ terminal: borrowing Terminal, top: Int, height: Int, width: Int) {
        header("Layers", focused: state.pane == .layers, terminal, row: top, column: 0, width: width)
        terminal.draw(" #   SIZE  ENTRIES  WH  LAYER", row: top + 1, column: 0, width: width, style: .dim)
        layerRows = max(1, height - 2)
        layerScroll = Self.scroll(layerScroll, cursor: state.layer, rows: layerRows)
        for (line, layer) in state.stack.layers.dropFirst(layerScroll).prefix(layerRows).enumerated() {
            // An image's layer: its digest, short, and the history entry that made it.
            let name = layer.label.hasPrefix("sha256:") ? String(layer.label.prefix(19)) + (layer.createdBy.map { "  " + $0 } ?? "")
                : layer.label
            let text = pad(String(layer.index), 2, right: true) + (layer.isUpper ? "u" : " ") + pad(human.size(layer.bytes), 6, right: true)
                + pad(String(layer.entries), 9, right: true) + pad(String(layer.whiteouts), 4, right: true) + "  " + name
            let selected = layer.index == state.layer
            terminal.draw(text + String(repeating: " ", count: max(0, width - text.count)), row: top + 2 + line, column: 0, width: width,
                          style: selected ? (state.pane == .layers ? .reverse : .bold) : .plain)
        }
    }

    private mutating func drawDetails(_ state: ExplorerState, _ terminal: borrowing Terminal, top: Int, height: Int, width: Int) {
        guard height > 0 else { return }
        let figures = state.efficiency
        header("Image details", focused: false, terminal, row: top, column: 0, width: width)
        let lines = ["Efficiency:  " + EfficiencyReports.percent(figures.efficiency),
                     "Wasted:      \(human.size(figures.wastedBytes)) in \(figures.inefficientFiles.count) paths",
                     "User wasted: " + EfficiencyReports.percent(figures.userWastedPercent)]
        for (line, text) in lines.enumerated() where line + 1 < height {
            terminal.draw(" " + text, row: top + 1 + line, column: 0, width: width)
        }
        let listTop = top + 1 + lines.count
        guard listTop < top + height else { return }
        header("Wasted space", focused: state.pane == .wasted, terminal, row: listTop, column: 0, width: width)
        terminal.draw(" COUNT  WASTED  PATH", row: listTop + 1, column: 0, width: width, style: .dim)
        wastedRows = max(1, top + height - listTop - 2)
        wastedScroll = Self.scroll(wastedScroll, cursor: state.wastedCursor, rows: wastedRows)
        if figures.inefficientFiles.isEmpty {
            terminal.draw(" none", row: listTop + 2, column: 0, width: width)
        }
        for (line, file) in figures.inefficientFiles.dropFirst(wastedScroll).prefix(wastedRows).enumerated() {
            let position = wastedScroll + line
            let text = pad(String(file.copies), 6, right: true) + pad(human.size(file.wastedBytes), 8, right: true) + "  " + file.path
            terminal.draw(text + String(repeating: " ", count: max(0, width - text.count)), row: listTop + 2 + line, column: 0,
                          width: width, style: state.pane == .wasted && position == state.wastedCursor ? .reverse : .plain)
        }
    }

    private mutating func drawTree(_ state: ExplorerState, _ terminal: borrowing Terminal, top: Int, height: Int, column: Int, width: Int) {
        let marks = [(ChangeMark.added, "A"), (.removed, "R"), (.modified, "M"), (.unchanged, "U")]
            .map { state.view.shownMarks.contains($0.0) ? $0.1 : "·" }.joined(separator: " ")
        let what = state.view.aggregate ? "Aggregate through layer \(state.layer)" : "Layer \(state.layer) changes"
        let search = state.searching || !state.view.search.isEmpty
            ? "  search: " + Escaping.escape(state.view.search) + (state.searching ? "_" : "") : ""
        header("\(what)  [\(marks)]\(search)", focused: state.pane == .tree, terminal, row: top, column: column, width: width)
        terminal.draw("   MODE        UID:GID        SIZE  NAME", row: top + 1, column: column, width: width, style: .dim)
        treeRows = max(1, height - 2)
        treeScroll = Self.scroll(treeScroll, cursor: state.cursor, rows: treeRows)
        if state.rows.isEmpty { terminal.draw(" (nothing matches)", row: top + 2, column: column, width: width, style: .dim) }
        for (line, row) in state.rows.dropFirst(treeScroll).prefix(treeRows).enumerated() {
            let node = row.node
            let mark = ["added": "A", "modified": "M", "removed": "R"][state.view.mark(node).rawValue] ?? " "
            var name = (node.name?.escaped ?? "/") + (node.isDirectory ? "/" : "")
            if node.item.kind == .symlink, let target = node.item.linkTarget { name += " → " + Escaping.escape(target) }
            if row.hasChildren, state.view.collapsed.contains(node.path) { name += " …" }
            if node.isRemoved {
                name += node.hiddenByOpaque ? "  (behind opaque directory in layer \(node.hiddenBy ?? 0))"
                    : "  (whited out in layer \(node.hiddenBy ?? 0))"
            }
            let owner = "\(node.item.uid):\(node.item.gid)"
            let size = node.isDirectory ? "-" : human.size(node.item.size)
            let text = " \(mark) " + Self.modeString(node.item) + "  " + pad(owner, 11) + pad(size, 8, right: true) + "  " + row.prefix + name
            let selected = state.pane == .tree && treeScroll + line == state.cursor
            let styles: [ChangeMark: Terminal.Style] = [.added: .added, .modified: .modified, .removed: .removed]
            let style = selected ? .reverse : styles[state.view.mark(node)] ?? .plain
            terminal.draw(text + String(repeating: " ", count: max(0, width - text.count)), row: top + 2 + line, column: column,
                          width: width, style: style)
        }
    }

    /// What `strata which` says of the selected path; in the layers pane, the whole of the selected layer's name.
    private func detailsLine(_ state: ExplorerState) -> String {
        if state.pane == .layers, let layer = state.stack.layers.first(where: { $0.index == state.layer }) {
            return " layer \(layer.index): \(layer.label)" + (layer.isUpper ? " (upper)" : "") + (layer.createdBy.map { "  " + $0 } ?? "")
        }
        guard let node = state.selected else { return "" }
        let report = node.report { index in state.stack.layers.first { $0.index == index }?.isUpper ?? false }
        let layers = report.state == .present ? "layer " + PathReport.layerList(report.servedBy) : "layer -"
        return " \(node.path)  \(layers)  \(report.sentence)"
    }

    private func helpLine(_ state: ExplorerState) -> String {
        if state.searching { return " Type to search names · Enter keeps the search · Esc clears it" }
        return " Tab pane · Space fold · ^A added · ^R removed · ^M modified · ^U unchanged · ^L "
            + (state.view.aggregate ? "layer changes" : "aggregate") + " · ^F search · q quit"
    }

    private static func scroll(_ scroll: Int, cursor: Int, rows: Int) -> Int {
        if cursor < scroll { return cursor }
        if cursor >= scroll + rows { return cursor - rows + 1 }
        return scroll
    }

    private func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return right ? padding + text : text + padding
    }

    static func modeString(_ item: LayerItem) -> String {
        let type: Character = switch item.kind {
        case .directory: "d"
        case .symlink: "l"
        case .device: "c"
        case .fifo: "p"
        case .socket: "s"
        case .file, .whiteout: "-"
        }
        var text = [type]
        let mode = item.mode
        for (shift, special, letter) in [(6, UInt32(0o4000), Character("s")), (3, 0o2000, "s"), (0, 0o1000, "t")] {
            let bits = (mode >> UInt32(shift)) & 7
            text.append(bits & 4 != 0 ? "r" : "-")
            text.append(bits & 2 != 0 ? "w" : "-")
            let execute = bits & 1 != 0
            text.append(mode & special != 0 ? (execute ? letter : Character(letter.uppercased())) : (execute ? "x" : "-"))
        }
        return String(text)
    }
}
