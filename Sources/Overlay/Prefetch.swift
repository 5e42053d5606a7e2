import CLinux
import Dispatch
import Glibc
import Synchronization
import SystemPackage

/// Reads ahead what a walk needs next, on a small pool of worker threads, so that a cold `find`, `du` or `tar`
/// keeps the disk busy with several requests in flight instead of one. When a directory is listed, its lower
/// subdirectories' indexes are read and their files stat-ed: the walk's next listings then find the indexes
/// here, and the lookups of their entries the inodes in the backing filesystem's cache. So reading ahead stays
/// one level below what the walk has reached.
///
/// A lookup that wants an index being read waits for it rather than reading it twice; one still queued is
/// left to the lookup. Only lower layers are read ahead (they do not change under the mount). Work and indexes
/// belong to the directory node whose lookups asked for them, and go when the kernel forgets it.
///
/// Its state is behind one leaf lock (see CONCURRENCY.md); the workers take no other lock.
final class Prefetch: Sendable {
    struct Key: Hashable, Sendable {
        let layer: Int
        let path: LayerPath
    }

    /// Read a directory's index and stat its files.
    private struct Work: Sendable {
        let key: Key
        let owner: UInt64
    }

    /// An index being read, and the lookups waiting for it.
    private struct Reading {
        let done = DispatchSemaphore(value: 0)
        var waiting = 0
    }

    private struct State {
        var queue: [Work] = []
        var head = 0
        var queued: Set<Key> = []
        var reading: [Key: Reading] = [:]
        var ready: [Key: (index: DirectoryIndex, owner: UInt64)] = [:]
        var readyEntries = 0
        var cancelled: Set<UInt64> = []
        var stopped = false

        mutating func next() -> Work? {
            while head < queue.count {
                let work = queue[head]
                head += 1
                if head > 1024, head * 2 > queue.count {
                    queue.removeFirst(head)
                    head = 0
                }
                // Taken over by a lookup meanwhile, or no longer wanted.
                guard queued.remove(work.key) != nil, !cancelled.contains(work.owner) else { continue }
                reading[work.key] = Reading()
                return work
            }
            // Nothing is waiting that a cancellation could concern.
            cancelled = []
            queue.removeAll(keepingCapacity: true)
            head = 0
            return nil
        }
    }

    private let state = Mutex(State())
    private let pending = DispatchSemaphore(value: 0)
    private let started = Atomic<Bool>(false)
    private let layers: [Layer]
    /// Work waiting, and entries read ahead but not yet taken, at most: beyond them reading ahead stops.
    private let queueLimit = 4096, readyLimit = 50_000
    /// 2, 4, 8 and 16 workers gave cold walks within this VM's noise of each other on its 2 cores; 2 was slowest.
    static let workers = 4

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

    /// The directory node `owner` was listed, and `index` is its part in one lower layer: the subdirectories
    /// that part holds are read ahead.
    func expand(_ key: Key, _ index: DirectoryIndex, owner: NodeID) {
        guard !layers[key.layer].isUpper else { return }
        var subdirectories: [Key] = []
        for position in 0..<index.count
        where !index.kind(at: position).contains(.marker) && index.type(at: position) == UInt8(DT_DIR) {
            subdirectories.append(Key(layer: key.layer, path: key.path.appending(index.name(at: position))))
        }
        guard !subdirectories.isEmpty else { return }
        startOnce()
        let added = state.withLock { state -> Int in
            guard !state.stopped, state.queue.count - state.head < queueLimit else { return 0 }
            state.cancelled.remove(owner.rawValue)
            var added = 0
            for subdirectory in subdirectories
            where state.ready[subdirectory] == nil && state.reading[subdirectory] == nil {
                guard state.queued.insert(subdirectory).inserted else { continue }
                state.queue.append(Work(key: subdirectory, owner: owner.rawValue))
                added += 1
            }
            return added
        }
        for _ in 0..<added { pending.signal() }
    }

    /// The index read ahead for `key`, waiting for it if a worker is reading it now; nil when the caller must
    /// read it itself. Taken: the node keeps it from now on.
    func take(_ key: Key) -> DirectoryIndex? {
        let wait: DispatchSemaphore? = state.withLock { state in
            if state.ready[key] != nil { return nil }
            guard state.reading[key] != nil else {
                state.queued.remove(key)
                return nil
            }
            state.reading[key]?.waiting += 1
            return state.reading[key]?.done
        }
        wait?.wait()
        return state.withLock { state in
            guard let (index, _) = state.ready.removeValue(forKey: key) else { return nil }
            state.readyEntries -= index.count
            return index
        }
    }

    /// The kernel forgot these directories: what was asked for them and not yet done, or not yet taken, goes.
    func cancel(_ nodes: [NodeID]) {
        state.withLock { state in
            let owners = Set(nodes.map(\.rawValue))
            if state.head < state.queue.count { state.cancelled.formUnion(owners) }
            guard !state.ready.isEmpty else { return }
            for (key, entry) in state.ready where owners.contains(entry.owner) {
                state.ready[key] = nil
                state.readyEntries -= entry.index.count
            }
        }
    }

    /// These directories changed underneath (nil: any may have): what was read of them goes.
    func forget(_ keys: Set<Key>?) {
        state.withLock { state in
            for (key, entry) in state.ready where keys?.contains(key) ?? true {
                state.ready[key] = nil
                state.readyEntries -= entry.index.count
            }
        }
    }

    private func run() {
        while true {
            pending.wait()
            let next: Work?? = state.withLock { state in state.stopped ? nil : .some(state.next()) }
            guard let next else { return }
            guard let work = next else { continue }
            let index = try? DirectoryIndex.read(layers[work.key.layer], work.key.path)
            state.withLock { state in
                let reading = state.reading.removeValue(forKey: work.key)
                let waiting = reading?.waiting ?? 0
                if let index, waiting > 0 || state.readyEntries + index.count <= readyLimit {
                    state.ready[work.key] = (index, work.owner)
                    state.readyEntries += index.count
                }
                for _ in 0..<waiting { reading?.done.signal() }
            }
            if let index { stat(filesOf: index, at: work.key) }
        }
    }

    /// Stats the files of a directory, so that the lookups of them find their inodes in the backing
    /// filesystem's cache.
    private func stat(filesOf index: DirectoryIndex, at key: Key) {
        guard let fd = try? layers[key.layer].openDirectory(key.path) else { return }
        defer { Sys.close(fd) }
        for position in 0..<index.count {
            let kind = index.kind(at: position)
            guard !kind.contains(.marker), !kind.contains(.whiteout), index.type(at: position) != UInt8(DT_DIR) else { continue }
            _ = try? Sys.stat(Spot(fd, index.name(at: position)))
        }
    }
}
