import Synchronization
import SystemPackage

/// The kernel's handle for a merged path: FUSE node ids, 1 being the root.
public struct NodeID: Hashable, Sendable {
    public let rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static let root = NodeID(1)
}

/// What the engine remembers about a path the kernel holds: no descriptor, only where it lives.
struct Node: Sendable {
    var path: String
    var sources: [Source]
    var inode: UInt64
    var isMerged: Bool
    var lookups: UInt64
    /// Unlinked, or replaced by a rename, while the kernel still holds it: its path names something else now.
    var detached = false
    /// Backing files the caller has open, through which a detached node still answers getattr.
    var openDescriptors: [CInt] = []
}

/// Node ids handed to the kernel, each alive until the kernel forgets every lookup of it. One lock guards the
/// whole table; nothing is done under it but dictionary work.
final class InodeTable: Sendable {
    private struct State {
        var nodes: [UInt64: Node] = [:]
        var idsByPath: [String: UInt64] = [:]
        var nextID: UInt64 = 2
    }

    private let state: Mutex<State>

    init(root: Resolution) {
        var initial = State()
        initial.nodes[NodeID.root.rawValue] = Node(path: "", sources: root.sources, inode: root.inode,
                                                   isMerged: root.isMerged, lookups: 1)
        initial.idsByPath[""] = NodeID.root.rawValue
        state = Mutex(initial)
    }

    func node(_ id: NodeID, includingDetached: Bool = false) throws(Errno) -> Node {
        guard let node = state.withLock({ $0.nodes[id.rawValue] }) else { throw .staleNFSFileHandle }
        if node.detached, !includingDetached { throw .noSuchFileOrDirectory }
        return node
    }

    func id(ofPath path: String) -> NodeID? {
        state.withLock { $0.idsByPath[path] }.map(NodeID.init)
    }

    /// Records one more kernel reference to `path`, reusing its node id when the kernel already holds one.
    func remember(_ path: String, _ resolution: Resolution) -> NodeID {
        state.withLock { state in
            if let id = state.idsByPath[path] {
                state.nodes[id]!.sources = resolution.sources
                state.nodes[id]!.inode = resolution.inode
                state.nodes[id]!.isMerged = resolution.isMerged
                state.nodes[id]!.lookups += 1
                return NodeID(id)
            }
            let id = state.nextID
            state.nextID += 1
            state.nodes[id] = Node(path: path, sources: resolution.sources, inode: resolution.inode,
                                   isMerged: resolution.isMerged, lookups: 1)
            state.idsByPath[path] = id
            return NodeID(id)
        }
    }

    func forget(_ id: NodeID, lookups: UInt64) {
        guard id != .root else { return }
        state.withLock { state in
            guard var node = state.nodes[id.rawValue] else { return }
            node.lookups -= min(node.lookups, lookups)
            if node.lookups == 0 {
                state.nodes[id.rawValue] = nil
                if state.idsByPath[node.path] == id.rawValue { state.idsByPath[node.path] = nil }
            } else {
                state.nodes[id.rawValue] = node
            }
        }
    }

    var count: Int { state.withLock { $0.nodes.count } }

    var rootSources: [Source] { state.withLock { $0.nodes[NodeID.root.rawValue]!.sources } }

    func opened(_ id: NodeID, _ fd: CInt) {
        state.withLock { $0.nodes[id.rawValue]?.openDescriptors.append(fd) }
    }

    func closed(_ id: NodeID, _ fd: CInt) {
        state.withLock { $0.nodes[id.rawValue]?.openDescriptors.removeAll { $0 == fd } }
    }

    /// Records that the node at `path` now lives in other sources (after a copy-up).
    func update(_ path: String, sources: [Source]) {
        state.withLock { state in
            guard let id = state.idsByPath[path] else { return }
            state.nodes[id]!.sources = sources
            state.nodes[id]!.isMerged = sources.count > 1
        }
    }

    /// Unbinds `path` and everything below it: the names are gone, though the kernel may still hold the nodes.
    func detach(_ path: String) {
        state.withLock { state in
            for id in Self.ids(under: path, in: state) {
                state.idsByPath[state.nodes[id]!.path] = nil
                state.nodes[id]!.detached = true
            }
        }
    }

    /// Moves `from` and everything below it to `to`, detaching whatever was bound there. Only the upper
    /// layer's paths move: lower layers keep their contents where they were (the redirect points there).
    func move(_ from: String, to: String, upperLayer: Int?) {
        state.withLock { state in
            for id in Self.ids(under: to, in: state) {
                state.idsByPath[state.nodes[id]!.path] = nil
                state.nodes[id]!.detached = true
            }
            let moving = Self.ids(under: from, in: state)
            for id in moving { state.idsByPath[state.nodes[id]!.path] = nil }
            for id in moving {
                let old = state.nodes[id]!.path
                let new = to + old.dropFirst(from.count)
                state.nodes[id]!.path = new
                state.nodes[id]!.sources = state.nodes[id]!.sources.map {
                    $0.layer == upperLayer ? Source(layer: $0.layer, path: new) : $0
                }
                state.idsByPath[new] = id
            }
        }
    }

    /// Swaps two bound paths and what lies below them (RENAME_EXCHANGE), both of which live in the upper layer.
    func exchange(_ a: String, _ b: String, upperLayer: Int?) {
        state.withLock { state in
            let first = Self.ids(under: a, in: state), second = Self.ids(under: b, in: state)
            for id in first + second { state.idsByPath[state.nodes[id]!.path] = nil }
            for (ids, from, to) in [(first, a, b), (second, b, a)] {
                for id in ids {
                    let new = to + state.nodes[id]!.path.dropFirst(from.count)
                    state.nodes[id]!.path = new
                    state.nodes[id]!.sources = state.nodes[id]!.sources.map {
                        $0.layer == upperLayer ? Source(layer: $0.layer, path: new) : $0
                    }
                    state.idsByPath[new] = id
                }
            }
        }
    }

    private static func ids(under path: String, in state: State) -> [UInt64] {
        let prefix = path + "/"
        return state.idsByPath.compactMap { key, id in key == path || key.hasPrefix(prefix) ? id : nil }
    }
}
