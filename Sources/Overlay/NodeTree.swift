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
/// at fixed paths (below a renamed directory, its old ones). Kept small, since a walk holds one per entry:
/// what only directories need, and what only a few files need, lives beside it (`DirectoryPart`, `Extras`).
struct Node: Sendable {
    // Stored packed (a name and its parent, one lower source inline), since a walk holds one per entry.
    private var parent: UInt64
    private var name: Name
    var inode: UInt64
    var lookups: UInt64
    private var lowerPath: LayerPath
    /// A merged directory's lower sources, when there is more than one.
    private var manyLowers: [Source]
    /// The one lower source's layer; -1: none; -2: `manyLowers`.
    private var lowerLayer: Int16
    /// Whether the upper layer holds it (at its merged path).
    var inUpper: Bool
    var isDirectory: Bool

    init(binding: Binding?, inode: UInt64, lookups: UInt64, lowers: [Source], inUpper: Bool, isDirectory: Bool) {
        parent = 0
        name = Name(trusted: [])
        self.inode = inode
        self.lookups = lookups
        lowerPath = .root
        manyLowers = []
        lowerLayer = -1
        self.inUpper = inUpper
        self.isDirectory = isDirectory
        self.binding = binding
        self.lowers = lowers
    }

    /// Its name in the merged tree; nil for the root, and for a node whose names are all gone (node ids start
    /// at 1, so parent 0 is none).
    var binding: Binding? {
        get { parent == 0 ? nil : Binding(parent: parent, name: name) }
        set {
            parent = newValue?.parent ?? 0
            name = newValue?.name ?? Name(trusted: [])
        }
    }

    /// The lower layers' parts, top first.
    var lowers: [Source] {
        get {
            switch lowerLayer {
            case -1: []
            case -2: manyLowers
            default: [Source(layer: Int(lowerLayer), path: lowerPath)]
            }
        }
        set {
            manyLowers = []
            lowerPath = .root
            if newValue.count > 1 || newValue.first.map({ $0.layer > Int(Int16.max) }) == true {
                lowerLayer = -2
                manyLowers = newValue
            } else if let only = newValue.first {
                lowerLayer = Int16(truncatingIfNeeded: only.layer)
                lowerPath = only.path
            } else {
                lowerLayer = -1
            }
        }
    }

    var lowerCount: Int { lowerLayer == -1 ? 0 : lowerLayer == -2 ? manyLowers.count : 1 }
    var isMerged: Bool { isDirectory && (inUpper ? 1 : 0) + lowerCount > 1 }
}

/// What a directory node holds besides a node's facts.
struct DirectoryPart: Sendable {
    /// Its children that the kernel holds (or that hold children of their own).
    var children: [Name: UInt64] = [:]
    /// The merged path as last computed, valid while no rename has happened since (`generation`).
    var cachedPath: LayerPath?
    var pathGeneration: UInt64 = 0
    /// Its layers read once (see `DirectoryIndex`): the upper one, kept up to date by the engine's changes,
    /// and the lower ones, parallel to the node's `lowers`. nil where not read yet.
    var upperIndex: LiveIndex?
    var lowerIndexes: [DirectoryIndex?] = []
}

/// What only some files have.
struct Extras: Sendable {
    /// A file whose top source holds only its metadata (the kernel's metacopy): where its data is.
    var data: Source?
    /// Backing files the caller has open, through which a node without names still answers.
    var openDescriptors: [CInt] = []
    /// The other names of a hard-linked file: the kernel gets one node for all of them, as on a local filesystem.
    var otherBindings: [Binding] = []
    var files: [FileKey] = []
    /// A directory removed while the kernel still holds it: what it shows from then on.
    var removed: stat?

    var isEmpty: Bool { data == nil && openDescriptors.isEmpty && otherBindings.isEmpty && files.isEmpty && removed == nil }
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
    /// A removed directory's last attributes (see `Extras.removed`).
    let removedAttributes: stat?
    /// Parallel to `sources`: each layer's directory as read once, where it has been.
    let indexes: [(any LayerListing)?]

