import CLinux
import Glibc
import Synchronization
import SystemPackage

/// The names each multiply-linked file has within one layer, found by walking the layer once, the first time
/// one of its hard links is copied up. Copy-up then links every name to the one upper copy, so hard links
/// survive copy-up on disk (where the kernel and fuse-overlayfs also see them).
final class HardLinkIndex: Sendable {
    private let maps = Mutex<[Int: [ino_t: [LayerPath]]]>([:])

    func names(of inode: ino_t, in layer: Layer) -> [LayerPath] {
        if let map = maps.withLock({ $0[layer.index] }) { return map[inode] ?? [] }
        var map: [ino_t: [LayerPath]] = [:]
        Self.walk(layer) { path, info in
            if info.fileType != S_IFDIR, info.st_nlink > 1 { map[info.st_ino, default: []].append(path) }
        }
        maps.withLock { $0[layer.index] = map }
        return map[inode] ?? []
    }

    /// Visits every object below the layer root, without following symbolic links; iterative, as a layer may
    /// be deeper than any stack, and holding one descriptor at a time. Directories that cannot be read are skipped.
    private static func walk(_ layer: Layer, _ visit: (LayerPath, stat) -> Void) {
        var pending: [LayerPath] = [.root]
        while let path = pending.popLast() {
            guard let fd = try? layer.openDirectory(path, forReading: true) else { continue }
            try? Sys.forEachEntry(fd) { name, directory, _ in
                guard let info = try? Sys.stat(Spot(directory, name)) else { return }
                let child = path.appending(name)
                visit(child, info)
                if info.isDirectory { pending.append(child) }
            }
        }
    }
}
