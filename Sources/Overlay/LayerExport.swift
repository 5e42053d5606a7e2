import CLinux
import Glibc
import SystemPackage

/// One entry of a layer as OCI layer tarballs express it: objects, whiteouts (`.wh.NAME`) and opaque markers
/// (`.wh..wh..opq`); OCI layers have no redirects, so a renamed directory comes out whole at its new path.
public struct ExportedEntry: Sendable {
    public enum Kind: Sendable {
        case object
        /// `path` is the `.wh.NAME` entry itself.
        case whiteout
        /// `path` is the directory's `.wh..wh..opq` entry.
        case opaqueMarker
    }

    public var kind: Kind
    /// In the layer (and the merged view).
    public var path: LayerPath
    /// The object's attributes (for markers, the whiteout's or directory's own times and owner).
    public var info: stat
    /// Where the object's content is: a layer and the path there.
    let source: Source
    /// A symbolic link's target, as bytes.
    public var linkTarget: [UInt8]?
    /// Extended attributes an image carries: user and security ones, never the overlay's own.
    public var xattrs: [(name: [UInt8], value: [UInt8])]
}

extension LayerStack {
    /// The top layer's entries in OCI form, sorted by path (parents before children), for a reproducible tar.
    public func exportTopLayer() throws(Errno) -> [ExportedEntry] {
        var entries: [ExportedEntry] = []
        let root = try resolveRoot()
        try exportDirectory(.root, layer: layers[0], merged: root.sources, root: root.sources, into: &entries)
        return entries.sorted { $0.path.bytes.lexicographicallyPrecedes($1.path.bytes) }
    }

    /// Opens an exported object's content for reading; the caller closes it.
    public func openContent(_ entry: ExportedEntry) throws(Errno) -> CInt {
        try layers[entry.source.layer].at(entry.source.path) { spot throws(Errno) in try Sys.open(spot, O_RDONLY) }
    }

    private func exportDirectory(_ path: LayerPath, layer: Layer, merged: [Source]?, root: [Source],
                                 into entries: inout [ExportedEntry]) throws(Errno) {
        var directories: [Name] = []
        try forEachEntry(layer, path) { (name: Name, info: EntryInfo) throws(Errno) in
            let child = path.appending(name)
            if let marker = Whiteout.marker(name) {
                // The opaque marker is emitted with its directory; an inert `.wh.` name hides nothing.
                if case .hides = marker { entries.append(try self.marker(.whiteout, child, of: Source(layer: layer.index, path: child))) }
                return
            }
            let full = try info.stat()
            if Whiteout.isDevice(full) {
                guard let markerName = Whiteout.markerName(for: name) else { throw .fileNameTooLong }
                entries.append(try self.marker(.whiteout, path.appending(markerName), of: Source(layer: layer.index, path: child)))
                return
            }
            // A metadata-only file's content is its data's, below it.
            var content = Source(layer: layer.index, path: child)
            if full.fileType == S_IFREG, let merged, try Metacopy.read(info.spot, layer: layer, path: child),
               let data = try self.resolve(name, in: merged, root: root).data {
                content = data
            }
            entries.append(try self.object(child, info: full, at: info.spot, source: content))
            if full.isDirectory { directories.append(name) }
        }
        for name in directories {
            let child = path.appending(name)
            let sources = merged.flatMap { try? resolve(name, in: $0, root: root).sources }
            let here = Source(layer: layer.index, path: child)
            // A redirect means something only where layers lie below (an imported root filesystem has none).
            if let sources, layer.index < layers.count - 1, carriesRedirect(layer, child) {
                // Renamed: opaque at its new path, with everything the merged view shows below it.
                entries.append(try marker(.opaqueMarker, child.appending(Whiteout.opaqueMarker), of: here))
                try exportMerged(child, sources, root: root, into: &entries)
                continue
            }
            if try OpaqueDirectory.isOpaque(layer, child) {
                entries.append(try marker(.opaqueMarker, child.appending(Whiteout.opaqueMarker), of: here))
            }
            try exportDirectory(child, layer: layer, merged: sources, root: root, into: &entries)
        }
    }

    /// Everything the merged view shows below `path`, each object from the layer that serves it.
    private func exportMerged(_ path: LayerPath, _ sources: [Source], root: [Source],
                              into entries: inout [ExportedEntry]) throws(Errno) {
        for entry in try mergedEntries(sources) {
            let resolution = try resolve(entry.name, in: sources, root: root)
            let top = resolution.sources[0]
            let child = path.appending(entry.name)
            try layers[top.layer].at(top.path) { spot throws(Errno) in
                entries.append(try object(child, info: resolution.top, at: spot, source: resolution.data ?? top))
            }
            if resolution.top.isDirectory { try exportMerged(child, resolution.sources, root: root, into: &entries) }
        }
    }

    private func object(_ path: LayerPath, info: stat, at spot: Spot, source: Source) throws(Errno) -> ExportedEntry {
        ExportedEntry(kind: .object, path: path, info: info, source: source,
                      linkTarget: info.fileType == S_IFLNK ? try Sys.readlink(spot) : nil,
                      xattrs: try Self.imageXattrs(spot))
    }

    private func marker(_ kind: ExportedEntry.Kind, _ path: LayerPath, of source: Source) throws(Errno) -> ExportedEntry {
        var info = try layers[source.layer].stat(source.path)
        info.st_mode = S_IFREG
        info.st_size = 0
        return ExportedEntry(kind: kind, path: path, info: info, source: source, linkTarget: nil, xattrs: [])
    }

    static func imageXattrs(_ spot: Spot) throws(Errno) -> [(name: [UInt8], value: [UInt8])] {
        var kept: [(name: [UInt8], value: [UInt8])] = []
        let user = Array("user.".utf8), security = Array("security.".utf8)
        for name in try Sys.xattrNames(spot).sorted(by: { $0.lexicographicallyPrecedes($1) })
        where (name.starts(with: user) || name.starts(with: security)) && !Xattr.isPrivate(name)
            && !ProvenanceXattr.isProvenance(name) {
            if let value = try Sys.xattr(spot, name) { kept.append((name, value)) }
        }
        return kept
    }
}

extension LayerStack {
    /// How many overlay-private or Strata attributes the top layer's objects carry (which an export leaves out).
    public func reservedXattrCount() throws(Errno) -> Int {
        var count = 0
        var pending: [LayerPath] = [.root]
        let layer = layers[0]
        count += try Sys.xattrNames(Spot(layer.rootFD, nil)).filter(ReservedXattr.isReserved).count
        while let path = pending.popLast() {
            try forEachEntry(layer, path) { (name, info: EntryInfo) throws(Errno) in
                count += (try? Sys.xattrNames(info.spot))?.filter(ReservedXattr.isReserved).count ?? 0
                if info.type == UInt8(DT_DIR) { pending.append(path.appending(name)) }
            }
        }
        return count
    }
}
