import CLinux
import Glibc
import SystemPackage

/// One name of a merged directory, with the inode number that `stat` shows for it.
public struct DirectoryEntry: Sendable, Equatable {
    public let name: Name
    public let inode: UInt64
    /// A `DT_*` value.
    public let type: UInt8
    /// Which of the directory's sources holds the entry: no source above it holds the name or whites it out.
    let source: Int

    init(name: Name, inode: UInt64, type: UInt8, source: Int = 0) {
        self.name = name
        self.inode = inode
        self.type = type
        self.source = source
    }
}

extension LayerStack {
    /// The merged listing of a directory served by `sources`: each name once, from the highest layer that
    /// holds it, minus names an upper layer whites out, minus the whiteouts and markers themselves. `indexes`
    /// (parallel to `sources`) are layers already read; the others are read now.
    func mergedEntries(_ sources: [Source], indexes: [(any LayerListing)?] = []) throws(Errno) -> [DirectoryEntry] {
        var entries: [DirectoryEntry] = []
        var positions: [Name: Int] = [:]
        var hidden: Set<Name> = []
        // Upper directories that a lower directory of the same name may still merge with: their inode number
        // is the lower one's (see `Resolution`), which readdir has to report just as stat does.
        var awaitingOrigin: Set<Name> = []

        for (sourceIndex, source) in sources.enumerated() {
            let layer = layers[source.layer]
            var whitedOut: [Name] = []
            let index = sourceIndex < indexes.count ? indexes[sourceIndex] : nil
            try forEachEntry(layer, source.path, index: index) { name, inode, type, kind, spot throws(Errno) in
                if let marker = Whiteout.marker(name) {
                    if case let .hides(target) = marker { whitedOut.append(target) }
                    return
                }
                if kind.contains(.whiteout) {
                    whitedOut.append(name)
                    return
                }
                if let position = positions[name] {
                    guard awaitingOrigin.remove(name) != nil else { return }
                    if type == UInt8(DT_DIR), self.mergesInPlace(sources[0].child(name)) {
                        let upper = entries[position]
                        entries[position] = DirectoryEntry(name: name, inode: self.inodeNumbers.number(
                            backing: ino_t(inode), device: layer.device), type: upper.type, source: upper.source)
                    }
                    return
                }
                if hidden.contains(name) { return }
                positions[name] = entries.count
                var shown = inodeNumbers.number(backing: ino_t(inode), device: layer.device)
                if layer.isUpper, type != UInt8(DT_DIR), let spot,
                   let origin = OriginInode.read(spot(), layer: layer, path: source.path.appending(name)) {
                    shown = origin
                }
                entries.append(DirectoryEntry(name: name, inode: shown, type: type, source: sourceIndex))
                if layer.isUpper, type == UInt8(DT_DIR) { awaitingOrigin.insert(name) }
            }
            for name in whitedOut {
                hidden.insert(name)
                awaitingOrigin.remove(name)
            }
        }
        return entries
    }

    /// Calls `body` for every entry of one layer's directory, from its index when there is one, else read now:
    /// name, inode number, `DT_*` type, kind, and (for the upper layer) a way to reach the entry itself.
    private func forEachEntry(_ layer: Layer, _ path: LayerPath, index: (any LayerListing)?,
                              _ body: (Name, UInt64, UInt8, DirectoryIndex.Kind, (() -> Spot)?) throws(Errno) -> Void) throws(Errno) {
        guard let index else {
            return try forEachEntry(layer, path) { (name, info: EntryInfo) throws(Errno) in
                var kind: DirectoryIndex.Kind = Whiteout.marker(name) == nil ? [] : .marker
                if info.type == UInt8(DT_CHR), let full = try? info.stat(), Whiteout.isDevice(full) { kind.insert(.whiteout) }
                try body(name, UInt64(info.inode), info.type, kind, { info.spot })
            }
        }
        // The upper directory is opened once, for the entries whose attributes a listing needs.
        var opened: CInt?
        defer { if let opened { Sys.close(opened) } }
        let spotFor: ((Name) -> Spot?)? = layer.isUpper ? { name in
            if opened == nil { opened = try? layer.openDirectory(path) }
            return opened.map { Spot($0, name) }
        } : nil
        try index.forEachEntry { name, inode, type, kind throws(Errno) in
            let spot = spotFor.flatMap { find in find(name).map { found in { found } } }
            try body(name, inode, type, kind, spot)
        }
    }

