import Glibc
import SystemPackage

/// Directories held open for one request that looks up many names in them (a readdirplus reply): each layer's
/// part of the listed directory is opened once, beneath its root, instead of once per name. Belongs to the one
/// thread answering that request, and closes what it opened when it goes.
public final class OpenDirectories {
    private var opened: [(layer: Int, path: LayerPath, fd: CInt)] = []
    private let stack: LayerStack

    init(_ stack: LayerStack) { self.stack = stack }

    deinit { opened.forEach { Sys.close($0.fd) } }

    /// Runs `body` with the spot of `path` in `layer`, its parent opened once for the whole request.
    func at<T>(_ path: LayerPath, in layer: Layer, _ body: (Spot) throws(Errno) -> T) throws(Errno) -> T {
        guard let parent = path.parent, let name = path.name else { return try layer.at(path, body) }
        if let found = opened.first(where: { $0.layer == layer.index && $0.path == parent }) {
            return try body(Spot(found.fd, name))
        }
        let fd = try layer.openDirectory(parent)
        opened.append((layer.index, parent, fd))
        return try body(Spot(fd, name))
    }
}
