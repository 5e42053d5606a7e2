import CLinux
import Glibc
import Synchronization
import SystemPackage

/// The names each multiply-linked file has within one layer, found by walking the layer once, the first time
/// one of its hard links is copied up. Copy-up then links every name to the one upper copy, so hard links
/// survive copy-up on disk (where the kernel and fuse-overlayfs also see them).
final class HardLinkIndex: Sendable {
    private let maps = Mutex<[Int: [ino_t: [String]]]>([:])

    func names(of inode: ino_t, in layer: Layer) -> [String] {
        if let map = maps.withLock({ $0[layer.index] }) { return map[inode] ?? [] }
        var map: [ino_t: [String]] = [:]
        Self.walk(layer.rootFD, ".", prefix: "") { path, info in
            if info.fileType != S_IFDIR, info.st_nlink > 1 { map[info.st_ino, default: []].append(path) }
        }
        maps.withLock { $0[layer.index] = map }
        return map[inode] ?? []
    }

    private static func walk(_ dirFD: CInt, _ name: String, prefix: String, _ visit: (String, stat) -> Void) {
        guard let fd = try? Sys.open(dirFD, name, O_RDONLY | CLinux_O_DIRECTORY | CLinux_O_NOFOLLOW),
              let stream = fdopendir(fd) else { return }
        defer { closedir(stream) }
        let inner = dirfd(stream)
        while let entry = readdir(stream) {
            let child = String(cString: CLinux_dirent_name(entry))
            if child == "." || child == ".." { continue }
            guard let info = try? Sys.stat(inner, child) else { continue }
            let path = RelativePath.child(prefix, child)
            visit(path, info)
            if info.isDirectory { walk(inner, child, prefix: path, visit) }
        }
    }
}
