import CLinux
import Glibc
import Synchronization
import SystemPackage

/// The merged view of a layer stack, addressed by node ids: what a FUSE server (or a test) asks of an overlay.
/// Keeps no descriptor per node (but the bounded few a mount without an upper layer reads through); every call
/// opens what it needs beneath the layer roots.
public final class OverlayTree: Sendable {
    public let stack: LayerStack
    let nodes: NodeTree
    let locks = ChangeLocks()
    let listings = ListingCache()
    let readDescriptors = ReadDescriptors()
    let watchHooks = WatchHooks()
    /// `-o watch` is on: layers are expected to change underneath, so opens check that a lower file is still the
    /// one its node stands for (an fstat each, which a mount without a watch does not pay).
    let watched = Atomic<Bool>(false)
    /// The root's sources, fixed for the life of the mount (absolute redirects start from them).
    let rootSources: [Source]

    public init(stack: LayerStack) throws(Errno) {
        self.stack = stack
        let root = try stack.resolveRoot()
        rootSources = root.sources
        nodes = NodeTree(root: root, upperLayer: stack.upper?.index)
    }

    public struct Entry: Sendable {
        public let node: NodeID
        public let attributes: stat
    }

    /// Resolves `name` in `parent` and counts one kernel reference to the result.
    public func lookup(parent: NodeID, name: Name) throws(Errno) -> Entry {
        if Whiteout.isReserved(name) { throw .noSuchFileOrDirectory }
        let directory = try indexed(parent)
        let resolution = try stack.resolve(name, in: directory.sources, indexes: directory.indexes, root: rootSources)
        return try remember(parent, name, resolution)
    }

    /// A directory node with each of its layers read (see `DirectoryIndex`): what is not read yet is read now,
    /// the lower layers at once, the upper one under the namespace lock (where the changes that keep it up to
    /// date are made too).
    func indexed(_ id: NodeID) throws(Errno) -> NodeView {
        let view = try nodes.view(id)
        guard view.isDirectory, view.indexes.contains(where: { $0 == nil }) else { return view }
        let upperLayer = stack.upper?.index
        let lowers = view.sources.enumerated().filter { $0.element.layer != upperLayer }
        var read: [DirectoryIndex?] = []
        for (position, source) in lowers {
            guard view.indexes[position] == nil else {
                read.append(nil)
                continue
            }
            if let ahead = stack.prefetch.take(Prefetch.Key(layer: source.layer, path: source.path)) {
                read.append(ahead)
            } else {
                read.append(try DirectoryIndex.read(stack.layers[source.layer], source.path))
            }
        }
        nodes.keep(id, upper: nil, lowers: read)
        if let upperLayer, view.sources.first?.layer == upperLayer, view.indexes.first.map({ $0 == nil }) == true {
            try locks.withNamespace { () throws(Errno) in
                guard nodes.upperIndex(of: id) == nil, let path = try nodes.view(id).path else { return }
                if let index = try DirectoryIndex.read(stack.layers[upperLayer], path) { nodes.keep(id, upper: LiveIndex(index), lowers: []) }
            }
        }
        let indexed = try nodes.view(id)
        watchHooks.read(id, indexed.sources)
        return indexed
    }

    /// lookup for an entry of a listing just read (readdirplus): the listing already showed that no layer above
    /// the entry's holds or whites out the name, so resolution starts at the entry's own layer. A name the
    /// kernel already holds is resolved in full, in case it changed since the listing.
    /// `open` holds the directory's layers open across the entries of one reply.
    public func lookup(parent: NodeID, listed entry: DirectoryEntry, open: OpenDirectories) throws(Errno) -> Entry {
        let directory = try indexed(parent)
        guard entry.source < directory.sources.count, nodes.child(parent, entry.name) == nil else {
            return try lookup(parent: parent, name: entry.name)
        }
        let resolution = try stack.resolve(entry.name, in: Array(directory.sources[entry.source...]),
                                           indexes: Array(directory.indexes[entry.source...]), root: rootSources, open: open)
        return try remember(parent, entry.name, resolution)
    }

