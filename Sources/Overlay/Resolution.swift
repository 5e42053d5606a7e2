import Glibc
import SystemPackage

/// Paths within a layer or the merged view are relative, "" being the root.
enum RelativePath {
    static func child(_ parent: String, _ name: String) -> String {
        parent.isEmpty ? name : parent + "/" + name
    }

    static func parent(of path: String) -> String {
        String(path.prefix(upTo: path.lastIndex(of: "/") ?? path.startIndex))
    }
}

/// One layer's part of a merged path: the layer, and the path there. Below a renamed (redirected) directory
/// the lower layers hold its contents under its old path, so the path differs from layer to layer.
struct Source: Sendable, Equatable {
    let layer: Int
    let path: String

    func child(_ name: String) -> Source {
        Source(layer: layer, path: RelativePath.child(path, name))
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
    func resolve(_ name: String, in parent: [Source], root: [Source]) throws(Errno) -> Resolution {
        guard case let .found(resolution) = try lookup(name, in: parent, root: root) else { throw .noSuchFileOrDirectory }
        return resolution
    }

    /// The resolution of a relative path, walked from the root's sources; nil for the root itself.
    func resolve(path: String, rootSources: [Source]) throws(Errno) -> Resolution? {
        var resolution: Resolution?
        for name in path.split(separator: "/") {
            resolution = try resolve(String(name), in: resolution?.sources ?? rootSources, root: rootSources)
        }
        return resolution
    }

    /// What `name` in a directory served by `parent` is: a resolution, or absent, together with the form of the
    /// whiteout the upper layer holds for it (which a new object at that name must replace).
    func lookup(_ name: String, in parent: [Source], root: [Source]) throws(Errno) -> Lookup {
        var candidates = parent.map { $0.child(name) }
        var found: [(source: Source, info: stat)] = []
        var index = 0
        while index < candidates.count {
            let candidate = candidates[index]
            index += 1
            let layer = layers[candidate.layer]
            guard let info = try Sys.statIfPresent(layer.rootFD, candidate.path) else {
                // A `.wh.` file only hides what lies below it; below the last candidate there is nothing.
                if index < candidates.count, try hasWhiteoutFile(layer, candidate.path) {
                    if found.isEmpty, layer.isUpper { return .absent(upperWhiteout: .file) }
                    break
                }
                continue
            }
            if Whiteout.isDevice(info) {
                if found.isEmpty, layer.isUpper { return .absent(upperWhiteout: .device) }
                break
            }
            if let first = found.first, !(first.info.isDirectory && info.isDirectory) { break }
            found.append((candidate, info))
            // Opacity and redirects only matter while there are layers below (an absolute redirect reaches any of
            // them, not only those below the parent).
            if !info.isDirectory || candidate.layer == layers.count - 1 || OpaqueDirectory.isOpaque(layer, candidate.path) {
                break
            }
            if let redirect = Redirect.read(layer.absolute(candidate.path)) {
                let below = candidate.layer
                if redirect.hasPrefix("/") {
                    let target = String(redirect.dropFirst())
                    candidates = root.filter { $0.layer > below }.map { Source(layer: $0.layer, path: target) }
                } else {
                    candidates = parent.filter { $0.layer > below }.map { $0.child(redirect) }
                }
                index = 0
            }
        }
        guard let top = found.first else { return .absent(upperWhiteout: nil) }
        return .found(Resolution(sources: found.map(\.source), top: top.info, inode: inodeNumber(isRoot: false, found: found)))
    }

    /// The resolution of an object just made in the upper layer (and open as `descriptor`, if given), which
    /// therefore has no lower origin to take its inode number from.
    func madeInUpper(_ path: String, descriptor: CInt? = nil) throws(Errno) -> Resolution {
        let (upper, _) = try writable()
        let source = Source(layer: upper.index, path: path)
        let info = if let descriptor { try Sys.fstat(descriptor) } else { try Sys.stat(upper.rootFD, path) }
        return Resolution(sources: [source], top: info, inode: inodeNumbers.number(backing: info.st_ino, device: upper.device))
    }

    func resolveRoot() throws(Errno) -> Resolution {
        var found: [(source: Source, info: stat)] = []
        for layer in layers {
            found.append((Source(layer: layer.index, path: ""), try Sys.stat(layer.rootFD, ".")))
            if OpaqueDirectory.isOpaque(layer, "") { break }
        }
        return Resolution(sources: found.map(\.source), top: found[0].info, inode: inodeNumber(isRoot: true, found: found))
    }

    /// The kernel records a merged directory's lower origin and reports the origin's inode number, so a
    /// directory that the upper layer merges with a lower one shows the topmost lower directory's number. The
    /// root always shows the top layer's; a copied-up file shows the number recorded at copy-up.
    private func inodeNumber(isRoot: Bool, found: [(source: Source, info: stat)]) -> UInt64 {
        var source = found[0]
        if !isRoot, source.info.isDirectory, layers[source.source.layer].isUpper, found.count > 1 {
            source = found[1]
        }
        let layer = layers[source.source.layer]
        if layer.isUpper, !source.info.isDirectory, let origin = OriginInode.read(layer.absolute(source.source.path)) {
            return origin
        }
        return inodeNumbers.number(backing: source.info.st_ino, device: layer.device)
    }

    private func hasWhiteoutFile(_ layer: Layer, _ path: String) throws(Errno) -> Bool {
        try Sys.statIfPresent(layer.rootFD, Whiteout.markerPath(for: path)) != nil
    }

    /// The attributes the mount shows for a node, read fresh from its top source.
    func attributes(of node: Node) throws(Errno) -> stat {
        let source = node.sources[0]
        let info = try Sys.stat(layers[source.layer].rootFD, layers[source.layer].relative(source.path))
        return shown(info, source: source, inode: node.inode, merged: node.isMerged)
    }

    func shown(_ resolution: Resolution) -> stat {
        shown(resolution.top, source: resolution.sources[0], inode: resolution.inode, merged: resolution.isMerged)
    }

    /// A backing file's attributes as the mount shows them: the overlay's inode number; nlink 1 for a merged
    /// directory, as the kernel shows it; and, for a hard link the kernel copied up with index=on, the link
    /// count it recorded (its index holds one more link than there are names).
    func shown(_ info: stat, source: Source, inode: UInt64, merged: Bool) -> stat {
        var shown = info
        shown.st_ino = ino_t(inode)
        if merged { shown.st_nlink = 1 }
        if !info.isDirectory, info.st_nlink > 1, layers[source.layer].isUpper,
           let recorded = LinkCount.read(absolute(source)), recorded.first == "U", let delta = Int(recorded.dropFirst()) {
            shown.st_nlink = nlink_t(max(1, Int(info.st_nlink) + delta))
        }
        mapping.present(&shown) { try? Sys.xattr(absolute(source), $0) }
        return shown
    }
}

/// The kernel's `overlay.nlink`: a hard link's count relative to the upper file's ("U-1").
enum LinkCount {
    static func read(_ absolutePath: String) -> String? {
        for name in ["trusted.overlay.nlink", "user.overlay.nlink"] {
            if let value = try? Sys.xattr(absolutePath, name) { return String(decoding: value, as: UTF8.self) }
        }
        return nil
    }
}

/// A renamed directory's pointer to where its lower contents still are: its old name in the same parent, or
/// its old path from the layer root (with a leading slash), in the kernel's `overlay.redirect` attribute.
enum Redirect {
    static let xattrNames = ["trusted.overlay.redirect", "user.overlay.redirect"]

    static func read(_ absolutePath: String) -> String? {
        for name in xattrNames {
            if let value = try? Sys.xattr(absolutePath, name), !value.isEmpty {
                return String(decoding: value, as: UTF8.self)
            }
        }
        return nil
    }
}
