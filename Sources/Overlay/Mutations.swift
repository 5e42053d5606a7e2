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
/// whiteouts, and the node tree follows each name that moves or disappears.
extension OverlayTree {
    var upper: Layer {
        get throws(Errno) { try stack.writable().0 }
    }

    /// Makes sure the object behind `id` lives in the upper layer, copying it and its parents up first, with
    /// `content` (for a regular file: its data, its metadata alone, or nothing of it). A metadata-only file that
    /// now needs its data gets it in place.
    @discardableResult
    func copyUp(_ id: NodeID, content wanted: CopyUpContent = .data) throws(Errno) -> NodeView {
        let content = wanted == .metadata && !stack.settings.metacopy ? .data : wanted
        let view = try nodes.view(id)
        guard let path = view.path else { throw .noSuchFileOrDirectory }
        if stack.layers[try view.top.layer].isUpper {
            if view.data == nil || content == .metadata { return view }
            try finishMetadataOnly(id, discardingData: content == .nothing)
        } else {
            try copyUp(path: path, content: content, node: id)
        }
        return try nodes.view(id)
    }

    /// A metadata-only file gets its data (or, about to be truncated, stops pointing at it): once.
    private func finishMetadataOnly(_ id: NodeID, discardingData: Bool) throws(Errno) {
        try locks.withObject(.node(id.rawValue)) { () throws(Errno) in
            let view = try nodes.view(id)
            guard let data = view.data else { return }
            let top = try view.top
            try stack.layers[top.layer].at(top.path) { spot throws(Errno) in
                if discardingData {
                    for name in Metacopy.writableNames {
                        do throws(Errno) { try Sys.removeXattr(spot, name) } catch .noData, .notSupported, .notPermitted {}
                    }
                } else {
                    try stack.fillData(spot, from: data, inode: view.inode)
                }
            }
            nodes.dataIsAt(id, nil)
        }
    }

    /// What an object is now: its sources, data, number and type, from the node the kernel holds for it or
    /// resolved from the root.
    private func current(_ path: LayerPath, _ id: NodeID?) throws(Errno)
        -> (sources: [Source], data: Source?, inode: UInt64, isDirectory: Bool) {
        if let id {
            let view = try nodes.view(id)
            return (view.sources, view.data, view.inode, view.isDirectory)
        }
        guard let resolution = try stack.resolve(path: path, rootSources: rootSources) else {
            return (rootSources, nil, 0, true)
        }
        return (resolution.sources, resolution.data, resolution.inode, resolution.top.isDirectory)
    }

    /// Copies the object at a merged path up, its parents first. `node` is the node the kernel holds for it, if
    /// any (otherwise the one bound at the path is used). Each object is copied once: a second thread waits on
    /// the object's lock and finds the copy done.
    private func copyUp(path: LayerPath, content wanted: CopyUpContent, node: NodeID? = nil) throws(Errno) {
        let content = wanted == .metadata && !stack.settings.metacopy ? .data : wanted
        let id = node ?? nodes.find(path).flatMap { nodes.isBound($0, at: path) ? $0 : nil }
        guard let first = try current(path, id).sources.first else { throw Impossible.state("\(path) has no source") }
        if stack.layers[first.layer].isUpper { return }
        if let parent = path.parent { try copyUp(path: parent, content: .data) }
        try locks.withObject(id.map { .node($0.rawValue) } ?? .path(path)) { () throws(Errno) in
            let (sources, data, inode, isDirectory) = try current(path, id)
            guard let source = sources.first else { throw Impossible.state("\(path) has no source") }
            if stack.layers[source.layer].isUpper { return }
            // A lower file that itself holds only metadata has its data deeper down: a full copy takes it from there.
            let (staged, lowerInfo) = try stack.stageCopy(of: source, isDirectory: isDirectory, inode: inode,
                                                          content: data != nil && content == .data ? .metadata : content)
            let dataSource = lowerInfo.fileType == S_IFREG && content == .metadata ? (data ?? source) : nil
            if let data, content == .data {
                let (_, work) = try stack.writable()
                try stack.fillData(Spot(work.fd, staged), from: data, inode: inode)
            }
            do throws(Errno) {
                try locks.withNamespace { () throws(Errno) in
                    // Where the object is now: a rename may have moved it (and its upper parent) meanwhile.
                    let target = try id.map { id throws(Errno) in try nodes.view(id).path } ?? path
                    guard let target else { throw .noSuchFileOrDirectory }
                    try stack.install(staged, isDirectory: lowerInfo.isDirectory, at: target) { directory in
                        refresh(target.parent.flatMap(nodes.find), target.name, in: directory)
                    }
                    if let id {
                        if let dataSource {
                            nodes.dataIsAt(id, dataSource)
                        } else {
                            nodes.copiedUp(id, keepingLowers: lowerInfo.isDirectory)
                        }
                        // A directory's listing names its sources by position: it now has one more.
                        if lowerInfo.isDirectory { listings.drop([id]) }
                    }
                }
            } catch {
                try? stack.writable().1.discard(staged)
                throw error
            }
            if !lowerInfo.isDirectory, lowerInfo.st_nlink > 1 {
                try linkUp(otherNamesOf: source, copiedTo: id.flatMap { try? nodes.view($0).path } ?? path, node: id,
                           data: dataSource)
            }
        }
    }

