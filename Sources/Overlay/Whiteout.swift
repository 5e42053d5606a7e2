import Glibc
import SystemPackage

/// The two on-disk forms of a deleted name (a character device 0/0 with the name itself, or an empty
/// `.wh.NAME` file beside it) and the marker file form of an opaque directory (`.wh..wh..opq`). A marker is
/// recognised by its name and type alone: it is never opened, read or followed.
public enum Whiteout {
    public enum Format: String, Sendable {
        case device = "chardev"
        case file
    }

    static let prefix = Array(".wh.".utf8)
    static let opaqueMarker = Name(trusted: ".wh..wh..opq")

    /// Only a character device 0/0 is a whiteout, as in the kernel; any other device is a device.
    static func isDevice(_ info: stat) -> Bool {
        info.fileType == S_IFCHR && info.st_rdev == 0
    }

    /// What a `.wh.` entry of a directory stands for.
    enum Marker: Equatable {
        /// Hides this name of the layers below.
        case hides(Name)
        /// Makes the directory opaque.
        case opaque
        /// A `.wh.` name that hides nothing a directory could hold (".wh.", ".wh..", ...): only itself.
        case inert
    }

    /// The meaning of an entry called `name`; nil for ordinary names.
    static func marker(_ name: Name) -> Marker? {
        guard name.hasPrefix(prefix) else { return nil }
        if name == opaqueMarker { return .opaque }
        let hidden = Array(name.bytes.dropFirst(prefix.count))
        return Name.isValid(hidden) ? .hides(Name(trusted: hidden)) : .inert
    }

    /// The `.wh.` file that would white out `name`; nil when that name would exceed NAME_MAX, so that no
    /// layer can hold one (a 255-byte name has no file whiteout: only a device can hide it).
    static func markerName(for name: Name) -> Name? {
        let bytes = prefix + name.bytes
        return Name.isValid(bytes) ? Name(trusted: bytes) : nil
    }

    /// Overlay-internal names never appear in the merged view, whatever the user asks for.
    static func isReserved(_ name: Name) -> Bool { name.hasPrefix(prefix) }
}

/// Attribute names as bytes, and the families the overlay treats specially.
enum Xattr {
    static let trustedOverlay = Array("trusted.overlay.".utf8)
    static let userOverlay = Array("user.overlay.".utf8)

    /// The overlay's own bookkeeping: hidden from users, never copied, never taken from an image.
    static func isPrivate(_ name: [UInt8]) -> Bool {
        name.starts(with: trustedOverlay) || name.starts(with: userOverlay)
    }

    /// `trusted.overlay.X` and `user.overlay.X`, in the order the daemon reads them: a root daemon honours
    /// the trusted form first (what the kernel reads) and the user form (what rootless tools write) after; an
    /// unprivileged one can read only the user form.
    static func overlay(_ suffix: String) -> [[UInt8]] {
        let user = userOverlay + Array(suffix.utf8)
        return isRoot ? [trustedOverlay + Array(suffix.utf8), user] : [user]
    }

    /// Where the daemon writes its own attributes: the trusted form as root, else the user form.
    static func overlayForWriting(_ suffix: String) -> [[UInt8]] {
        [trustedOverlay + Array(suffix.utf8), userOverlay + Array(suffix.utf8)]
    }

    static let isRoot = geteuid() == 0
}

/// Attributes the mount answers about itself, never listed and never stored (so `cp -a`, `tar --xattrs` and
/// rsync leave them behind): the layers serving a path, one "INDEX DIRECTORY" line each, top first; and
/// every layer of the mount, "INDEX upper|lower DIRECTORY", which `strata` reads to find a mount's layers.
public enum ProvenanceXattr {
    static let prefix = Array("user.strata.".utf8)
    public static let layer = Array("user.strata.layer".utf8)
    public static let stack = Array("user.strata.stack".utf8)

    static func isProvenance(_ name: [UInt8]) -> Bool { name.starts(with: prefix) }

    /// Asks the mount at `path` through the attribute (an empty answer is one too); the error when it refuses.
    public static func ask(_ name: [UInt8], at path: String) throws(Errno) -> [UInt8] {
        guard let value = try Sys.xattr(givenPath: path, name) else { throw .noData }
        return value
    }

    /// The attribute as a mount answers it at `path`.
    public static func read(_ name: [UInt8], at path: String) -> String? {
        guard let value = try? Sys.xattr(givenPath: path, name), !value.isEmpty else { return nil }
        return String(decoding: value, as: UTF8.self)
    }
}

/// Extended attributes that belong to the overlay's own bookkeeping: hidden from users and never copied.
extension LayerStack {
    /// Attributes users neither see nor set: the overlay's own, Strata's answers about itself, and the
    /// permissions attribute while it stands in for the real owner and mode (copy-up still carries it along).
    func hidesXattr(_ name: [UInt8]) -> Bool {
        Xattr.isPrivate(name) || ProvenanceXattr.isProvenance(name) || name == mapping.permissionsXattr
    }
}

/// Attributes that belong to the overlay or to Strata and must never come from an image: an image carrying
/// `trusted.overlay.redirect` could otherwise steer lookups once its layer is stacked.
public enum ReservedXattr {
    public static func isReserved(_ name: [UInt8]) -> Bool {
        Xattr.isPrivate(name) || ProvenanceXattr.isProvenance(name)
    }
}
