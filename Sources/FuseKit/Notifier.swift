import CFuse3
import Glibc

/// Tells the kernel to drop what it caches of a node or a name, for changes the kernel did not make through
/// the mount (libfuse's notify calls). Never call it from a request's own thread for that request's inodes:
/// the kernel may hold the locks the notification needs until the request is answered.
public struct Notifier: @unchecked Sendable {
    // The session outlives every notifier (the daemon ends with it), and libfuse's notify calls may be made from
    // any thread: each writes one message to the connection under libfuse's own lock.
    private let session: OpaquePointer

    init(_ session: OpaquePointer) { self.session = session }

    /// The kernel forgets `name` in `parent` (positive or negative): the next access looks it up again.
    /// ENOENT (the kernel holds neither) is not a failure.
    @discardableResult
    public func invalidateEntry(parent: UInt64, name: [UInt8]) -> Int32 {
        let result = name.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { text in
                fuse_lowlevel_notify_inval_entry(session, fuse_ino_t(parent), text.baseAddress, text.count)
            }
        }
        return result == -ENOENT ? 0 : result
    }

    /// The kernel drops a node's attributes and its whole page cache (a directory's cached listing too).
    @discardableResult
    public func invalidateNode(_ node: UInt64) -> Int32 {
        let result = fuse_lowlevel_notify_inval_inode(session, fuse_ino_t(node), 0, 0)
        return result == -ENOENT ? 0 : result
    }
}
