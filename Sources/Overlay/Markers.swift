import CLinux
import Glibc
import Logging
import Synchronization
import SystemPackage

// The overlay's markers that carry a value, each validated as the kernel validates it before anything is
// followed. A value that does not parse is an error for that object (or, where the kernel ignores it, ignored),
// never a reason to look anywhere else.

/// A directory stops the descent into lower layers when it carries an opaque xattr of "y" (trusted or user
/// namespace, as the kernel and rootless tools write them) or holds the `.wh..wh..opq` marker. Any other
/// value is not opaque, as in the kernel.
enum OpaqueDirectory {
    static let xattrNames = Xattr.overlay("opaque")
    static let writableNames = Xattr.overlayForWriting("opaque")

    /// `directory` is an `O_PATH` descriptor of the directory itself.
    static func isOpaque(_ directory: CInt) throws(Errno) -> Bool {
        for name in xattrNames where try Sys.xattr(Spot(directory, nil), name) == [0x79] { return true }
        return try Sys.statIfPresent(Spot(directory, Whiteout.opaqueMarker)) != nil
    }

    static func isOpaque(_ layer: Layer, _ path: LayerPath) throws(Errno) -> Bool {
        try layer.inDirectory(path) { fd throws(Errno) in try isOpaque(fd) }
    }
}

/// A renamed directory's pointer to where its lower contents still are, in the kernel's `overlay.redirect`
/// attribute: its old name in the same parent, or its old path from the layer root (with a leading slash).
enum Redirect: Equatable {
    case sibling(Name)
    case absolute(LayerPath)

    static let xattrNames = Xattr.overlay("redirect")
    static let writableNames = Xattr.overlayForWriting("redirect")

    /// The redirect an object carries (a directory, or a metadata-only file), nil when it carries none. An invalid value fails with the error the
    /// kernel gives for it (EINVAL for a malformed value, EACCES for a "." or ".." component), once logged.
    static func read(_ spot: Spot, layer: Layer, path: LayerPath) throws(Errno) -> Redirect? {
        for name in xattrNames {
            guard let value = try Sys.xattr(spot, name) else { continue }
            do {
                return try parse(value)
            } catch {
                MarkerLog.invalid("redirect", value: value, layer: layer, path: path, error: error)
                throw error
            }
        }
        return nil
    }

    /// Parses a value as the kernel's ovl_get_redirect does, and also refuses names no directory can hold.
    static func parse(_ value: [UInt8]) throws(Errno) -> Redirect {
        guard !value.isEmpty, !value.contains(0), value.count < Int(CLinux_PATH_MAX) else { throw .invalidArgument }
        guard value[0] == 0x2F else {
            if value.contains(0x2F) { throw .invalidArgument }
            return .sibling(try component(value))
        }
        var names: [Name] = []
        for part in value.dropFirst().split(separator: 0x2F, omittingEmptySubsequences: false) {
            names.append(try component(Array(part)))
        }
        return .absolute(LayerPath(names))
    }

    private static func component(_ bytes: [UInt8]) throws(Errno) -> Name {
        if bytes.isEmpty || bytes.count > Int(CLinux_NAME_MAX) { throw .invalidArgument }
        if bytes == [0x2E] || bytes == [0x2E, 0x2E] { throw .permissionDenied }
        return try Name(bytes)
    }

    /// The value that records it.
    var value: [UInt8] {
        switch self {
        case let .sibling(name): name.bytes
        case let .absolute(path): [0x2F] + path.bytes
        }
    }
}

/// The kernel's `overlay.nlink`: a copied-up hard link's count relative to the upper file's ("U-1"), which the
/// kernel writes with index=on. Read as the kernel reads it (ovl_get_nlink): only on a file with a lower origin,
/// at most 12 bytes, "U" or "L", a sign, a 32-bit number, a positive result. A value that does not parse is
/// ignored with a warning, as the kernel does, and the real count shows; "L" (relative to the lower file's
/// count, which a copied-up file no longer shows) is ignored too.
enum LinkCount {
    static let xattrNames = Xattr.overlay("nlink")
    private static let originNames = Xattr.overlay("origin") + OriginInode.writableNames

    /// The count to show for an upper file whose real count is `real`; nil to show the real one.
    static func count(_ spot: Spot, real: nlink_t, layer: Layer, path: LayerPath) -> nlink_t? {
        for name in xattrNames {
            guard let value = try? Sys.xattr(spot, name) else { continue }
            guard originNames.contains(where: { (try? Sys.xattr(spot, $0)) != nil }) else { return nil }
            guard value.count >= 3, value.count <= 12, value[0] == 0x55 || value[0] == 0x4C, value[1] == 0x2B || value[1] == 0x2D,
                  let delta = Int32(String(decoding: value.dropFirst(), as: UTF8.self)) else {
                MarkerLog.invalid("nlink", value: value, layer: layer, path: path, error: .invalidArgument)
                return nil
            }
            guard value[0] == 0x55 else { return nil }
            let count = Int64(clamping: real) + Int64(delta)
            return count > 0 ? nlink_t(count) : nil
        }
        return nil
    }
}

/// The inode number a copied-up file showed before, kept in an overlay-private attribute so that `st_ino`
/// stays the same after copy-up and across remounts (the kernel keeps it through its origin file handle).
/// Each daemon reads the form it would have written: root the trusted one, others the user one.
enum OriginInode {
    static let writableNames = Xattr.overlayForWriting("strata.ino")
    private static let readable = Xattr.isRoot ? [writableNames[0]] : [writableNames[1]]

