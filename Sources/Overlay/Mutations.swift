import CLinux
import Glibc
import SystemPackage

/// What `create` makes.
public enum NewObject: Sendable {
    case file(mode: mode_t, flags: Int32)
    case directory(mode: mode_t)
    case special(mode: mode_t, device: dev_t)
    case symlink(target: [UInt8])
    case hardLink(to: NodeID)
}

/// Every change goes to the upper layer: lower objects are copied up first, lower names are hidden by
/// whiteouts, and the node table follows each name that moves or disappears.
extension OverlayTree {
    /// Makes sure the object behind `id` lives in the upper layer, copying it and its parents up first.
    @discardableResult
    func copyUp(_ id: NodeID, data: Bool = true) throws(Errno) -> Node {
        try copyUp(path: inodes.node(id).path, data: data)
    }

    private func copyUp(path: String, data: Bool) throws(Errno) -> Node {
        // A hard-linked file's one node may be bound under another of its names: this name's own sources count.
        let node: Node
        if let id = inodes.id(ofPath: path), case let known = try inodes.node(id), known.path == path {
            node = known
        } else {
            node = try unboundNode(path)
        }
        if stack.layers[node.sources[0].layer].isUpper { return node }
        if !path.isEmpty {
            try copyUp(path: RelativePath.parent(of: path), data: true)
        }
        let source = node.sources[0]
        let lowerInfo = try Sys.stat(stack.layers[source.layer].rootFD, source.path)
        try stack.copyUp(path, from: source, info: lowerInfo, inode: node.inode, data: data)
        let upper = Source(layer: 0, path: path)
        let sources = lowerInfo.isDirectory ? [upper] + node.sources : [upper]
        inodes.update(path, sources: sources)
        if !lowerInfo.isDirectory, lowerInfo.st_nlink > 1 {
            try linkUp(otherNamesOf: node.sources[0], copiedTo: path)
        }
        var copied = node
        copied.sources = sources
        copied.isMerged = sources.count > 1
        return copied
    }

    /// Gives every other name of a copied-up hard-linked file the upper copy too, so that all names keep showing
    /// one file (the kernel breaks them apart unless it runs with index=on).
    private func linkUp(otherNamesOf source: Source, copiedTo path: String) throws(Errno) {
        let (upper, _) = try stack.writable()
        let lowerInode = try Sys.stat(stack.layers[source.layer].rootFD, source.path).st_ino
        for name in stack.hardLinks.names(of: lowerInode, in: stack.layers[source.layer]) where name != source.path {
            // Only names the merged view still serves from this very file (not whited out, not overridden).
            guard let other = try? unboundNode(name), other.sources[0] == Source(layer: source.layer, path: name) else {
                continue
            }
            let parent = RelativePath.parent(of: name)
            try copyUp(path: parent, data: true)
            // Like the copy-up itself, linking the other names is no change to their directories.
            let parentInfo = try Sys.stat(upper.rootFD, upper.relative(parent))
            try Sys.link(upper.rootFD, path, upper.rootFD, name)
            try Sys.setTimes(upper.rootFD, upper.relative(parent), access: parentInfo.st_atim, modification: parentInfo.st_mtim)
            inodes.update(name, sources: [Source(layer: 0, path: name)])
        }
        inodes.alias(path, FileKey(layer: 0, inode: try Sys.stat(upper.rootFD, path).st_ino))
    }

    /// A path's node when the kernel holds none for it (a parent it already forgot): resolved from the root.
    private func unboundNode(_ path: String) throws(Errno) -> Node {
        guard let resolution = try stack.resolve(path: path, rootSources: inodes.rootSources) else {
            return try inodes.node(.root)
        }
        return Node(path: path, sources: resolution.sources, inode: resolution.inode, isMerged: resolution.isMerged, lookups: 0)
    }

    private func child(_ parent: Node, _ name: String) -> String {
        RelativePath.child(parent.path, name)
    }

    private func existing(_ parent: Node, _ name: String) throws(Errno) -> Resolution? {
        do {
            return try stack.resolve(name, in: parent.sources, root: inodes.rootSources)
        } catch .noSuchFileOrDirectory {
            return nil
        }
    }

