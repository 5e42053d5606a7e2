import Synchronization

/// `-o watch`: sees changes that others make in the layer directories (the upper one included) while the
/// stack is mounted, and hands each batch to `changed` (nil: anything may have changed). As root with
/// fanotify (`FanotifyWatch`); where that is not permitted, or with `inotify`, with inotify on the
/// directories the engine has read (`InotifyWatch`).
public final class LayerWatch: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    private enum Backend: Sendable {
        case fanotify(FanotifyWatch)
        case inotify(InotifyWatch)
    }

    private let backend: Backend
    private let tree: OverlayTree

    /// What this watch uses, for messages and tests.
    public var method: String {
        switch backend {
        case .fanotify: "fanotify"
        case .inotify: "inotify"
        }
    }

    public init(_ tree: OverlayTree, inotify: Bool, warn: @escaping @Sendable (String) -> Void,
                changed: @escaping @Sendable ([LayerChange]?) -> Void) throws(Failure) {
        self.tree = tree
        if !inotify, let fanotify = try? FanotifyWatch(tree.stack, changed: changed) {
            backend = .fanotify(fanotify)
            tree.watched.store(true, ordering: .relaxed)
            return
        }
        let hooks = tree.watchHooks
        let locks = tree.locks
        let watch = try InotifyWatch(tree.stack, isOwn: { hooks.isOwn($0) }, settle: { try? locks.withNamespace {} },
                                     warn: warn, changed: changed)
        backend = .inotify(watch)
        hooks.attach(watch)
        tree.watched.store(true, ordering: .relaxed)
        tree.watchRoot()
    }

    public func stop() {
        switch backend {
        case let .fanotify(watch):
            watch.stop()
        case let .inotify(watch):
            tree.watchHooks.detach()
            watch.stop()
        }
    }
}