    /// Gives every other name of a copied-up hard-linked file the upper copy too, so that all names keep showing
    /// one file (the kernel breaks them apart unless it runs with index=on).
    private func linkUp(otherNamesOf source: Source, copiedTo path: LayerPath, node: NodeID?, data: Source?) throws(Errno) {
        let upper = try upper
        let lower = stack.layers[source.layer]
        let lowerInode = try lower.stat(source.path).st_ino
        for name in stack.hardLinks.names(of: lowerInode, in: lower) where name != source.path {
            guard let parent = name.parent, let last = name.name else { continue }
            // Only names the merged view still serves from this very file (not whited out, not overridden).
            let servedFromThisFile = {
                (try? self.stack.resolve(path: name, rootSources: self.rootSources))?.sources.first == Source(layer: source.layer, path: name)
            }
            guard servedFromThisFile() else { continue }
            try copyUp(path: parent, content: .data)
            try locks.withNamespace { () throws(Errno) in
                guard servedFromThisFile() else { return }
                // Like the copy-up itself, linking the other names is no change to their directories.
                try upper.at(path) { copy throws(Errno) in
                    try upper.inDirectory(parent) { directory throws(Errno) in
                        let parentInfo = try Sys.stat(Spot(directory, nil))
                        try Sys.link(copy, Spot(directory, last))
                        try Sys.setTimes(Spot(directory, nil), access: parentInfo.st_atim, modification: parentInfo.st_mtim)
                        refresh(nodes.find(parent), last, in: directory)
                    }
                }
                if let id = nodes.find(name), nodes.isBound(id, at: name) {
                    if let data { nodes.dataIsAt(id, data) } else { nodes.copiedUp(id, keepingLowers: false) }
                }
                if let directory = nodes.find(parent) { listings.drop([directory]) }
            }
        }
        if let node { nodes.alias(node, FileKey(layer: upper.index, inode: try upper.stat(path).st_ino)) }
    }

    /// After a change in an upper directory, the directory's index (if it has one) looks at the name again.
    private func refresh(_ parent: NodeID?, _ name: Name?, in directory: CInt) {
        if let name { noteOwnChange(in: parent, name) }
        guard let parent, let name, let index = nodes.upperIndex(of: parent) else { return }
        index.refresh([name], in: directory)
    }

    private func existing(_ name: Name, in parent: NodeView) throws(Errno) -> Resolution? {
        do {
            return try stack.resolve(name, in: parent.sources, indexes: parent.indexes, root: rootSources)
        } catch .noSuchFileOrDirectory {
            return nil
        }
    }