    var isDetached: Bool { path == nil }
    /// A directory removed while the kernel still holds it (a process may have it as its working directory).
    var isRemovedDirectory: Bool { isDetached && isDirectory }

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
/// tree; nothing is done under it but table work (see CONCURRENCY.md).
///
/// A node id is its slot in one array, and a freed slot is used again: the kernel sends FORGET only once it
/// has dropped its inode, and a slot is freed only when every lookup handed out for it is forgotten, so the
/// kernel never holds an inode for an id that is given to another object.
final class NodeTree: Sendable {
    private struct State {
        var slots: [Node?]
        var free: [UInt64] = []
        var live = 1
        var directories: [UInt64: DirectoryPart] = [:]
        var extras: [UInt64: Extras] = [:]
        var idsByFile: [FileKey: UInt64] = [:]
        /// Counts renames: each one may move any path below it, so cached paths older than it are recomputed.
        var generation: UInt64 = 1

        init(root: Node) {
            slots = [nil, root]
            directories[NodeID.root.rawValue] = DirectoryPart()
        }

        func node(_ id: UInt64) -> Node? {
            id < UInt64(slots.count) ? slots[Int(truncatingIfNeeded: id)] : nil
        }

        /// Changes a live node in place; false when there is none.
        @discardableResult
        mutating func update(_ id: UInt64, _ body: (inout Node) -> Void) -> Bool {
            guard id < UInt64(slots.count) else { return false }
            let slot = Int(truncatingIfNeeded: id)
            guard var node = slots[slot].take() else { return false }
            body(&node)
            slots[slot] = node
            return true
        }

        mutating func add(_ node: Node) -> UInt64 {
            live += 1
            if let id = free.popLast() {
                slots[Int(truncatingIfNeeded: id)] = node
                return id
            }
            slots.append(node)
            return UInt64(slots.count - 1)
        }

        mutating func remove(_ id: UInt64) {
            guard node(id) != nil else { return }
            slots[Int(truncatingIfNeeded: id)] = nil
            free.append(id)
            live -= 1
            directories[id] = nil
            extras[id] = nil
        }

        func child(_ parent: UInt64, _ name: Name) -> UInt64? { directories[parent]?.children[name] }

        mutating func updateExtras(_ id: UInt64, _ body: (inout Extras) -> Void) {
            var extra = extras.removeValue(forKey: id) ?? Extras()
            body(&extra)
            if !extra.isEmpty { extras[id] = extra }
        }
    }

    private let state: Mutex<State>
    /// The upper layer's index, when there is one (always 0).
    private let upperLayer: Int?

    init(root: Resolution, upperLayer: Int?) {
        self.upperLayer = upperLayer
        state = Mutex(State(root: Self.node(for: root, binding: nil, upperLayer: upperLayer)))
    }

    private static func node(for resolution: Resolution, binding: Binding?, upperLayer: Int?) -> Node {
        let inUpper = resolution.sources.first?.layer == upperLayer && upperLayer != nil
        return Node(binding: binding, inode: resolution.inode, lookups: 1,
                    lowers: Array(resolution.sources.dropFirst(inUpper ? 1 : 0)), inUpper: inUpper,
                    isDirectory: resolution.top.isDirectory)
    }

    private static func lowerIndexes(of resolution: Resolution, inUpper: Bool) -> [DirectoryIndex?] {
        Array(resolution.indexes.dropFirst(inUpper ? 1 : 0))
    }

    /// The node as a request sees it; a node whose names are gone only with `includingDetached`.
    func view(_ id: NodeID, includingDetached: Bool = false) throws(Errno) -> NodeView {
        let upperLayer = upperLayer
        let found: NodeView? = state.withLock { state in
            guard let node = state.node(id.rawValue) else { return nil }
            return Self.view(id, node, in: &state, upperLayer: upperLayer)
        }
        guard let found else { throw .staleNFSFileHandle }
        if found.isDetached, !includingDetached { throw .noSuchFileOrDirectory }
        return found
    }

