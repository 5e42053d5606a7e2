import CLinux
import Glibc
import Synchronization
import SystemPackage

/// One layer's directory read once: its names in readdir order with their inode numbers and types, a table to
/// find a name without a system call, and the overlay facts of the directory itself (opaque, redirect). The
/// engine builds one when it first lists or looks into a merged directory and keeps it with the directory's
/// node, so later lookups, the negative ones of every new name included, cost no system call.
///
/// Compact: all names in one byte buffer, fixed-size columns, an open-addressing table of 32-bit positions
/// (about 20 bytes an entry besides the name).
final class DirectoryIndex: Sendable {
    /// What an entry is, beyond its `DT_*` type.
    struct Kind: OptionSet, Sendable {
        let rawValue: UInt8
        /// A character device 0/0: a whiteout.
        static let whiteout = Kind(rawValue: 1 << 0)
        /// A `.wh.NAME` marker file (of any type).
        static let marker = Kind(rawValue: 1 << 1)
    }

    private let bytes: [UInt8]
    /// Where each name ends in `bytes` (it starts where the one before ends).
    private let ends: [UInt32]
    private let inodes: [UInt64]
    private let types: [UInt8]
    private let kinds: [UInt8]
    /// Positions + 1 (0 is an empty slot), a power of two at least twice the count.
    private let slots: [UInt32]
    /// The directory holds `.wh..wh..opq`.
    let hasOpaqueMarker: Bool
    /// The directory's own opaque xattr says "y".
    let opaqueAttribute: Bool
    /// The directory's redirect: nil when it has none; its error when the value is invalid.
    let redirect: Result<Redirect, Errno>?

    var isOpaque: Bool { hasOpaqueMarker || opaqueAttribute }
    var count: Int { ends.count }

    fileprivate init(entries: [(name: Name, inode: UInt64, type: UInt8, kind: Kind)], hasOpaqueMarker: Bool,
                     opaqueAttribute: Bool, redirect: Result<Redirect, Errno>?) {
        var bytes: [UInt8] = [], ends: [UInt32] = [], inodes: [UInt64] = [], types: [UInt8] = [], kinds: [UInt8] = []
        bytes.reserveCapacity(entries.reduce(0) { $0 + $1.name.count })
        ends.reserveCapacity(entries.count)
        inodes.reserveCapacity(entries.count)
        types.reserveCapacity(entries.count)
        kinds.reserveCapacity(entries.count)
        for entry in entries {
            bytes += entry.name.bytes
            ends.append(UInt32(truncatingIfNeeded: bytes.count))
            inodes.append(entry.inode)
            types.append(entry.type)
            kinds.append(entry.kind.rawValue)
        }
        var size = 8
        while size < entries.count * 2 { size *= 2 }
        var slots = [UInt32](repeating: 0, count: size)
        for position in entries.indices {
            var slot = Self.hash(entries[position].name.bytes[...]) & (size - 1)
            while slots[slot] != 0 { slot = (slot + 1) & (size - 1) }
            slots[slot] = UInt32(truncatingIfNeeded: position + 1)
        }
        self.bytes = bytes
        self.ends = ends
        self.inodes = inodes
        self.types = types
        self.kinds = kinds
        self.slots = slots
        self.hasOpaqueMarker = hasOpaqueMarker
        self.opaqueAttribute = opaqueAttribute
        self.redirect = redirect
    }

