import Glibc
import Synchronization
import SystemPackage

/// The kernel's handle for a merged object: FUSE node ids, 1 being the root.
public struct NodeID: Hashable, Sendable {
    public let rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static let root = NodeID(1)
}

/// A backing file, for finding the node that already stands for another name of it.
struct FileKey: Hashable, Sendable {
    let layer: Int
    let inode: ino_t
}

/// One name a node is bound under: a directory node and a name in it.
struct Binding: Hashable, Sendable {
    let parent: UInt64
    let name: Name
}

/// What the engine remembers about an object the kernel holds: where it sits in the merged tree and where
/// its layers hold it, never a descriptor or a full path. The upper layer holds an object at its merged path,
/// which follows the tree (so a rename moves a whole subtree by changing one binding); lower layers hold it
/// at fixed paths (below a renamed directory, its old ones).
struct Node: Sendable {
    /// Its name in the merged tree; nil for the root, and for a node whose names are all gone.
    var binding: Binding?
    /// Whether the upper layer holds it (at its merged path).
    var inUpper: Bool
    /// The lower layers' parts, top first.
    var lowers: [Source]
    /// A file whose top source holds only its metadata (the kernel's metacopy): where its data is.
    var data: Source?
    var inode: UInt64
    var isDirectory: Bool
    var lookups: UInt64
    /// Backing files the caller has open, through which a node without names still answers.
    var openDescriptors: [CInt] = []
    /// The other names of a hard-linked file: the kernel gets one node for all of them, as on a local filesystem.
    var otherBindings: [Binding] = []
    var files: [FileKey] = []
    /// A directory's children that the kernel holds (or that hold children of their own).
    var children: [Name: UInt64] = [:]
    /// The merged path as last computed, valid while no rename has happened since (`generation`).
    var cachedPath: LayerPath?
    var pathGeneration: UInt64 = 0
    /// A directory's layers read once (see `DirectoryIndex`): the upper one, kept up to date by the engine's
    /// changes, and the lower ones, parallel to `lowers`. nil where not read yet.
    var upperIndex: LiveIndex?
    var lowerIndexes: [DirectoryIndex?] = []

    var isMerged: Bool { isDirectory && (inUpper ? 1 : 0) + lowers.count > 1 }
}

/// A node as a request sees it: its sources complete with the upper one, and its merged path.
struct NodeView: Sendable {
    let id: NodeID
    /// The merged path; nil once every name of it is gone (an unlinked file still open).
    let path: LayerPath?
    let sources: [Source]
    /// Where a metadata-only file's data is (nil: in its top source, as for any other).
    let data: Source?
    let inode: UInt64
    let isDirectory: Bool
    let isMerged: Bool
    let openDescriptors: [CInt]
    /// Parallel to `sources`: each layer's directory as read once, where it has been.
    let indexes: [(any LayerListing)?]

    var isDetached: Bool { path == nil }

    /// The source that serves it. Every node has one; a node without is an impossible state, answered with EIO.
    var top: Source {
        get throws(Errno) {
            guard let first = sources.first else { throw Impossible.state("node \(id.rawValue) has no source") }
            return first
        }
    }
}

/// The tree of node ids handed to the kernel. A node stays until the kernel forgets every lookup of it and
/// no child hangs below it, so every live node's path back to the root is whole. One lock guards the whole
/// tree; nothing is done under it but dictionary work (see CONCURRENCY.md).
final class NodeTree: Sendable {
    private struct State {
        var nodes: [UInt64: Node] = [:]
        var idsByFile: [FileKey: UInt64] = [:]
        var nextID: UInt64 = 2
        /// Counts renames: each one may move any path below it, so cached paths older than it are recomputed.
        var generation: UInt64 = 1
    }

    private let state: Mutex<State>
    /// The upper layer's index, when there is one (always 0).
    private let upperLayer: Int?

    init(root: Resolution, upperLayer: Int?) {
        self.upperLayer = upperLayer
        var initial = State()
        initial.nodes[NodeID.root.rawValue] = Self.node(for: root, binding: nil, upperLayer: upperLayer)
        state = Mutex(initial)
    }

    private static func node(for resolution: Resolution, binding: Binding?, upperLayer: Int?) -> Node {
        let inUpper = resolution.sources.first?.layer == upperLayer && upperLayer != nil
        var node = Node(binding: binding, inUpper: inUpper, lowers: Array(resolution.sources.dropFirst(inUpper ? 1 : 0)),
                        inode: resolution.inode, isDirectory: resolution.top.isDirectory, lookups: 1)
        node.lowerIndexes = Array(resolution.indexes.dropFirst(inUpper ? 1 : 0))
        node.data = resolution.data
        return node
    }