    /// Directories to hold open across the lookups of one readdirplus reply.
    public func openDirectories() -> OpenDirectories { OpenDirectories(stack) }

    /// Whether owners and modes pass through a mapping (so that new objects need an explicit owner).
    public var mapsAttributes: Bool { !stack.mapping.isIdentity }

    /// Counts one kernel reference to a resolved name and answers with what the mount shows for it.
    func remember(_ parent: NodeID, _ name: Name, _ resolution: Resolution) throws(Errno) -> Entry {
        let (node, changed) = try nodes.remember(parent, name, resolution)
        // A directory that merges other layers than before (changed underneath) lists them from now on.
        if changed { listings.drop([node]) }
        return Entry(node: node, attributes: try stack.shown(resolution))
    }

    public func forget(_ node: NodeID, lookups: UInt64) {
        let released = nodes.forget(node, lookups: lookups)
        if !released.isEmpty {
            listings.drop(released)
            readDescriptors.drop(released)
            stack.prefetch.cancel(released)
            watchHooks.forgot(released)
        }
    }

    /// How many nodes the kernel holds: a measure of the daemon's memory that forget must keep bounded.
    public var nodeCount: Int { nodes.count }

    /// Read through an open descriptor when the caller passes one or the name is gone (an unlinked open file).
    public func attributes(of node: NodeID, descriptor: CInt? = nil) throws(Errno) -> stat {
        let view = try nodes.view(node, includingDetached: true)
        // A metadata-only file's open descriptor is its data's, whose metadata is not the file's.
        let usable = view.data == nil || view.isDetached ? descriptor : nil
        guard let fd = usable ?? (view.isDetached ? view.openDescriptors.first : nil) else {
            if view.isDetached {
                guard let removed = view.removedAttributes else { throw .noSuchFileOrDirectory }
                return removed
            }
            return try stack.attributes(of: try view.top, data: view.data, inode: view.inode, merged: view.isMerged)
        }
        var info = try Sys.fstat(fd)
        info.st_ino = ino_t(view.inode)
        stack.mapping.present(&info) { try? Sys.xattr(fd, $0) }
        return info
    }

    /// Open files are registered so that getattr can reach them once their name is gone.
    public func opened(_ node: NodeID, _ descriptor: FileDescriptor) { nodes.opened(node, descriptor.rawValue) }
    public func closed(_ node: NodeID, _ descriptor: CInt) { nodes.closed(node, descriptor) }

    public func readlink(_ node: NodeID) throws(Errno) -> [UInt8] {
        let source = try nodes.view(node).top
        return try stack.layers[source.layer].at(source.path) { spot throws(Errno) in try Sys.readlink(spot) }
    }

    /// Opens the backing file for reading (a metadata-only file's data, below it). The caller owns the descriptor.
    public func openForReading(_ node: NodeID) throws(Errno) -> FileDescriptor {
        let view = try nodes.view(node)
        let top = try view.top
        let source = view.data ?? top
        let layer = stack.layers[source.layer]
        let fd = try layer.at(source.path) { spot throws(Errno) in try Sys.open(spot, O_RDONLY) }
        // A lower file replaced underneath (a layer edited by hand) is another file than the node stands for:
        // ESTALE makes the kernel look the name up again, and the new file gets a node of its own.
        if view.data == nil, !layer.isUpper, watched.load(ordering: .relaxed),
           let info = try? Sys.fstat(fd), stack.inodeNumbers.number(backing: info.st_ino, device: layer.device) != view.inode {
            Sys.close(fd)
            throw .staleNFSFileHandle
        }
        if let directory = source.path.parent { stack.prefetch.opened(fileIn: Prefetch.Key(layer: source.layer, path: directory)) }
        return FileDescriptor(rawValue: fd)
    }

