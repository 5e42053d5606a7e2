import Glibc
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
    /// The other names of a hard-linked file: the kernel gets one node for all of them, as on a local filesystem.
    var otherNames: [String] = []
    var files: [FileKey] = []
}

/// A backing file, for finding the node that already stands for another name of it.
struct FileKey: Hashable, Sendable {
    let layer: Int
    let inode: ino_t
}

/// Node ids handed to the kernel, each alive until the kernel forgets every lookup of it. One lock guards the
/// whole table; nothing is done under it but dictionary work.
final class InodeTable: Sendable {
    private struct State {
        var nodes: [UInt64: Node] = [:]
        var idsByPath: [String: UInt64] = [:]
        var idsByFile: [FileKey: UInt64] = [:]
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
        let file = !resolution.top.isDirectory && resolution.top.st_nlink > 1
            ? FileKey(layer: resolution.sources[0].layer, inode: resolution.top.st_ino) : nil
        return state.withLock { state in
            if let id = state.idsByPath[path] {
                if state.nodes[id]!.path == path { state.nodes[id]!.sources = resolution.sources }
                state.nodes[id]!.inode = resolution.inode
                state.nodes[id]!.isMerged = resolution.isMerged
                state.nodes[id]!.lookups += 1
                return NodeID(id)
            }
            if let file, let id = state.idsByFile[file], state.nodes[id]?.detached == false {
                state.nodes[id]!.otherNames.append(path)
                state.nodes[id]!.lookups += 1
                state.idsByPath[path] = id
                return NodeID(id)
            }
            let id = state.nextID
            state.nextID += 1
            state.nodes[id] = Node(path: path, sources: resolution.sources, inode: resolution.inode,
                                   isMerged: resolution.isMerged, lookups: 1, files: file.map { [$0] } ?? [])
            state.idsByPath[path] = id
            if let file { state.idsByFile[file] = id }
            return NodeID(id)
        }
    }

    /// A new name for an existing node (link(2)): the kernel gets the same node back, as for a local hard link.
    func link(_ id: NodeID, as path: String, file: FileKey) {
        state.withLock { state in
            state.nodes[id.rawValue]!.otherNames.append(path)
            state.nodes[id.rawValue]!.lookups += 1
            state.idsByPath[path] = id.rawValue
            if !state.nodes[id.rawValue]!.files.contains(file) { state.nodes[id.rawValue]!.files.append(file) }
            state.idsByFile[file] = id.rawValue
        }
    }

    /// Another backing file now stands for the node at `path` (its upper copy, after a copy-up).
    func alias(_ path: String, _ file: FileKey) {
        state.withLock { state in
            guard let id = state.idsByPath[path] else { return }
            state.nodes[id]!.files.append(file)
            state.idsByFile[file] = id
        }
    }

    func forget(_ id: NodeID, lookups: UInt64) {
        guard id != .root else { return }
        state.withLock { state in
            guard var node = state.nodes[id.rawValue] else { return }
            node.lookups -= min(node.lookups, lookups)
            if node.lookups == 0 {
                state.nodes[id.rawValue] = nil
                for name in [node.path] + node.otherNames where state.idsByPath[name] == id.rawValue {
                    state.idsByPath[name] = nil
                }
                for file in node.files where state.idsByFile[file] == id.rawValue { state.idsByFile[file] = nil }
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

    /// Records that the node at `path` now lives in other sources (after a copy-up). A hard-linked file's node
    /// follows only its own path's sources, so that they always name the path it is bound under.
    func update(_ path: String, sources: [Source]) {
        state.withLock { state in
            guard let id = state.idsByPath[path], state.nodes[id]!.path == path else { return }
            state.nodes[id]!.sources = sources
            state.nodes[id]!.isMerged = sources.count > 1
        }
    }

    /// Unbinds `path` and everything below it: the names are gone, though the kernel may still hold the nodes
    /// (and a hard-linked file keeps its other names).
    func detach(_ path: String) {
        state.withLock { state in Self.unbind(under: path, in: &state) }
    }

    private static func unbind(under path: String, in state: inout State) {
        for (name, id) in names(under: path, in: state) {
            state.idsByPath[name] = nil
            var node = state.nodes[id]!
            if node.path == name, let next = node.otherNames.first {
                node.otherNames.removeFirst()
                node.path = next
                node.sources = node.sources.map { Source(layer: $0.layer, path: next) }
            } else if node.path == name {
                node.detached = true
            } else {
                node.otherNames.removeAll { $0 == name }
            }
            state.nodes[id] = node
        }
    }

    /// Moves `from` and everything below it to `to`, detaching whatever was bound there. Only the upper
    /// layer's paths move: lower layers keep their contents where they were (the redirect points there).
    func move(_ from: String, to: String, upperLayer: Int?) {
        state.withLock { state in
            Self.unbind(under: to, in: &state)
            let moving = Self.names(under: from, in: state)
            for (name, _) in moving { state.idsByPath[name] = nil }
            Self.relocate(moving, from: from, to: to, upperLayer: upperLayer, in: &state)
        }
    }

    /// Swaps two bound paths and what lies below them (RENAME_EXCHANGE), both of which live in the upper layer.
    func exchange(_ a: String, _ b: String, upperLayer: Int?) {
        state.withLock { state in
            let first = Self.names(under: a, in: state), second = Self.names(under: b, in: state)
            for (name, _) in first + second { state.idsByPath[name] = nil }
            Self.relocate(first, from: a, to: b, upperLayer: upperLayer, in: &state)
            Self.relocate(second, from: b, to: a, upperLayer: upperLayer, in: &state)
        }
    }

    /// Rebinds each name below `from` to the same place below `to`: a node's own path and upper source, or one
    /// of a hard-linked file's other names.
    private static func relocate(_ moving: [(String, UInt64)], from: String, to: String, upperLayer: Int?,
                                 in state: inout State) {
        for (old, id) in moving {
            let new = to + old.dropFirst(from.count)
            if state.nodes[id]!.path == old {
                state.nodes[id]!.path = new
                state.nodes[id]!.sources = state.nodes[id]!.sources.map {
                    $0.layer == upperLayer ? Source(layer: $0.layer, path: new) : $0
                }
            } else {
                state.nodes[id]!.otherNames = state.nodes[id]!.otherNames.map { $0 == old ? new : $0 }
            }
            state.idsByPath[new] = id
        }
    }

    private static func names(under path: String, in state: State) -> [(String, UInt64)] {
        let prefix = path + "/"
        return state.idsByPath.compactMap { key, id in key == path || key.hasPrefix(prefix) ? (key, id) : nil }
    }
}