    static func record(_ inode: UInt64, on target: BackingObject) throws(Errno) {
        let value = Array(String(inode).utf8)
        do throws(Errno) {
            try target.setXattr(writableNames[0], value)
        } catch .notPermitted, .notSupported {
            try target.setXattr(writableNames[1], value)
        }
    }

    /// nil when the object carries none, or one that is not a number (ignored, once logged).
    static func read(_ spot: Spot, layer: Layer, path: LayerPath) -> UInt64? {
        for name in readable {
            guard let value = try? Sys.xattr(spot, name) else { continue }
            if value.count <= 20, let inode = UInt64(String(decoding: value, as: UTF8.self)) { return inode }
            MarkerLog.invalid("strata.ino", value: value, layer: layer, path: path, error: .invalidArgument)
        }
        return nil
    }
}

/// Writes the overlay's own markers where the daemon may: the trusted namespace as root, else the user one.
enum MarkerWriter {
    static func set(_ names: [[UInt8]], _ value: [UInt8], on spot: Spot) throws(Errno) {
        try set(names, value, on: .spot(spot))
    }

    static func set(_ names: [[UInt8]], _ value: [UInt8], on object: BackingObject) throws(Errno) {
        do throws(Errno) {
            try object.setXattr(names[0], value)
        } catch .notPermitted, .notSupported {
            try object.setXattr(names[1], value)
        }
    }
}

/// A state the engine's own bookkeeping should never reach: logged, and answered with EIO for that request
/// alone, so that the mount stays up.
enum Impossible {
    static func state(_ what: String) -> Errno {
        MarkerLog.logger.error("impossible state: \(what)")
        return .ioError
    }
}

/// One log line per object whose marker is invalid: the layer, the path, what is wrong. Bounded, so a layer
/// full of bad markers cannot grow the daemon's memory or flood its log.
enum MarkerLog {
    private static let reported = Mutex<Set<String>>([])
    private static let limit = 1000
    static let logger = Logger(label: "strata.overlay")

    static func invalid(_ marker: String, value: [UInt8], layer: Layer, path: LayerPath, error: Errno) {
        let key = "\(layer.index)\u{0}\(path)\u{0}\(marker)"
        let first: Bool? = reported.withLock { seen in
            if seen.contains(key) { return false }
            if seen.count >= limit { return nil }
            seen.insert(key)
            return true
        }
        switch first {
        case true?:
            let shown = Escaping.escape(Array(value.prefix(80))) + (value.count > 80 ? "..." : "")
            logger.warning("layer \(layer.index) (\(layer.path)): \(path): invalid \(marker) \"\(shown)\": \(error)")
        case nil:
            if reported.withLock({ $0.insert("\u{0}limit").inserted }) {
                logger.warning("more invalid markers than \(limit): no further ones are logged")
            }
        case false?:
            break
        }
    }
}

/// The kernel's metacopy marker (`overlay.metacopy`): an upper file that holds only metadata, its data still in
/// the lower file of the same name (or, renamed, at its redirect). The value is empty, or a struct ovl_metacopy
/// (version 0, its own length, flags, a digest); anything else is EIO for that file, as in the kernel.
enum Metacopy {
    static let xattrNames = Xattr.overlay("metacopy")
    static let writableNames = Xattr.overlayForWriting("metacopy")

    static func read(_ spot: Spot, layer: Layer, path: LayerPath) throws(Errno) -> Bool {
        // Asked of every lower file a lookup finds above the bottom layer, and nearly none carries an overlay
        // attribute: as root (two names to read) one listing answers for most.
        if xattrNames.count > 1, try !Sys.xattrNames(spot).contains(where: Xattr.isPrivate) { return false }
        for name in xattrNames {
            guard let value = try Sys.xattr(spot, name) else { continue }
            if value.isEmpty || (value.count >= 4 && value[0] == 0 && Int(value[1]) == value.count) { return true }
            MarkerLog.invalid("metacopy", value: value, layer: layer, path: path, error: .ioError)
            throw .ioError
        }
        return false
    }
}

/// The kernel's `overlay.origin`: the lower object a copy-up came from, as a struct ovl_fb (version 0, magic
/// 0xfb, length, flags, the handle's type, the lower filesystem's UUID, the handle itself). Strata writes it on
/// metadata-only copies as the kernel does; it never follows one (lookups go by name and redirect).
enum Origin {
    static let writableNames = Xattr.overlayForWriting("origin")

    /// The record for the object at `spot`, on a filesystem whose UUID is `uuid`; nil where the filesystem gives
    /// no handles. Its flags are the kernel's for a lower file on a little-endian machine: none.
    static func record(of spot: Spot, uuid: [UInt8]) -> [UInt8]? {
        var type: CInt = 0
        var length: UInt32 = 0
        var handle = [UInt8](repeating: 0, count: 128)
        let status = spot.withPath { name in
            handle.withUnsafeMutableBufferPointer { buffer in
                CLinux_name_to_handle(spot.directory, name, &type, buffer.baseAddress, UInt32(buffer.count), &length)
            }
        }
        guard status == 0, type >= 0, type < 256, length + 21 < 256 else { return nil }
        let paddedUUID = Array((uuid + [UInt8](repeating: 0, count: 16)).prefix(16))
        let header: [UInt8] = [0, 0xfb, UInt8(21 + length), 0, UInt8(type)]
        return header + paddedUUID + handle.prefix(Int(length))
    }
}
