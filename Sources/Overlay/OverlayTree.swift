import CLinux
import Glibc
import SystemPackage

/// The merged view of a layer stack, addressed by node ids: what a FUSE server (or a test) asks of an overlay.
/// Keeps no descriptor per node; every call opens what it needs relative to the layer roots.
public final class OverlayTree: Sendable {
    public let stack: LayerStack
    let inodes: InodeTable

    public init(stack: LayerStack) throws(Errno) {
        self.stack = stack
        self.inodes = InodeTable(root: try stack.resolveRoot())
    }

    public struct Entry: Sendable {
        public let node: NodeID
        public let attributes: stat
    }

    /// Resolves `name` in `parent` and counts one kernel reference to the result.
    public func lookup(parent: NodeID, name: String) throws(Errno) -> Entry {
        if Whiteout.isReserved(name) { throw .noSuchFileOrDirectory }
        let parentNode = try inodes.node(parent)
        let path = RelativePath.child(parentNode.path, name)
        let resolution = try stack.resolve(name, in: parentNode.sources, root: inodes.rootSources)
        return remember(path, resolution)
    }

    /// lookup for an entry of a listing just read (readdirplus): the listing already showed that no layer above
    /// the entry's holds or whites out the name, so resolution starts at the entry's own layer. A name the
    /// kernel already holds is resolved in full, in case it changed since the listing.
    public func lookup(parent: NodeID, listed entry: DirectoryEntry) throws(Errno) -> Entry {
        let parentNode = try inodes.node(parent)
        let path = RelativePath.child(parentNode.path, entry.name)
        guard entry.source > 0, entry.source < parentNode.sources.count, inodes.id(ofPath: path) == nil else {
            return try lookup(parent: parent, name: entry.name)
        }
        let resolution = try stack.resolve(entry.name, in: Array(parentNode.sources[entry.source...]),
                                           root: inodes.rootSources)
        return remember(path, resolution)
    }

    /// Whether owners and modes pass through a mapping (so that new objects need an explicit owner).
    public var mapsAttributes: Bool { !stack.mapping.isIdentity }

    /// Counts one kernel reference to a resolved path and answers with what the mount shows for it.
    func remember(_ path: String, _ resolution: Resolution) -> Entry {
        Entry(node: inodes.remember(path, resolution), attributes: stack.shown(resolution))
    }

    public func forget(_ node: NodeID, lookups: UInt64) {
        inodes.forget(node, lookups: lookups)
    }

    /// How many nodes the kernel holds: a measure of the daemon's memory that forget must keep bounded.
    public var nodeCount: Int { inodes.count }

    /// Read through an open descriptor when the caller passes one or the name is gone (an unlinked open file).
    public func attributes(of node: NodeID, descriptor: CInt? = nil) throws(Errno) -> stat {
        let kept = try inodes.node(node, includingDetached: true)
        guard let fd = descriptor ?? (kept.detached ? kept.openDescriptors.first : nil) else {
            if kept.detached { throw .noSuchFileOrDirectory }
            return try stack.attributes(of: kept)
        }
        var info = try Sys.fstat(fd)
        info.st_ino = ino_t(kept.inode)
        stack.mapping.present(&info) { try? Sys.xattr(fd, $0) }
        return info
    }

    /// Open files are registered so that getattr can reach them once their name is gone.
    public func opened(_ node: NodeID, _ descriptor: FileDescriptor) { inodes.opened(node, descriptor.rawValue) }
    public func closed(_ node: NodeID, _ descriptor: CInt) { inodes.closed(node, descriptor) }

    public func readlink(_ node: NodeID) throws(Errno) -> [UInt8] {
        let node = try inodes.node(node)
        let source = node.sources[0]
        return try Sys.readlink(stack.layers[source.layer].rootFD, source.path)
    }

    /// Opens the backing file for reading. The caller owns the descriptor.
    public func openForReading(_ node: NodeID) throws(Errno) -> FileDescriptor {
        let node = try inodes.node(node)
        let source = node.sources[0]
        let layer = stack.layers[source.layer]
        return FileDescriptor(rawValue: try Sys.open(layer.rootFD, layer.relative(source.path), O_RDONLY | CLinux_O_NOFOLLOW))
    }

    /// The merged listing, with "." and ".." first, as `readdir` returns it.
    public func listDirectory(_ node: NodeID) throws(Errno) -> [DirectoryEntry] {
        let directory = try inodes.node(node)
        let dot = DirectoryEntry(name: ".", inode: directory.inode, type: UInt8(DT_DIR))
        let parentPath = RelativePath.parent(of: directory.path)
        let parentInode = inodes.id(ofPath: parentPath).flatMap { try? inodes.node($0).inode } ?? directory.inode
        let dotdot = DirectoryEntry(name: "..", inode: parentInode, type: UInt8(DT_DIR))
        return [dot, dotdot] + (try stack.mergedEntries(directory.sources))
    }

    public func extendedAttribute(_ id: NodeID, name: String) throws(Errno) -> [UInt8] {
        let node = try inodes.node(id, includingDetached: true)
        switch name {
        case ProvenanceXattr.layer:
            return Array(node.sources.map { "\($0.layer) \(stack.layers[$0.layer].path)\n" }.joined().utf8)
        case ProvenanceXattr.stack:
            return Array(stack.layers.map { "\($0.index) \($0.isUpper ? "upper" : "lower") \($0.path)\n" }.joined().utf8)
        default:
            if stack.hidesXattr(name) { throw .noData }
        }
        guard let value = try backing(id, copyingUp: false).xattr(name) else { throw .noData }
        return value
    }

    public func extendedAttributeNames(_ id: NodeID) throws(Errno) -> [String] {
        try backing(id, copyingUp: false).xattrNames().filter { !stack.hidesXattr($0) }
    }

    public func filesystemStatistics() throws(Errno) -> statvfs {
        try Sys.statfs(stack.layers[0].rootFD)
    }
}

extension LayerStack {
    func absolute(_ source: Source) -> String { layers[source.layer].absolute(source.path) }
}
