import Overlay

/// How an entry differs from what the layers below the layer that last wrote it show.
public enum ChangeMark: String, Sendable, CaseIterable, Codable {
    case added, modified, removed, unchanged
}

/// One path of a stacked tree: what shows there (or, removed, what was there before a whiteout or an opaque
/// directory hid it), which layers serve and shadow it, and which layer last changed it.
public final class TreeNode {
    /// Nil for the root.
    public let name: Name?
    public let path: LayerPath
    public internal(set) var item: LayerItem
    public internal(set) var mark: ChangeMark
    /// The layer that last wrote this path (a removal is written by the layer that hid it).
    public internal(set) var changedBy: Int
    /// Top first: one layer, or every layer a merged directory is made of.
    public internal(set) var servedBy: [Int]
    /// Layers below the server that hold the path and do not show through.
    public internal(set) var shadows: [Int] = []
    /// A removed path: the layer that hid it, whether by an opaque directory, and where that marker is.
    public internal(set) var hiddenBy: Int?
    public internal(set) var hiddenByOpaque = false
    public internal(set) var marker: LayerPath?
    /// The data bytes this path's content takes in the layer that stores them (a metadata-only copy rests on
    /// the bytes below it).
    var dataBytes: Int64
    var children: [Name: TreeNode] = [:]
    private var sortedCache: [TreeNode]?

    init(_ item: LayerItem, mark: ChangeMark, layer: Int) {
        self.name = item.path.name
        self.path = item.path
        self.item = item
        self.mark = mark
        self.changedBy = layer
        self.servedBy = [layer]
        self.dataBytes = item.storedBytes
    }

    /// Taken apart from the top, one node at a time: releasing a layer's deepest path by recursion would
    /// overflow the stack. A node another tree still holds (an opaque directory's hidden children) is left whole.
    deinit {
        var pending = Array(children.values)
        children = [:]
        sortedCache = nil
        while var node = pending.popLast() {
            guard isKnownUniquelyReferenced(&node) else { continue }
            pending.append(contentsOf: node.children.values)
            node.children = [:]
            node.sortedCache = nil
        }
    }

    public var isRemoved: Bool { mark == .removed }
    public var isDirectory: Bool { item.kind == .directory }

    public var sortedChildren: [TreeNode] {
        if let sortedCache { return sortedCache }
        let sorted = children.values.sorted { ($0.name?.bytes ?? []).lexicographicallyPrecedes($1.name?.bytes ?? []) }
        sortedCache = sorted
        return sorted
    }

    func setChild(_ node: TreeNode) {
        guard let name = node.name else { return }
        children[name] = node
        sortedCache = nil
    }

    /// A copy of the present part of this subtree at `path` (a renamed directory shows it there).
    func copy(at path: LayerPath) -> TreeNode {
        let top = copyAlone(at: path)
        var pending: [(source: TreeNode, copy: TreeNode)] = [(self, top)]
        while let (source, copy) = pending.popLast() {
            for child in source.children.values where !child.isRemoved {
                guard let name = child.name else { continue }
                let made = child.copyAlone(at: copy.path.appending(name))
                copy.setChild(made)
                pending.append((child, made))
            }
        }
        return top
    }

    private func copyAlone(at path: LayerPath) -> TreeNode {
        var item = self.item
        item.path = path
        let node = TreeNode(item, mark: mark, layer: changedBy)
        node.servedBy = servedBy
        node.shadows = shadows
        node.dataBytes = dataBytes
        return node
    }

    /// What `strata which` would say of this path.
    public func report(isUpper: (Int) -> Bool) -> PathReport {
        guard !isRemoved else {
            return PathReport(path: path, state: hiddenByOpaque ? .behindOpaque : .whitedOut, shadows: shadows,
                              hiddenBy: hiddenBy, marker: marker)
        }
        let names: [LayerItem.Kind: String] = [.directory: "directory", .file: "file", .symlink: "symlink",
                                               .device: "device", .fifo: "fifo", .socket: "socket"]
        return PathReport(path: path, state: .present, type: names[item.kind], servedBy: servedBy, shadows: shadows,
                          copiedUp: servedBy.first.map(isUpper) == true && !shadows.isEmpty, metadataOnly: item.metadataOnly,
                          renamedFrom: item.redirect.map { $0.bytes })
    }
}