    /// Creates `name` in `parent`, owned by `owner`, or by whoever the backing filesystem makes its owner when
    /// nil; for a file also opens it (with `flags`).
    public func create(parent: NodeID, name: String, _ object: NewObject,
                       owner: (uid: uid_t, gid: gid_t)?) throws(Errno) -> (Entry, FileDescriptor?) {
        if Whiteout.isReserved(name) { throw .invalidArgument }
        let parentNode = try copyUp(parent)
        guard case let .absent(whiteout) = try stack.lookup(name, in: parentNode.sources, root: inodes.rootSources) else {
            throw .fileExists
        }
        let (upper, work) = try stack.writable()
        let path = child(parentNode, name)
        var linkSource: String?
        if case let .hardLink(target) = object {
            linkSource = try copyUp(target).path
        }
        // Over a device whiteout the object is built aside and swapped in; elsewhere it is made in place.
        let staged = whiteout == .device ? work.temporaryName() : nil
        let (dirFD, target) = staged.map { (work.fd, $0) } ?? (upper.rootFD, path)
        var descriptor: FileDescriptor?
        var made = false
        do {
            switch object {
            case let .file(mode, flags):
                let access = flags & O_ACCMODE == O_RDONLY ? O_RDWR : flags & O_ACCMODE
                let fd = try Sys.open(dirFD, target, access | (flags & O_APPEND) | O_CREAT | O_EXCL, mode & 0o7777)
                descriptor = FileDescriptor(rawValue: fd)
            case let .directory(mode):
                try Sys.mkdir(dirFD, target, mode & 0o7777)
                // A directory made where a lower one was deleted must not show the deleted contents.
                if whiteout != nil {
                    try stack.markOpaque(staged.map { work.path + "/" + $0 } ?? upper.absolute(path))
                }
            case let .special(mode, device):
                try Sys.mknod(dirFD, target, mode, device)
            case let .symlink(destination):
                try Sys.symlink(destination, dirFD, target)
            case .hardLink:
                try Sys.link(upper.rootFD, linkSource!, dirFD, target)
            }
            made = true
            if let owner, linkSource == nil {
                let made: BackingObject = descriptor.map { .descriptor($0.rawValue) }
                    ?? .path(dirFD, target, staged.map { work.path + "/" + $0 } ?? upper.absolute(path))
                try give(made, to: owner, mode: object.permissions)
            }
            if let staged { try stack.replace(path, try Sys.stat(upper.rootFD, path), with: staged, upper, work) }
            if whiteout == .file { try stack.removeWhiteoutMarker(path) }
        } catch {
            if let descriptor { try? descriptor.close() }
            if let staged {
                work.discard(staged)
            } else if made {
                try? Sys.unlink(upper.rootFD, path, directory: object.isDirectory)
            }
            throw error
        }
        // What was just made lives in the upper layer alone (a directory made over a whiteout is opaque).
        var resolution = try stack.madeInUpper(path, descriptor: descriptor?.rawValue)
        if case let .hardLink(target) = object {
            // A new name of an existing file: it shows the number that file shows.
            resolution.inode = try inodes.node(target).inode
            inodes.link(target, as: path, file: FileKey(layer: resolution.sources[0].layer, inode: resolution.top.st_ino))
            return (Entry(node: target, attributes: stack.shown(resolution)), nil)
        }
        return (remember(path, resolution), descriptor)
    }

    /// Gives a new object its creator, as the layers store ids: in the permissions attribute where one stands in
    /// for the real owner and mode (a symlink, without a mode, cannot carry it), else by chown.
    private func give(_ object: BackingObject, to owner: (uid: uid_t, gid: gid_t), mode: mode_t?) throws(Errno) {
        let uid = stack.mapping.uids.stored(owner.uid), gid = stack.mapping.gids.stored(owner.gid)
        if let name = stack.mapping.permissionsXattr, let mode {
            try object.setXattr(name, StoredPermissions(uid: uid, gid: gid, mode: mode).value)
        } else {
            try object.chown(uid, gid)
        }
    }

    /// unlink and rmdir: the name disappears from the merged view, by a whiteout where a lower layer holds it.
    public func remove(parent: NodeID, name: String, directory: Bool) throws(Errno) {
        let parentNode = try inodes.node(parent)
        let path = child(parentNode, name)
        guard let resolution = try existing(parentNode, name) else { throw .noSuchFileOrDirectory }
        if directory != resolution.top.isDirectory { throw directory ? .notDirectory : .isDirectory }
        if directory, try !stack.mergedEntries(resolution.sources).isEmpty { throw .directoryNotEmpty }
        try copyUp(parent)
        // Removing one name of a lower hard-linked file leaves the others with one link fewer, as the kernel
        // shows with index=on: the file moves up (all its names linked to the copy), then this name goes.
        if !directory, resolution.top.st_nlink > 1, !stack.layers[resolution.sources[0].layer].isUpper {
            try copyUp(path: path, data: true)
        }
        // Lower objects reached only through a redirect are not at this name: no whiteout needed for them.
        if stack.lowerHolds(name, in: parentNode.sources, root: inodes.rootSources) {
            try stack.placeWhiteout(path)
        } else {
            try stack.removeUpperEntry(path, resolution.top)
        }
        inodes.detach(path)
    }

