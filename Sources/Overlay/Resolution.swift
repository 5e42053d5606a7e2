import CLinux
import Glibc
import SystemPackage

/// One layer's part of a merged path: the layer, and the path there. Below a renamed (redirected) directory
/// the lower layers hold its contents under its old path, so the path differs from layer to layer.
struct Source: Sendable, Equatable {
    let layer: Int
    let path: LayerPath

    func child(_ name: Name) -> Source {
        Source(layer: layer, path: path.appending(name))
    }
}

enum Lookup {
    case found(Resolution)
    case absent(upperWhiteout: Whiteout.Format?)
}

/// Where a merged path lives: the sources that serve it, top first. A non-directory has exactly one;
/// a directory has every layer that contributes entries, down to the first opaque one.
struct Resolution {
    var sources: [Source]
    var top: stat
    /// The st_ino the mount shows, which for directories and copied-up files differs from the top layer's.
    var inode: UInt64
    var isMerged: Bool { top.isDirectory && sources.count > 1 }
}

extension LayerStack {
    /// Looks `name` up in a directory served by `parent`, from the top layer down, as the kernel does:
    /// a whiteout ends the search with ENOENT, a non-directory is served by the first layer holding it, and a
    /// directory merges with lower directories of the same name until one is opaque or a lower layer holds a
    /// whiteout or a non-directory there. A directory with a redirect continues the descent at its old path.
    func resolve(_ name: Name, in parent: [Source], root: [Source]) throws(Errno) -> Resolution {
        guard case let .found(resolution) = try lookup(name, in: parent, root: root) else { throw .noSuchFileOrDirectory }
        return resolution
    }

    /// The resolution of a merged path, walked from the root's sources; nil for the root itself.
    func resolve(path: LayerPath, rootSources: [Source]) throws(Errno) -> Resolution? {
        var resolution: Resolution?
        for name in path.components {
            if let current = resolution, !current.top.isDirectory { throw .notDirectory }
            resolution = try resolve(name, in: resolution?.sources ?? rootSources, root: rootSources)
        }
        return resolution
    }

    /// What `name` in a directory served by `parent` is: a resolution, or absent, together with the form of the
    /// whiteout the upper layer holds for it (which a new object at that name must replace).
    func lookup(_ name: Name, in parent: [Source], root: [Source]) throws(Errno) -> Lookup {
        var candidates = parent.map { $0.child(name) }
        var found: [(source: Source, info: stat)] = []
        var origin: UInt64?
        var index = 0
        scan: while index < candidates.count {
            let candidate = candidates[index]
            index += 1
            let layer = layers[candidate.layer]
            let isLast = index == candidates.count
            let step: CandidateStep
            do {
                step = try layer.at(candidate.path) { spot throws(Errno) -> CandidateStep in
                    try self.examine(spot, candidate, layer, isLast: isLast, continuing: !found.isEmpty)
                }
            } catch .noSuchFileOrDirectory, .notDirectory {
                // The parent directory is missing in this layer (or is no directory there): nothing here.
                continue
            }
            switch step {
            case .missing:
                continue scan
            case let .whiteout(form):
                if found.isEmpty, layer.isUpper { return .absent(upperWhiteout: form) }
                break scan
            case let .object(info, stop, redirect, recordedInode):
                if let first = found.first, !(first.info.isDirectory && info.isDirectory) { break scan }
                if found.isEmpty { origin = recordedInode }
                found.append((candidate, info))
                if stop { break scan }
                guard let redirect else { continue scan }
                let below = candidate.layer
                switch redirect {
                case let .absolute(target):
                    candidates = root.filter { $0.layer > below }.map { Source(layer: $0.layer, path: target) }
                case let .sibling(old):
                    candidates = parent.filter { $0.layer > below }.map { $0.child(old) }
                }
                index = 0
            }
        }
        guard let top = found.first else { return .absent(upperWhiteout: nil) }
        return .found(Resolution(sources: found.map(\.source), top: top.info,
                                 inode: inodeNumber(isRoot: false, found: found, origin: origin)))
    }

    /// What one layer holds at a candidate path.
    private enum CandidateStep {
        case missing
        case whiteout(Whiteout.Format)
        /// `stop`: nothing below merges with it (a non-directory, an opaque directory, the bottom layer).
        case object(stat, stop: Bool, redirect: Redirect?, recordedInode: UInt64?)
    }

