import FuseKit
import Glibc
import Overlay
import Synchronization
import SystemPackage

/// Serves an overlay tree through FUSE: node ids pass straight through, errors are the engine's errno values.
public final class StrataFileSystem: FileSystem {
    let tree: OverlayTree
    let timeout: Double
    /// fsync=0 and volatile: callers' syncs return at once.
    let skipSync: Bool
    private let daemonOwner = (uid: geteuid(), gid: getegid())
    /// The kernel gathers writes in its page cache and sends them in large pieces (fuse-overlayfs's default).
    let writeback: Bool

    /// The kernel checks POSIX ACLs (read from the backing files' attributes) besides the mode bits.
    let acl: Bool

    /// What the connection has answered, for `strata stats` (the `user.strata.stats` attribute of the root).
    let statistics: RequestStatistics

    /// Tells the kernel what changed underneath (`-o watch`, `strata refresh`).
    let invalidator = Invalidator()

    public init(tree: OverlayTree, statistics: RequestStatistics = RequestStatistics(), timeout: Double, skipSync: Bool = false,
                writeback: Bool = true, acl: Bool = true) {
        self.tree = tree
        self.statistics = statistics
        self.acl = acl
        self.timeout = timeout
        self.skipSync = skipSync
        // Nothing is written through a mount without an upper layer, and with the writeback cache on the kernel
        // forgets a file's block count at every close (`fuse_flush`), so each stat after it would ask again.
        self.writeback = writeback && !tree.isReadOnly
    }

    /// Readdirplus for every part of a listing, not only the first (the kernel's READDIRPLUS_AUTO heuristic):
    /// otherwise stat-ing what a walk found costs a LOOKUP for every entry past the first reply.
    public var declinedCapabilities: Capabilities { [.readdirPlusAuto] }

    public var capabilities: Capabilities {
        var wanted: Capabilities = [.spliceRead, .spliceWrite, .spliceMove, .readdirPlus, .cacheSymlinks, .noOpendirSupport]
        if writeback { wanted.insert(.writebackCache) }
        if acl { wanted.insert(.posixACL) }
        // Opening costs two round trips per file (OPEN, RELEASE) that a mount with nothing to copy up can skip:
        // the kernel then opens by itself and keeps each file's pages across opens (README, "What each lever
        // bought"). Not with an upper layer: there opening for writing copies up
        // (as on the kernel's overlay), and a copy-up's error (a full disk) belongs to open, not to a later write.
        if tree.isReadOnly { wanted.insert(.noOpenSupport) }
        return wanted
    }

    /// With the writeback cache the kernel reads pages of files open for writing only, and places appends
    /// itself: the backing file is opened for reading too, and without O_APPEND.
    private func backingFlags(_ flags: Int32) -> Int32 {
        guard writeback else { return flags }
        var flags = flags & ~O_APPEND
        if flags & O_ACCMODE == O_WRONLY { flags = (flags & ~O_ACCMODE) | O_RDWR }
        return flags
    }

    public func lookup(_ context: RequestContext, parent: UInt64, name: [UInt8]) throws(Errno) -> Entry {
        do {
            return entry(try tree.lookup(parent: NodeID(parent), name: try Name(name)))
        } catch .noSuchFileOrDirectory {
            // A node id of 0 caches the absence, so repeated misses (PATH searches, ld.so) stay in the kernel.
            return Entry(node: 0, attributes: stat(), entryTimeout: timeout, attributeTimeout: timeout)
        }
    }

    public func forget(node: UInt64, lookups: UInt64) {
        tree.forget(NodeID(node), lookups: lookups)
    }

    public func attributes(node: UInt64, handle: UInt64?) throws(Errno) -> Attributes {
        Attributes(try tree.attributes(of: NodeID(node), descriptor: descriptor(handle)), timeout: timeout)
    }

    public func readlink(node: UInt64) throws(Errno) -> [UInt8] {
        try tree.readlink(NodeID(node))
    }

    public func open(_ context: RequestContext, node: UInt64, flags: Int32) throws(Errno) -> OpenHandle {
        let writing = flags & O_ACCMODE != O_RDONLY || flags & O_TRUNC != 0
        let descriptor = writing ? try tree.openForWriting(NodeID(node), flags: backingFlags(flags))
            : try tree.openForReading(NodeID(node))
        tree.opened(NodeID(node), descriptor)
        return OpenHandle(handle: UInt64(descriptor.rawValue), keepCache: true)
    }

    public func read(node: UInt64, handle: UInt64, size: Int, offset: Int64) throws(Errno) -> ReadData {
        guard let fd = descriptor(handle) else {
            return .ownDescriptor(try tree.readDescriptor(NodeID(node)).rawValue, offset: offset, size: size)
        }
        return .descriptor(fd, offset: offset, size: size)
    }

    /// The backing descriptor a request names; handle 0 names none (a file the kernel opened without asking,
    /// see `capabilities`): descriptor 0 is the daemon's stdin, never a file it opened.
    private func descriptor(_ handle: UInt64?) -> CInt? {
        guard let handle, handle != 0 else { return nil }
        return CInt(truncatingIfNeeded: handle)
    }