    /// rename(2) with RENAME_NOREPLACE and RENAME_EXCHANGE.
    public func rename(parent: NodeID, name: String, newParent: NodeID, newName: String, flags: UInt32) throws(Errno) {
        if Whiteout.isReserved(newName) { throw .invalidArgument }
        let sourceParent = try inodes.node(parent), targetParent = try inodes.node(newParent)
        let from = child(sourceParent, name), to = child(targetParent, newName)
        guard let source = try existing(sourceParent, name) else { throw .noSuchFileOrDirectory }
        let target = try existing(targetParent, newName)
        if from == to { return }
        if flags & CLinux_RENAME_NOREPLACE != 0, target != nil { throw .fileExists }
        if flags & CLinux_RENAME_EXCHANGE != 0 {
            guard let target else { throw .noSuchFileOrDirectory }
            try copyUp(path: from, data: true)
            try copyUp(path: to, data: true)
            try prepareDirectoryMove(source, from: (sourceParent, name), to: (targetParent, newName))
            try prepareDirectoryMove(target, from: (targetParent, newName), to: (sourceParent, name))
            let (upper, _) = try stack.writable()
            try Sys.rename(upper.rootFD, from, upper.rootFD, to, CLinux_RENAME_EXCHANGE)
            inodes.exchange(from, to, upperLayer: 0)
            return
        }
        if let target {
            if source.top.isDirectory, !target.top.isDirectory { throw .notDirectory }
            if !source.top.isDirectory, target.top.isDirectory { throw .isDirectory }
            if target.top.isDirectory, try !stack.mergedEntries(target.sources).isEmpty {
                throw .directoryNotEmpty
            }
        }
        try copyUp(path: from, data: true)
        try copyUp(newParent)
        // Replacing one name of a lower hard-linked file leaves its other names one link fewer (see remove).
        if let target, !target.top.isDirectory, target.top.st_nlink > 1,
           !stack.layers[target.sources[0].layer].isUpper {
            try copyUp(path: to, data: true)
        }
        let (upper, _) = try stack.writable()
        let root = inodes.rootSources
        try prepareDirectoryMove(source, from: (sourceParent, name), to: (targetParent, newName))
        if source.top.isDirectory {
            // rename cannot put a directory over a device whiteout, nor over a directory holding whiteouts.
            if let upperTarget = try Sys.statIfPresent(upper.rootFD, to) { try stack.removeUpperEntry(to, upperTarget) }
        }
        let targetMarker = try stack.upperWhiteout(to) == .file
        let uncovers = stack.lowerHolds(name, in: sourceParent.sources, root: root)
        if uncovers, stack.settings.whiteout != .file,
           (try? Sys.rename(upper.rootFD, from, upper.rootFD, to, CLinux_RENAME_WHITEOUT)) != nil {
            // The kernel left a device whiteout at the old name in the same step.
        } else {
            try Sys.rename(upper.rootFD, from, upper.rootFD, to)
            if uncovers { try stack.placeWhiteout(from) }
        }
        if targetMarker { try stack.removeWhiteoutMarker(to) }
        inodes.move(from, to: to, upperLayer: 0)
    }

    /// Readies a copied-up directory about to move: the lower contents stay where they are and the directory
    /// points back at them, as the kernel does with redirect_dir (one attribute, whatever the directory's size);
    /// a directory without lower contents that moves where a lower layer holds the name must hide it.
    private func prepareDirectoryMove(_ moving: Resolution, from: (parent: Node, name: String),
                                      to: (parent: Node, name: String)) throws(Errno) {
        guard moving.top.isDirectory else { return }
        let (upper, _) = try stack.writable()
        let path = child(from.parent, from.name)
        if let lower = moving.sources.first(where: { !stack.layers[$0.layer].isUpper }) {
            let sameParent = from.parent.path == to.parent.path && lower.path == path
            try stack.markRedirect(upper.absolute(path), origin: sameParent ? from.name : "/" + lower.path)
        } else if stack.lowerHolds(to.name, in: to.parent.sources, root: inodes.rootSources) {
            try stack.markOpaque(upper.absolute(path))
        }
    }