    /// Creates `name` in `parent`, owned by `owner`, or by whoever the backing filesystem makes its owner when
    /// nil; for a file also opens it (with `flags`).
    public func create(parent: NodeID, name: Name, _ object: NewObject,
                       owner: (uid: uid_t, gid: gid_t)?) throws(Errno) -> (Entry, FileDescriptor?) {
        if Whiteout.isReserved(name) { throw .invalidArgument }
        try copyUp(parent)
        var linkSource: NodeID?
        if case let .hardLink(target) = object {
            try copyUp(target, content: .metadata)
            linkSource = target
        }
        let (upper, work) = try stack.writable()
        return try locks.withNamespace { () throws(Errno) -> (Entry, FileDescriptor?) in
            let directory = try nodes.view(parent)
            guard let parentPath = directory.path else { throw .noSuchFileOrDirectory }
            guard case let .absent(whiteout) = try stack.lookup(name, in: directory.sources, indexes: directory.indexes, root: rootSources) else {
                throw .fileExists
            }
            // Where the file a new hard link names lives now (a view has a path: a node without one is ENOENT).
            let linkPath = try linkSource.flatMap { id throws(Errno) in try nodes.view(id).path }
            let path = parentPath.appending(name)
            let descriptor = try upper.inDirectory(parentPath) { directory throws(Errno) -> FileDescriptor? in
                defer { refresh(parent, name, in: directory) }
                return try make(object, name: name, in: directory, over: whiteout, linking: linkPath, owner: owner, upper, work)
            }
            listings.drop([parent])
            // What was just made lives in the upper layer alone (a directory made over a whiteout is opaque).
            var resolution = try stack.madeInUpper(path, descriptor: descriptor?.rawValue)
            if let target = linkSource {
                // A new name of an existing file: it shows the number that file shows.
                resolution.inode = try nodes.view(target).inode
                nodes.link(target, as: name, in: parent, file: FileKey(layer: upper.index, inode: resolution.top.st_ino))
                return (Entry(node: target, attributes: try stack.shown(resolution)), nil)
            }
            return (try remember(parent, name, resolution), descriptor)
        }
    }

