import CFuse3
import Glibc

public struct SessionError: Error, CustomStringConvertible {
    public let description: String
}

/// One FUSE connection: created with the mount options, mounted, served until unmounted or signalled.
public final class Session {
    private let session: OpaquePointer
    private let dispatcher: Unmanaged<Dispatcher>
    private var mounted = false

    /// `mountOptions` are libfuse's `-o` options (allow_other, fsname=…, ro, …); libfuse rejects unknown ones.
    /// `rings`: serve requests through FUSE over io_uring where the kernel offers it (`RingPool`).
    public init(fileSystem: any FileSystem, statistics: RequestStatistics, mountOptions: [String], debug: Bool,
                rings: Bool = false) throws(SessionError) {
        var arguments = ["strata"]
        if !mountOptions.isEmpty { arguments += ["-o", mountOptions.joined(separator: ",")] }
        if debug { arguments.append("-d") }
        let argv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: arguments.count + 1)
        defer {
            for index in 0..<arguments.count { free(argv[index]) }
            argv.deallocate()
        }
        for (index, argument) in arguments.enumerated() { argv[index] = strdup(argument) }
        argv[arguments.count] = nil
        var args = fuse_args(argc: Int32(arguments.count), argv: argv, allocated: 0)

        // Two threads a CPU: a request that blocks (an fsync, a long copy-up) leaves its CPU's queue another. Four
        // made a cold 1 GiB read no faster within this VM's noise, and each thread's buffer fills up to the largest
        // request it serves (1 MiB).
        let pool = rings ? RingPool(threadsPerQueue: 2, statistics: statistics) : nil
        let dispatcher = Unmanaged.passRetained(Dispatcher(fileSystem, statistics: statistics, device: DeviceIO(rings: pool)))
        var ops = fuse_lowlevel_ops.dispatching()
        guard let session = fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size,
                                             dispatcher.toOpaque()) else {
            dispatcher.release()
            throw SessionError(description: "libfuse refused the mount options: \(mountOptions.joined(separator: ","))")
        }
        fuse_opt_free_args(&args)
        pool?.attach(session)
        self.session = session
        self.dispatcher = dispatcher
    }

    deinit {
        unmount()
        fuse_session_destroy(session)
        dispatcher.release()
    }

    /// For invalidations once the session is mounted.
    public var notifier: Notifier { Notifier(session) }

    public func mount(at mountpoint: String) throws(SessionError) {
        guard fuse_session_mount(session, mountpoint) == 0 else {
            throw SessionError(description: "\(mountpoint): mounting failed")
        }
        mounted = true
        // Without rings (or without the hooks) the connection is served as libfuse serves it alone.
        if dispatcher.takeUnretainedValue().device.rings != nil { _ = DeviceIO.install(session) }
    }

    /// Without `foreground`, forks: the calling process exits 0 once the child is running, so whoever started
    /// the mount sees success only when it is live.
    public func detach(foreground: Bool) {
        fflush(nil)
        fuse_daemonize(foreground ? 1 : 0)
    }

    /// Serves requests until the file system is unmounted (`fusermount3 -u`) or SIGINT, SIGTERM or SIGHUP
    /// arrives, on libfuse's pool of threads (each with its own /dev/fuse descriptor) or, `threaded: false`, on
    /// this one. True when it ended that way, false on a transport error.
    public func run(threaded: Bool) -> Bool {
        Self.restoreTerminationSignals()
        fuse_set_signal_handlers(session)
        defer { fuse_remove_signal_handlers(session) }
        guard threaded, let config = fuse_loop_cfg_create() else { return fuse_session_loop(session) >= 0 }
        defer { fuse_loop_cfg_destroy(config) }
        fuse_loop_cfg_set_clone_fd(config, 1)
        return fuse_session_loop_mt(session, config) >= 0
    }

    /// Unmounts, and then waits for the ring threads, which the kernel releases once the connection is gone.
    public func unmount() {
        if mounted { fuse_session_unmount(session) }
        mounted = false
        dispatcher.takeUnretainedValue().device.rings?.join()
    }

    /// libfuse installs its handlers only where a signal has its default action and unblocks nothing, while a
    /// daemon started from a script may inherit SIGINT ignored or SIGTERM blocked: undo both first.
    private static func restoreTerminationSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            Glibc.signal(signal, SIG_DFL)
            sigaddset(&set, signal)
        }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}