    public struct AttributeChanges: Sendable {
        public var mode: mode_t?
        public var uid: uid_t?
        public var gid: gid_t?
        public var size: off_t?
        public var access: timespec?
        public var modification: timespec?
        public init() {}
    }

    /// chmod, chown, truncate and utimensat, on the upper copy; `descriptor` is the caller's open file, if any.
    public func setAttributes(_ id: NodeID, _ changes: AttributeChanges, descriptor: CInt?) throws(Errno) -> stat {
        let object = try backing(id, copyingUp: true, data: changes.size != 0, descriptor: descriptor)
        let real = try object.stat()
        let uid = changes.uid.map(stack.mapping.uids.stored), gid = changes.gid.map(stack.mapping.gids.stored)
        if let name = stack.mapping.permissionsXattr, uid != nil || gid != nil || changes.mode != nil, real.fileType != S_IFLNK {
            // The attribute changes; the real owner and mode stay the daemon's.
            var permissions = try object.xattr(name).flatMap(StoredPermissions.init)
                ?? StoredPermissions(uid: real.st_uid, gid: real.st_gid, mode: real.st_mode & 0o7777)
            if let uid { permissions.uid = uid }
            if let gid { permissions.gid = gid }
            if let mode = changes.mode { permissions.mode = mode & 0o7777 }
            try object.setXattr(name, permissions.value)
        } else {
            if uid != nil || gid != nil { try object.chown(uid ?? uid_t.max, gid ?? gid_t.max) }
            if let mode = changes.mode { try object.chmod(mode & 0o7777) }
        }
        if let size = changes.size {
            try object.truncate(size, through: descriptor)
        }
        if changes.access != nil || changes.modification != nil {
            let omit = timespec(tv_sec: 0, tv_nsec: CLinux_UTIME_OMIT)
            try object.setTimes(access: changes.access ?? omit, modification: changes.modification ?? omit)
        }
        return try attributes(of: id, descriptor: object.descriptor)
    }

    /// The backing object to read or change for a node: its upper copy (copied up first when `copyingUp`) or
    /// top source; for a file unlinked while open (a temporary file), the caller's descriptor, as on a local
    /// filesystem.
    func backing(_ id: NodeID, copyingUp: Bool, data: Bool = true, descriptor: CInt? = nil) throws(Errno) -> BackingObject {
        let kept = try inodes.node(id, includingDetached: true)
        if kept.detached {
            guard let fd = descriptor ?? kept.openDescriptors.first else { throw .noSuchFileOrDirectory }
            return .descriptor(fd)
        }
        let source = copyingUp ? Source(layer: 0, path: try copyUp(id, data: data).path) : kept.sources[0]
        let layer = stack.layers[source.layer]
        return .path(layer.rootFD, layer.relative(source.path), layer.absolute(source.path))
    }

    /// Opens for writing (or truncating), copying the file up first; O_TRUNC skips copying the data.
    public func openForWriting(_ id: NodeID, flags: Int32) throws(Errno) -> FileDescriptor {
        let node = try copyUp(id, data: flags & O_TRUNC == 0)
        let (upper, _) = try stack.writable()
        let kept = flags & ~(O_CREAT | O_EXCL | O_NOCTTY)
        return FileDescriptor(rawValue: try Sys.open(upper.rootFD, upper.relative(node.path), kept | CLinux_O_NOFOLLOW))
    }

    public func setExtendedAttribute(_ id: NodeID, name: String, value: [UInt8], flags: CInt) throws(Errno) {
        if stack.hidesXattr(name) { throw .notSupported }
        try backing(id, copyingUp: true).setXattr(name, value, flags: flags)
    }

    public func removeExtendedAttribute(_ id: NodeID, name: String) throws(Errno) {
        if stack.hidesXattr(name) { throw .notSupported }
        try backing(id, copyingUp: true).removeXattr(name)
    }
}

extension NewObject {
    /// The permission bits asked for, where the object has any of its own.
    var permissions: mode_t? {
        switch self {
        case let .file(mode, _), let .directory(mode), let .special(mode, _): mode & 0o7777
        case .symlink, .hardLink: nil
        }
    }

    var isDirectory: Bool {
        if case .directory = self { return true }
        return false
    }
}