/// The merged view of a stack from its base up to one layer, every path marked as that layer range changed it;
/// built from the layers' items with the overlay's rules (whiteouts, opaque and renamed directories), so that
/// an image's tarballs and layer directories stack alike. Optionally tallies each stored copy for `Efficiency`.
public struct StackedTree {
    public let root: TreeNode
    /// The topmost layer stacked.
    public let top: Int

    public init(_ stack: AnalyzedStack, through top: Int) {
        var builder = Builder(stack: stack, tally: nil)
        root = builder.stack(through: top)
        self.top = top
    }

    /// The whole stack, and the efficiency figures of its copies.
    public static func withEfficiency(_ stack: AnalyzedStack) -> (StackedTree, Efficiency) {
        var builder = Builder(stack: stack, tally: EfficiencyTally())
        let root = builder.stack(through: 0)
        let tree = StackedTree(root: root, top: 0)
        return (tree, Efficiency(builder.tally ?? EfficiencyTally(), stack: stack))
    }

    private init(root: TreeNode, top: Int) {
        self.root = root
        self.top = top
    }

    public func node(at path: LayerPath) -> TreeNode? {
        var node = root
        for name in path.components {
            guard let child = node.children[name] else { return nil }
            node = child
        }
        return node
    }

    private struct Builder {
        let stack: AnalyzedStack
        var tally: EfficiencyTally?
        var root = TreeNode(LayerItem(path: .root, kind: .directory, mode: 0o755), mark: .unchanged, layer: 0)

        mutating func stack(through top: Int) -> TreeNode {
            root = TreeNode(LayerItem(path: .root, kind: .directory, mode: 0o755), mark: .unchanged, layer: stack.layers.count - 1)
            root.servedBy = []
            for index in stride(from: stack.layers.count - 1, through: max(0, top), by: -1) {
                apply(stack.layers[index].items, layer: index)
            }
            return root
        }

        private func find(_ path: LayerPath) -> TreeNode? {
            var node = root
            for name in path.components {
                guard let child = node.children[name], !child.isRemoved else { return nil }
                node = child
            }
            return node
        }

        private mutating func apply(_ items: [LayerItem], layer: Int) {
            // A renamed directory shows what its old path held before this layer (which also whites that out).
            var renamed: [LayerPath: TreeNode] = [:]
            var renameSources: [LayerPath] = []
            for item in items where item.kind == .directory {
                guard let from = item.redirect, let source = find(from), source.isDirectory else { continue }
                renamed[item.path] = source.copy(at: item.path)
                renameSources.append(from)
            }
            let parents = Set(items.compactMap(\.path.parent))
            root.servedBy = [layer] + root.servedBy.filter { $0 != layer }
            for item in items {
                guard let parentPath = item.path.parent else { continue }
                let parent = directory(at: parentPath, layer: layer)
                apply(item, in: parent, layer: layer, renamed: renamed,
                      wastes: !renameSources.contains { item.path.isWithin($0) })
                if item.kind != .whiteout, !item.metadataOnly, !parents.contains(item.path) {
                    tally?.record(item.path, item.storedBytes)
                }
            }
        }

        /// The directory at `path`, made where a tarball names a child before (or without) its directory.
        private mutating func directory(at path: LayerPath, layer: Int) -> TreeNode {
            var node = root
            for name in path.components {
                if let child = node.children[name], !child.isRemoved, child.isDirectory {
                    node = child
                    continue
                }
                let replaced = node.children[name].flatMap { $0.isRemoved ? nil : $0 }
                let made = TreeNode(LayerItem(path: (node.path).appending(name), kind: .directory, mode: 0o755),
                                    mark: replaced == nil ? .added : .modified, layer: layer)
                if let replaced { made.shadows = replaced.servedBy + replaced.shadows }
                node.setChild(made)
                node = made
            }
            return node
        }

