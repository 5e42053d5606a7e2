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
    /// Parallel to `sources`: a directory's lower layers as read during the lookup (nil where not read).
    var indexes: [DirectoryIndex?] = []
    /// For a file whose top source holds only its metadata (the kernel's metacopy): where its data is.
    var data: Source?
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
    /// `indexes` (parallel to `parent`) are the layers' directories as read once, which answer for names they
    /// do not hold without a system call.
    func resolve(_ name: Name, in parent: [Source], indexes: [(any LayerListing)?] = [], root: [Source],
                 open: OpenDirectories? = nil) throws(Errno) -> Resolution {
        guard case let .found(resolution) = try lookup(name, in: parent, indexes: indexes, root: root, open: open) else {
            throw .noSuchFileOrDirectory
        }
        return resolution
    }

    /// The resolution of a merged path, walked from the root's sources; nil for the root itself.
    func resolve(path: LayerPath, rootSources: [Source]) throws(Errno) -> Resolution? {
        var resolution: Resolution?
        for name in path.components {
            if let current = resolution, !current.top.isDirectory { throw .notDirectory }
            resolution = try resolve(name, in: resolution?.sources ?? rootSources, indexes: resolution?.indexes ?? [], root: rootSources)
        }
        return resolution
    }

    /// One layer's candidate for a name: where it would be, and that layer's index of the directory holding it
    /// when the lookup has one.
    private struct Candidate {
        let source: Source
        let index: (any LayerListing)?
    }

    /// What `name` in a directory served by `parent` is: a resolution, or absent, together with the form of the
    /// whiteout the upper layer holds for it (which a new object at that name must replace).
    func lookup(_ name: Name, in parent: [Source], indexes: [(any LayerListing)?] = [], root: [Source],
                open: OpenDirectories? = nil) throws(Errno) -> Lookup {
        func candidatesFor(_ name: Name, below layer: Int) -> [Candidate] {
            parent.indices.filter { parent[$0].layer > layer }.map { position in
                Candidate(source: parent[position].child(name), index: position < indexes.count ? indexes[position] : nil)
            }
        }
        var candidates = candidatesFor(name, below: -1)
        var found: [(source: Source, info: stat, index: DirectoryIndex?)] = []
        var origin: UInt64?
        var position = 0
        scan: while position < candidates.count {
            let candidate = candidates[position]
            position += 1
            let layer = layers[candidate.source.layer]
            let step = try examine(candidate, layer, isLast: position == candidates.count, continuing: !found.isEmpty, open: open)
            switch step {
            case .missing:
                continue scan
            case let .whiteout(form):
                if found.isEmpty, layer.isUpper { return .absent(upperWhiteout: form) }
                break scan
            case let .metacopy(info, redirect, recordedInode):
                if !found.isEmpty { break scan }
                let (data, dataInfo) = try findData(name, redirect: redirect, below: candidate.source.layer, parent: parent,
                                                    indexes: indexes, root: root)
                // Metadata from the top, the blocks the data uses from below, and the data's number (as the kernel
                // shows its origin's).
                var shown = info
                shown.st_blocks = dataInfo.st_blocks
                let inode = recordedInode ?? inodeNumbers.number(backing: dataInfo.st_ino, device: layers[data.layer].device)
                return .found(Resolution(sources: [candidate.source], data: data, top: shown, inode: inode))
            case let .object(info, stop, redirect, recordedInode, index):
                if let first = found.first, !(first.info.isDirectory && info.isDirectory) { break scan }
                if found.isEmpty { origin = recordedInode }
                found.append((candidate.source, info, index))
                if stop { break scan }
                guard let redirect else { continue scan }
                let below = candidate.source.layer
                switch redirect {
                case let .absolute(target):
                    candidates = root.filter { $0.layer > below }.map { Candidate(source: Source(layer: $0.layer, path: target), index: nil) }
                case let .sibling(old):
                    candidates = candidatesFor(old, below: below)
                }
                position = 0
            }
        }
        guard let top = found.first else { return .absent(upperWhiteout: nil) }
        return .found(Resolution(sources: found.map(\.source), indexes: found.map(\.index), top: top.info,
                                 inode: inodeNumber(isRoot: false, found: found.map { ($0.source, $0.info) }, origin: origin)))
    }

    /// Where a metadata-only file's data is: the first regular file below it at its name (or at its redirect),
    /// past other metadata-only ones. None is EIO, as the kernel answers for such a file.
    private func findData(_ name: Name, redirect: Redirect?, below layer: Int, parent: [Source],
                          indexes: [(any LayerListing)?], root: [Source]) throws(Errno) -> (Source, stat) {
        var candidates: [Candidate]
        switch redirect {
        case let .absolute(target)?:
            candidates = root.filter { $0.layer > layer }.map { Candidate(source: Source(layer: $0.layer, path: target), index: nil) }
        case let .sibling(old)?:
            candidates = parent.indices.filter { parent[$0].layer > layer }.map { Candidate(source: parent[$0].child(old), index: nil) }
        case nil:
            candidates = parent.indices.filter { parent[$0].layer > layer }.map { position in
                Candidate(source: parent[position].child(name), index: position < indexes.count ? indexes[position] : nil)
            }
        }
        for candidate in candidates {
            switch try examine(candidate, layers[candidate.source.layer], isLast: false, continuing: true) {
            case .missing: continue
            case .metacopy: continue
            case let .object(info, _, _, _, _) where info.fileType == S_IFREG: return (candidate.source, info)
            case .object, .whiteout: break
            }
            break
        }
        throw Impossible.state("no data below the metadata-only file \(name.escaped) in layer \(layer)")
    }

    /// What one layer holds at a candidate path.
    private enum CandidateStep {
        case missing
        case whiteout(Whiteout.Format)
        /// `stop`: nothing below merges with it (a non-directory, an opaque directory, the bottom layer). `index`:
        /// a lower directory read while it was looked at.
        case object(stat, stop: Bool, redirect: Redirect?, recordedInode: UInt64?, index: DirectoryIndex?)
        /// A file that holds only metadata; its data is below (at `redirect`, when it was renamed).
        case metacopy(stat, redirect: Redirect?, recordedInode: UInt64?)
    }

    private func examine(_ candidate: Candidate, _ layer: Layer, isLast: Bool, continuing: Bool,
                         open: OpenDirectories? = nil) throws(Errno) -> CandidateStep {
        guard let name = candidate.source.path.name else { return .missing }
        if let index = candidate.index {
            switch index.answer(for: name) {
            case .absent: return .missing
            // A `.wh.` file only hides what lies below it; below the last candidate there is nothing.
            case .whiteout(.file) where isLast: return .missing
            case let .whiteout(form): return .whiteout(form)
            case .present: break
            }
        }
        do {
            let examine = { (spot: Spot) throws(Errno) -> CandidateStep in
                try self.examine(spot, candidate.source, layer, isLast: isLast, continuing: continuing)
            }
            if let open { return try open.at(candidate.source.path, in: layer, examine) }
            return try layer.at(candidate.source.path, examine)
        } catch .noSuchFileOrDirectory, .notDirectory {
            // The parent directory is missing in this layer (or is no directory there): nothing here.
            return .missing
        }
    }

    private func examine(_ spot: Spot, _ candidate: Source, _ layer: Layer, isLast: Bool,
                         continuing: Bool) throws(Errno) -> CandidateStep {
        guard let name = spot.name else { return .missing }
        guard let info = try Sys.statIfPresent(spot) else {
            if !isLast, let marker = Whiteout.markerName(for: name), try Sys.statIfPresent(Spot(spot.directory, marker)) != nil {
                return .whiteout(.file)
            }
            return .missing
        }
        if Whiteout.isDevice(info) { return .whiteout(.device) }
        guard info.isDirectory else {
            let recorded = layer.isUpper && !continuing ? OriginInode.read(spot, layer: layer, path: candidate.path) : nil
            // Below the bottom layer there is no data a metadata-only file could point at.
            if info.fileType == S_IFREG, candidate.layer < layers.count - 1, try Metacopy.read(spot, layer: layer, path: candidate.path) {
                return .metacopy(info, redirect: try Redirect.read(spot, layer: layer, path: candidate.path), recordedInode: recorded)
            }
            return .object(info, stop: true, redirect: nil, recordedInode: recorded, index: nil)
        }
        // Opacity and redirects only matter while there are layers below (an absolute redirect reaches any of
        // them, not only those below the parent); the kernel reads a redirect only where the directory is not opaque.
        if candidate.layer == layers.count - 1 { return .object(info, stop: true, redirect: nil, recordedInode: nil, index: nil) }
        guard !layer.isUpper else {
            // The upper layer changes with the mount: its index is read only under the namespace lock, so here
            // its markers are read on their own.
            let directory = try Sys.open(spot, CLinux_O_PATH | CLinux_O_DIRECTORY)
            defer { Sys.close(directory) }
            if try OpaqueDirectory.isOpaque(directory) { return .object(info, stop: true, redirect: nil, recordedInode: nil, index: nil) }
            let redirect = try Redirect.read(Spot(directory, nil), layer: layer, path: candidate.path)
            return .object(info, stop: false, redirect: redirect, recordedInode: nil, index: nil)
        }
        // A lower directory is read whole now (unless a walk read it ahead): its markers decide this lookup, and
        // its names the next ones.
        let index: DirectoryIndex
        if let ahead = prefetch.take(Prefetch.Key(layer: layer.index, path: candidate.path)) {
            index = ahead
        } else {
            let directory = try Sys.open(spot, O_RDONLY | CLinux_O_DIRECTORY)
            defer { Sys.close(directory) }
            index = try DirectoryIndex.read(directory, layer: layer, path: candidate.path)
        }
        if index.isOpaque { return .object(info, stop: true, redirect: nil, recordedInode: nil, index: index) }
        let redirect = try index.redirect?.get()
        return .object(info, stop: false, redirect: redirect, recordedInode: nil, index: index)
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

    /// The attributes the mount shows for an object, read fresh from its top source (and, for a metadata-only
    /// file, the blocks its data uses from `data`).
    func attributes(of source: Source, data: Source? = nil, inode: UInt64, merged: Bool) throws(Errno) -> stat {
        let layer = layers[source.layer]
        var info = try layer.at(source.path) { spot throws(Errno) in
            shown(try Sys.stat(spot), at: spot, source: source, inode: inode, merged: merged)
        }
        if let data { info.st_blocks = try layers[data.layer].stat(data.path).st_blocks }
        return info
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
