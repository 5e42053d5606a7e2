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
/// A reader that opens a lower file tends to read its siblings next (`tar`, `cp -r`, a build reading headers):
/// the first open of a file in a lower directory has the workers ask the backing filesystem for the start of
/// every sibling file's data (`POSIX_FADV_WILLNEED`, which queues the reads and returns), so the disk reads
/// them while the reader is still at the first. Walks that open nothing (`find`, `du`) read no data.
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

    private enum Job {
        case index(Work)
        case data(Key)
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
        /// Directories whose files' data is to be read ahead, and those already asked for.
        var dataQueue: [Key] = []
        var dataAsked: Set<Key> = []
        var stopped = false

        mutating func next() -> Job? {
            // The reader is at these now; an index is for a walk one level ahead.
            if let directory = dataQueue.popLast() { return .data(directory) }
            return nextIndex().map { .index($0) }
        }

        private mutating func nextIndex() -> Work? {
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
    /// Directories remembered as read ahead for data, at most (then forgotten, so one may be read again); and
    /// per directory, the files and the bytes of each file and of all asked for: enough for the small files a
    /// tar or a build goes through, and no flood of the page cache for a directory of large ones.
    private let dataAskedLimit = 16_384, dataFiles = 1024, dataPerFile = 256 << 10, dataPerDirectory = 32 << 20
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

    /// A file in the lower directory `key` was opened for reading: its sibling files' data is read ahead.
    func opened(fileIn key: Key) {
        guard !layers[key.layer].isUpper else { return }
        let added = state.withLock { state -> Bool in
            guard !state.stopped, state.dataQueue.count < queueLimit else { return false }
            if state.dataAsked.count >= dataAskedLimit { state.dataAsked.removeAll(keepingCapacity: true) }
            guard state.dataAsked.insert(key).inserted else { return false }
            state.dataQueue.append(key)
            return true
        }
        guard added else { return }
        startOnce()
        pending.signal()
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
        // Started from whichever request first asked for read-ahead, possibly on a thread pinned to one CPU.
        Sys.runOnAnyCPU()
        while true {
            pending.wait()
            let next: Job?? = state.withLock { state in state.stopped ? nil : .some(state.next()) }
            guard let next else { return }
            switch next {
            case nil: continue
            case .data(let directory): readData(ofFilesIn: directory)
            case .index(let work): read(work)
            }
        }
    }

    /// The index is handed over before the files are stat-ed (a lookup may be waiting for it), and they are
    /// stat-ed in the directory as it was opened to be read: no second open of it.
    private func read(_ work: Work) {
        // Nil when there was no index to hand over.
        let read: Void? = try? DirectoryIndex.read(layers[work.key.layer], work.key.path) { fd, index throws(Errno) in
            hand(index, for: work)
            stat(filesOf: index, in: fd)
        }
        if read == nil { hand(nil, for: work) }
    }

    private func hand(_ index: DirectoryIndex?, for work: Work) {
        state.withLock { state in
            let reading = state.reading.removeValue(forKey: work.key)
            let waiting = reading?.waiting ?? 0
            if let index, waiting > 0 || state.readyEntries + index.count <= readyLimit {
                state.ready[work.key] = (index, work.owner)
                state.readyEntries += index.count
            }
            for _ in 0..<waiting { reading?.done.signal() }
        }
    }

    /// Asks for the start of the data of each regular file in a lower directory. A name is opened on its own in
    /// the directory (never following a link), and only what the listing says is a regular file.
    private func readData(ofFilesIn key: Key) {
        guard let fd = try? layers[key.layer].openDirectory(key.path, forReading: true) else { return }
        var files = 0, asked = 0
        try? Sys.forEachEntry(fd) { name, directory, entry throws(Errno) in
            guard entry.type == UInt8(DT_REG), files < dataFiles, asked < dataPerDirectory else { return }
            let spot = Spot(directory, name)
            let flags = O_RDONLY | O_NONBLOCK | O_NOCTTY
            guard let file = (try? Sys.open(spot, flags | CLinux_O_NOATIME)) ?? (try? Sys.open(spot, flags)) else { return }
            defer { Sys.close(file) }
            guard let info = try? Sys.fstat(file), info.st_mode & S_IFMT == S_IFREG, info.st_size > 0 else { return }
            let length = min(Int(info.st_size), dataPerFile)
            _ = posix_fadvise(file, 0, off_t(length), POSIX_FADV_WILLNEED)
            files += 1
            asked += length
        }
    }

    /// Stats the files of a directory, so that the lookups of them find their inodes in the backing
    /// filesystem's cache.
    private func stat(filesOf index: DirectoryIndex, in directory: CInt) {
        for position in 0..<index.count {
            let kind = index.kind(at: position)
            guard !kind.contains(.marker), !kind.contains(.whiteout), index.type(at: position) != UInt8(DT_DIR) else { continue }
            _ = try? Sys.stat(Spot(directory, index.name(at: position)))
        }
    }
}
