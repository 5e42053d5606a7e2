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
    var layers: [Int]
    var inode: UInt64
    var isMerged: Bool
    var lookups: UInt64
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
        initial.nodes[NodeID.root.rawValue] = Node(path: "", layers: root.layers, inode: root.inode,
                                                   isMerged: root.isMerged, lookups: 1)
        initial.idsByPath[""] = NodeID.root.rawValue
        state = Mutex(initial)
    }

    func node(_ id: NodeID) throws(Errno) -> Node {
        guard let node = state.withLock({ $0.nodes[id.rawValue] }) else { throw .staleNFSFileHandle }
        return node
    }

    func id(ofPath path: String) -> NodeID? {
        state.withLock { $0.idsByPath[path] }.map(NodeID.init)
    }

    /// Records one more kernel reference to `path`, reusing its node id when the kernel already holds one.
    func remember(_ path: String, _ resolution: Resolution) -> NodeID {
        state.withLock { state in
            if let id = state.idsByPath[path] {
                state.nodes[id]!.layers = resolution.layers
                state.nodes[id]!.inode = resolution.inode
                state.nodes[id]!.isMerged = resolution.isMerged
                state.nodes[id]!.lookups += 1
                return NodeID(id)
            }
            let id = state.nextID
            state.nextID += 1
            state.nodes[id] = Node(path: path, layers: resolution.layers, inode: resolution.inode,
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
                state.idsByPath[node.path] = nil
            } else {
                state.nodes[id.rawValue] = node
            }
        }
    }

    var count: Int { state.withLock { $0.nodes.count } }
}
