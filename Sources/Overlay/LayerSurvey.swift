import CLinux
import Glibc
import SystemPackage

/// One layer's inventory for `strata layers`: what it holds, and how much of it the layers above hide.
public struct LayerSummary: Sendable, Codable, Equatable {
    public var index: Int
    public var directory: String
    public var isUpper: Bool
    public var entries = 0
    public var bytes: Int64 = 0
    public var whiteouts = 0
    public var opaqueDirectories = 0
    public var redirectedDirectories = 0
    /// Bytes of this layer's files that the merged view does not show (overridden or deleted above).
    public var shadowedBytes: Int64 = 0

    public init(index: Int, directory: String, isUpper: Bool) {
        self.index = index
        self.directory = directory
        self.isUpper = isUpper
    }
}

/// One change the upper layer makes, as `podman diff` prints it: A(dded), C(hanged) or D(eleted).
public struct Change: Sendable, Equatable {
    public var kind: String
    public var path: LayerPath
}

extension LayerStack {
    public func survey() throws(Errno) -> [LayerSummary] {
        let root = try resolveRoot()
        var summaries: [LayerSummary] = []
        for layer in layers {
            var summary = LayerSummary(index: layer.index, directory: layer.path, isUpper: layer.isUpper)
            try tally(layer, .root, merged: root.sources, root: root.sources, into: &summary)
            summaries.append(summary)
        }
        return summaries
    }

    /// Walks one layer's directory; `merged` is the merged directory's sources at the same path when this
    /// layer's directory is one of them (its files may show), nil when nothing of it shows. Iterative: a
    /// layer may be deeper than any stack.
    private func tally(_ layer: Layer, _ start: LayerPath, merged: [Source]?, root: [Source],
                       into summary: inout LayerSummary) throws(Errno) {
        var pending: [(LayerPath, [Source]?)] = [(start, merged)]
        while let (path, merged) = pending.popLast() {
            if !path.isRoot {
                try layer.inDirectory(path) { fd throws(Errno) in
                    if try OpaqueDirectory.isOpaque(fd) { summary.opaqueDirectories += 1 }
                    if (try? Redirect.read(Spot(fd, nil), layer: layer, path: path)) != nil { summary.redirectedDirectories += 1 }
                }
            }
            var children: [Name] = []
            try forEachEntry(layer, path) { (name: Name, info: EntryInfo) throws(Errno) in
                if let marker = Whiteout.marker(name) {
                    if case .hides = marker { summary.whiteouts += 1 }
                    return
                }
                let full = try info.stat()
                if Whiteout.isDevice(full) {
                    summary.whiteouts += 1
                    return
                }
                summary.entries += 1
                if full.fileType == S_IFREG {
                    summary.bytes += Int64(full.st_size)
                    let shows = merged.map { sources in
                        (try? self.resolve(name, in: sources, root: root))?.sources.first?.layer == layer.index
                    } ?? false
                    if !shows { summary.shadowedBytes += Int64(full.st_size) }
                }
                if full.isDirectory { children.append(name) }
            }
            for name in children.reversed() {
                let child = path.appending(name)
                let sources = merged.flatMap { try? resolve(name, in: $0, root: root).sources }
                let stillMerged = sources.flatMap { $0.contains { $0.layer == layer.index && $0.path == child } ? $0 : nil }
                pending.append((child, stillMerged))
            }
        }
    }

    /// What the upper layer changes, sorted by path, in the form `podman diff` prints.
    public func changes() throws(Errno) -> [Change] {
        guard let upper else { return [] }
        let root = try resolveRoot()
        var found: [Change] = []
        try collectChanges(.root, lowers: Array(root.sources.dropFirst()), root: root.sources, upper: upper, into: &found)
        return found.sorted { $0.path.bytes.lexicographicallyPrecedes($1.path.bytes) }
    }

    private func collectChanges(_ path: LayerPath, lowers: [Source], root: [Source], upper: Layer,
                                into changes: inout [Change]) throws(Errno) {
        var directories: [(name: Name, renamed: Bool)] = []
        try forEachEntry(upper, path) { (name: Name, info: EntryInfo) throws(Errno) in
            let child = path.appending(name)
            if let marker = Whiteout.marker(name) {
                if case let .hides(hidden) = marker { changes.append(Change(kind: "D", path: path.appending(hidden))) }
                return
            }
            let full = try info.stat()
            if Whiteout.isDevice(full) {
                changes.append(Change(kind: "D", path: child))
                return
            }
            let inLower = !lowers.isEmpty && (try? self.resolve(name, in: lowers, root: root)) != nil
            let renamed = full.isDirectory && self.carriesRedirect(upper, child)
            changes.append(Change(kind: inLower && !renamed ? "C" : "A", path: child))
            if full.isDirectory { directories.append((name, renamed)) }
        }
        for (name, renamed) in directories {
            let child = path.appending(name)
            let merged = try resolve(name, in: [Source(layer: upper.index, path: path)] + lowers, root: root)
            if renamed {
                // A renamed directory is new at its new path, with everything in it.
                try addEverything(below: child, merged.sources, root: root, into: &changes)
            } else {
                try collectChanges(child, lowers: Array(merged.sources.dropFirst()), root: root, upper: upper, into: &changes)
            }
        }
    }

    /// Whether a directory carries a redirect (a valid one, or one that fails to parse).
    func carriesRedirect(_ layer: Layer, _ path: LayerPath) -> Bool {
        let found = try? layer.inDirectory(path) { fd throws(Errno) -> Bool in
            do throws(Errno) {
                return try Redirect.read(Spot(fd, nil), layer: layer, path: path) != nil
            } catch .invalidArgument, .permissionDenied {
                return true
            }
        }
        return found ?? false
    }

    private func addEverything(below path: LayerPath, _ sources: [Source], root: [Source],
                               into changes: inout [Change]) throws(Errno) {
        for entry in try mergedEntries(sources) {
            let child = path.appending(entry.name)
            changes.append(Change(kind: "A", path: child))
            if entry.type == UInt8(DT_DIR) {
                try addEverything(below: child, try resolve(entry.name, in: sources, root: root).sources, root: root, into: &changes)
            }
        }
    }
}
