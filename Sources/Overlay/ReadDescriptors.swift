import Glibc
import Synchronization
import SystemPackage

/// The files read on a mount whose kernel opens files without telling the daemon (no OPEN, so no handle and no
/// RELEASE): one descriptor per node, opened at its first read and kept until the kernel forgets the node, the
/// layers change, or the table runs over its bound (then the least recently used are closed). Each read gets
/// a duplicate of its own, made under the lock, so that closing a kept descriptor never takes one from under a
/// read in progress. A leaf lock (see CONCURRENCY.md).
final class ReadDescriptors: Sendable {
    private struct Kept {
        var fd: CInt
        var used: UInt64
    }

    private struct State {
        var kept: [UInt64: Kept] = [:]
        var clock: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Descriptors kept at most: a quarter of the soft descriptor limit, up to 4096, so that the daemon's
    /// other descriptors (layers, parents, copy-ups, the threads' /dev/fuse) always have room.
    let limit: Int

    init() {
        var bound = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &bound)
        limit = max(16, min(4096, Int(clamping: bound.rlim_cur / 4)))
    }

    /// A descriptor of the node's data for the caller to read and close; `open` opens the node when none is kept.
    func descriptor(_ node: NodeID, open: () throws(Errno) -> CInt) throws(Errno) -> CInt {
        let duplicate: CInt? = state.withLock { state in
            state.clock += 1
            guard let found = state.kept[node.rawValue] else { return nil }
            state.kept[node.rawValue]?.used = state.clock
            return fcntl(found.fd, F_DUPFD_CLOEXEC, 0)
        }
        if let duplicate, duplicate >= 0 { return duplicate }
        let fd = try open()
        let kept = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard kept >= 0 else { return fd }
        var closing: [CInt] = []
        state.withLock { state in
            state.clock += 1
            // Another read of the node may have kept one meanwhile: the newer stands.
            if let old = state.kept.updateValue(Kept(fd: kept, used: state.clock), forKey: node.rawValue) {
                closing.append(old.fd)
            }
            if state.kept.count > limit { closing += Self.evict(&state, to: limit * 3 / 4) }
        }
        closing.forEach(Sys.close)
        return fd
    }

    /// Closes what is kept for these nodes (the kernel forgot them).
    func drop(_ nodes: [NodeID]) {
        let closing = state.withLock { state in nodes.compactMap { state.kept.removeValue(forKey: $0.rawValue)?.fd } }
        closing.forEach(Sys.close)
    }

    /// Closes everything kept (the layers changed underneath: a name may stand for another file now).
    func dropAll() {
        let closing = state.withLock { state in
            defer { state.kept.removeAll() }
            return state.kept.values.map(\.fd)
        }
        closing.forEach(Sys.close)
    }

    private static func evict(_ state: inout State, to target: Int) -> [CInt] {
        let oldest = state.kept.sorted { $0.value.used < $1.value.used }.prefix(state.kept.count - target)
        for (node, _) in oldest { state.kept[node] = nil }
        return oldest.map(\.value.fd)
    }
}
