import Dispatch
import Glibc
import Synchronization
import SystemPackage

/// Reads ahead what a walk needs next. When a directory is listed, its subdirectories' layers are read into
/// indexes, and their entries stat-ed, by a small pool of worker threads, so that a cold `find`, `du` or `tar`
/// keeps the disk busy with several requests in flight instead of one; the lookup that needs such an index then
/// takes it instead of reading the directory itself. Only lower layers are read ahead (they do not change under
/// the mount); work for a directory the kernel has forgotten meanwhile is dropped.
///
/// Its state is behind one leaf lock (see CONCURRENCY.md); the workers take no other lock.
final class Prefetch: Sendable {
    struct Key: Hashable, Sendable {
        let layer: Int
        let path: LayerPath
    }

    private struct Work: Sendable {
        let key: Key
        /// The listed directory this was read ahead for.
        let parent: UInt64
    }

    private struct State {
        var queue: [Work] = []
        var head = 0
        var queued: Set<Key> = []
        var ready: [Key: DirectoryIndex] = [:]
        var readyEntries = 0
        var cancelled: Set<UInt64> = []
        var stopped = false
    }

    private let state = Mutex(State())
    private let pending = DispatchSemaphore(value: 0)
    private let started = Atomic<Bool>(false)
    private let layers: [Layer]
    /// Work waiting at most, and entries read ahead but not yet taken, at most: beyond them reading ahead stops.
    private let queueLimit = 4096, readyLimit = 100_000
    static let workers = 8

    init(layers: [Layer]) {
        self.layers = layers
    }

    /// Starts the workers, the first time something is asked for; they run until `stop()`.
    private func startOnce() {
        guard started.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        for index in 0..<Self.workers {
            DispatchQueue(label: "strata.prefetch.\(index)").async { [self] in run() }
        }
    }

    func stop() {
        state.withLock { $0.stopped = true }
        for _ in 0..<Self.workers { pending.signal() }
    }

    /// Asks for `paths` (lower layers' directories) to be read ahead, for the listed directory `parent`.
    func request(_ keys: [Key], for parent: NodeID) {
        guard !keys.isEmpty else { return }
        startOnce()
        let added = state.withLock { state -> Int in
            guard !state.stopped else { return 0 }
            state.cancelled.remove(parent.rawValue)
            var added = 0
            for key in keys where state.queue.count - state.head < queueLimit && state.ready[key] == nil {
                guard state.queued.insert(key).inserted else { continue }
                state.queue.append(Work(key: key, parent: parent.rawValue))
                added += 1
            }
            return added
        }
        for _ in 0..<added { pending.signal() }
    }

    /// The index read ahead for `key`, if there is one (taken: it is kept by the node from now on).
    func take(_ key: Key) -> DirectoryIndex? {
        state.withLock { state in
            guard let index = state.ready.removeValue(forKey: key) else { return nil }
            state.readyEntries -= index.count
            return index
        }
    }

    /// The kernel forgot these directories: what was asked for them and not yet done is dropped.
    func cancel(_ nodes: [NodeID]) {
        state.withLock { state in
            for node in nodes { state.cancelled.insert(node.rawValue) }
        }
    }

    private func run() {
        while true {
            pending.wait()
            let next: Work? = state.withLock { state in
                guard !state.stopped, state.head < state.queue.count else { return nil }
                let work = state.queue[state.head]
                state.head += 1
                if state.head > 1024, state.head * 2 > state.queue.count {
                    state.queue.removeFirst(state.head)
                    state.head = 0
                }
                guard !state.cancelled.contains(work.parent) else {
                    state.queued.remove(work.key)
                    return nil
                }
                return work
            }
            if state.withLock({ $0.stopped }) { return }
            guard let work = next else { continue }
            let index = read(work.key)
            state.withLock { state in
                state.queued.remove(work.key)
                guard let index, state.readyEntries + index.count <= readyLimit else { return }
                state.ready[work.key] = index
                state.readyEntries += index.count
            }
        }
    }

    /// Reads the directory, then stats what it holds, so that the lookups of its entries find their inodes in
    /// the backing filesystem's cache.
    private func read(_ key: Key) -> DirectoryIndex? {
        let layer = layers[key.layer]
        guard let index = try? DirectoryIndex.read(layer, key.path) else { return nil }
        if let fd = try? layer.openDirectory(key.path) {
            defer { Sys.close(fd) }
            for position in 0..<index.count where !index.kind(at: position).contains(.marker) {
                _ = try? Sys.stat(Spot(fd, index.name(at: position)))
            }
        }
        return index
    }
}
