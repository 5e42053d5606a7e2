import Dispatch
import FuseKit
import Overlay
import Synchronization

/// Hands the kernel what it must drop after layers changed underneath (`-o watch`, `strata refresh`), on a
/// thread of its own: a request's thread must not notify, since the kernel may hold, until that request is
/// answered, the very locks a notification takes.
final class Invalidator: Sendable {
    private let notifier = Mutex<Notifier?>(nil)
    private let queue = DispatchQueue(label: "strata.invalidate")
    /// How the layers are watched ("fanotify", "inotify"; "off" without `-o watch` or when none could be made),
    /// for `strata stats`.
    let method = Mutex("off")

    /// Once the session exists (it is made after the file system it serves).
    func connect(_ notifier: Notifier) { self.notifier.withLock { $0 = notifier } }

    func send(_ invalidation: KernelInvalidation) {
        guard !invalidation.isEmpty, let notifier = notifier.withLock({ $0 }) else { return }
        queue.async {
            for (parent, name) in invalidation.entries { notifier.invalidateEntry(parent: parent.rawValue, name: name.bytes) }
            for node in Set(invalidation.nodes.map(\.rawValue)) { notifier.invalidateNode(node) }
        }
    }

    /// Waits until everything sent so far has reached the kernel.
    func drain() { queue.sync {} }
}
