import Glibc
import SystemPackage

/// Where a merged path lives: the layers that serve it, top first. A non-directory has exactly one;
/// a directory has every layer that contributes entries, down to the first opaque one.
struct Resolution {
    var layers: [Int]
    var top: stat
    /// The st_ino and nlink the mount shows, which for directories differ from the top layer's (see `init`).
    var inode: UInt64
    var isMerged: Bool { top.isDirectory && layers.count > 1 }
}

extension LayerStack {
    /// Looks `name` up in a directory served by `parentLayers`, from the top layer down, as the kernel does:
    /// a whiteout ends the search with ENOENT, a non-directory is served by the first layer holding it, and a
    /// directory merges with lower directories of the same name until one is opaque or a lower layer holds a
    /// whiteout or a non-directory there.
    func resolve(_ path: String, name: String, parentLayers: [Int]) throws(Errno) -> Resolution {
        var found: [(layer: Int, info: stat)] = []
        for (position, index) in parentLayers.enumerated() {
            let layer = layers[index]
            guard let info = try Sys.statIfPresent(layer.rootFD, path) else {
                if try hasWhiteoutFile(layer, path: path, name: name) { break }
                continue
            }
            if Whiteout.isDevice(info) { break }
            if let first = found.first, !(first.info.isDirectory && info.isDirectory) { break }
            found.append((index, info))
            // Opacity only matters while there are layers below to hide.
            let isLast = position == parentLayers.count - 1
            if !info.isDirectory || isLast || OpaqueDirectory.isOpaque(layer, path) { break }
        }
        guard let top = found.first else { throw .noSuchFileOrDirectory }
        return Resolution(layers: found.map(\.layer), top: top.info,
                          inode: inodeNumber(path: path, found: found))
    }

    func resolveRoot() throws(Errno) -> Resolution {
        var found: [(layer: Int, info: stat)] = []
        for layer in layers {
            found.append((layer.index, try Sys.stat(layer.rootFD, ".")))
            if OpaqueDirectory.isOpaque(layer, "") { break }
        }
        return Resolution(layers: found.map(\.layer), top: found[0].info, inode: inodeNumber(path: "", found: found))
    }

    /// The kernel records a merged directory's lower origin and reports the origin's inode number, so a
    /// directory that the upper layer merges with a lower one shows the topmost lower directory's number. The
    /// root always shows the top layer's.
    private func inodeNumber(path: String, found: [(layer: Int, info: stat)]) -> UInt64 {
        var source = found[0]
        if !path.isEmpty, source.info.isDirectory, layers[source.layer].isUpper, found.count > 1 {
            source = found[1]
        }
        if layers[source.layer].isUpper, !source.info.isDirectory, let origin = OriginInode.read(layers[source.layer].absolute(path)) {
            return origin
        }
        return inodeNumbers.number(backing: source.info.st_ino, device: layers[source.layer].device)
    }

    private func hasWhiteoutFile(_ layer: Layer, path: String, name: String) throws(Errno) -> Bool {
        let parent = path.dropLast(name.count)
        return try Sys.statIfPresent(layer.rootFD, parent + Whiteout.markerName(for: name)) != nil
    }

    /// The attributes the mount shows for a resolved path, read fresh from its top layer.
    func attributes(of path: String, layer: Int, inode: UInt64, merged: Bool) throws(Errno) -> stat {
        var info = try Sys.stat(layers[layer].rootFD, layers[layer].relative(path))
        info.st_ino = ino_t(inode)
        if merged { info.st_nlink = 1 }
        return info
    }
}
