import SystemPackage

/// A change made in a layer directory by someone other than the mount (`-o watch` sees them; `strata refresh`
/// names them): the entry `name` of the layer's directory `directory` was made, removed, renamed, written or
/// had its attributes changed.
public struct LayerChange: Hashable, Sendable {
    public let layer: Int
    public let directory: LayerPath
    public let name: Name

    public init(layer: Int, directory: LayerPath, name: Name) {
        self.layer = layer
        self.directory = directory
        self.name = name
    }
}

/// What the kernel must drop after a change underneath: names (positive or negative entries) and nodes
/// (attributes, page cache, cached listing).
public struct KernelInvalidation: Sendable {
    public var entries: [(parent: NodeID, name: Name)] = []
    public var nodes: [NodeID] = []

    public var isEmpty: Bool { entries.isEmpty && nodes.isEmpty }
}

extension OverlayTree {
    /// Layers changed underneath: every directory node served by a changed layer directory (whatever merged
    /// path it shows, redirects included) forgets what it read of its layers, and the kernel is told to drop
    /// the changed names, the nodes held for them and the directories' cached listings. The next lookup then
    /// resolves each name afresh, as if the stack had just been mounted.
    public func layersChanged(_ changes: some Collection<LayerChange>) -> KernelInvalidation {
        DirectoryChanges.happened()
        defer { readDescriptors.dropAll() }
        var names: [Prefetch.Key: Set<Name>] = [:]
        var objects: Set<Prefetch.Key> = []
        /// Directories whose every name may look different now (an opaque marker came or went).
        var wholly: Set<Prefetch.Key> = []
        for change in changes {
            let directory = Prefetch.Key(layer: change.layer, path: change.directory)
            // A `.wh.` marker changes the name it hides, not its own (which never shows).
            switch Whiteout.marker(change.name) {
            case let .hides(hidden)?: names[directory, default: []].insert(hidden)
            case .opaque?: wholly.insert(directory)
            case .inert?: names[directory, default: []].formUnion([])
            case nil: names[directory, default: []].insert(change.name)
            }
            objects.insert(Prefetch.Key(layer: change.layer, path: change.directory.appending(change.name)))
        }
        for directory in wholly {
            names[directory, default: []].formUnion([])
            objects.insert(directory)
            // The directory itself now merges with less (or more) below: it is looked up again.
            if let parent = directory.path.parent, let own = directory.path.name {
                names[Prefetch.Key(layer: directory.layer, path: parent), default: []].insert(own)
            }
        }
        stack.prefetch.forget(Set(names.keys).union(objects))
        var invalidation = KernelInvalidation()
        var touchedDirectories: [(NodeID, Set<Name>)] = []
        for (id, children) in nodes.directories() {
            guard let view = try? nodes.view(id) else { continue }
            var changed: Set<Name> = []
            var touched = false
            for source in view.sources {
                let key = Prefetch.Key(layer: source.layer, path: source.path)
                if let found = names[key] {
                    changed.formUnion(found)
                    touched = true
                }
                if wholly.contains(key) { changed.formUnion(children) }
                if objects.contains(key) { touched = true }
            }
            guard touched else { continue }
            forgetLayers(of: id)
            invalidation.nodes.append(id)
            drop(changed, in: id, into: &invalidation)
            touchedDirectories.append((id, changed))
        }
        // The nodes held at changed names take what they stand for now at once, before the kernel hears of
        // it: a listing it asks for in between must come from the new layers, not be made (and cached by the
        // kernel) from the old ones.
        for (id, changed) in touchedDirectories {
            for name in changed where nodes.child(id, name) != nil { reresolve(name, in: id) }
        }
        return invalidation
    }

    /// `strata refresh`: the node and, with `below`, everything below it (the whole mount, from the root) is
    /// read again from the layers. Every name the kernel may hold there is dropped: those of the nodes it
    /// holds, and those the fresh listings show (which it may have cached as absent).
    public func refresh(_ node: NodeID, below: Bool = true) -> KernelInvalidation {
        DirectoryChanges.happened()
        defer { readDescriptors.dropAll() }
        var invalidation = KernelInvalidation()
        invalidation.nodes.append(node)
        guard let path = try? nodes.view(node).path else { return invalidation }
        if let parent = nodes.parent(of: node), let name = path.name {
            forgetLayers(of: parent)
            invalidation.entries.append((parent, name))
            invalidation.nodes.append(parent)
        }
        stack.prefetch.forget(nil)
        for (id, children) in nodes.directories() {
            guard let at = try? nodes.view(id).path, below ? at.isWithin(path) : id == node else { continue }
            forgetLayers(of: id)
            invalidation.nodes.append(id)
            var names = Set(children)
            if let listing = try? listDirectory(id) {
                names.formUnion(listing.dropFirst(2).map(\.name))
                listingRead(id)
            }
            drop(names, in: id, into: &invalidation)
        }
        return invalidation
    }

    /// The kernel drops these names of a directory, and the nodes it holds at them.
    private func drop(_ names: Set<Name>, in directory: NodeID, into invalidation: inout KernelInvalidation) {
        for name in names {
            invalidation.entries.append((directory, name))
            if let child = nodes.child(directory, name) { invalidation.nodes.append(child) }
        }
    }

    /// An inotify watch starts at the root, which the kernel holds from the mount on.
    func watchRoot() {
        if let root = try? nodes.view(.root) { watchHooks.read(.root, root.sources) }
    }

    /// The engine changed the entry `name` of the upper directory `parent`: an inotify watch must not take it
    /// for someone else's change.
    func noteOwnChange(in parent: NodeID?, _ name: Name) {
        guard watchHooks.isAttached, let upper = stack.upper?.index, let parent,
              let path = try? nodes.view(parent, includingDetached: true).path else { return }
        watchHooks.changed(LayerChange(layer: upper, directory: path, name: name))
    }

    /// The engine changes a node's own upper object (its attributes, its data; the FUSE layer tells it of
    /// writes through open files, which it does not see).
    public func noteOwnChange(of node: NodeID) {
        guard watchHooks.isAttached, let upper = stack.upper?.index, let path = try? nodes.view(node).path,
              let parent = path.parent, let name = path.name else { return }
        watchHooks.changed(LayerChange(layer: upper, directory: parent, name: name))
    }

    private func reresolve(_ name: Name, in parent: NodeID) {
        do {
            let directory = try indexed(parent)
            let resolution = try stack.resolve(name, in: directory.sources, indexes: directory.indexes, root: rootSources)
            let (node, changed) = try nodes.remember(parent, name, resolution, counting: false)
            if changed { listings.drop([node]) }
        } catch {
            // Gone, or no longer reachable: the name no longer stands for the node.
            nodes.detach(parent, name)
        }
    }

    private func forgetLayers(of directory: NodeID) {
        nodes.dropIndexes(directory)
        listings.drop([directory])
    }
}
