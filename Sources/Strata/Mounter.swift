import FuseKit
import Glibc
import Logging
import Overlay
import SystemPackage

/// Mounts a plan and serves it until unmounted.
public enum Mounter {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Returns only in the serving process, once the mount has ended; without `foreground` the launching
    /// process exits 0 as soon as the mount is live.
    public static func serve(_ plan: MountPlan, foreground: Bool, debug: Bool) throws(Failure) {
        if !(foreground || debug) { closeInheritedDescriptors() }
        // The kernel hands over each new object's mode with the caller's umask already applied (or the parent's
        // default ACL in mind); the daemon's own umask must not take bits away a second time.
        umask(0)
        let tree: OverlayTree
        do {
            let settings = WriteSettings(whiteout: plan.options.whiteout, volatile: plan.options.skipSync,
                                         metacopy: plan.options.metacopy)
            tree = try OverlayTree(stack: LayerStack(lowers: plan.lowers, upper: plan.upper, workdir: plan.work,
                                                     settings: settings, mapping: plan.options.mapping))
        } catch {
            throw Failure(description: "opening the layers: \(error)")
        }
        let statistics = RequestStatistics()
        let fileSystem = StrataFileSystem(tree: tree, statistics: statistics, timeout: plan.options.timeout,
                                          skipSync: plan.options.skipSync, writeback: plan.options.writeback, acl: plan.options.acl)
        do {
            let session = try Session(fileSystem: fileSystem, statistics: statistics, mountOptions: plan.fuseOptions, debug: debug,
                                      rings: plan.options.threaded && plan.options.rings)
            try session.mount(at: plan.mountpoint)
            session.detach(foreground: foreground || debug)
            if !(foreground || debug) { DaemonLog.detach() }
            fileSystem.invalidator.connect(session.notifier)
            // After detaching: the watcher's thread must be the serving process's.
            let watch = plan.options.watch ? watchLayers(tree, fileSystem.invalidator, inotify: plan.options.watchInotify) : nil
            if let watch { fileSystem.invalidator.method.withLock { $0 = watch.method } }
            defer { watch?.stop() }
            let clean = session.run(threaded: plan.options.threaded)
            session.unmount()
            if !clean { throw Failure(description: "\(plan.mountpoint): the FUSE connection failed") }
        } catch let error as SessionError {
            throw Failure(description: error.description)
        } catch let error as Failure {
            throw error
        } catch {
            throw Failure(description: "\(error)")
        }
    }

    /// `-o watch`: where no watch can be made the mount goes on without one, and says so once.
    private static func watchLayers(_ tree: OverlayTree, _ invalidator: Invalidator, inotify: Bool) -> LayerWatch? {
        do {
            let logger = Logger(label: "strata.watch")
            return try LayerWatch(tree, inotify: inotify, warn: { logger.warning("\($0)") }) { changes in
                invalidator.send(changes.map { tree.layersChanged($0) } ?? tree.refresh(.root))
            }
        } catch {
            Logger(label: "strata.watch").warning("\(error.description)")
            return nil
        }
    }

    /// A daemon that keeps its launcher's pipes and sockets open makes the launcher wait for an end of file that
    /// never comes (Foundation's Process does); only stdin, stdout and stderr are meant to be shared.
    private static func closeInheritedDescriptors() {
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        for fd in 3..<CInt(clamping: min(limit.rlim_cur, 65536)) { close(fd) }
    }
}