    private func examine(_ spot: Spot, _ candidate: Source, _ layer: Layer, isLast: Bool,
                         continuing: Bool) throws(Errno) -> CandidateStep {
        guard let name = spot.name else { return .missing }
        guard let info = try Sys.statIfPresent(spot) else {
            // A `.wh.` file only hides what lies below it; below the last candidate there is nothing.
            if !isLast, let marker = Whiteout.markerName(for: name), try Sys.statIfPresent(Spot(spot.directory, marker)) != nil {
                return .whiteout(.file)
            }
            return .missing
        }
        if Whiteout.isDevice(info) { return .whiteout(.device) }
        guard info.isDirectory else {
            let recorded = layer.isUpper && !continuing ? OriginInode.read(spot, layer: layer, path: candidate.path) : nil
            return .object(info, stop: true, redirect: nil, recordedInode: recorded)
        }
        // Opacity and redirects only matter while there are layers below (an absolute redirect reaches any of
        // them, not only those below the parent); the kernel reads a redirect only where the directory is not opaque.
        if candidate.layer == layers.count - 1 { return .object(info, stop: true, redirect: nil, recordedInode: nil) }
        let directory = try Sys.open(spot, CLinux_O_PATH | CLinux_O_DIRECTORY)
        defer { Sys.close(directory) }
        if try OpaqueDirectory.isOpaque(directory) { return .object(info, stop: true, redirect: nil, recordedInode: nil) }
        let redirect = try Redirect.read(directory, layer: layer, path: candidate.path)
        return .object(info, stop: false, redirect: redirect, recordedInode: nil)
    }

    /// The resolution of an object just made in the upper layer (and open as `descriptor`, if given), which
    /// therefore has no lower origin to take its inode number from.
    func madeInUpper(_ path: LayerPath, descriptor: CInt? = nil) throws(Errno) -> Resolution {
        let (upper, _) = try writable()
        let info = if let descriptor { try Sys.fstat(descriptor) } else { try upper.stat(path) }
        return Resolution(sources: [Source(layer: upper.index, path: path)], top: info,
                          inode: inodeNumbers.number(backing: info.st_ino, device: upper.device))
    }

    func resolveRoot() throws(Errno) -> Resolution {
        var found: [(source: Source, info: stat)] = []
        for layer in layers {
            found.append((Source(layer: layer.index, path: .root), try Sys.stat(Spot(layer.rootFD, nil))))
            if try OpaqueDirectory.isOpaque(layer.rootFD) { break }
        }
        return Resolution(sources: found.map(\.source), top: found[0].info,
                          inode: inodeNumber(isRoot: true, found: found, origin: nil))
    }

    /// The kernel records a merged directory's lower origin and reports the origin's inode number, so a
    /// directory that the upper layer merges with a lower one shows the topmost lower directory's number. The
    /// root always shows the top layer's; a copied-up file shows the number recorded at copy-up (`origin`).
    private func inodeNumber(isRoot: Bool, found: [(source: Source, info: stat)], origin: UInt64?) -> UInt64 {
        if let origin { return origin }
        var source = found[0]
        if !isRoot, source.info.isDirectory, layers[source.source.layer].isUpper, found.count > 1 {
            source = found[1]
        }
        return inodeNumbers.number(backing: source.info.st_ino, device: layers[source.source.layer].device)
    }

    /// The attributes the mount shows for an object, read fresh from its top source.
    func attributes(of source: Source, inode: UInt64, merged: Bool) throws(Errno) -> stat {
        let layer = layers[source.layer]
        return try layer.at(source.path) { spot throws(Errno) in
            shown(try Sys.stat(spot), at: spot, source: source, inode: inode, merged: merged)
        }
    }

    func shown(_ resolution: Resolution) throws(Errno) -> stat {
        let source = resolution.sources[0]
        guard needsAttributes(resolution.top, layers[source.layer]) else {
            return shown(resolution.top, at: nil, source: source, inode: resolution.inode, merged: resolution.isMerged)
        }
        return try layers[source.layer].at(source.path) { spot throws(Errno) in
            shown(resolution.top, at: spot, source: source, inode: resolution.inode, merged: resolution.isMerged)
        }
    }

    /// Whether what the mount shows for an object depends on its extended attributes.
    private func needsAttributes(_ info: stat, _ layer: Layer) -> Bool {
        mapping.permissionsXattr != nil || (layer.isUpper && !info.isDirectory && info.st_nlink > 1)
    }

    /// A backing file's attributes as the mount shows them: the overlay's inode number; nlink 1 for a merged
    /// directory, as the kernel shows it; and, for a hard link the kernel copied up with index=on, the link
    /// count it recorded (its index holds one more link than there are names). `spot` reaches the object for
    /// the attributes that say so; without it they are not looked at.
    func shown(_ info: stat, at spot: Spot?, source: Source, inode: UInt64, merged: Bool) -> stat {
        var shown = info
        shown.st_ino = ino_t(inode)
        if merged { shown.st_nlink = 1 }
        let layer = layers[source.layer]
        if let spot, !info.isDirectory, info.st_nlink > 1, layer.isUpper,
           let count = LinkCount.count(spot, real: info.st_nlink, layer: layer, path: source.path) {
            shown.st_nlink = count
        }
        mapping.present(&shown) { name in spot.flatMap { try? Sys.xattr($0, name) } }
        return shown
    }
}
