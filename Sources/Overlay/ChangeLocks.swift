import Synchronization
import SystemPackage

/// The locks that serialise the engine's changes; CONCURRENCY.md (beside this file) says what each guards and
/// in which order they are taken. Lookups, reads and listings take none of them.
final class ChangeLocks: Sendable {
    /// What an object lock is keyed by: the node the kernel holds, or (for a name the kernel does not hold, such
    /// as another name of a hard-linked file) its merged path.
    enum Key: Hashable, Sendable {
        case node(UInt64)
        case path(LayerPath)
    }

    private final class Entry: Sendable {
        let lock = Mutex(())
    }

    /// One lock per object some thread is copying up (or waiting to), with how many threads hold or wait for it.
    private let objects = Mutex<[Key: (entry: Entry, users: Int)]>([:])
    /// The upper layer's namespace: every entry the engine makes, replaces or removes there, and the node tree
    /// changes that go with it.
    private let namespace = Mutex(())

    /// Runs `body` holding the object's lock: the first thread to copy an object up does the work, and the
    /// others wait for it and then find it done.
    func withObject<T>(_ key: Key, _ body: () throws(Errno) -> T) throws(Errno) -> T {
        let entry = objects.withLock { table in
            let current = table[key] ?? (Entry(), 0)
            table[key] = (current.entry, current.users + 1)
            return current.entry
        }
        defer {
            objects.withLock { table in
                guard let current = table[key] else { return }
                table[key] = current.users > 1 ? (current.entry, current.users - 1) : nil
            }
        }
        return try entry.lock.withLock { _ throws(Errno) -> T in try body() }
    }

    /// Runs `body` holding the namespace lock. Never call `withObject` (nor anything that copies up) inside it.
    func withNamespace<T>(_ body: () throws(Errno) -> T) throws(Errno) -> T {
        try namespace.withLock { _ throws(Errno) -> T in try body() }
    }
}