    /// A descriptor for a request that must have one: a file opened without asking is only ever read.
    private func required(_ handle: UInt64) throws(Errno) -> CInt {
        guard let fd = descriptor(handle) else { throw .badFileDescriptor }
        return fd
    }

    public func release(node: UInt64, handle: UInt64) {
        tree.closed(NodeID(node), CInt(truncatingIfNeeded: handle))
        close(CInt(truncatingIfNeeded: handle))
    }

    /// Only where the kernel cannot do without opendir (it answers ENOSYS to say so, and then keeps listings in
    /// its own cache): listings need no handle, they are kept per directory node.
    public func openDirectory(_ context: RequestContext, node: UInt64) throws(Errno) -> OpenHandle {
        OpenHandle(handle: 0, keepCache: true, cacheDirectory: true)
    }

    public func readDirectory(node: UInt64, handle: UInt64, offset: Int64,
                              into buffer: inout DirectoryBuffer) throws(Errno) {
        let entries = try tree.listDirectory(NodeID(node))
        guard offset >= 0, offset < entries.count else {
            tree.listingRead(NodeID(node))
            return
        }
        let open = tree.openDirectories()
        for index in Int(offset)..<entries.count {
            let item = entries[index]
            let next = Int64(index + 1)
            let added = buffer.plus
                ? buffer.addPlus(name: item.name.bytes, nextOffset: next) { plusEntry(parent: node, item, open: open) }
                : buffer.add(name: item.name.bytes, inode: item.inode, type: item.type, nextOffset: next)
            if !added { return }
        }
    }

    public func releaseDirectory(node: UInt64, handle: UInt64) {}

    public func statistics(node: UInt64) throws(Errno) -> statvfs {
        try tree.filesystemStatistics()
    }

    public func extendedAttribute(node: UInt64, name: [UInt8]) throws(Errno) -> [UInt8] {
        if node == NodeID.root.rawValue, name == ControlAttribute.statistics {
            return StatisticsText(statistics, nodes: tree.nodeCount, watch: invalidator.method.withLock { $0 }).bytes
        }
        if name == ControlAttribute.refresh || name == ControlAttribute.refreshEntries {
            // Answered once the kernel has dropped what it held, so that `strata refresh` returns after it.
            invalidator.send(tree.refresh(NodeID(node), below: name == ControlAttribute.refresh))
            invalidator.drain()
            return []
        }
        return try tree.extendedAttribute(NodeID(node), name: name)
    }

    public func extendedAttributeNames(node: UInt64) throws(Errno) -> [[UInt8]] {
        try tree.extendedAttributeNames(NodeID(node))
    }

    public func create(_ context: RequestContext, parent: UInt64, name: [UInt8], mode: mode_t,
                       flags: Int32) throws(Errno) -> (Entry, OpenHandle) {
        let (created, made) = try make(context, parent, name, .file(mode: mode, flags: backingFlags(flags)))
        guard let descriptor = made else { throw .ioError }
        tree.opened(NodeID(created.node), descriptor)
        return (created, OpenHandle(handle: UInt64(descriptor.rawValue)))
    }

    public func makeDirectory(_ context: RequestContext, parent: UInt64, name: [UInt8], mode: mode_t) throws(Errno) -> Entry {
        try make(context, parent, name, .directory(mode: mode)).0
    }

    public func makeNode(_ context: RequestContext, parent: UInt64, name: [UInt8], mode: mode_t,
                         device: dev_t) throws(Errno) -> Entry {
        try make(context, parent, name, .special(mode: mode, device: device)).0
    }

    public func makeSymlink(_ context: RequestContext, parent: UInt64, name: [UInt8], target: [UInt8]) throws(Errno) -> Entry {
        try make(context, parent, name, .symlink(target: target)).0
    }

    public func link(_ context: RequestContext, node: UInt64, newParent: UInt64, newName: [UInt8]) throws(Errno) -> Entry {
        try make(context, newParent, newName, .hardLink(to: NodeID(node))).0
    }

    /// New objects belong to the caller, except that a setgid directory hands down its group (and, to
    /// subdirectories, its setgid bit), as on a local filesystem.
    private func make(_ context: RequestContext, _ parent: UInt64, _ bytes: [UInt8],
                      _ object: NewObject) throws(Errno) -> (Entry, FileDescriptor?) {
        let name = try Name(bytes)
        // The daemon's own objects are owned as the backing filesystem makes them, which applies a setgid
        // parent's group as a local filesystem does; anyone else's are given their owner here.
        if context.uid == daemonOwner.uid, context.gid == daemonOwner.gid, !tree.mapsAttributes {
            let (created, descriptor) = try tree.create(parent: NodeID(parent), name: name, object, owner: nil)
            return (entry(created), descriptor)
        }
        let parentAttributes = try tree.attributes(of: NodeID(parent))
        let inheritsGroup = parentAttributes.st_mode & S_ISGID != 0
        var object = object
        if inheritsGroup, case let .directory(mode) = object { object = .directory(mode: mode | S_ISGID) }
        let (created, descriptor) = try tree.create(parent: NodeID(parent), name: name, object,
                                                    owner: (context.uid, inheritsGroup ? parentAttributes.st_gid : context.gid))
        return (entry(created), descriptor)
    }