        private mutating func apply(_ item: LayerItem, in parent: TreeNode, layer: Int, renamed: [LayerPath: TreeNode], wastes: Bool) {
            guard let name = item.path.name else { return }
            let present = parent.children[name].flatMap { $0.isRemoved ? nil : $0 }
            if item.kind == .whiteout {
                if let present { hide(present, by: layer, opaque: false, marker: item.path, wastes: wastes) }
                return
            }
            if item.kind == .directory, let copy = renamed[item.path] {
                if let present { hideContents(present, wastes: true) }
                mark(copy, .added, layer: layer)
                copy.item = item
                copy.servedBy = [layer] + copy.servedBy
                parent.setChild(copy)
                return
            }
            if item.kind == .directory, let present, present.isDirectory, !item.opaque {
                present.mark = Self.sameMetadata(present.item, item) ? .unchanged : .modified
                present.item = item
                present.changedBy = layer
                present.servedBy = [layer] + present.servedBy
                return
            }
            let mark: ChangeMark = present.map { Self.sameMetadata($0.item, item) ? .unchanged : .modified } ?? .added
            let node = TreeNode(item, mark: mark, layer: layer)
            if let present {
                node.shadows = present.servedBy + present.shadows
                if item.metadataOnly { node.dataBytes = present.dataBytes }
                if present.isDirectory, item.kind == .directory {
                    // An opaque directory: what the layers below held in it shows greyed, hidden.
                    for child in present.sortedChildren where !child.isRemoved {
                        hide(child, by: layer, opaque: true, marker: item.path, wastes: wastes)
                        node.setChild(child)
                    }
                } else if present.isDirectory {
                    hideContents(present, wastes: wastes)
                }
            }
            parent.setChild(node)
        }

        private func mark(_ node: TreeNode, _ mark: ChangeMark, layer: Int) {
            var pending = [node]
            while let next = pending.popLast() {
                next.mark = mark
                next.changedBy = layer
                pending.append(contentsOf: next.children.values)
            }
        }

        /// Hides a subtree: each present path in it is removed, and each stored copy it held becomes a copy
        /// the image still carries for nothing.
        private mutating func hide(_ node: TreeNode, by layer: Int, opaque: Bool, marker: LayerPath, wastes: Bool) {
            var pending = [node]
            while let next = pending.popLast() {
                guard !next.isRemoved else { continue }
                let children = next.children.values.filter { !$0.isRemoved }
                if wastes, children.isEmpty { tally?.record(next.path, next.isDirectory ? 0 : next.dataBytes) }
                next.shadows = next.servedBy + next.shadows
                next.mark = .removed
                next.changedBy = layer
                next.hiddenBy = layer
                next.hiddenByOpaque = opaque
                next.marker = marker
                pending.append(contentsOf: children)
            }
        }

        /// A directory replaced by something else: its contents are gone from view, and wasted.
        private mutating func hideContents(_ directory: TreeNode, wastes: Bool) {
            guard wastes else { return }
            var pending = Array(directory.children.values)
            while let next = pending.popLast() {
                guard !next.isRemoved else { continue }
                let children = next.children.values.filter { !$0.isRemoved }
                if children.isEmpty { tally?.record(next.path, next.isDirectory ? 0 : next.dataBytes) }
                pending.append(contentsOf: children)
            }
        }

        static func sameMetadata(_ old: LayerItem, _ new: LayerItem) -> Bool {
            guard old.kind == new.kind, old.mode == new.mode, old.uid == new.uid, old.gid == new.gid else { return false }
            if new.kind == .directory { return true }
            return old.size == new.size && old.modified == new.modified && old.linkTarget == new.linkTarget
        }
    }
}
