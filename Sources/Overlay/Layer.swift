import CLinux
import Glibc
import SystemPackage

/// One directory of the stack, opened once at mount time. Layers are addressed by position:
/// 0 is the top (the upper layer when there is one).
public struct Layer: Sendable {
    public let index: Int
    /// Absolute path with symbolic links resolved, fixed for the life of the mount.
    public let path: String
    public let isUpper: Bool
    /// An `O_PATH` descriptor for the layer root: every access is relative to it.
    let rootFD: CInt
    let device: dev_t

    /// The layer's view of a path relative to the overlay root ("" is the root itself).
    func relative(_ path: String) -> String { path.isEmpty ? "." : path }

    func absolute(_ path: String) -> String { path.isEmpty ? self.path : self.path + "/" + path }
}

/// How the upper layer is written.
public struct WriteSettings: Sendable {
    /// nil writes whiteouts as the kernel does: a character device 0/0, or a `.wh.NAME` file where mknod is
    /// not permitted.
    public var whiteout: Whiteout.Format?
    /// Skip the syncs that make copy-up durable (fuse-overlayfs's `volatile` and `fsync=0`).
    public var volatile: Bool

    public init(whiteout: Whiteout.Format? = nil, volatile: Bool = false) {
        self.whiteout = whiteout
        self.volatile = volatile
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
                let fd = try Sys.open(AT_FDCWD, path, CLinux_O_PATH | CLinux_O_DIRECTORY)
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
        do {
            self.work = try workdir.map { workdir throws(Errno) in try WorkDirectory(workdir) }
        } catch {
            layers.forEach { Sys.close($0.rootFD) }
            throw error
        }
    }

    deinit {
        layers.forEach { Sys.close($0.rootFD) }
    }
}
