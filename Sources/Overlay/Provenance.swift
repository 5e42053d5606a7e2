import CLinux
import Glibc
import SystemPackage

/// Why a merged path shows what it shows: which layer serves it, what it shadows, or what hides it. Answers
/// `strata which` and `strata ls`, and the `user.strata.layer` attribute.
public struct PathReport: Sendable, Equatable {
    public enum State: String, Sendable, Encodable {
        case present
        case whitedOut = "whited-out"
        case behindOpaque = "behind-opaque"
        case absent
    }

    /// In the merged view.
    public var path: LayerPath
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
    /// A file whose metadata alone was copied up: its data is still the lower layer's.
    public var metadataOnly = false
    /// A renamed directory's redirect: its old name, or its old path from the layer root with a leading slash.
    public var renamedFrom: [UInt8]?
    /// For a hidden name: the layer holding the whiteout or the opaque directory, and that marker's path in it.
    public var hiddenBy: Int?
    public var marker: LayerPath?

    public init(path: LayerPath, state: State, type: String? = nil, servedBy: [Int] = [], shadows: [Int] = [],
                copiedUp: Bool = false, metadataOnly: Bool = false, renamedFrom: [UInt8]? = nil,
                hiddenBy: Int? = nil, marker: LayerPath? = nil) {
        self.path = path
        self.state = state
        self.type = type
        self.servedBy = servedBy
        self.shadows = shadows
        self.copiedUp = copiedUp
        self.metadataOnly = metadataOnly
        self.renamedFrom = renamedFrom
        self.hiddenBy = hiddenBy
        self.marker = marker
    }
}

extension LayerStack {
    /// Reports on `path` (in the merged view) without touching the mount.
    public func report(_ path: LayerPath) throws(Errno) -> PathReport {
        let root = try resolveRoot()
        let names = path.components
        var parent = root.sources
        var current = root
        var walked = LayerPath.root
        for (index, name) in names.enumerated() {
            if !current.top.isDirectory { return PathReport(path: path, state: .absent) }
            walked = walked.appending(name)
            switch try lookup(name, in: parent, root: root.sources) {
            case let .found(resolution):
                current = resolution
                if index < names.count - 1 { parent = resolution.sources }
            case .absent:
                var report = try absence(of: name, in: parent)
                report.path = index == names.count - 1 ? path : walked
                return report
            }
        }
        return try presence(path, current, parent: names.isEmpty ? [] : parent)
    }

    private func presence(_ path: LayerPath, _ resolution: Resolution, parent: [Source]) throws(Errno) -> PathReport {
        var report = PathReport(path: path, state: .present, type: Self.typeName(resolution.top.st_mode))
        report.servedBy = resolution.sources.map(\.layer)
        if let name = path.name { report.shadows = try holders(name, in: parent).filter { !report.servedBy.contains($0) } }
        let top = resolution.sources[0]
        let layer = layers[top.layer]
        if layer.isUpper {
            let recorded = try layer.at(top.path) { spot throws(Errno) in OriginInode.read(spot, layer: layer, path: top.path) }
            report.metadataOnly = resolution.data != nil
            report.copiedUp = resolution.isMerged || (!resolution.top.isDirectory
                && (!report.shadows.isEmpty || recorded != nil || report.metadataOnly))
            if resolution.top.isDirectory {
                report.renamedFrom = try layer.inDirectory(top.path) { fd throws(Errno) in
                    try Redirect.read(Spot(fd, nil), layer: layer, path: top.path)?.value
                }
            }
        }
        return report
    }

    /// A name that does not show: the topmost whiteout for it among the parent's layers, or the opaque
    /// directory below which a layer still holds it.
    private func absence(of name: Name, in parent: [Source]) throws(Errno) -> PathReport {
        var report = PathReport(path: .root, state: .absent)
        for source in parent {
            let candidate = source.child(name)
            let layer = layers[source.layer]
            if let info = try layer.statIfPresent(candidate.path), Whiteout.isDevice(info) {
                report.marker = candidate.path
            } else if let marker = Whiteout.markerName(for: name), try layer.statIfPresent(source.path.appending(marker)) != nil {
                report.marker = source.path.appending(marker)
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
                report.marker = last.path
                report.shadows = below
            }
        }
        return report
    }

    /// The layers among `parent` whose directory holds an object (not a whiteout) called `name`.
    private func holders(_ name: Name, in parent: [Source]) throws(Errno) -> [Int] {
        var found: [Int] = []
        for source in parent {
            if let info = try layers[source.layer].statIfPresent(source.path.appending(name)), !Whiteout.isDevice(info) {
                found.append(source.layer)
            }
        }
        return found
    }

    /// The merged resolution of a path from the root.
    private func resolve(path: LayerPath) throws(Errno) -> Resolution {
        let root = try resolveRoot()
        return try resolve(path: path, rootSources: root.sources) ?? root
    }

    /// The names the merged directory at `path` lists.
    public func listNames(_ path: LayerPath) throws(Errno) -> [Name] {
        try mergedEntries(try resolve(path: path).sources).map(\.name)
    }

    /// The mode bits and size the merged view shows for `path`.
    public func attributes(at path: LayerPath) throws(Errno) -> (mode: mode_t, size: Int64) {
        let info = try shown(try resolve(path: path))
        return (info.st_mode & 0o7777, Int64(info.st_size))
    }

    /// Names a layer holds in the directory at `path` that the merged listing does not show, each with its
    /// report (whited out, or behind an opaque directory).
    public func hiddenNames(in path: LayerPath) throws(Errno) -> [PathReport] {
        let directory = try resolve(path: path)
        guard directory.top.isDirectory, let bottom = directory.sources.last else { throw .notDirectory }
        let sources = directory.sources
        let shown = Set(try mergedEntries(sources).map(\.name))
        let all = sources + (bottom.layer + 1..<layers.count).map { Source(layer: $0, path: bottom.path) }
        var names: Set<Name> = []
        for source in all {
            guard let info = try layers[source.layer].statIfPresent(source.path), info.isDirectory else { continue }
            try forEachEntry(layers[source.layer], source.path) { (name, info: EntryInfo) in
                if Whiteout.marker(name) != nil { return }
                if info.type == UInt8(DT_CHR), let full = try? info.stat(), Whiteout.isDevice(full) { return }
                if !shown.contains(name) { names.insert(name) }
            }
        }
        var reports: [PathReport] = []
        for name in names.sorted() {
            reports.append(try report(path.appending(name)))
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
