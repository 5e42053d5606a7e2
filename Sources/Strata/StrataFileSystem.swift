import FuseKit
import Glibc
import Overlay
import Synchronization
import SystemPackage

/// Serves an overlay tree through FUSE: node ids pass straight through, errors are the engine's errno values.
public final class StrataFileSystem: FileSystem {
    let tree: OverlayTree
    let timeout: Double
    private let directories = DirectoryHandles()

    public init(tree: OverlayTree, timeout: Double) {
        self.tree = tree
        self.timeout = timeout
    }

    public var capabilities: Capabilities {
        [.spliceWrite, .spliceMove, .readdirPlus, .cacheSymlinks]
    }

    public func lookup(_ context: RequestContext, parent: UInt64, name: String) throws(Errno) -> Entry {
        do {
            return entry(try tree.lookup(parent: NodeID(parent), name: name))
        } catch .noSuchFileOrDirectory {
            // A node id of 0 caches the absence, so repeated misses (PATH searches, ld.so) stay in the kernel.
            return Entry(node: 0, attributes: stat(), entryTimeout: timeout, attributeTimeout: timeout)
        }
    }

    public func forget(node: UInt64, lookups: UInt64) {
        tree.forget(NodeID(node), lookups: lookups)
    }

    public func attributes(node: UInt64) throws(Errno) -> Attributes {
        Attributes(try tree.attributes(of: NodeID(node)), timeout: timeout)
    }

    public func readlink(node: UInt64) throws(Errno) -> [UInt8] {
        try tree.readlink(NodeID(node))
    }

    public func open(_ context: RequestContext, node: UInt64, flags: Int32) throws(Errno) -> OpenHandle {
        guard flags & O_ACCMODE == O_RDONLY, flags & O_TRUNC == 0 else { throw .readOnlyFileSystem }
        let descriptor = try tree.openForReading(NodeID(node))
        return OpenHandle(handle: UInt64(descriptor.rawValue), keepCache: true)
    }

    public func read(node: UInt64, handle: UInt64, size: Int, offset: Int64) throws(Errno) -> ReadData {
        .descriptor(CInt(handle), offset: offset, size: size)
    }

    public func release(node: UInt64, handle: UInt64) {
        close(CInt(handle))
    }

    public func openDirectory(_ context: RequestContext, node: UInt64) throws(Errno) -> OpenHandle {
        let entries = try tree.listDirectory(NodeID(node))
        return OpenHandle(handle: directories.open(entries), keepCache: true, cacheDirectory: true)
    }

    public func readDirectory(node: UInt64, handle: UInt64, offset: Int64,
                              into buffer: inout DirectoryBuffer) throws(Errno) {
        let entries = try directories.entries(handle)
        guard offset >= 0, offset < entries.count else { return }
        for index in Int(offset)..<entries.count {
            let item = entries[index]
            let next = Int64(index + 1)
            let added = buffer.plus
                ? buffer.addPlus(name: item.name, nextOffset: next) { plusEntry(parent: node, item) }
                : buffer.add(name: item.name, inode: item.inode, type: item.type, nextOffset: next)
            if !added { return }
        }
    }

    public func releaseDirectory(node: UInt64, handle: UInt64) {
        directories.close(handle)
    }

    public func statistics(node: UInt64) throws(Errno) -> statvfs {
        try tree.filesystemStatistics()
    }

    public func extendedAttribute(node: UInt64, name: String) throws(Errno) -> [UInt8] {
        try tree.extendedAttribute(NodeID(node), name: name)
    }

    public func extendedAttributeNames(node: UInt64) throws(Errno) -> [String] {
        try tree.extendedAttributeNames(NodeID(node))
    }

    private func entry(_ found: OverlayTree.Entry) -> Entry {
        Entry(node: found.node.rawValue, attributes: found.attributes, entryTimeout: timeout, attributeTimeout: timeout)
    }

    /// A readdirplus entry: a full lookup, except for "." and ".." (and names that vanished meanwhile), which
    /// go out as a name, type and inode number without a node.
    private func plusEntry(parent: UInt64, _ item: DirectoryEntry) -> Entry {
        if item.name != ".", item.name != "..", let found = try? tree.lookup(parent: NodeID(parent), name: item.name) {
            return entry(found)
        }
        var attributes = stat()
        attributes.st_ino = ino_t(item.inode)
        attributes.st_mode = mode_t(item.type) << 12
        return Entry(node: 0, attributes: attributes, entryTimeout: 0, attributeTimeout: 0)
    }
}

/// Listings of open directories, taken whole at opendir so that offsets stay valid across partial reads,
/// seekdir and telldir.
final class DirectoryHandles: Sendable {
    private struct State {
        var listings: [UInt64: [DirectoryEntry]] = [:]
        var next: UInt64 = 1
    }
    private let state = Mutex(State())

    func open(_ entries: [DirectoryEntry]) -> UInt64 {
        state.withLock { state in
            let handle = state.next
            state.next += 1
            state.listings[handle] = entries
            return handle
        }
    }

    func entries(_ handle: UInt64) throws(Errno) -> [DirectoryEntry] {
        guard let entries = state.withLock({ $0.listings[handle] }) else { throw .badFileDescriptor }
        return entries
    }

    func close(_ handle: UInt64) {
        _ = state.withLock { $0.listings.removeValue(forKey: handle) }
    }
}
