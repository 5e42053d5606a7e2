import CLinux
import Glibc
import Synchronization
import SystemPackage

/// One directory of the stack, opened once at mount time. Layers are addressed by position:
/// 0 is the top (the upper layer when there is one).
public struct Layer: Sendable {
    public let index: Int
    /// Absolute path with symbolic links resolved, fixed for the life of the mount; for messages and reports.
    public let path: String
    public let isUpper: Bool
    /// An `O_PATH` descriptor for the layer root: every access is beneath it.
    let rootFD: CInt
    let device: dev_t
    /// Unique in the process, unlike the root's descriptor number, which a later stack may be given again.
    let identity = Layer.identities.wrappingAdd(1, ordering: .relaxed).newValue

    private static let identities = Atomic<UInt64>(0)
}

/// The one place that turns a path inside a layer into something a syscall can take. Whatever the layer holds
/// (symbolic links, a directory renamed or swapped for a link underneath a live mount), resolution never leaves
/// the layer root: no symbolic link, no "..", no /proc magic link is followed on the way, and the last name is
/// handed to the call on its own (which never follows a link there either). Paths longer than PATH_MAX are
/// resolved in pieces, each beneath the directory the previous one reached.
extension Layer {
    /// An `O_PATH` descriptor of the directory at `path` (or, `forReading`, one that can list it), which the
    /// caller closes.
    func openDirectory(_ path: LayerPath, forReading: Bool = false) throws(Errno) -> CInt {
        try Beneath.open(rootFD, path.components, forReading ? O_RDONLY | CLinux_O_DIRECTORY : Beneath.pathFlags)
    }

    /// Runs `body` with an `O_PATH` descriptor of the directory at `path` (the root's own for the root), which
    /// `body` must not close: the thread keeps it for its next call (see `ParentDirectory`).
    func inDirectory<T>(_ path: LayerPath, _ body: (CInt) throws(Errno) -> T) throws(Errno) -> T {
        if path.isRoot { return try body(rootFD) }
        return try ParentDirectory.with(self, path, body)
    }

    /// Runs `body` with the spot of `path`: its parent directory, resolved beneath the root, and its name.
    func at<T>(_ path: LayerPath, _ body: (Spot) throws(Errno) -> T) throws(Errno) -> T {
        guard let parent = path.parent, let name = path.name else { return try body(Spot(rootFD, nil)) }
        return try inDirectory(parent) { fd throws(Errno) in try body(Spot(fd, name)) }
    }

    func stat(_ path: LayerPath) throws(Errno) -> stat {
        try at(path) { spot throws(Errno) in try Sys.stat(spot) }
    }

    /// Like `stat`, but a missing name, or a missing or non-directory parent, is an answer (`nil`).
    func statIfPresent(_ path: LayerPath) throws(Errno) -> stat? {
        do {
            return try at(path) { spot throws(Errno) in try Sys.statIfPresent(spot) }
        } catch .noSuchFileOrDirectory, .notDirectory {
            return nil
        }
    }
}

enum Beneath {
    /// Set once the kernel answered ENOSYS to openat2 (before Linux 5.6): names are then opened one at a time,
    /// each with O_NOFOLLOW | O_DIRECTORY, which refuses a symbolic link just the same.
    private static let stepwise = Atomic<Bool>(false)
    static let pathFlags = CLinux_O_PATH | CLinux_O_DIRECTORY

    /// Opens the directory `names` lead to below `root`, with `flags` for the last step.
    static func open(_ root: CInt, _ names: [Name], _ flags: CInt) throws(Errno) -> CInt {
        if stepwise.load(ordering: .relaxed) { return try openStepwise(root, names, flags) }
        var current = root
        defer { if current != root { Sys.close(current) } }
        var chunk: [UInt8] = []
        for name in names {
            if !chunk.isEmpty, chunk.count + 1 + name.count >= Int(CLinux_PATH_MAX) {
                try advance(&current, root: root, &chunk)
            }
            if !chunk.isEmpty { chunk.append(0x2F) }
            chunk += name.bytes
        }
        if chunk.isEmpty { chunk = [0x2E] }
        do {
            return try Sys.openBeneath(current, chunk, flags)
        } catch .noFunction where current == root {
            stepwise.store(true, ordering: .relaxed)
            return try openStepwise(root, names, flags)
        }
    }

