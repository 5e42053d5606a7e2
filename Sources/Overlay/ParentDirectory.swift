import Glibc
import Synchronization
import SystemPackage

/// Counts every change that can give a layer path another directory (or none): each rename and each removal of
/// a directory the engine makes, and each change to a layer the watch reports. A directory descriptor resolved
/// from a path stands for that path only while the count is unchanged; the count moves after the change, so a
/// descriptor opened before it always carries an older count.
enum DirectoryChanges {
    private static let count = Atomic<UInt64>(0)

    static var current: UInt64 { count.load(ordering: .acquiring) }

    static func happened() { count.wrappingAdd(1, ordering: .releasing) }
}

/// The directory each thread last resolved in a layer, kept open for its next request. Requests mostly name the
/// directory the one before named (an untar creates, writes and sets the attributes of each file in one): an
/// untar of /usr/include made 81k `openat2` and 89k `close` calls, fuse-overlayfs 37k of each.
///
/// The descriptor is its thread's alone: no other thread uses or closes it, so a replacement never pulls it
/// from under a call. A call made while the thread's own descriptor is in use (a nested resolution) opens one
/// of its own, as every call did before. A descriptor serves only its layer, its path and the count of
/// `DirectoryChanges` it was opened at. Each thread holds one at most. A directory moved by someone else
/// outside the mount is followed until the watch reports it (the kernel's overlay follows it for good);
/// without `-o watch` layers must not change under a mount anyway.
final class ParentDirectory {
    private var layer: UInt64 = 0
    private var path = LayerPath.root
    private var changes: UInt64 = 0
    private var fd: CInt = -1
    private var inUse = false

    deinit { if fd >= 0 { Sys.close(fd) } }

    /// Runs `body` with the O_PATH descriptor of the directory at `path` in `layer`.
    static func with<T>(_ layer: Layer, _ path: LayerPath, _ body: (CInt) throws(Errno) -> T) throws(Errno) -> T {
        guard let slot = ofThisThread(), !slot.inUse else {
            let fd = try layer.openDirectory(path)
            defer { Sys.close(fd) }
            return try body(fd)
        }
        let now = DirectoryChanges.current
        if slot.fd < 0 || slot.layer != layer.identity || slot.changes != now || slot.path != path {
            // Read before the open: a change that lands between the two makes the next call open again.
            let fd = try layer.openDirectory(path)
            if slot.fd >= 0 { Sys.close(slot.fd) }
            slot.fd = fd
            slot.layer = layer.identity
            slot.path = path
            slot.changes = now
        }
        slot.inUse = true
        defer { slot.inUse = false }
        return try body(slot.fd)
    }

    /// The thread's slot, made on first use and released (its descriptor closed) when the thread ends.
    private static func ofThisThread() -> ParentDirectory? {
        guard let key = key else { return nil }
        if let stored = pthread_getspecific(key) { return Unmanaged<ParentDirectory>.fromOpaque(stored).takeUnretainedValue() }
        let slot = Unmanaged.passRetained(ParentDirectory())
        guard pthread_setspecific(key, slot.toOpaque()) == 0 else {
            slot.release()
            return nil
        }
        return slot.takeUnretainedValue()
    }

    private static let key: pthread_key_t? = {
        var key = pthread_key_t()
        let made = pthread_key_create(&key) { stored in
            if let stored { Unmanaged<ParentDirectory>.fromOpaque(stored).release() }
        }
        return made == 0 ? key : nil
    }()
}