    /// A descriptor of the node's data for one read, which the caller closes: for a kernel that opens files
    /// without asking (a mount with no upper layer), which names no open file in its reads.
    public func readDescriptor(_ node: NodeID) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try readDescriptors.descriptor(node) { () throws(Errno) in try openForReading(node).rawValue })
    }

    /// No upper layer: nothing on the mount can change, so the kernel may open files without asking.
    public var isReadOnly: Bool { stack.upper == nil }

    /// The merged listing, with "." and ".." first, as `readdir` returns it: kept per directory node until the
    /// directory changes, so that offsets into it stay valid from one readdir to the next without a handle.
    public func listDirectory(_ node: NodeID) throws(Errno) -> [DirectoryEntry] {
        do {
            return try listings.listing(node) { () throws(Errno) -> [DirectoryEntry] in
                let directory = try indexed(node)
                let dot = DirectoryEntry(name: Name(trusted: "."), inode: directory.inode, type: UInt8(DT_DIR))
                let parentInode = nodes.parent(of: node).flatMap { try? nodes.view($0).inode } ?? directory.inode
                let dotdot = DirectoryEntry(name: Name(trusted: ".."), inode: parentInode, type: UInt8(DT_DIR))
                let entries = try stack.mergedEntries(directory.sources, indexes: directory.indexes)
                readAhead(directory)
                return [dot, dotdot] + entries
            }
        } catch .noSuchFileOrDirectory {
            if try isRemovedDirectory(node) { return [] }
            throw .noSuchFileOrDirectory
        }
    }

    /// The kernel read the listing to its end (and keeps it in its own readdir cache): it is not kept here any
    /// longer. A reader still part way through gets it made again, in the same order.
    public func listingRead(_ node: NodeID) { listings.drop([node]) }

    /// A walk that lists a directory next looks into its subdirectories: their lower layers are read ahead.
    private func readAhead(_ directory: NodeView) {
        for (position, source) in directory.sources.enumerated() where position < directory.indexes.count {
            guard let index = directory.indexes[position] as? DirectoryIndex else { continue }
            stack.prefetch.expand(Prefetch.Key(layer: source.layer, path: source.path), index, owner: directory.id)
        }
    }

    /// A directory removed while a process still has it open (as its working directory, say): it lists empty
    /// and carries no attributes, as on the kernel's overlay and on a local filesystem, not "no such file".
    private func isRemovedDirectory(_ node: NodeID) throws(Errno) -> Bool {
        try nodes.view(node, includingDetached: true).isRemovedDirectory
    }

    public func extendedAttribute(_ id: NodeID, name: [UInt8]) throws(Errno) -> [UInt8] {
        let view = try nodes.view(id, includingDetached: true)
        if view.isRemovedDirectory { throw .noData }
        switch name {
        case ProvenanceXattr.layer:
            return Array(view.sources.map { "\($0.layer) \(stack.layers[$0.layer].path)\n" }.joined().utf8)
        case ProvenanceXattr.stack:
            return Array(stack.layers.map { "\($0.index) \($0.isUpper ? "upper" : "lower") \($0.path)\n" }.joined().utf8)
        default:
            if stack.hidesXattr(name) { throw .noData }
        }
        let value = try backing(id, copyingUp: false) { object throws(Errno) in try object.xattr(name) }
        guard let value else { throw .noData }
        return value
    }

    public func extendedAttributeNames(_ id: NodeID) throws(Errno) -> [[UInt8]] {
        do {
            return try backing(id, copyingUp: false) { object throws(Errno) in try object.xattrNames() }.filter { !stack.hidesXattr($0) }
        } catch .noSuchFileOrDirectory {
            if try isRemovedDirectory(id) { return [] }
            throw .noSuchFileOrDirectory
        }
    }

    public func filesystemStatistics() throws(Errno) -> statvfs {
        try Sys.statfs(stack.layers[0].rootFD)
    }
}
