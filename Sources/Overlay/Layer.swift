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

/// The layers of one mount, top first. Owns the root descriptors.
public final class LayerStack: Sendable {
    public let layers: [Layer]
    let inodeNumbers: InodeNumbering

    public var upper: Layer? { layers.first.flatMap { $0.isUpper ? $0 : nil } }

    /// Opens each directory; `upper` (if any) goes on top of `lowers`, which are given top first.
    public init(lowers: [String], upper: String?) throws(Errno) {
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
    }

    deinit {
        layers.forEach { Sys.close($0.rootFD) }
    }
}
