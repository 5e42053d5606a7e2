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

/// The directory each thread last resolved in each layer, kept open for its next request. Requests mostly name the
/// directory the one before named (an untar creates, writes and sets the attributes of each file in one): an
/// untar of /usr/include made 81k `openat2` and 89k `close` calls, fuse-overlayfs 37k of each. A lookup in a
/// merged directory visits the same directory in each layer in turn, so one per layer: a walk of /usr/include
/// spread over 64 layers resolved the parent again for nearly every file (13k `openat2` of 27k).
///
/// The descriptors are their thread's alone: no other thread uses or closes them, so a replacement never pulls
/// one from under a call. A call made while the thread's descriptor for that layer is in use (a nested
/// resolution) opens one of its own, as every call did before. A descriptor serves only its layer, its path and
/// the count of `DirectoryChanges` it was opened at. A thread keeps one per layer, for the first `slots` layer
/// positions (a layer further down shares a position's slot), and all threads together hold at most
/// `budget` (beyond it a call opens and closes its own), so the cache never takes the descriptors open files need.
/// A directory moved by someone else outside the mount is followed until the watch reports it (the kernel's
/// overlay follows it for good); without `-o watch` layers must not change under a mount anyway.
final class ParentDirectory {
    private struct Slot {
        var layer: UInt64 = 0
        var path = LayerPath.root
        var changes: UInt64 = 0
        var fd: CInt = -1
        var inUse = false
    }

    static let slots = 64
    static let budget = 256
    private static let held = Atomic<Int>(0)

    private var slots = [Slot](repeating: Slot(), count: ParentDirectory.slots)

    deinit {
        for slot in slots where slot.fd >= 0 {
            Sys.close(slot.fd)
            Self.held.wrappingSubtract(1, ordering: .relaxed)
        }
    }

    /// Runs `body` with the O_PATH descriptor of the directory at `path` in `layer`.
    static func with<T>(_ layer: Layer, _ path: LayerPath, _ body: (CInt) throws(Errno) -> T) throws(Errno) -> T {
        let position = layer.index % slots
        guard let cache = ofThisThread(), !cache.slots[position].inUse else { return try withOwn(layer, path, body) }
        let now = DirectoryChanges.current
        let slot = cache.slots[position]
        if slot.fd < 0 || slot.layer != layer.identity || slot.changes != now || slot.path != path {
            if slot.fd < 0, !reserve() { return try withOwn(layer, path, body) }
            // Read before the open: a change that lands between the two makes the next call open again.
            let fd: CInt
            do {
                fd = try layer.openDirectory(path)
            } catch {
                if slot.fd < 0 { held.wrappingSubtract(1, ordering: .relaxed) }
                throw error
            }
            if slot.fd >= 0 { Sys.close(slot.fd) }
            cache.slots[position] = Slot(layer: layer.identity, path: path, changes: now, fd: fd)
        }
        cache.slots[position].inUse = true
        defer { cache.slots[position].inUse = false }
        return try body(cache.slots[position].fd)
    }

    private static func withOwn<T>(_ layer: Layer, _ path: LayerPath, _ body: (CInt) throws(Errno) -> T) throws(Errno) -> T {
        let fd = try layer.openDirectory(path)
        defer { Sys.close(fd) }
        return try body(fd)
    }

    /// Takes one descriptor of the budget, if any is left.
    private static func reserve() -> Bool {
        if held.wrappingAdd(1, ordering: .relaxed).newValue <= budget { return true }
        held.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    /// The thread's slots, made on first use and released (their descriptors closed) when the thread ends.
    private static func ofThisThread() -> ParentDirectory? {
        guard let key = key else { return nil }
        if let stored = pthread_getspecific(key) { return Unmanaged<ParentDirectory>.fromOpaque(stored).takeUnretainedValue() }
        let cache = Unmanaged.passRetained(ParentDirectory())
        guard pthread_setspecific(key, cache.toOpaque()) == 0 else {
            cache.release()
            return nil
        }
        return cache.takeUnretainedValue()
    }

    private static let key: pthread_key_t? = {
        var key = pthread_key_t()
        let made = pthread_key_create(&key) { stored in
            if let stored { Unmanaged<ParentDirectory>.fromOpaque(stored).release() }
        }
        return made == 0 ? key : nil
    }()
}
