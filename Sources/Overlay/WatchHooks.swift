import Glibc
import Synchronization

/// What a watch of the layers needs from the engine when it cannot tell the daemon's own changes by process
/// (inotify): the directories whose layers to watch, as the engine reads them and the kernel forgets them,
/// and the changes the engine itself just made in the upper layer, so that they are not taken for someone
/// else's. Costs nothing while no such watch is attached. A leaf lock (see CONCURRENCY.md).
final class WatchHooks: Sendable {
    private struct State {
        var watcher: InotifyWatch?
        /// The engine's own recent changes, with when they stop counting (monotonic nanoseconds).
        var own: [LayerChange: UInt64] = [:]
    }

    private let state = Mutex(State())
    private let attached = Atomic<Bool>(false)
    /// How long after its own change the daemon takes events at that name for echoes of it.
    private static let echoWindow: UInt64 = 2_000_000_000

    func attach(_ watcher: InotifyWatch) {
        state.withLock { $0.watcher = watcher }
        attached.store(true, ordering: .releasing)
    }

    func detach() {
        attached.store(false, ordering: .releasing)
        state.withLock { $0 = State() }
    }

    var isAttached: Bool { attached.load(ordering: .acquiring) }

    private var watcher: InotifyWatch? {
        attached.load(ordering: .acquiring) ? state.withLock { $0.watcher } : nil
    }

    /// The engine read a directory node's layers: they are watched from now on.
    func read(_ node: NodeID, _ sources: [Source]) { watcher?.watch(node, sources) }

    func forgot(_ nodes: [NodeID]) { watcher?.unwatch(nodes) }

    /// The engine changed `name` in the upper layer's `directory`.
    func changed(_ change: LayerChange) {
        guard attached.load(ordering: .acquiring) else { return }
        let now = Self.now()
        state.withLock { state in
            if state.own.count > 4096 { state.own = state.own.filter { $0.value > now } }
            state.own[change] = now + Self.echoWindow
        }
    }

    func isOwn(_ change: LayerChange) -> Bool {
        let now = Self.now()
        return state.withLock { state in (state.own[change] ?? 0) > now }
    }

    private static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}
