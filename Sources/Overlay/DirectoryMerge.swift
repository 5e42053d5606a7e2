import CLinux
import Glibc
import SystemPackage

/// One name of a merged directory, with the inode number that `stat` shows for it.
public struct DirectoryEntry: Sendable, Equatable {
    public let name: String
    public let inode: UInt64
    /// A `DT_*` value.
    public let type: UInt8
    /// Which of the directory's sources holds the entry: no source above it holds the name or whites it out.
    let source: Int

    init(name: String, inode: UInt64, type: UInt8, source: Int = 0) {
        self.name = name
        self.inode = inode
        self.type = type
        self.source = source
    }
}

extension LayerStack {
    /// The merged listing of a directory served by `sources`: each name once, from the highest layer that
    /// holds it, minus names an upper layer whites out, minus the whiteouts and markers themselves.
    func mergedEntries(_ sources: [Source]) throws(Errno) -> [DirectoryEntry] {
        var entries: [DirectoryEntry] = []
        var positions: [String: Int] = [:]
        var hidden: Set<String> = []
        // Upper directories that a lower directory of the same name may still merge with: their inode number
        // is the lower one's (see `Resolution`), which readdir has to report just as stat does.
        var awaitingOrigin: Set<String> = []

        for (sourceIndex, source) in sources.enumerated() {
            let layer = layers[source.layer]
            let path = source.path
            var whitedOut: [String] = []
            try forEachEntry(layer, path) { (name, info: EntryInfo) in
                if let target = Whiteout.hiddenName(byMarker: name) {
                    whitedOut.append(target)
                    return
                }
                if info.type == UInt8(DT_CHR), let full = try? info.stat(), Whiteout.isDevice(full) {
                    whitedOut.append(name)
                    return
                }
                if let position = positions[name] {
                    guard awaitingOrigin.remove(name) != nil else { return }
                    let upper = sources[0].child(name)
                    if info.type == UInt8(DT_DIR), !OpaqueDirectory.isOpaque(self.layers[upper.layer], upper.path),
                       Redirect.read(self.layers[upper.layer].absolute(upper.path)) == nil {
                        let upper = entries[position]
                        entries[position] = DirectoryEntry(name: name, inode: self.inodeNumbers.number(
                            backing: info.inode, device: layer.device), type: upper.type, source: upper.source)
                    }
                    return
                }
                if hidden.contains(name) { return }
                positions[name] = entries.count
                var inode = inodeNumbers.number(backing: info.inode, device: layer.device)
                if layer.isUpper, info.type != UInt8(DT_DIR),
                   let origin = OriginInode.read(layer.absolute(RelativePath.child(path, name))) {
                    inode = origin
                }
                entries.append(DirectoryEntry(name: name, inode: inode, type: info.type, source: sourceIndex))
                if layer.isUpper, info.type == UInt8(DT_DIR) { awaitingOrigin.insert(name) }
            }
            for name in whitedOut {
                hidden.insert(name)
                awaitingOrigin.remove(name)
            }
        }
        return entries
    }

    struct EntryInfo {
        let inode: ino_t
        let type: UInt8
        let stat: () throws(Errno) -> Glibc.stat
    }

    /// Calls `body` for every entry of one layer's directory except "." and "..", resolving `DT_UNKNOWN` types.
    func forEachEntry(_ layer: Layer, _ path: String,
                              _ body: (String, EntryInfo) throws(Errno) -> Void) throws(Errno) {
        let fd = try Sys.open(layer.rootFD, layer.relative(path), O_RDONLY | CLinux_O_DIRECTORY)
        guard let stream = fdopendir(fd) else {
            let code = Errno(rawValue: errno)
            Sys.close(fd)
            throw code
        }
        defer { closedir(stream) }
        let dirFD = dirfd(stream)
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw Errno(rawValue: errno) }
                return
            }
            let name = String(cString: CLinux_dirent_name(entry))
            if name == "." || name == ".." { continue }
            let statEntry: () throws(Errno) -> Glibc.stat = { () throws(Errno) in try Sys.stat(dirFD, name) }
            var type = entry.pointee.d_type
            if type == UInt8(DT_UNKNOWN) {
                type = Self.direntType(try statEntry().st_mode)
            }
            try body(name, EntryInfo(inode: entry.pointee.d_ino, type: type, stat: statEntry))
        }
    }

    static func direntType(_ mode: mode_t) -> UInt8 {
        UInt8((mode & S_IFMT) >> 12)
    }
}