    public func unlink(parent: UInt64, name: [UInt8]) throws(Errno) {
        try tree.remove(parent: NodeID(parent), name: try Name(name), directory: false)
    }

    public func removeDirectory(parent: UInt64, name: [UInt8]) throws(Errno) {
        try tree.remove(parent: NodeID(parent), name: try Name(name), directory: true)
    }

    public func rename(parent: UInt64, name: [UInt8], newParent: UInt64, newName: [UInt8], flags: UInt32) throws(Errno) {
        try tree.rename(parent: NodeID(parent), name: try Name(name), newParent: NodeID(newParent), newName: try Name(newName),
                        flags: flags)
    }

    public func setAttributes(node: UInt64, _ changes: AttributeChanges, handle: UInt64?) throws(Errno) -> Attributes {
        var engine = OverlayTree.AttributeChanges()
        engine.mode = changes.mode
        engine.uid = changes.uid
        engine.gid = changes.gid
        engine.size = changes.size
        engine.access = changes.access
        engine.modification = changes.modification
        return Attributes(try tree.setAttributes(NodeID(node), engine, descriptor: descriptor(handle)), timeout: timeout)
    }

    public func write(node: UInt64, handle: UInt64, data: WriteData, offset: Int64) throws(Errno) -> Int {
        tree.noteOwnChange(of: NodeID(node))
        return try data.write(to: try required(handle), at: offset)
    }

    public func synchronize(node: UInt64, handle: UInt64, dataOnly: Bool) throws(Errno) {
        // A file opened without asking was only read: nothing of it to sync.
        guard !skipSync, let fd = descriptor(handle) else { return }
        try OpenFile.synchronize(fd, dataOnly: dataOnly)
    }

    public func synchronizeDirectory(node: UInt64, dataOnly: Bool) throws(Errno) {
        if !skipSync { try tree.synchronizeDirectory(NodeID(node), dataOnly: dataOnly) }
    }

    public func setExtendedAttribute(node: UInt64, name: [UInt8], value: [UInt8], flags: Int32) throws(Errno) {
        try tree.setExtendedAttribute(NodeID(node), name: name, value: value, flags: flags)
    }

    public func removeExtendedAttribute(node: UInt64, name: [UInt8]) throws(Errno) {
        try tree.removeExtendedAttribute(NodeID(node), name: name)
    }

    public func allocate(node: UInt64, handle: UInt64, mode: Int32, offset: Int64, length: Int64) throws(Errno) {
        tree.noteOwnChange(of: NodeID(node))
        try OpenFile.allocate(try required(handle), mode: mode, offset: offset, length: length)
    }

    /// SEEK_DATA and SEEK_HOLE. With the writeback cache the kernel may hold data the backing file has not
    /// seen yet, so the backing file's holes are not the file's: ENOSYS makes the kernel answer by itself,
    /// from its own idea of the size, which is always right (it reports no holes).
    public func seek(node: UInt64, handle: UInt64, offset: Int64, whence: Int32) throws(Errno) -> Int64 {
        if writeback { throw .noFunction }
        if let fd = descriptor(handle) { return try OpenFile.seek(fd, offset: offset, whence: whence) }
        let fd = try tree.readDescriptor(NodeID(node)).rawValue
        defer { close(fd) }
        return try OpenFile.seek(fd, offset: offset, whence: whence)
    }

    public func copyRange(from: (node: UInt64, handle: UInt64, offset: Int64), to: (node: UInt64, handle: UInt64, offset: Int64),
                          length: Int, flags: Int32) throws(Errno) -> Int {
        tree.noteOwnChange(of: NodeID(to.node))
        return try OpenFile.copyRange(from: try required(from.handle), at: from.offset, to: try required(to.handle), at: to.offset,
                                      length: length)
    }

    private func entry(_ found: OverlayTree.Entry) -> Entry {
        Entry(node: found.node.rawValue, attributes: found.attributes, entryTimeout: timeout, attributeTimeout: timeout)
    }

    /// A readdirplus entry: a full lookup, except for "." and ".." (and names that vanished meanwhile), which
    /// go out as a name, type and inode number without a node.
    private func plusEntry(parent: UInt64, _ item: DirectoryEntry, open: OpenDirectories) -> Entry {
        if item.name.bytes != [0x2E], item.name.bytes != [0x2E, 0x2E],
           let found = try? tree.lookup(parent: NodeID(parent), listed: item, open: open) {
            return entry(found)
        }
        var attributes = stat()
        attributes.st_ino = ino_t(item.inode)
        attributes.st_mode = mode_t(item.type) << 12
        return Entry(node: 0, attributes: attributes, entryTimeout: 0, attributeTimeout: 0)
    }
}
