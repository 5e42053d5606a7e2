import CLinux
import Glibc
import Synchronization
import SystemPackage

/// `WORKDIR/work`, where copy-ups, whiteouts and removals are staged before one rename makes them visible,
/// so a crash at any moment leaves the upper layer with the old object or the new one, never half of one.
/// Whatever a crash left here is removed at mount.
public final class WorkDirectory: Sendable {
    let fd: CInt
    private let counter = Mutex<UInt64>(0)
    private static let name = Name(trusted: "work")

    init(_ workdir: String) throws(Errno) {
        let root = try Sys.openGiven(workdir, O_RDONLY | CLinux_O_DIRECTORY)
        defer { Sys.close(root) }
        do {
            try Sys.mkdir(Spot(root, Self.name), 0o700)
        } catch .fileExists {
            try Sys.removeContents(Spot(root, Self.name))
        }
        fd = try Sys.open(Spot(root, Self.name), O_RDONLY | CLinux_O_DIRECTORY)
    }

    deinit { Sys.close(fd) }

    /// A name no other staging operation uses.
    func temporaryName() -> Name {
        let number = counter.withLock { value in
            value += 1
            return value
        }
        return Name(trusted: Array(("#" + String(number, radix: 16)).utf8))
    }

    /// Removes a staged object, whatever it is (a file, or a directory tree moved here to be deleted).
    func discard(_ name: Name) {
        let spot = Spot(fd, name)
        if (try? Sys.unlink(spot)) == nil {
            try? Sys.removeContents(spot)
            try? Sys.unlink(spot, directory: true)
        }
    }
}

extension Sys {
    /// Empties a directory, depth first, without following symbolic links. Iterative: a tree staged for
    /// removal may be deeper than any stack.
    static func removeContents(_ spot: Spot) throws(Errno) {
        struct Frame {
            let fd: CInt
            /// Its name in the frame below, to remove once it is empty (nil for the directory being emptied).
            let name: Name?
            var subdirectories: [Name]?
        }
        var frames = [Frame(fd: try open(spot, O_RDONLY | CLinux_O_DIRECTORY), name: nil)]
        defer { frames.forEach { close($0.fd) } }
        while var frame = frames.popLast() {
            do throws(Errno) {
                if frame.subdirectories == nil {
                    var subdirectories: [Name] = []
                    try forEachEntry(try open(Spot(frame.fd, nil), O_RDONLY | CLinux_O_DIRECTORY)) { name, _, entry throws(Errno) in
                        if entry.type == UInt8(DT_DIR) { return subdirectories.append(name) }
                        do throws(Errno) {
                            try unlink(Spot(frame.fd, name))
                        } catch .isDirectory {
                            subdirectories.append(name)
                        }
                    }
                    frame.subdirectories = subdirectories
                }
                if let next = frame.subdirectories?.popLast() {
                    let child = try open(Spot(frame.fd, next), O_RDONLY | CLinux_O_DIRECTORY)
                    frames.append(frame)
                    frames.append(Frame(fd: child, name: next))
                    continue
                }
            } catch {
                close(frame.fd)
                throw error
            }
            close(frame.fd)
            if let name = frame.name, let parent = frames.last { try unlink(Spot(parent.fd, name), directory: true) }
        }
    }
}
