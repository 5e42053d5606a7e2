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
}

/// One change the upper layer makes, as `podman diff` prints it: A(dded), C(hanged) or D(eleted).
public struct Change: Sendable, Codable, Equatable {
    public var kind: String
    /// Absolute within the merged view ("/etc/passwd").
    public var path: String
}

extension LayerStack {
    public func survey() throws(Errno) -> [LayerSummary] {
        let root = try resolveRoot()
        var summaries: [LayerSummary] = []
        for layer in layers {
            var summary = LayerSummary(index: layer.index, directory: layer.path, isUpper: layer.isUpper)
            try tally(layer, "", merged: root.sources, root: root.sources, into: &summary)
            summaries.append(summary)
        }
        return summaries
    }

    /// Walks one layer's directory; `merged` is the merged directory's sources at the same path when this
    /// layer's directory is one of them (its files may show), nil when nothing of it shows.
    private func tally(_ layer: Layer, _ path: String, merged: [Source]?, root: [Source],
                       into summary: inout LayerSummary) throws(Errno) {
        if OpaqueDirectory.isOpaque(layer, path), !path.isEmpty { summary.opaqueDirectories += 1 }
        if !path.isEmpty, Redirect.read(layer.absolute(path)) != nil { summary.redirectedDirectories += 1 }
        var children: [(String, Bool)] = []
        try forEachEntry(layer, path) { (name: String, info: EntryInfo) throws(Errno) in
            if let hidden = Whiteout.hiddenName(byMarker: name) {
                if !hidden.isEmpty { summary.whiteouts += 1 }
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
            children.append((name, full.isDirectory))
        }
        for (name, isDirectory) in children where isDirectory {
            let child = RelativePath.child(path, name)
            let sources = merged.flatMap { try? resolve(name, in: $0, root: root).sources }
            let stillMerged = sources.flatMap { $0.contains { $0.layer == layer.index && $0.path == child } ? $0 : nil }
            try tally(layer, child, merged: stillMerged, root: root, into: &summary)
        }
    }

    /// What the upper layer changes, sorted by path, in the form `podman diff` prints.
    public func changes() throws(Errno) -> [Change] {
        guard let upper else { return [] }
        let root = try resolveRoot()
        var found: [Change] = []
        try collectChanges("", lowers: Array(root.sources.dropFirst()), root: root.sources, upper: upper, into: &found)
        return found.sorted { $0.path < $1.path }
    }

    private func collectChanges(_ path: String, lowers: [Source], root: [Source], upper: Layer,
                                into changes: inout [Change]) throws(Errno) {
        var directories: [(name: String, renamed: Bool)] = []
        try forEachEntry(upper, path) { (name: String, info: EntryInfo) throws(Errno) in
            let child = RelativePath.child(path, name)
            if let hidden = Whiteout.hiddenName(byMarker: name) {
                if !hidden.isEmpty {
                    changes.append(Change(kind: "D", path: "/" + RelativePath.child(path, hidden)))
                }
                return
            }
            let full = try info.stat()
            if Whiteout.isDevice(full) {
                changes.append(Change(kind: "D", path: "/" + child))
                return
            }
            let inLower = !lowers.isEmpty && (try? self.resolve(name, in: lowers, root: root)) != nil
            let renamed = full.isDirectory && Redirect.read(upper.absolute(child)) != nil
            changes.append(Change(kind: inLower && !renamed ? "C" : "A", path: "/" + child))
            if full.isDirectory { directories.append((name, renamed)) }
        }
        for (name, renamed) in directories {
            let child = RelativePath.child(path, name)
            let merged = try resolve(name, in: [Source(layer: upper.index, path: path)] + lowers, root: root)
            if renamed {
                // A renamed directory is new at its new path, with everything in it.
                try addEverything(below: child, merged.sources, root: root, into: &changes)
            } else {
                try collectChanges(child, lowers: Array(merged.sources.dropFirst()), root: root, upper: upper, into: &changes)
            }
        }
    }

    private func addEverything(below path: String, _ sources: [Source], root: [Source],
                               into changes: inout [Change]) throws(Errno) {
        for entry in try mergedEntries(sources) {
            let child = path + "/" + entry.name
            changes.append(Change(kind: "A", path: "/" + child))
            if entry.type == UInt8(DT_DIR) {
                try addEverything(below: child, try resolve(entry.name, in: sources, root: root).sources, root: root, into: &changes)
            }
        }
    }
}
