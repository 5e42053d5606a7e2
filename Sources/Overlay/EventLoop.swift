import Dispatch
import Synchronization

/// The thread a watch reads its events on: it waits for the group's descriptor to be readable, reads all that
/// is there and hands the batch on, until stopped.
final class EventLoop: Sendable {
    typealias Parse = @Sendable (_ events: UnsafeRawBufferPointer, _ changes: inout [LayerChange], _ lost: inout Bool) -> Void

    private let stopped = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    /// `parse` turns one buffer of events into changes (or sets `lost`: anything may have changed); `changed`
    /// gets each batch (nil when lost).
    func start(_ group: CInt, label: String, parse: @escaping Parse, changed: @escaping @Sendable ([LayerChange]?) -> Void) {
        DispatchQueue(label: label).async { [self] in
            defer { done.signal() }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)
            defer { buffer.deallocate() }
            while !stopped.load(ordering: .relaxed) {
                guard Sys.waitReadable(group, milliseconds: 200) else { continue }
                var changes: [LayerChange] = []
                var lost = false
                while let count = try? Sys.readAvailable(group, into: buffer), count > 0 {
                    parse(UnsafeRawBufferPointer(rebasing: buffer[0..<count]), &changes, &lost)
                }
                if lost {
                    changed(nil)
                } else if !changes.isEmpty {
                    changed(changes)
                }
            }
        }
    }

    /// Returns once the thread has ended.
    func stop() {
        stopped.store(true, ordering: .relaxed)
        done.wait()
    }
}
