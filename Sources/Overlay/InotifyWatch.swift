import CLinux
import Glibc
import Synchronization
import SystemPackage

/// The watch where fanotify is not permitted (rootless): inotify on each layer directory of the directory
/// nodes the engine has read, dropped when the kernel forgets them. inotify reports no process, so the
/// engine's own changes are recognised from what it reports to `WatchHooks`. It notes a change to the upper
/// layer's names under the namespace lock, where it makes it, so the watch takes that lock (`settle`) before it
/// judges what it read: a change whose event came before its note is then noted too. Within `fs.inotify.max_user_watches`: past it, says so once and watches
/// no more directories (`strata refresh` still reaches them).
final class InotifyWatch: Sendable {
    private struct State {
        /// What each watch stands for: a layer directory (one inode may be reached at more than one path).
        var keys: [CInt: Set<Prefetch.Key>] = [:]
        /// Each watched layer directory: its watch, and how many nodes need it.
        var watches: [Prefetch.Key: (watch: CInt, holders: Int)] = [:]
        var byNode: [UInt64: [Prefetch.Key]] = [:]
        var exhausted = false
    }

    private let group: CInt
    private let layers: [Layer]
    private let state = Mutex(State())
    private let loop = EventLoop()
    private let changed: @Sendable ([LayerChange]?) -> Void
    private let isOwn: @Sendable (LayerChange) -> Bool
    private let settle: @Sendable () -> Void
    private let warn: @Sendable (String) -> Void

    init(_ stack: LayerStack, isOwn: @escaping @Sendable (LayerChange) -> Bool, settle: @escaping @Sendable () -> Void,
         warn: @escaping @Sendable (String) -> Void,
         changed: @escaping @Sendable ([LayerChange]?) -> Void) throws(LayerWatch.Failure) {
        do {
            group = try Sys.inotifyGroup()
        } catch {
            throw LayerWatch.Failure(description: "watch: inotify: \(error)")
        }
        layers = stack.layers
        self.isOwn = isOwn
        self.settle = settle
        self.warn = warn
        self.changed = changed
        loop.start(group, label: "strata.watch.inotify", parse: { [self] events, changes, lost in
            settle()
            parse(events, into: &changes, lost: &lost)
        }, changed: changed)
    }

    func stop() {
        loop.stop()
        Sys.close(group)
    }

    func watch(_ node: NodeID, _ sources: [Source]) {
        let wanted = sources.map { Prefetch.Key(layer: $0.layer, path: $0.path) }
        let missing: [Prefetch.Key] = state.withLock { state in
            let have = Set(state.byNode[node.rawValue] ?? [])
            return state.exhausted ? [] : wanted.filter { !have.contains($0) }
        }
        for key in missing {
            let watch: CInt
            do {
                let directory = try layers[key.layer].openDirectory(key.path)
                defer { Sys.close(directory) }
                watch = try Sys.inotifyWatch(group, directory)
            } catch .noSpace {
                let first = state.withLock { state in
                    defer { state.exhausted = true }
                    return !state.exhausted
                }
                if first {
                    warn("watch: the inotify watch limit (fs.inotify.max_user_watches) is reached: directories read from now on are not watched; `strata refresh` reaches them")
                }
                return
            } catch {
                continue
            }
            state.withLock { state in
                state.byNode[node.rawValue, default: []].append(key)
                state.keys[watch, default: []].insert(key)
                state.watches[key] = (watch, (state.watches[key]?.holders ?? 0) + 1)
            }
        }
    }

    func unwatch(_ nodes: [NodeID]) {
        let removed: [CInt] = state.withLock { state in
            var removed: [CInt] = []
            for node in nodes {
                for key in state.byNode.removeValue(forKey: node.rawValue) ?? [] {
                    guard let entry = state.watches[key] else { continue }
                    if entry.holders > 1 {
                        state.watches[key] = (entry.watch, entry.holders - 1)
                        continue
                    }
                    state.watches[key] = nil
                    state.keys[entry.watch]?.remove(key)
                    if state.keys[entry.watch]?.isEmpty ?? false {
                        state.keys[entry.watch] = nil
                        removed.append(entry.watch)
                    }
                }
            }
            return removed
        }
        for watch in removed { Sys.inotifyRemove(group, watch) }
    }

    /// Reads a buffer of `inotify_event`s (watch, mask, cookie, name length, name), each checked against its
    /// stated length.
    private func parse(_ events: UnsafeRawBufferPointer, into changes: inout [LayerChange], lost: inout Bool) {
        let header = 16
        var offset = 0
        while offset + header <= events.count {
            let watch = events.loadUnaligned(fromByteOffset: offset, as: Int32.self)
            let mask = events.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let nameLength = Int(events.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            guard offset + header + nameLength <= events.count else { return }
            let nameBytes = events[(offset + header)..<(offset + header + nameLength)].prefix { $0 != 0 }
            offset += header + nameLength
            if mask & CLinux_IN_Q_OVERFLOW != 0 {
                lost = true
                continue
            }
            let keys: Set<Prefetch.Key> = state.withLock { state in
                let keys = state.keys[watch] ?? []
                if mask & CLinux_IN_IGNORED != 0 {
                    // The directory is gone (or the watch removed): nothing of it is watched any longer.
                    state.keys[watch] = nil
                    for key in keys { state.watches[key] = nil }
                }
                return keys
            }
            for key in keys {
                let change: LayerChange?
                if nameBytes.isEmpty {
                    // An event on the watched directory itself: a change to its entry in its parent.
                    change = key.path.parent.flatMap { parent in
                        key.path.name.map { LayerChange(layer: key.layer, directory: parent, name: $0) }
                    }
                } else {
                    change = (try? Name(Array(nameBytes))).map { LayerChange(layer: key.layer, directory: key.path, name: $0) }
                }
                guard let change, !(layers[key.layer].isUpper && isOwn(change)) else { continue }
                changes.append(change)
            }
        }
    }
}