    /// Makes the object in the upper directory `directory`. Over a device whiteout it is built aside and
    /// swapped in; elsewhere it is made in place.
    private func make(_ object: NewObject, name: Name, in directory: CInt, over whiteout: Whiteout.Format?,
                      linking linkSource: LayerPath?, owner: (uid: uid_t, gid: gid_t)?,
                      _ upper: Layer, _ work: WorkDirectory) throws(Errno) -> FileDescriptor? {
        let staged = whiteout == .device ? work.temporaryName() : nil
        let target = staged.map { Spot(work.fd, $0) } ?? Spot(directory, name)
        var descriptor: FileDescriptor?
        var made = false
        do throws(Errno) {
            switch object {
            case let .file(mode, flags):
                let access = flags & O_ACCMODE == O_RDONLY ? O_RDWR : flags & O_ACCMODE
                let fd = try Sys.open(target, access | (flags & O_APPEND) | O_CREAT | O_EXCL, mode & 0o7777)
                descriptor = FileDescriptor(rawValue: fd)
            case let .directory(mode):
                try Sys.mkdir(target, mode & 0o7777)
                // A directory made where a lower one was deleted must not show the deleted contents.
                if whiteout != nil { try stack.markOpaque(target) }
            case let .special(mode, device):
                try Sys.mknod(target, mode, device)
            case let .symlink(destination):
                try Sys.symlink(destination, target)
            case .hardLink:
                guard let linkSource else { throw .invalidArgument }
                try upper.at(linkSource) { source throws(Errno) in try Sys.link(source, target) }
            }
            made = true
            if let owner, linkSource == nil {
                let made: BackingObject = descriptor.map { .descriptor($0.rawValue) } ?? .spot(target)
                try give(made, to: owner, mode: object.permissions)
            }
            if let staged { try stack.replace(Spot(directory, name), try Sys.stat(Spot(directory, name)), with: staged, work) }
            if whiteout == .file { try stack.removeWhiteoutMarker(Spot(directory, name)) }
        } catch {
            if let descriptor { try? descriptor.close() }
            if let staged {
                work.discard(staged)
            } else if made {
                try? Sys.unlink(target, directory: object.isDirectory)
            }
            throw error
        }
        return descriptor
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
    public func remove(parent: NodeID, name: Name, directory: Bool) throws(Errno) {
        let parentView = try nodes.view(parent)
        guard let parentPath = parentView.path else { throw .noSuchFileOrDirectory }
        guard let resolution = try existing(name, in: parentView) else { throw .noSuchFileOrDirectory }
        if directory != resolution.top.isDirectory { throw directory ? .notDirectory : .isDirectory }
        if directory, try !stack.mergedEntries(resolution.sources).isEmpty { throw .directoryNotEmpty }
        try copyUp(parent)
        // Removing one name of a lower hard-linked file leaves the others with one link fewer, as the kernel
        // shows with index=on: the file moves up (all its names linked to the copy), then this name goes.
        if !directory, resolution.top.st_nlink > 1, !stack.layers[resolution.sources[0].layer].isUpper {
            try copyUp(path: parentPath.appending(name), content: .metadata)
        }
        let upper = try upper
        try locks.withNamespace { () throws(Errno) in
            let parentView = try nodes.view(parent)
            guard let parentPath = parentView.path else { throw .noSuchFileOrDirectory }
            guard let resolution = try existing(name, in: parentView) else { throw .noSuchFileOrDirectory }
            // Lower objects reached only through a redirect are not at this name: no whiteout needed for them.
            let uncovers = stack.lowerHolds(name, in: parentView.sources, indexes: parentView.indexes, root: rootSources,
                                            found: resolution)
            // Served from below, the name has no upper entry (nor a whiteout, or it would not resolve).
            let servedFromBelow = resolution.sources.first.map { !stack.layers[$0.layer].isUpper } ?? false
            let shownAfter = directory ? removedDirectoryAttributes(resolution) : nil
            try upper.inDirectory(parentPath) { upperDirectory throws(Errno) in
                defer { refresh(parent, name, in: upperDirectory) }
                if uncovers {
                    try stack.placeWhiteout(name, in: upperDirectory, upperIsEmpty: servedFromBelow)
                } else {
                    try stack.removeUpperEntry(Spot(upperDirectory, name), resolution.top)
                }
            }
            listings.drop([parent] + (nodes.child(parent, name).map { [$0] } ?? []))
            if let shownAfter { nodes.detachDirectory(parent, name, showing: shownAfter) } else { nodes.detach(parent, name) }
        }
    }

    /// What a removed directory shows while a process still has it: as on the kernel's overlay, one of the upper
    /// layer alone has no links left; one served from below still shows that one's.
    private func removedDirectoryAttributes(_ resolution: Resolution) -> stat {
        var shown = (try? stack.shown(resolution)) ?? resolution.top
        if resolution.sources.count == 1, resolution.sources.first.map({ stack.layers[$0.layer].isUpper }) == true {
            shown.st_nlink = 0
        }
        return shown
    }

    /// rename(2) with RENAME_NOREPLACE and RENAME_EXCHANGE.
    public func rename(parent: NodeID, name: Name, newParent: NodeID, newName: Name, flags: UInt32) throws(Errno) {
        if Whiteout.isReserved(newName) { throw .invalidArgument }
        let exchange = flags & CLinux_RENAME_EXCHANGE != 0
        // Checks first, then the copy-ups they call for (each under its own lock), then the change itself under
        // the namespace lock, with everything looked at again there.
        let (_, target, from, to) = try renameCase(parent, name, newParent, newName, flags: flags)
        if from == to { return }
        try copyUp(path: from, content: .metadata)
        if exchange {
            try copyUp(path: to, content: .metadata)
        } else {
            try copyUp(newParent)
            // Replacing one name of a lower hard-linked file leaves its other names one link fewer (see remove).
            if let target, !target.top.isDirectory, target.top.st_nlink > 1, !stack.layers[target.sources[0].layer].isUpper {
                try copyUp(path: to, content: .metadata)
            }
        }
        let upper = try upper
        try locks.withNamespace { () throws(Errno) in
            let (source, target, from, to) = try renameCase(parent, name, newParent, newName, flags: flags)
            if from == to { return }
            let sourceParent = try nodes.view(parent), targetParent = try nodes.view(newParent)
            guard let sourcePath = sourceParent.path, let targetPath = targetParent.path else { throw .noSuchFileOrDirectory }
            try prepareDirectoryMove(source, from: (sourceParent, name), to: (targetParent, newName))
            if exchange {
                guard let target else { throw .noSuchFileOrDirectory }
                try prepareDirectoryMove(target, from: (targetParent, newName), to: (sourceParent, name))
            }
            let uncovers = !exchange && stack.lowerHolds(name, in: sourceParent.sources, indexes: sourceParent.indexes,
                                                         root: rootSources, found: source)
            // An empty directory the rename replaces is removed, as by rmdir (read before its name is taken).
            let replacedShows = exchange ? nil : target.flatMap { $0.top.isDirectory ? removedDirectoryAttributes($0) : nil }
            try upper.inDirectory(sourcePath) { old throws(Errno) in
                try upper.inDirectory(targetPath) { new throws(Errno) in
                    defer {
                        refresh(parent, name, in: old)
                        refresh(newParent, newName, in: new)
                    }
                    let oldSpot = Spot(old, name), newSpot = Spot(new, newName)
                    if exchange { return try Sys.rename(oldSpot, newSpot, CLinux_RENAME_EXCHANGE) }
                    // rename cannot put a directory over a device whiteout, nor over a directory holding whiteouts.
                    if source.top.isDirectory, let upperTarget = try Sys.statIfPresent(newSpot) {
                        try stack.removeUpperEntry(newSpot, upperTarget)
                    }
                    let targetMarker = try stack.upperWhiteout(newSpot) == .file
                    if uncovers, stack.settings.whiteout != .file,
                       (try? Sys.rename(oldSpot, newSpot, CLinux_RENAME_WHITEOUT)) != nil {
                        // The kernel left a device whiteout at the old name in the same step.
                    } else {
                        try Sys.rename(oldSpot, newSpot)
                        if uncovers { try stack.placeWhiteout(name, in: old) }
                    }
                    if targetMarker { try stack.removeWhiteoutMarker(newSpot) }
                }
            }
            // Both directories list differently now, and a moved directory's ".." is another.
            listings.drop([parent, newParent] + [nodes.child(parent, name), nodes.child(newParent, newName)].compactMap { $0 })
            let fromBinding = Binding(parent: parent.rawValue, name: name), toBinding = Binding(parent: newParent.rawValue, name: newName)
            if let replacedShows { nodes.detachDirectory(newParent, newName, showing: replacedShows) }
            if exchange { nodes.exchange(fromBinding, toBinding) } else { nodes.move(fromBinding, to: toBinding) }
        }
    }

    /// What a rename finds: the object to move, the one it replaces (if any), and both merged paths; each check
    /// rename(2) makes fails with its errno here.
    private func renameCase(_ parent: NodeID, _ name: Name, _ newParent: NodeID, _ newName: Name,
                            flags: UInt32) throws(Errno) -> (Resolution, Resolution?, LayerPath, LayerPath) {
        let sourceParent = try nodes.view(parent), targetParent = try nodes.view(newParent)
        guard let sourcePath = sourceParent.path, let targetPath = targetParent.path else { throw .noSuchFileOrDirectory }
        let from = sourcePath.appending(name), to = targetPath.appending(newName)
        guard let source = try existing(name, in: sourceParent) else { throw .noSuchFileOrDirectory }
        let target = try existing(newName, in: targetParent)
        if from == to { return (source, target, from, to) }
        if flags & CLinux_RENAME_NOREPLACE != 0, target != nil { throw .fileExists }
        if flags & CLinux_RENAME_EXCHANGE != 0 {
            if target == nil { throw .noSuchFileOrDirectory }
        } else if let target {
            if source.top.isDirectory, !target.top.isDirectory { throw .notDirectory }
            if !source.top.isDirectory, target.top.isDirectory { throw .isDirectory }
            if target.top.isDirectory, try !stack.mergedEntries(target.sources).isEmpty { throw .directoryNotEmpty }
        }
        return (source, target, from, to)
    }

    /// Readies a copied-up directory (or metadata-only file) about to move: the lower contents stay where they are and the directory
    /// points back at them, as the kernel does with redirect_dir (one attribute, whatever the directory's size);
    /// a directory without lower contents that moves where a lower layer holds the name must hide it.
    private func prepareDirectoryMove(_ moving: Resolution, from: (parent: NodeView, name: Name),
                                      to: (parent: NodeView, name: Name)) throws(Errno) {
        guard let fromParent = from.parent.path else { return }
        let upper = try upper
        let path = fromParent.appending(from.name)
        // A metadata-only file finds its data by name: moved, it points at where the data is, as the kernel
        // records it (an absolute redirect).
        if let data = moving.data {
            return try upper.at(path) { spot throws(Errno) in try stack.markRedirect(spot, .absolute(data.path)) }
        }
        guard moving.top.isDirectory else { return }
        // The directory's own markers change: its index is read again when next needed.
        if let moved = nodes.child(from.parent.id, from.name) { nodes.dropUpperIndex(moved) }
        if let lower = moving.sources.first(where: { !stack.layers[$0.layer].isUpper }) {
            let sameParent = from.parent.path == to.parent.path && lower.path == path
            try upper.at(path) { spot throws(Errno) in
                try stack.markRedirect(spot, sameParent ? .sibling(from.name) : .absolute(lower.path))
            }
        } else if stack.lowerHolds(to.name, in: to.parent.sources, root: rootSources) {
            try upper.at(path) { spot throws(Errno) in try stack.markOpaque(spot) }
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
        if let gone = try timesOfAFileGone(id, changes, descriptor: descriptor) { return gone }
        let content: CopyUpContent = changes.size.map { $0 == 0 ? .nothing : .data } ?? .metadata
        return try backing(id, copyingUp: true, content: content, descriptor: descriptor) { object throws(Errno) in
            try apply(changes, to: object, descriptor: descriptor)
            guard case let .spot(spot) = object else { return try attributes(of: id, descriptor: object.descriptor) }
            // The object is at hand: what it shows now, without resolving it again.
            let view = try nodes.view(id)
            return stack.shown(try Sys.stat(spot), at: spot, source: try view.top, inode: view.inode, merged: view.isMerged)
        }
    }

    /// With the writeback cache the kernel keeps a file's ctime and mtime, and it writes them back right after
    /// an unlink or a rename over the file (`fuse_update_ctime`), to a node whose last name is gone. Nothing is
    /// left to change when no descriptor is open either, and failing it would fail the mount's next syncfs
    /// (the kernel keeps the error for it). So a change of the modification time alone (the kernel's write-back)
    /// is taken and forgotten; the kernel does not read the attributes of that reply.
    private func timesOfAFileGone(_ id: NodeID, _ changes: AttributeChanges, descriptor: CInt?) throws(Errno) -> stat? {
        guard let modification = changes.modification, changes.access == nil, changes.mode == nil,
              changes.uid == nil, changes.gid == nil, changes.size == nil, descriptor == nil else { return nil }
        let view = try nodes.view(id, includingDetached: true)
        guard view.isDetached, view.openDescriptors.isEmpty, !view.isDirectory else { return nil }
        var gone = stat()
        gone.st_mode = S_IFREG
        gone.st_ino = ino_t(view.inode)
        gone.st_mtim = modification
        return gone
    }

    private func apply(_ changes: AttributeChanges, to object: BackingObject, descriptor: CInt?) throws(Errno) {
        let uid = changes.uid.map(stack.mapping.uids.stored), gid = changes.gid.map(stack.mapping.gids.stored)
        // The real attributes matter only where the owner and mode are kept in an attribute: fetched only then.
        let real = stack.mapping.permissionsXattr == nil || (uid == nil && gid == nil && changes.mode == nil)
            ? nil : try object.stat()
        if let name = stack.mapping.permissionsXattr, let real, real.fileType != S_IFLNK {
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
    }

    /// Runs `body` on the backing object to read or change for a node: its upper copy (copied up first when
    /// `copyingUp`) or top source; for a file unlinked while open (a temporary file), the caller's descriptor,
    /// as on a local filesystem.
    func backing<T>(_ id: NodeID, copyingUp: Bool, content: CopyUpContent = .metadata, descriptor: CInt? = nil,
                    _ body: (BackingObject) throws(Errno) -> T) throws(Errno) -> T {
        let view = try nodes.view(id, includingDetached: true)
        if view.isDetached {
            guard let fd = descriptor ?? view.openDescriptors.first else { throw .noSuchFileOrDirectory }
            return try body(.descriptor(fd))
        }
        let source = copyingUp ? try copyUp(id, content: content).top : try view.top
        if copyingUp { noteOwnChange(of: id) }
        return try stack.layers[source.layer].at(source.path) { spot throws(Errno) in try body(.spot(spot)) }
    }

    /// Opens for writing (or truncating), copying the file up first; O_TRUNC skips copying the data.
    public func openForWriting(_ id: NodeID, flags: Int32) throws(Errno) -> FileDescriptor {
        let source = try copyUp(id, content: flags & O_TRUNC == 0 ? .data : .nothing).top
        noteOwnChange(of: id)
        let kept = flags & ~(O_CREAT | O_EXCL | O_NOCTTY)
        let fd = try stack.layers[source.layer].at(source.path) { spot throws(Errno) in try Sys.open(spot, kept) }
        return FileDescriptor(rawValue: fd)
    }

    public func setExtendedAttribute(_ id: NodeID, name: [UInt8], value: [UInt8], flags: CInt) throws(Errno) {
        if stack.hidesXattr(name) { throw .notSupported }
        try backing(id, copyingUp: true) { object throws(Errno) in try object.setXattr(name, value, flags: flags) }
    }

    public func removeExtendedAttribute(_ id: NodeID, name: [UInt8]) throws(Errno) {
        if stack.hidesXattr(name) { throw .notSupported }
        try backing(id, copyingUp: true) { object throws(Errno) in try object.removeXattr(name) }
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