    /// The node as a request sees it; a node whose names are gone only with `includingDetached`.
    func view(_ id: NodeID, includingDetached: Bool = false) throws(Errno) -> NodeView {
        let upperLayer = upperLayer
        let found: NodeView? = state.withLock { state in
            guard let node = state.nodes[id.rawValue] else { return nil }
            return Self.view(id, node, in: &state, upperLayer: upperLayer)
        }
        guard let found else { throw .staleNFSFileHandle }
        if found.isDetached, !includingDetached { throw .noSuchFileOrDirectory }
        return found
    }

    private static func view(_ id: NodeID, _ node: Node, in state: inout State, upperLayer: Int?) -> NodeView {
        let path = Self.path(id.rawValue, in: &state)
        var sources = node.lowers
        var indexes: [(any LayerListing)?] = node.lowers.indices.map { $0 < node.lowerIndexes.count ? node.lowerIndexes[$0] : nil }
        if node.inUpper, let upperLayer, let path {
            sources.insert(Source(layer: upperLayer, path: path), at: 0)
            indexes.insert(node.upperIndex, at: 0)
        }
        return NodeView(id: id, path: path, sources: sources, data: node.data, inode: node.inode, isDirectory: node.isDirectory,
                        isMerged: node.isMerged, openDescriptors: node.openDescriptors, indexes: indexes)
    }

    /// The merged path of a node: its parent's plus its name, each cached until the next rename; nil when a
    /// name on the way is gone. Iterative, since a tree may be deeper than any stack.
    private static func path(_ id: UInt64, in state: inout State) -> LayerPath? {
        var pending: [(UInt64, Name)] = []
        var current = id
        var base = LayerPath.root
        while current != NodeID.root.rawValue {
            guard let node = state.nodes[current], let binding = node.binding else { return nil }
            if node.pathGeneration == state.generation, let cached = node.cachedPath {
                base = cached
                break
            }
            pending.append((current, binding.name))
            current = binding.parent
        }
        for (node, name) in pending.reversed() {
            base = base.appending(name)
            state.nodes[node]?.cachedPath = base
            state.nodes[node]?.pathGeneration = state.generation
        }
        return base
    }

    /// The directory the node is bound in (its first name's), nil for the root or a node without names.
    func parent(of id: NodeID) -> NodeID? {
        state.withLock { $0.nodes[id.rawValue]?.binding?.parent }.map(NodeID.init)
    }

    /// The node bound at a merged path, if the kernel holds one there (a hard link's other names included).
    func find(_ path: LayerPath) -> NodeID? {
        let names = path.components
        return state.withLock { state in
            var current = NodeID.root.rawValue
            for name in names {
                guard let next = state.nodes[current]?.children[name] else { return nil }
                current = next
            }
            return NodeID(current)
        }
    }

    /// Whether the node's first name is the one at `path` (so its sources are that name's).
    func isBound(_ id: NodeID, at path: LayerPath) -> Bool {
        (try? view(id))?.path == path
    }

    /// The child bound as `name` in `parent`, if the kernel holds one.
    func child(_ parent: NodeID, _ name: Name) -> NodeID? {
        state.withLock { $0.nodes[parent.rawValue]?.children[name] }.map(NodeID.init)
    }

    /// Records one more kernel reference to `name` in `parent`, reusing the node the kernel already holds
    /// there, or the node of another name of the same hard-linked file.
    func remember(_ parent: NodeID, _ name: Name, _ resolution: Resolution) throws(Errno) -> NodeID {
        let top = resolution.top
        let file = !top.isDirectory && top.st_nlink > 1
            ? resolution.sources.first.map { FileKey(layer: $0.layer, inode: top.st_ino) } : nil
        let binding = Binding(parent: parent.rawValue, name: name)
        let upperLayer = upperLayer
        return try state.withLock { state throws(Errno) -> NodeID in
            guard state.nodes[parent.rawValue] != nil else { throw .staleNFSFileHandle }
            if let id = state.nodes[parent.rawValue]?.children[name], var node = state.nodes[id] {
                if node.binding == binding {
                    let fresh = Self.node(for: resolution, binding: binding, upperLayer: upperLayer)
                    if node.lowers != fresh.lowers || node.inUpper != fresh.inUpper || node.isDirectory != fresh.isDirectory {
                        node.lowerIndexes = fresh.lowerIndexes
                        node.upperIndex = nil
                    } else {
                        // What this lookup read is as good as what is kept, but the kept one may have been
                        // looked into already.
                        for (position, index) in fresh.lowerIndexes.enumerated() where position < node.lowerIndexes.count {
                            if node.lowerIndexes[position] == nil { node.lowerIndexes[position] = index }
                        }
                    }
                    node.inUpper = fresh.inUpper
                    node.lowers = fresh.lowers
                    node.isDirectory = fresh.isDirectory
                    node.data = fresh.data
                }
                node.inode = resolution.inode
                node.lookups += 1
                state.nodes[id] = node
                return NodeID(id)
            }
            if let file, let id = state.idsByFile[file], state.nodes[id]?.binding != nil {
                state.nodes[id]?.otherBindings.append(binding)
                state.nodes[id]?.lookups += 1
                state.nodes[parent.rawValue]?.children[name] = id
                return NodeID(id)
            }
            let id = state.nextID
            state.nextID += 1
            var node = Self.node(for: resolution, binding: binding, upperLayer: upperLayer)
            if let file {
                node.files = [file]
                state.idsByFile[file] = id
            }
            state.nodes[id] = node
            state.nodes[parent.rawValue]?.children[name] = id
            return NodeID(id)
        }
    }

