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
    /// Relative, without a leading slash.
    public var path: String
    /// The object's attributes (for markers, the whiteout's or directory's own times and owner).
    public var info: stat
    /// Where to read an object's content, link target and extended attributes.
    public var backing: String
    /// Extended attributes an image carries: user and security ones, never the overlay's own.
    public var xattrs: [(name: String, value: [UInt8])]
}

extension LayerStack {
    /// The top layer's entries in OCI form, sorted by path (parents before children), for a reproducible tar.
    public func exportTopLayer() throws(Errno) -> [ExportedEntry] {
        var entries: [ExportedEntry] = []
        let root = try resolveRoot()
        try exportDirectory("", layer: layers[0], merged: root.sources, root: root.sources, into: &entries)
        return entries.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
    }

    private func exportDirectory(_ path: String, layer: Layer, merged: [Source]?, root: [Source],
                                 into entries: inout [ExportedEntry]) throws(Errno) {
        var directories: [String] = []
        try forEachEntry(layer, path) { (name: String, info: EntryInfo) throws(Errno) in
            let child = RelativePath.child(path, name)
            if let hidden = Whiteout.hiddenName(byMarker: name) {
                if hidden.isEmpty { return }  // the opaque marker: emitted with its directory
                entries.append(try self.marker(.whiteout, child, backing: layer.absolute(child)))
                return
            }
            let full = try info.stat()
            if Whiteout.isDevice(full) {
                entries.append(try self.marker(.whiteout, Whiteout.markerPath(for: child), backing: layer.absolute(child)))
                return
            }
            entries.append(ExportedEntry(kind: .object, path: child, info: full, backing: layer.absolute(child),
                                         xattrs: try Self.imageXattrs(layer.absolute(child))))
            if full.isDirectory { directories.append(name) }
        }
        for name in directories {
            let child = RelativePath.child(path, name)
            let absolute = layer.absolute(child)
            let sources = merged.flatMap { try? resolve(name, in: $0, root: root).sources }
            if let sources, Redirect.read(absolute) != nil {
                // Renamed: opaque at its new path, with everything the merged view shows below it.
                entries.append(try marker(.opaqueMarker, child + "/" + Whiteout.opaqueMarker, backing: absolute))
                try exportMerged(child, sources, root: root, into: &entries)
                continue
            }
            if OpaqueDirectory.isOpaque(layer, child) {
                entries.append(try marker(.opaqueMarker, child + "/" + Whiteout.opaqueMarker, backing: absolute))
            }
            try exportDirectory(child, layer: layer, merged: sources, root: root, into: &entries)
        }
    }

    /// Everything the merged view shows below `path`, each object from the layer that serves it.
    private func exportMerged(_ path: String, _ sources: [Source], root: [Source],
                              into entries: inout [ExportedEntry]) throws(Errno) {
        for entry in try mergedEntries(sources) {
            let resolution = try resolve(entry.name, in: sources, root: root)
            let backing = absolute(resolution.sources[0])
            let child = path + "/" + entry.name
            entries.append(ExportedEntry(kind: .object, path: child, info: resolution.top, backing: backing,
                                         xattrs: try Self.imageXattrs(backing)))
            if resolution.top.isDirectory { try exportMerged(child, resolution.sources, root: root, into: &entries) }
        }
    }

    private func marker(_ kind: ExportedEntry.Kind, _ path: String, backing: String) throws(Errno) -> ExportedEntry {
        var info = try Sys.stat(AT_FDCWD, backing)
        info.st_mode = S_IFREG
        info.st_size = 0
        return ExportedEntry(kind: kind, path: path, info: info, backing: backing, xattrs: [])
    }

    static func imageXattrs(_ path: String) throws(Errno) -> [(name: String, value: [UInt8])] {
        var kept: [(name: String, value: [UInt8])] = []
        for name in try Sys.xattrNames(path).sorted()
        where (name.hasPrefix("user.") || name.hasPrefix("security.")) && !PrivateXattr.isPrivate(name) {
            if let value = try Sys.xattr(path, name) { kept.append((name, value)) }
        }
        return kept
    }
}