    private static func hash(_ name: ArraySlice<UInt8>) -> Int {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name { value = (value ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int(truncatingIfNeeded: value >> 1)
    }

    private func nameBytes(_ position: Int) -> ArraySlice<UInt8> {
        let start = position == 0 ? 0 : Int(ends[position - 1])
        return bytes[start..<Int(ends[position])]
    }

    /// Where `name` is in the listing, if the directory holds it.
    func position(of name: Name) -> Int? {
        position(of: name.bytes[...])
    }

    private func position(of name: ArraySlice<UInt8>) -> Int? {
        let mask = slots.count - 1
        var slot = Self.hash(name) & mask
        while slots[slot] != 0 {
            let position = Int(slots[slot]) - 1
            if nameBytes(position).elementsEqual(name) { return position }
            slot = (slot + 1) & mask
        }
        return nil
    }

    func name(at position: Int) -> Name { Name(trusted: Array(nameBytes(position))) }
    func inode(at position: Int) -> UInt64 { inodes[position] }
    func type(at position: Int) -> UInt8 { types[position] }
    func kind(at position: Int) -> Kind { Kind(rawValue: kinds[position]) }

    /// Whether the directory holds a `.wh.` file for `name`.
    func hasMarker(for name: Name) -> Bool {
        guard let marker = Whiteout.markerName(for: name) else { return false }
        return position(of: marker) != nil
    }

    func answer(for name: Name) -> LayerAnswer {
        if let position = position(of: name) {
            if kind(at: position).contains(.whiteout) { return .whiteout(.device) }
            return .present(type: types[position])
        }
        return hasMarker(for: name) ? .whiteout(.file) : .absent
    }

    func forEachEntry(_ body: (Name, UInt64, UInt8, Kind) throws(Errno) -> Void) throws(Errno) {
        for position in 0..<count {
            try body(name(at: position), inodes[position], types[position], kind(at: position))
        }
    }

    static let empty = DirectoryIndex(entries: [], hasOpaqueMarker: false, opaqueAttribute: false, redirect: nil)
}

/// What one layer's directory says of a name.
enum LayerAnswer {
    case absent
    /// Whited out: a device at the name, or a `.wh.` file beside it.
    case whiteout(Whiteout.Format)
    case present(type: UInt8)
}

/// One layer's directory as lookups and listings read it: a lower layer's, read once (`DirectoryIndex`), or the
/// upper layer's, which changes with the mount (`LiveIndex`).
protocol LayerListing: Sendable {
    func answer(for name: Name) -> LayerAnswer
    var isOpaque: Bool { get }
    var redirect: Result<Redirect, Errno>? { get }
    /// Every entry, in the order a listing shows them: name, inode number, `DT_*` type, kind.
    func forEachEntry(_ body: (Name, UInt64, UInt8, DirectoryIndex.Kind) throws(Errno) -> Void) throws(Errno)
}

extension DirectoryIndex: LayerListing {}

/// The upper layer's part of a merged directory: read once like a lower one, then kept up to date as the engine
/// changes the directory (each changed name is looked at again, `refresh`), so that untarring into a directory
/// looks up every new name without a system call. Its lock is a leaf lock (CONCURRENCY.md); changes come under
/// the namespace lock.
final class LiveIndex: LayerListing {
    private struct Changed {
        /// Names looked at again since the index was read: what they are now (nil: gone).
        var names: [Name: (inode: UInt64, type: UInt8, kind: DirectoryIndex.Kind)?] = [:]
        /// The order names were added in, for listings.
        var added: [Name] = []
    }

    private let base: DirectoryIndex
    private let changed = Mutex(Changed())

    init(_ base: DirectoryIndex) { self.base = base }

    var isOpaque: Bool { base.isOpaque }
    var redirect: Result<Redirect, Errno>? { base.redirect }

    func answer(for name: Name) -> LayerAnswer {
        let (entry, marker): ((inode: UInt64, type: UInt8, kind: DirectoryIndex.Kind)??, (inode: UInt64, type: UInt8, kind: DirectoryIndex.Kind)??) =
            changed.withLock { changed in
                (changed.names[name], Whiteout.markerName(for: name).flatMap { changed.names[$0] })
            }
        let hasMarker: Bool
        if let marker { hasMarker = marker != nil } else { hasMarker = base.hasMarker(for: name) }
        guard let entry else {
            let answer = base.answer(for: name)
            if case .absent = answer, hasMarker { return .whiteout(.file) }
            if case .whiteout(.file) = answer, !hasMarker { return .absent }
            return answer
        }
        guard let entry else { return hasMarker ? .whiteout(.file) : .absent }
        return entry.kind.contains(.whiteout) ? .whiteout(.device) : .present(type: entry.type)
    }

    /// Looks at `name` (and its `.wh.` twin) in the upper directory `directory` again, after a change there.
    func refresh(_ names: [Name], in directory: CInt) {
        var found: [(Name, (inode: UInt64, type: UInt8, kind: DirectoryIndex.Kind)?)] = []
        for name in names {
            for candidate in [name] + (Whiteout.markerName(for: name).map { [$0] } ?? []) {
                let info = try? Sys.statIfPresent(Spot(directory, candidate))
                found.append((candidate, info.flatMap { $0 }.map { info in
                    var kind: DirectoryIndex.Kind = Whiteout.isDevice(info) ? .whiteout : []
                    if Whiteout.marker(candidate) != nil { kind.insert(.marker) }
                    return (UInt64(info.st_ino), LayerStack.direntType(info.st_mode), kind)
                }))
            }
        }
        changed.withLock { changed in
            for (name, entry) in found {
                if entry != nil, changed.names[name] == nil, base.position(of: name) == nil { changed.added.append(name) }
                changed.names[name] = .some(entry)
            }
        }
    }

    func forEachEntry(_ body: (Name, UInt64, UInt8, DirectoryIndex.Kind) throws(Errno) -> Void) throws(Errno) {
        let changed = changed.withLock { $0 }
        try base.forEachEntry { name, inode, type, kind throws(Errno) in
            guard let now = changed.names[name] else { return try body(name, inode, type, kind) }
            if let now { try body(name, now.inode, now.type, now.kind) }
        }
        for name in changed.added {
            guard case let now?? = changed.names[name], base.position(of: name) == nil else { continue }
            try body(name, now.inode, now.type, now.kind)
        }
    }
}

extension DirectoryIndex {
    /// Reads the directory at `path` in `layer` (nil when the layer holds no directory there).
    static func read(_ layer: Layer, _ path: LayerPath) throws(Errno) -> DirectoryIndex? {
        try read(layer, path) { _, index throws(Errno) in index }
    }

    /// Reads the directory at `path` in `layer` and hands `body` its index and its descriptor, open until `body`
    /// returns (nil when the layer holds no directory there).
    static func read<T>(_ layer: Layer, _ path: LayerPath,
                        _ body: (CInt, DirectoryIndex) throws(Errno) -> T) throws(Errno) -> T? {
        let fd: CInt
        do {
            fd = try layer.openDirectory(path, forReading: true)
        } catch .noSuchFileOrDirectory, .notDirectory {
            return nil
        }
        defer { Sys.close(fd) }
        return try body(fd, try read(fd, layer: layer, path: path))
    }

    /// Reads a directory open for reading (its caller closes it).
    static func read(_ fd: CInt, layer: Layer, path: LayerPath) throws(Errno) -> DirectoryIndex {
        let spot = Spot(fd, nil)
        var opaqueAttribute = false
        var redirect: Result<Redirect, Errno>?
        do {
            // Most directories carry no overlay attribute at all: one listing says so, instead of a read of each.
            if try Sys.xattrNames(spot).contains(where: Xattr.isPrivate) {
                for name in OpaqueDirectory.xattrNames where try Sys.xattr(spot, name) == [0x79] { opaqueAttribute = true }
                do {
                    redirect = try Redirect.read(spot, layer: layer, path: path).map { .success($0) }
                } catch .invalidArgument {
                    redirect = .failure(.invalidArgument)
                } catch .permissionDenied {
                    redirect = .failure(.permissionDenied)
                }
            }
        }
        var entries: [(name: Name, inode: UInt64, type: UInt8, kind: Kind)] = []
        var hasOpaqueMarker = false
        try Sys.forEachEntry(in: fd) { name, directory, entry throws(Errno) in
            var type = entry.type
            var kind: Kind = []
            if type == UInt8(DT_UNKNOWN) || type == UInt8(DT_CHR) {
                let info = try Sys.stat(Spot(directory, name))
                type = LayerStack.direntType(info.st_mode)
                if Whiteout.isDevice(info) { kind.insert(.whiteout) }
            }
            if let marker = Whiteout.marker(name) {
                kind.insert(.marker)
                if marker == .opaque { hasOpaqueMarker = true }
            }
            entries.append((name, entry.inode, type, kind))
        }
        return DirectoryIndex(entries: entries, hasOpaqueMarker: hasOpaqueMarker, opaqueAttribute: opaqueAttribute,
                              redirect: redirect)
    }
}