    /// Whether an upper directory merges with the lower one of the same name (so shows its number): not when
    /// it is opaque or redirected, or carries a redirect that does not even parse.
    private func mergesInPlace(_ upper: Source) -> Bool {
        let layer = layers[upper.layer]
        let merges = try? layer.inDirectory(upper.path) { fd throws(Errno) -> Bool in
            if try OpaqueDirectory.isOpaque(fd) { return false }
            return try Redirect.read(Spot(fd, nil), layer: layer, path: upper.path) == nil
        }
        return merges ?? false
    }

    struct EntryInfo {
        let inode: ino_t
        let type: UInt8
        /// The entry itself, in the directory being read.
        let spot: Spot

        func stat() throws(Errno) -> Glibc.stat { try Sys.stat(spot) }
    }

    /// Calls `body` for every entry of one layer's directory except "." and "..", resolving `DT_UNKNOWN` types.
    /// A name no directory could hold (longer than NAME_MAX, from a filesystem that allows it) is skipped.
    func forEachEntry(_ layer: Layer, _ path: LayerPath,
                      _ body: (Name, EntryInfo) throws(Errno) -> Void) throws(Errno) {
        try Sys.forEachEntry(try layer.openDirectory(path, forReading: true)) { name, directory, entry throws(Errno) in
            var type = entry.type
            let spot = Spot(directory, name)
            if type == UInt8(DT_UNKNOWN) { type = Self.direntType(try Sys.stat(spot).st_mode) }
            try body(name, EntryInfo(inode: ino_t(entry.inode), type: type, spot: spot))
        }
    }

    static func direntType(_ mode: mode_t) -> UInt8 {
        UInt8(truncatingIfNeeded: (mode & S_IFMT) >> 12)
    }
}

/// One entry of a directory listing, as getdents64(2) gives it.
struct ListedEntry {
    let inode: UInt64
    /// `DT_*`, `DT_UNKNOWN` where the filesystem does not say.
    let type: UInt8
}

extension Sys {
    /// Reads a directory opened for reading (and closes it): every entry but "." and "..", with its name as
    /// bytes and the directory's descriptor for calls on the entry. Straight from getdents64: glibc's
    /// fdopendir and readdir would add an fstat and two fcntl calls per directory, 41,000 calls on a walk of
    /// a 64-layer stack (13,673 layer directories).
    static func forEachEntry(_ fd: CInt, _ body: (Name, CInt, ListedEntry) throws(Errno) -> Void) throws(Errno) {
        defer { close(fd) }
        try forEachEntry(in: fd, body)
    }

    /// Like `forEachEntry(_:_:)`, on a directory its caller closes.
    static func forEachEntry(in fd: CInt, _ body: (Name, CInt, ListedEntry) throws(Errno) -> Void) throws(Errno) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 32 << 10, alignment: 8)
        defer { buffer.deallocate() }
        guard let start = buffer.baseAddress else { throw Impossible.state("an empty listing buffer") }
        while true {
            let count = CLinux_getdents64(fd, start, buffer.count)
            if count == 0 { return }
            if count < 0 {
                if errno == EINTR { continue }
                throw Errno(rawValue: errno)
            }
            var offset = 0
            while offset + CLinux_DIRENT64_NAME < count {
                let record = start + offset
                let length = Int(record.loadUnaligned(fromByteOffset: CLinux_DIRENT64_RECLEN, as: UInt16.self))
                guard length > CLinux_DIRENT64_NAME, offset + length <= count else {
                    throw Impossible.state("a directory record of \(length) bytes")
                }
                offset += length
                let raw = (record + CLinux_DIRENT64_NAME).assumingMemoryBound(to: CChar.self)
                let bytes = UnsafeRawBufferPointer(start: raw, count: strnlen(raw, length - CLinux_DIRENT64_NAME))
                guard let name = try? Name(Array(bytes)) else { continue }
                let entry = ListedEntry(inode: record.loadUnaligned(fromByteOffset: CLinux_DIRENT64_INO, as: UInt64.self),
                                        type: record.load(fromByteOffset: CLinux_DIRENT64_TYPE, as: UInt8.self))
                try body(name, fd, entry)
            }
        }
    }
}
