import CLinux
import Glibc
import SystemPackage

/// Why a merged path shows what it shows: which layer serves it, what it shadows, or what hides it. Answers
/// `strata which` and `strata ls`, and the `user.strata.layer` attribute.
public struct PathReport: Sendable, Codable, Equatable {
    public enum State: String, Sendable, Codable {
        case present
        case whitedOut = "whited-out"
        case behindOpaque = "behind-opaque"
        case absent
    }

    /// Relative to the root of the merged view, without a leading slash ("" is the root).
    public var path: String
    public var state: State
    /// "file", "directory", "symlink", "fifo", "socket", "char-device", "block-device".
    public var type: String?
    /// The layers serving it, top first: one, or every contributor of a merged directory.
    public var servedBy: [Int] = []
    /// Lower layers that hold the same name but do not show through (overridden, whited out, or behind an
    /// opaque directory).
    public var shadows: [Int] = []
    /// An upper object that stands for a lower one: a copied-up file, or a directory merged with lower ones.
    public var copiedUp = false
    /// A renamed directory's old path, where its lower contents still are.
    public var renamedFrom: String?
    /// For a hidden name: the layer holding the whiteout or the opaque directory, and that marker's path in it.
    public var hiddenBy: Int?
    public var marker: String?
}

extension LayerStack {
    /// Reports on `path` (relative to the merged root) without touching the mount.
    public func report(_ path: String) throws(Errno) -> PathReport {
        let path = path.split(separator: "/").joined(separator: "/")
        let root = try resolveRoot()
        let names = path.split(separator: "/").map(String.init)
        var parent = root.sources
        var current = root
        for (index, name) in names.enumerated() {
            if !current.top.isDirectory { return PathReport(path: path, state: .absent) }
            switch try lookup(name, in: parent, root: root.sources) {
            case let .found(resolution):
                current = resolution
                if index < names.count - 1 { parent = resolution.sources }
            case .absent:
                let partial = names[...index].joined(separator: "/")
                var report = try absence(of: name, in: parent, root: root.sources)
                report.path = index == names.count - 1 ? path : partial
                return report
            }
        }
        return try presence(path, current, parent: names.isEmpty ? [] : parent, root: root.sources)
    }

    private func presence(_ path: String, _ resolution: Resolution, parent: [Source], root: [Source]) throws(Errno) -> PathReport {
        var report = PathReport(path: path, state: .present, type: Self.typeName(resolution.top.st_mode))
        report.servedBy = resolution.sources.map(\.layer)
        let name = String(path.split(separator: "/").last ?? "")
        report.shadows = try holders(name, in: parent).filter { !report.servedBy.contains($0) }
        let top = resolution.sources[0]
        if layers[top.layer].isUpper {
            report.copiedUp = resolution.isMerged || (!resolution.top.isDirectory
                && (!report.shadows.isEmpty || OriginInode.read(absolute(top)) != nil))
            if resolution.top.isDirectory { report.renamedFrom = Redirect.read(absolute(top)) }
        }
        return report
    }

    /// A name that does not show: the topmost whiteout for it among the parent's layers, or the opaque
    /// directory below which a layer still holds it.
    private func absence(of name: String, in parent: [Source], root: [Source]) throws(Errno) -> PathReport {
        var report = PathReport(path: name, state: .absent)
        for source in parent {
            let layer = layers[source.layer]
            let candidate = source.child(name)
            if let info = try Sys.statIfPresent(layer.rootFD, candidate.path), Whiteout.isDevice(info) {
                report.marker = candidate.path
            } else if try Sys.statIfPresent(layer.rootFD, Whiteout.markerPath(for: candidate.path)) != nil {
                report.marker = Whiteout.markerPath(for: candidate.path)
            } else {
                continue
            }
            report.state = .whitedOut
            report.hiddenBy = source.layer
            report.shadows = try holders(name, in: parent).filter { $0 > source.layer }
            return report
        }
        // Layers below the last one the parent merges with were cut off by an opaque directory.
        if let last = parent.last, last.layer + 1 < layers.count {
            let below = try holders(name, in: (last.layer + 1..<layers.count).map { Source(layer: $0, path: last.path) })
            if !below.isEmpty {
                report.state = .behindOpaque
                report.hiddenBy = last.layer
                report.marker = last.path.isEmpty ? "." : last.path
                report.shadows = below
            }
        }
        return report
    }

    /// The layers among `parent` whose directory holds an object (not a whiteout) called `name`.
    private func holders(_ name: String, in parent: [Source]) throws(Errno) -> [Int] {
        var found: [Int] = []
        for source in parent {
            let candidate = source.child(name)
            if let info = try Sys.statIfPresent(layers[source.layer].rootFD, candidate.path), !Whiteout.isDevice(info) {
                found.append(source.layer)
            }
        }
        return found
    }

    /// The merged resolution of a path from the root.
    private func resolve(path: String) throws(Errno) -> Resolution {
        let root = try resolveRoot()
        return try resolve(path: path, rootSources: root.sources) ?? root
    }

    /// The names the merged directory at `path` lists.
    public func listNames(_ path: String) throws(Errno) -> [String] {
        try mergedEntries(try resolve(path: path).sources).map(\.name)
    }

    /// The mode bits and size the merged view shows for `path`.
    public func attributes(at path: String) throws(Errno) -> (mode: mode_t, size: Int64) {
        let info = shown(try resolve(path: path))
        return (info.st_mode & 0o7777, Int64(info.st_size))
    }

    /// Names a layer holds in the directory at `path` that the merged listing does not show, each with its
    /// report (whited out, or behind an opaque directory).
    public func hiddenNames(in path: String) throws(Errno) -> [PathReport] {
        let directory = try resolve(path: path)
        guard directory.top.isDirectory else { throw .notDirectory }
        let sources = directory.sources
        let shown = Set(try mergedEntries(sources).map(\.name))
        let bottom = sources.last!
        let all = sources + (bottom.layer + 1..<layers.count).map { Source(layer: $0, path: bottom.path) }
        var names: Set<String> = []
        for source in all {
            guard let info = try Sys.statIfPresent(layers[source.layer].rootFD, layers[source.layer].relative(source.path)),
                  info.isDirectory else { continue }
            try forEachEntry(layers[source.layer], source.path) { (name, info: EntryInfo) in
                if Whiteout.hiddenName(byMarker: name) != nil { return }
                if info.type == UInt8(DT_CHR), let full = try? info.stat(), Whiteout.isDevice(full) { return }
                if !shown.contains(name) { names.insert(name) }
            }
        }
        var reports: [PathReport] = []
        for name in names.sorted() {
            reports.append(try report(RelativePath.child(path, name)))
        }
        return reports
    }

    static func typeName(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "directory"
        case S_IFLNK: "symlink"
        case S_IFIFO: "fifo"
        case S_IFSOCK: "socket"
        case S_IFCHR: "char-device"
        case S_IFBLK: "block-device"
        default: "file"
        }
    }
}
