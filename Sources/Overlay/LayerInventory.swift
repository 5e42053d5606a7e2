import Glibc
import SystemPackage

/// What one layer stores at one path, in no particular format: read from a layer directory (here) or from a
/// layer tarball (OCI), and stacked by the explorer and the efficiency figures. A whiteout is an item of its own;
/// an opaque directory and a renamed directory are facts of the directory's item.
public struct LayerItem: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case directory, file, symlink, device, fifo, socket, whiteout
    }

    public var path: LayerPath
    public var kind: Kind
    /// What stat shows as the size.
    public var size: Int64
    /// Data bytes the layer itself carries for the item: a regular file's size, but 0 for a metadata-only
    /// copy-up (its data is still below) and for a second name of a hard-linked file.
    public var storedBytes: Int64
    /// Permission bits with setuid, setgid and sticky.
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var modified: Int64
    public var linkTarget: [UInt8]?
    /// A directory that hides what the layers below hold at its path.
    public var opaque = false
    /// A renamed directory: the path (from the root) whose lower contents it shows.
    public var redirect: LayerPath?
    /// A file whose data is in the layers below (the kernel's metacopy).
    public var metadataOnly = false

    public init(path: LayerPath, kind: Kind, size: Int64 = 0, storedBytes: Int64 = 0, mode: UInt32 = 0, uid: UInt32 = 0,
                gid: UInt32 = 0, modified: Int64 = 0, linkTarget: [UInt8]? = nil) {
        self.path = path
        self.kind = kind
        self.size = size
        self.storedBytes = storedBytes
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.modified = modified
        self.linkTarget = linkTarget
    }

    public static func kind(ofMode mode: mode_t) -> Kind {
        switch mode & S_IFMT {
        case S_IFDIR: .directory
        case S_IFLNK: .symlink
        case S_IFCHR, S_IFBLK: .device
        case S_IFIFO: .fifo
        case S_IFSOCK: .socket
        default: .file
        }
    }
}

extension LayerStack {
    /// Everything one layer directory holds, parents before children, read through the same markers the mount
    /// follows (whiteouts in both forms, the three opaque forms, redirects, metacopy). A layer is read beneath its
    /// root like any other access; an invalid redirect is left out as the kernel would refuse to follow it.
    public func inventory(of layer: Layer) throws(Errno) -> [LayerItem] {
        var items: [LayerItem] = []
        var seenInodes: Set<ino_t> = []
        var pending: [LayerPath] = [.root]
        while let directory = pending.popLast() {
            var subdirectories: [LayerPath] = []
            var opaqueByMarker = false
            try forEachEntry(layer, directory) { (name: Name, info: EntryInfo) throws(Errno) in
                if let marker = Whiteout.marker(name) {
                    if case .hides(let hidden) = marker { items.append(LayerItem(path: directory.appending(hidden), kind: .whiteout)) }
                    if marker == .opaque { opaqueByMarker = true }
                    return
                }
                let item = try self.item(directory.appending(name), info, in: layer, seenInodes: &seenInodes)
                if item.kind == .directory { subdirectories.append(item.path) }
                items.append(item)
            }
            if opaqueByMarker, let position = items.lastIndex(where: { $0.path == directory && $0.kind == .directory }) {
                items[position].opaque = true
            }
            pending.append(contentsOf: subdirectories.reversed())
        }
        return items
    }

    private func item(_ path: LayerPath, _ info: EntryInfo, in layer: Layer, seenInodes: inout Set<ino_t>) throws(Errno) -> LayerItem {
        let full = try info.stat()
        if Whiteout.isDevice(full) { return LayerItem(path: path, kind: .whiteout) }
        var item = LayerItem(path: path, kind: LayerItem.kind(ofMode: full.st_mode), size: Int64(full.st_size),
                             mode: UInt32(full.st_mode & 0o7777), uid: full.st_uid, gid: full.st_gid,
                             modified: Int64(full.st_mtim.tv_sec))
        switch item.kind {
        case .directory:
            let facts = try layer.inDirectory(path) { fd throws(Errno) -> (Bool, Redirect?) in
                (try OpaqueDirectory.isOpaque(fd), try? Redirect.read(Spot(fd, nil), layer: layer, path: path))
            }
            item.opaque = facts.0
            switch facts.1 {
            case .sibling(let old)?: item.redirect = path.parent?.appending(old)
            case .absolute(let old)?: item.redirect = old
            case nil: break
            }
        case .file:
            item.metadataOnly = (try? Metacopy.read(info.spot, layer: layer, path: path)) ?? false
            let firstName = full.st_nlink < 2 || seenInodes.insert(full.st_ino).inserted
            item.storedBytes = item.metadataOnly || !firstName ? 0 : item.size
        case .symlink:
            item.linkTarget = try Sys.readlink(info.spot)
        default:
            break
        }
        return item
    }
}