    private static func view(_ id: NodeID, _ node: Node, in state: inout State, upperLayer: Int?) -> NodeView {
        let path = Self.path(id.rawValue, in: &state)
        let directory = node.isDirectory ? state.directories[id.rawValue] : nil
        let extras = state.extras[id.rawValue]
        var sources = node.lowers
        let lowerIndexes = directory?.lowerIndexes ?? []
        var indexes: [(any LayerListing)?] = node.lowers.indices.map { $0 < lowerIndexes.count ? lowerIndexes[$0] : nil }
        if node.inUpper, let upperLayer, let path {
            sources.insert(Source(layer: upperLayer, path: path), at: 0)
            indexes.insert(directory?.upperIndex, at: 0)
        }
        return NodeView(id: id, path: path, sources: sources, data: extras?.data, inode: node.inode,
                        isDirectory: node.isDirectory, isMerged: node.isMerged,
                        openDescriptors: extras?.openDescriptors ?? [], removedAttributes: extras?.removed, indexes: indexes)
    }

    /// The merged path of a node: its parent's plus its name, each directory's cached until the next rename;
    /// nil when a name on the way is gone. Iterative, since a tree may be deeper than any stack.
    private static func path(_ id: UInt64, in state: inout State) -> LayerPath? {
        var pending: [(UInt64, Name)] = []
        var current = id
        var base = LayerPath.root
        while current != NodeID.root.rawValue {
            guard let node = state.node(current), let binding = node.binding else { return nil }
            if let directory = state.directories[current], directory.pathGeneration == state.generation,
               let cached = directory.cachedPath {
                base = cached
                break
            }
            pending.append((current, binding.name))
            current = binding.parent
        }
        let generation = state.generation
        for (node, name) in pending.reversed() {
            base = base.appending(name)
            if state.directories[node] != nil {
                state.directories[node]?.cachedPath = base
                state.directories[node]?.pathGeneration = generation
            }
        }
        return base
    }

    /// The directory the node is bound in (its first name's), nil for the root or a node without names.
    func parent(of id: NodeID) -> NodeID? {
        state.withLock { $0.node(id.rawValue)?.binding?.parent }.map(NodeID.init)
    }