    /// A new name for an existing node (link(2)): the kernel gets the same node back, as for a local hard link.
    func link(_ id: NodeID, as name: Name, in parent: NodeID, file: FileKey) {
        state.withLock { state in
            guard state.nodes[id.rawValue] != nil, state.nodes[parent.rawValue] != nil else { return }
            state.nodes[id.rawValue]?.otherBindings.append(Binding(parent: parent.rawValue, name: name))
            state.nodes[id.rawValue]?.lookups += 1
            state.nodes[parent.rawValue]?.children[name] = id.rawValue
            if state.nodes[id.rawValue]?.files.contains(file) == false { state.nodes[id.rawValue]?.files.append(file) }
            state.idsByFile[file] = id.rawValue
        }
    }

    /// Another backing file now stands for the node (its upper copy, after a copy-up).
    func alias(_ id: NodeID, _ file: FileKey) {
        state.withLock { state in
            guard state.nodes[id.rawValue] != nil else { return }
            state.nodes[id.rawValue]?.files.append(file)
            state.idsByFile[file] = id.rawValue
        }
    }

    /// Drops `lookups` kernel references; returns the nodes that this frees.
    @discardableResult
    func forget(_ id: NodeID, lookups: UInt64) -> [NodeID] {
        guard id != .root else { return [] }
        return state.withLock { state in
            guard var node = state.nodes[id.rawValue] else { return [] }
            node.lookups -= min(node.lookups, lookups)
            state.nodes[id.rawValue] = node
            var released: [NodeID] = []
            Self.release(id.rawValue, in: &state, into: &released)
            return released
        }
    }

    /// Frees a node nobody needs any more (no kernel reference, no child below it), then its parents in turn.
    private static func release(_ id: UInt64, in state: inout State) {
        var ignored: [NodeID] = []
        release(id, in: &state, into: &ignored)
    }

    private static func release(_ id: UInt64, in state: inout State, into released: inout [NodeID]) {
        var current = id
        while current != NodeID.root.rawValue, let node = state.nodes[current], node.lookups == 0, node.children.isEmpty {
            released.append(NodeID(current))
            state.nodes[current] = nil
            for file in node.files where state.idsByFile[file] == current { state.idsByFile[file] = nil }
            let bindings = (node.binding.map { [$0] } ?? []) + node.otherBindings
            for binding in bindings where state.nodes[binding.parent]?.children[binding.name] == current {
                state.nodes[binding.parent]?.children[binding.name] = nil
            }
            for binding in bindings.dropFirst() { release(binding.parent, in: &state, into: &released) }
            guard let first = bindings.first else { return }
            current = first.parent
        }
    }

    var count: Int { state.withLock { $0.nodes.count } }

    func opened(_ id: NodeID, _ fd: CInt) {
        state.withLock { $0.nodes[id.rawValue]?.openDescriptors.append(fd) }
    }

    func closed(_ id: NodeID, _ fd: CInt) {
        state.withLock { $0.nodes[id.rawValue]?.openDescriptors.removeAll { $0 == fd } }
    }

    /// Records that the node now lives in the upper layer too (after a copy-up). A hard-linked file's node
    /// follows only the name it is bound under first, so that its sources always name that path.
    func copiedUp(_ id: NodeID, keepingLowers: Bool) {
        state.withLock { state in
            guard var node = state.nodes[id.rawValue] else { return }
            node.inUpper = true
            node.upperIndex = nil
            if !keepingLowers {
                node.lowers = []
                node.lowerIndexes = []
            }
            state.nodes[id.rawValue] = node
        }
    }

