import CLinux
import Glibc
import Synchronization
import SystemPackage

/// `WORKDIR/work`, where copy-ups, whiteouts and removals are staged before one rename makes them visible,
/// so a crash at any moment leaves the upper layer with the old object or the new one, never half of one.
/// Whatever a crash left here is removed at mount.
public final class WorkDirectory: Sendable {
    let fd: CInt
    /// The absolute path, for the calls that take only paths (extended attributes).
    let path: String
    private let counter = Mutex<UInt64>(0)

    init(_ workdir: String) throws(Errno) {
        let root = try Sys.open(AT_FDCWD, workdir, O_RDONLY | CLinux_O_DIRECTORY)
        defer { Sys.close(root) }
        do {
            try Sys.mkdir(root, "work", 0o700)
        } catch .fileExists {
            try Sys.removeContents(root, "work")
        }
        fd = try Sys.open(root, "work", O_RDONLY | CLinux_O_DIRECTORY)
        path = workdir + "/work"
    }

    deinit { Sys.close(fd) }

    /// A name no other staging operation uses.
    func temporaryName() -> String {
        "#" + String(counter.withLock { value in
            value += 1
            return value
        }, radix: 16)
    }

    /// Removes a staged object, whatever it is (a file, or a directory tree moved here to be deleted).
    func discard(_ name: String) {
        if (try? Sys.unlink(fd, name)) == nil {
            try? Sys.removeContents(fd, name)
            try? Sys.unlink(fd, name, directory: true)
        }
    }
}

extension Sys {
    /// Empties a directory, depth first, without following symbolic links.
    static func removeContents(_ dirFD: CInt, _ path: String) throws(Errno) {
        let fd = try open(dirFD, path, O_RDONLY | CLinux_O_DIRECTORY | CLinux_O_NOFOLLOW)
        guard let stream = fdopendir(fd) else {
            close(fd)
            throw Errno(rawValue: errno)
        }
        defer { closedir(stream) }
        var names: [(String, Bool)] = []
        while let entry = readdir(stream) {
            let name = String(cString: CLinux_dirent_name(entry))
            if name != ".", name != ".." { names.append((name, entry.pointee.d_type == UInt8(DT_DIR))) }
        }
        let inner = dirfd(stream)
        for (name, isDirectory) in names {
            if isDirectory { try removeContents(inner, name) }
            try unlink(inner, name, directory: isDirectory)
        }
    }
}