    /// Moves `current` to the directory `chunk` names below it.
    private static func advance(_ current: inout CInt, root: CInt, _ chunk: inout [UInt8]) throws(Errno) {
        let next = try Sys.openBeneath(current, chunk, pathFlags)
        if current != root { Sys.close(current) }
        current = next
        chunk = []
    }

    private static func openStepwise(_ root: CInt, _ names: [Name], _ flags: CInt) throws(Errno) -> CInt {
        var current = try Sys.open(Spot(root, nil), names.isEmpty ? flags : pathFlags)
        for (index, name) in names.enumerated() {
            let next: CInt
            do {
                next = try Sys.open(Spot(current, name), index == names.count - 1 ? flags : pathFlags)
            } catch {
                Sys.close(current)
                throw error
            }
            Sys.close(current)
            current = next
        }
        return current
    }
}

/// How the upper layer is written.
public struct WriteSettings: Sendable {
    /// nil writes whiteouts as the kernel does: a character device 0/0, or a `.wh.NAME` file where mknod is
    /// not permitted.
    public var whiteout: Whiteout.Format?
    /// Skip the syncs that make copy-up durable (fuse-overlayfs's `volatile` and `fsync=0`).
    public var volatile: Bool
    /// Copy up only metadata for chmod, chown, utimensat and xattr changes, in the kernel's metacopy format
    /// (`metacopy=on`). Off by default, as in the kernel: such an upper layer reads right only where metacopy is
    /// understood (the kernel with metacopy=on, Strata), not in fuse-overlayfs or tools that read upper layers
    /// directly (containers/storage's diff, for one).
    public var metacopy: Bool

    public init(whiteout: Whiteout.Format? = nil, volatile: Bool = false, metacopy: Bool = false) {
        self.whiteout = whiteout
        self.volatile = volatile
        self.metacopy = metacopy
    }
}

/// The layers of one mount, top first. Owns the root descriptors.
public final class LayerStack: Sendable {
    public let layers: [Layer]
    let inodeNumbers: InodeNumbering
    /// Present exactly when there is an upper layer.
    let work: WorkDirectory?
    let settings: WriteSettings
    let mapping: AttributeMapping
    let hardLinks = HardLinkIndex()
    let cloning = CloneSupport()
    /// Each layer's filesystem UUID, as origin records name it (empty where the filesystem has none).
    let filesystemUUIDs: [[UInt8]]
    /// Reads lower directories ahead of a walk (its workers start with the first listing a mount makes).
    let prefetch: Prefetch
    var volatile: Bool { settings.volatile }

    public var upper: Layer? { layers.first.flatMap { $0.isUpper ? $0 : nil } }

    /// Opens each directory; `upper` (if any) goes on top of `lowers`, which are given top first, and
    /// `workdir` is cleaned of what an earlier mount left. Without a workdir nothing can be written: that is
    /// how the debugging commands look at a stack, also one a live mount is using.
    public init(lowers: [String], upper: String?, workdir: String? = nil,
                settings: WriteSettings = WriteSettings(), mapping: AttributeMapping = AttributeMapping()) throws(Errno) {
        self.settings = settings
        self.mapping = mapping
        var layers: [Layer] = []
        let paths = (upper.map { [$0] } ?? []) + lowers
        do {
            for (index, path) in paths.enumerated() {
                let fd = try Sys.openGiven(path, CLinux_O_PATH | CLinux_O_DIRECTORY)
                let info = try Sys.fstat(fd)
                layers.append(Layer(index: index, path: path, isUpper: upper != nil && index == 0,
                                    rootFD: fd, device: info.st_dev))
            }
        } catch {
            layers.forEach { Sys.close($0.rootFD) }
            throw error
        }
        self.layers = layers
        self.inodeNumbers = InodeNumbering(devices: layers.map(\.device))
        self.prefetch = Prefetch(layers: layers)
        self.filesystemUUIDs = layers.map { layer in
            (try? Sys.withOpened(Spot(layer.rootFD, nil)) { fd throws(Errno) in Sys.filesystemUUID(fd) }) ?? []
        }
        do {
            self.work = try workdir.map { workdir throws(Errno) in try WorkDirectory(workdir) }
        } catch {
            layers.forEach { Sys.close($0.rootFD) }
            throw error
        }
    }

    deinit {
        prefetch.stop()
        layers.forEach { Sys.close($0.rootFD) }
    }
}