    /// Records that a file now has its own metadata in the upper layer, its data still at `data` (a metadata-only
    /// copy-up); nil once the data is copied up too.
    func dataIsAt(_ id: NodeID, _ data: Source?) {
        state.withLock { state in
            guard var node = state.nodes[id.rawValue] else { return }
            if data != nil {
                node.inUpper = true
                node.lowers = []
                node.lowerIndexes = []
            }
            node.data = data
            state.nodes[id.rawValue] = node
        }
    }

    /// Keeps what was read of a directory's layers, where nothing is kept yet (a lookup may have read the
    /// same meanwhile; the lower layers do not change, and the upper index is only made under the namespace
    /// lock, where the changes that keep it up to date are made too).
    func keep(_ id: NodeID, upper: LiveIndex?, lowers: [DirectoryIndex?]) {
        state.withLock { state in
            guard var node = state.nodes[id.rawValue] else { return }
            if node.upperIndex == nil, node.inUpper { node.upperIndex = upper }
            if node.lowerIndexes.count < node.lowers.count {
                node.lowerIndexes += [DirectoryIndex?](repeating: nil, count: node.lowers.count - node.lowerIndexes.count)
            }
            for (position, index) in lowers.enumerated() where position < node.lowerIndexes.count && node.lowerIndexes[position] == nil {
                node.lowerIndexes[position] = index
            }
            state.nodes[id.rawValue] = node
        }
    }

    /// The upper layer's index of a directory node, if one is kept (changes there refresh it).
    func upperIndex(of id: NodeID) -> LiveIndex? {
        state.withLock { $0.nodes[id.rawValue]?.upperIndex }
    }

    /// Forgets a directory's upper index (its own markers changed); it is read again when next needed.
    func dropUpperIndex(_ id: NodeID) {
        state.withLock { $0.nodes[id.rawValue]?.upperIndex = nil }
    }

    /// Unbinds `name` in `parent`: the name is gone, though the kernel may still hold the node (and a
    /// hard-linked file keeps its other names).
    func detach(_ parent: NodeID, _ name: Name) {
        state.withLock { state in Self.unbind(Binding(parent: parent.rawValue, name: name), in: &state) }
    }

    private static func unbind(_ binding: Binding, in state: inout State) {
        guard let id = state.nodes[binding.parent]?.children[binding.name], var node = state.nodes[id] else { return }
        state.nodes[binding.parent]?.children[binding.name] = nil
        node.cachedPath = nil
        if node.binding == binding {
            node.binding = node.otherBindings.isEmpty ? nil : node.otherBindings.removeFirst()
        } else {
            node.otherBindings.removeAll { $0 == binding }
        }
        state.nodes[id] = node
        release(id, in: &state)
        release(binding.parent, in: &state)
    }

    /// Moves the node bound as `from` to `to`, unbinding whatever was bound there. Only the upper layer's
    /// part moves with it: lower layers keep their contents where they were (the redirect points there).
    func move(_ from: Binding, to: Binding) {
        state.withLock { state in
            Self.unbind(to, in: &state)
            state.generation += 1
            guard let id = state.nodes[from.parent]?.children[from.name] else { return }
            state.nodes[from.parent]?.children[from.name] = nil
            Self.rebind(id, from: from, to: to, in: &state)
            Self.release(from.parent, in: &state)
        }
    }

    /// Swaps two bound names (RENAME_EXCHANGE), both of which live in the upper layer.
    func exchange(_ a: Binding, _ b: Binding) {
        state.withLock { state in
            state.generation += 1
            let first = state.nodes[a.parent]?.children[a.name], second = state.nodes[b.parent]?.children[b.name]
            state.nodes[a.parent]?.children[a.name] = nil
            state.nodes[b.parent]?.children[b.name] = nil
            if let first { Self.rebind(first, from: a, to: b, in: &state) }
            if let second { Self.rebind(second, from: b, to: a, in: &state) }
            Self.release(a.parent, in: &state)
            Self.release(b.parent, in: &state)
        }
    }

    private static func rebind(_ id: UInt64, from: Binding, to: Binding, in state: inout State) {
        guard var node = state.nodes[id] else { return }
        node.cachedPath = nil
        if node.binding == from {
            node.binding = to
        } else {
            node.otherBindings = node.otherBindings.map { $0 == from ? to : $0 }
        }
        state.nodes[id] = node
        state.nodes[to.parent]?.children[to.name] = id
    }
}
