import Synchronization
import SystemPackage

/// Merged listings kept per directory node, so that readdir needs no per-open handle: offsets index a listing
/// that stays the same until the directory changes (the engine drops it then) or the cache runs over its
/// bound (then the least recently used go; a listing made again comes out in the same order, as long as the
/// layers did not change). A leaf lock (see CONCURRENCY.md).
final class ListingCache: Sendable {
    private struct Kept {
        var entries: [DirectoryEntry]
        var used: UInt64
    }

    private struct State {
        var listings: [UInt64: Kept] = [:]
        var entries = 0
        var clock: UInt64 = 0
        /// Listings being made, and whether they are still good to keep (a change meanwhile makes them stale).
        var making: [UInt64: Bool] = [:]
    }

    private let state = Mutex(State())
    /// Entries kept in all, at most.
    private let limit: Int

    init(limit: Int = 200_000) { self.limit = limit }

    /// The node's listing, made by `list` when none is kept.
    func listing(_ node: NodeID, list: () throws(Errno) -> [DirectoryEntry]) throws(Errno) -> [DirectoryEntry] {
        let kept: [DirectoryEntry]? = state.withLock { state in
            state.clock += 1
            guard var found = state.listings[node.rawValue] else {
                state.making[node.rawValue] = true
                return nil
            }
            found.used = state.clock
            state.listings[node.rawValue] = found
            return found.entries
        }
        if let kept { return kept }
        let entries: [DirectoryEntry]
        do {
            entries = try list()
        } catch {
            state.withLock { _ = $0.making.removeValue(forKey: node.rawValue) }
            throw error
        }
        state.withLock { state in
            // Made while the directory changed: good for this answer, not for keeping.
            guard state.making.removeValue(forKey: node.rawValue) == true else { return }
            state.clock += 1
            if let old = state.listings.updateValue(Kept(entries: entries, used: state.clock), forKey: node.rawValue) {
                state.entries -= old.entries.count
            }
            state.entries += entries.count
            if state.entries > limit { Self.evict(&state, to: limit * 3 / 4) }
        }
        return entries
    }

    /// Drops what is kept for these nodes (their directories changed, or the kernel forgot them).
    func drop(_ nodes: [NodeID]) {
        state.withLock { state in
            for node in nodes {
                if let old = state.listings.removeValue(forKey: node.rawValue) { state.entries -= old.entries.count }
                if state.making[node.rawValue] != nil { state.making[node.rawValue] = false }
            }
        }
    }

    private static func evict(_ state: inout State, to target: Int) {
        for (node, kept) in state.listings.sorted(by: { $0.value.used < $1.value.used }) where state.entries > target {
            state.listings[node] = nil
            state.entries -= kept.entries.count
        }
    }

    var count: Int { state.withLock { $0.entries } }
}
