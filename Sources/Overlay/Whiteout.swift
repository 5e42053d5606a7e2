import Glibc

/// The two on-disk forms of a deleted name (a character device 0/0 with the name itself, or an empty
/// `.wh.NAME` file beside it) and the marker file form of an opaque directory (`.wh..wh..opq`).
public enum Whiteout {
    public enum Format: String, Sendable {
        case device = "chardev"
        case file
    }

    static let prefix = ".wh."
    static let opaqueMarker = ".wh..wh..opq"

    static func isDevice(_ info: stat) -> Bool {
        info.fileType == S_IFCHR && info.st_rdev == 0
    }

    /// The name a directory entry whites out, when the entry is a `.wh.NAME` file; nil for ordinary names.
    /// The opaque marker hides no single name: it reports itself as hiding "" so that callers skip it.
    static func hiddenName(byMarker name: String) -> String? {
        guard name.hasPrefix(prefix) else { return nil }
        return name == opaqueMarker ? "" : String(name.dropFirst(prefix.count))
    }

    static func markerName(for name: String) -> String { prefix + name }

    /// The `.wh.` file beside `path` that would white it out.
    static func markerPath(for path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return markerName(for: path) }
        return path[...slash] + markerName(for: String(path[path.index(after: slash)...]))
    }

    /// Overlay-internal names never appear in the merged view, whatever the user asks for.
    static func isReserved(_ name: String) -> Bool { name.hasPrefix(prefix) }
}

/// A directory stops the descent into lower layers when it carries an opaque xattr (trusted or user
/// namespace, as the kernel and rootless tools write them) or holds the `.wh..wh..opq` marker.
enum OpaqueDirectory {
    static let xattrNames = ["trusted.overlay.opaque", "user.overlay.opaque"]

    static func isOpaque(_ layer: Layer, _ path: String) -> Bool {
        let absolute = layer.absolute(path)
        for name in xattrNames {
            if let value = try? Sys.xattr(absolute, name), value == Array("y".utf8) { return true }
        }
        let marker = RelativePath.child(path, Whiteout.opaqueMarker)
        return (try? Sys.statIfPresent(layer.rootFD, marker)) != nil
    }
}

/// Extended attributes that belong to the overlay's own bookkeeping: hidden from users and never copied.
extension LayerStack {
    /// Attributes users neither see nor set: the overlay's own, and the permissions attribute while it stands in
    /// for the real owner and mode (copy-up still carries the latter along).
    func hidesXattr(_ name: String) -> Bool {
        PrivateXattr.isPrivate(name) || name == mapping.permissionsXattr || name.hasPrefix(ProvenanceXattr.prefix)
    }
}

/// Attributes the mount answers about itself, never listed and never stored (so `cp -a`, `tar --xattrs` and
/// rsync leave them behind): the layers serving a path, one "INDEX DIRECTORY" line each, top first; and
/// every layer of the mount, "INDEX upper|lower DIRECTORY", which `strata` reads to find a mount's layers.
public enum ProvenanceXattr {
    static let prefix = "user.strata."
    public static let layer = "user.strata.layer"
    public static let stack = "user.strata.stack"

    /// The attribute as a mount answers it at `path`.
    public static func read(_ name: String, at path: String) -> String? {
        guard let value = try? Sys.xattr(path, name), !value.isEmpty else { return nil }
        return String(decoding: value, as: UTF8.self)
    }
}

enum PrivateXattr {
    static let prefixes = ["trusted.overlay.", "user.overlay."]

    static func isPrivate(_ name: String) -> Bool {
        prefixes.contains { name.hasPrefix($0) }
    }
}