    /// The node bound at a merged path, if the kernel holds one there (a hard link's other names included).
    func find(_ path: LayerPath) -> NodeID? {
        let names = path.components
        return state.withLock { state in
            var current = NodeID.root.rawValue
            for name in names {
                guard let next = state.child(current, name) else { return nil }
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
        state.withLock { $0.child(parent.rawValue, name) }.map(NodeID.init)
    }

    /// Records one more kernel reference to `name` in `parent`, reusing the node the kernel already holds
    /// there, or the node of another name of the same hard-linked file; and whether a directory node kept
    /// now stands for other layers than before.
    /// `counting: false` only brings a node the kernel already holds at the name up to date (a layer changed
    /// underneath) and makes none.
    func remember(_ parent: NodeID, _ name: Name, _ resolution: Resolution,
                  counting: Bool = true) throws(Errno) -> (NodeID, sourcesChanged: Bool) {
        let top = resolution.top
        let file = !top.isDirectory && top.st_nlink > 1
            ? resolution.sources.first.map { FileKey(layer: $0.layer, inode: top.st_ino) } : nil
        let binding = Binding(parent: parent.rawValue, name: name)
        let upperLayer = upperLayer
        return try state.withLock { state throws(Errno) -> (NodeID, sourcesChanged: Bool) in
            guard state.directories[parent.rawValue] != nil else {
                if state.node(parent.rawValue) == nil { throw .staleNFSFileHandle }
                throw .notDirectory
            }
            if let id = state.child(parent.rawValue, name), let node = state.node(id),
               !node.isDirectory, !top.isDirectory, node.inode != resolution.inode, node.binding == binding {
                // Another file now has the name (replaced in a layer underneath): it gets a node of its own, and
                // the old one, which open files still read, loses the name, as on a local filesystem.
                Self.unbind(binding, in: &state)
            }
            if let id = state.child(parent.rawValue, name), let node = state.node(id) {
                let fresh = Self.node(for: resolution, binding: binding, upperLayer: upperLayer)
                let rebound = node.binding == binding
                let changed = rebound && node.isDirectory && (node.lowers != fresh.lowers || node.inUpper != fresh.inUpper)
                if rebound { Self.refresh(id, node, to: fresh, resolution, in: &state) }
                state.update(id) { kept in
                    if rebound {
                        kept.inUpper = fresh.inUpper
                        kept.lowers = fresh.lowers
                        kept.isDirectory = fresh.isDirectory
                    }
                    kept.inode = resolution.inode
                    if counting { kept.lookups += 1 }
                }
                return (NodeID(id), changed)
            }
            guard counting else { return (NodeID(0), false) }
            if let file, let id = state.idsByFile[file], state.node(id)?.binding != nil {
                state.updateExtras(id) { $0.otherBindings.append(binding) }
                state.update(id) { $0.lookups += 1 }
                state.directories[parent.rawValue]?.children[name] = id
                return (NodeID(id), false)
            }
            let node = Self.node(for: resolution, binding: binding, upperLayer: upperLayer)
            let id = state.add(node)
            if node.isDirectory {
                state.directories[id] = DirectoryPart(lowerIndexes: Self.lowerIndexes(of: resolution, inUpper: node.inUpper))
            }
            state.updateExtras(id) { extra in
                extra.data = resolution.data
                if let file { extra.files = [file] }
            }
            if let file { state.idsByFile[file] = id }
            state.directories[parent.rawValue]?.children[name] = id
            return (NodeID(id), false)
        }
    }

    /// A name looked up again: what the kernel holds there takes what this lookup found (a directory keeps the
    /// indexes it read, where they still stand for the same layers).
    private static func refresh(_ id: UInt64, _ node: Node, to fresh: Node, _ resolution: Resolution, in state: inout State) {
        let indexes = lowerIndexes(of: resolution, inUpper: fresh.inUpper)
        if fresh.isDirectory {
            var directory = state.directories.removeValue(forKey: id) ?? DirectoryPart()
            if node.lowers != fresh.lowers || node.inUpper != fresh.inUpper || !node.isDirectory {
                directory.lowerIndexes = indexes
                directory.upperIndex = nil
            } else {
                // What this lookup read is as good as what is kept, but the kept one may have been looked into
                // already.
                for (position, index) in indexes.enumerated() where position < directory.lowerIndexes.count {
                    if directory.lowerIndexes[position] == nil { directory.lowerIndexes[position] = index }
                }
            }
            state.directories[id] = directory
        } else if node.isDirectory, state.directories[id]?.children.isEmpty == true {
            state.directories[id] = nil
        }
        state.updateExtras(id) { $0.data = resolution.data }
    }

    /// A new name for an existing node (link(2)): the kernel gets the same node back, as for a local hard link.
    func link(_ id: NodeID, as name: Name, in parent: NodeID, file: FileKey) {
        state.withLock { state in
            guard state.node(id.rawValue) != nil, state.directories[parent.rawValue] != nil else { return }
            state.updateExtras(id.rawValue) { extra in
                extra.otherBindings.append(Binding(parent: parent.rawValue, name: name))
                if !extra.files.contains(file) { extra.files.append(file) }
            }
            state.update(id.rawValue) { $0.lookups += 1 }
            state.directories[parent.rawValue]?.children[name] = id.rawValue
            state.idsByFile[file] = id.rawValue
        }
    }

    /// Another backing file now stands for the node (its upper copy, after a copy-up).
    func alias(_ id: NodeID, _ file: FileKey) {
        state.withLock { state in
            guard state.node(id.rawValue) != nil else { return }
            state.updateExtras(id.rawValue) { $0.files.append(file) }
            state.idsByFile[file] = id.rawValue
        }
    }

    /// Drops `lookups` kernel references; returns the nodes that this frees.
    @discardableResult
    func forget(_ id: NodeID, lookups: UInt64) -> [NodeID] {
        guard id != .root else { return [] }
        return state.withLock { state in
            guard state.update(id.rawValue, { $0.lookups -= min($0.lookups, lookups) }) else { return [] }
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
        while current != NodeID.root.rawValue, let node = state.node(current), node.lookups == 0,
              state.directories[current]?.children.isEmpty ?? true {
            released.append(NodeID(current))
            let extras = state.extras[current]
            state.remove(current)
            for file in extras?.files ?? [] where state.idsByFile[file] == current { state.idsByFile[file] = nil }
            let bindings = (node.binding.map { [$0] } ?? []) + (extras?.otherBindings ?? [])
            for binding in bindings where state.child(binding.parent, binding.name) == current {
                state.directories[binding.parent]?.children[binding.name] = nil
            }
            for binding in bindings.dropFirst() { release(binding.parent, in: &state, into: &released) }
            guard let first = bindings.first else { return }
            current = first.parent
        }
    }

    var count: Int { state.withLock { $0.live } }

    func opened(_ id: NodeID, _ fd: CInt) {
        state.withLock { state in
            guard state.node(id.rawValue) != nil else { return }
            state.updateExtras(id.rawValue) { $0.openDescriptors.append(fd) }
        }
    }

    func closed(_ id: NodeID, _ fd: CInt) {
        state.withLock { state in
            guard state.extras[id.rawValue] != nil else { return }
            state.updateExtras(id.rawValue) { $0.openDescriptors.removeAll { $0 == fd } }
        }
    }

    /// Records that the node now lives in the upper layer too (after a copy-up). A hard-linked file's node
    /// follows only the name it is bound under first, so that its sources always name that path.
    func copiedUp(_ id: NodeID, keepingLowers: Bool) {
        state.withLock { state in
            guard state.update(id.rawValue, { node in
                node.inUpper = true
                if !keepingLowers { node.lowers = [] }
            }) else { return }
            state.directories[id.rawValue]?.upperIndex = nil
            if !keepingLowers { state.directories[id.rawValue]?.lowerIndexes = [] }
        }
    }

    /// Records that a file now has its own metadata in the upper layer, its data still at `data` (a metadata-only
    /// copy-up); nil once the data is copied up too.
    func dataIsAt(_ id: NodeID, _ data: Source?) {
        state.withLock { state in
            guard state.update(id.rawValue, { node in
                if data != nil {
                    node.inUpper = true
                    node.lowers = []
                }
            }) else { return }
            state.updateExtras(id.rawValue) { $0.data = data }
        }
    }

    /// Keeps what was read of a directory's layers, where nothing is kept yet (a lookup may have read the
    /// same meanwhile; the lower layers do not change, and the upper index is only made under the namespace
    /// lock, where the changes that keep it up to date are made too).
    func keep(_ id: NodeID, upper: LiveIndex?, lowers: [DirectoryIndex?]) {
        state.withLock { state in
            guard let node = state.node(id.rawValue), node.isDirectory,
                  var directory = state.directories.removeValue(forKey: id.rawValue) else { return }
            if directory.upperIndex == nil, node.inUpper { directory.upperIndex = upper }
            if directory.lowerIndexes.count < node.lowerCount {
                directory.lowerIndexes += [DirectoryIndex?](repeating: nil, count: node.lowerCount - directory.lowerIndexes.count)
            }
            for (position, index) in lowers.enumerated()
            where position < directory.lowerIndexes.count && directory.lowerIndexes[position] == nil {
                directory.lowerIndexes[position] = index
            }
            state.directories[id.rawValue] = directory
        }
    }

    /// The upper layer's index of a directory node, if one is kept (changes there refresh it).
    func upperIndex(of id: NodeID) -> LiveIndex? {
        state.withLock { $0.directories[id.rawValue]?.upperIndex }
    }

    /// The directory nodes held, and the children each holds by name.
    func directories() -> [(id: NodeID, children: [Name])] {
        state.withLock { state in state.directories.map { (NodeID($0.key), Array($0.value.children.keys)) } }
    }

    /// Forgets every index of a directory (its layers changed underneath); each is read again when needed.
    func dropIndexes(_ id: NodeID) {
        state.withLock { state in
            guard var directory = state.directories.removeValue(forKey: id.rawValue) else { return }
            directory.upperIndex = nil
            directory.lowerIndexes = []
            state.directories[id.rawValue] = directory
        }
    }

    /// Forgets a directory's upper index (its own markers changed); it is read again when next needed.
    func dropUpperIndex(_ id: NodeID) {
        state.withLock { _ = $0.directories[id.rawValue]?.upperIndex = nil }
    }

    /// Unbinds `name` in `parent`: the name is gone, though the kernel may still hold the node (and a
    /// hard-linked file keeps its other names).
    func detach(_ parent: NodeID, _ name: Name) {
        state.withLock { state in Self.unbind(Binding(parent: parent.rawValue, name: name), in: &state) }
    }

    /// Unbinds a removed directory, keeping the attributes it showed for as long as the kernel holds it (a
    /// process may still have it as its working directory).
    func detachDirectory(_ parent: NodeID, _ name: Name, showing attributes: stat) {
        state.withLock { state in
            if let id = state.child(parent.rawValue, name), state.node(id) != nil {
                state.updateExtras(id) { $0.removed = attributes }
            }
            Self.unbind(Binding(parent: parent.rawValue, name: name), in: &state)
        }
    }

    private static func unbind(_ binding: Binding, in state: inout State) {
        guard let id = state.child(binding.parent, binding.name), state.node(id) != nil else { return }
        state.directories[binding.parent]?.children[binding.name] = nil
        state.directories[id]?.cachedPath = nil
        var other: Binding?
        if let extras = state.extras[id], state.node(id)?.binding == binding, !extras.otherBindings.isEmpty {
            state.updateExtras(id) { other = $0.otherBindings.removeFirst() }
        } else if state.node(id)?.binding != binding {
            state.updateExtras(id) { $0.otherBindings.removeAll { $0 == binding } }
        }
        state.update(id) { node in
            if node.binding == binding { node.binding = other }
        }
        release(id, in: &state)
        release(binding.parent, in: &state)
    }

    /// Moves the node bound as `from` to `to`, unbinding whatever was bound there. Only the upper layer's
    /// part moves with it: lower layers keep their contents where they were (the redirect points there).
    func move(_ from: Binding, to: Binding) {
        state.withLock { state in
            Self.unbind(to, in: &state)
            state.generation += 1
            guard let id = state.child(from.parent, from.name) else { return }
            state.directories[from.parent]?.children[from.name] = nil
            Self.rebind(id, from: from, to: to, in: &state)
            Self.release(from.parent, in: &state)
        }
    }

    /// Swaps two bound names (RENAME_EXCHANGE), both of which live in the upper layer.
    func exchange(_ a: Binding, _ b: Binding) {
        state.withLock { state in
            state.generation += 1
            let first = state.child(a.parent, a.name), second = state.child(b.parent, b.name)
            state.directories[a.parent]?.children[a.name] = nil
            state.directories[b.parent]?.children[b.name] = nil
            if let first { Self.rebind(first, from: a, to: b, in: &state) }
            if let second { Self.rebind(second, from: b, to: a, in: &state) }
            Self.release(a.parent, in: &state)
            Self.release(b.parent, in: &state)
        }
    }

    private static func rebind(_ id: UInt64, from: Binding, to: Binding, in state: inout State) {
        guard let node = state.node(id) else { return }
        state.directories[id]?.cachedPath = nil
        if node.binding == from {
            state.update(id) { $0.binding = to }
        } else {
            state.updateExtras(id) { extra in extra.otherBindings = extra.otherBindings.map { $0 == from ? to : $0 } }
        }
        state.directories[to.parent]?.children[to.name] = id
    }
}
