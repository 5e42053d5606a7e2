import Glibc
import Synchronization

/// The requests of a FUSE connection, by the kernel's opcode.
public enum Opcode: Int, CaseIterable, Sendable {
    case `init`, lookup, forget, getattr, setattr, readlink, symlink, mknod, mkdir, unlink, rmdir, rename, link,
         open, read, write, statfs, release, fsync, setxattr, getxattr, listxattr, removexattr, opendir, readdir,
         readdirplus, releasedir, fsyncdir, create, fallocate, lseek, copyFileRange

    /// The kernel's name for it (FUSE_LOOKUP is "LOOKUP").
    public var name: String {
        switch self {
        case .copyFileRange: "COPY_FILE_RANGE"
        default: "\(self)".uppercased()
        }
    }
}

/// How many requests of each opcode the connection answered since it was mounted, how many with an error,
/// and how long the server took over them: what `strata stats` shows. Counted with atomics, so the threads
/// serving requests never wait for each other here.
public final class RequestStatistics: Sendable {
    private final class Counter: Sendable {
        let calls = Atomic<UInt64>(0)
        let errors = Atomic<UInt64>(0)
        let nanoseconds = Atomic<UInt64>(0)
    }

    private let counters = Opcode.allCases.map { _ in Counter() }

    /// Requests that came through FUSE over io_uring (`RingPool`) rather than the device.
    private let throughRings = Atomic<UInt64>(0)

    public init() {}

    public var ringRequests: UInt64 { throughRings.load(ordering: .relaxed) }

    func recordRing() { throughRings.wrappingAdd(1, ordering: .relaxed) }

    public struct Row: Sendable {
        public let opcode: Opcode
        public let calls: UInt64
        public let errors: UInt64
        public let nanoseconds: UInt64
    }

    /// Every opcode that was asked at least once.
    public var rows: [Row] {
        Opcode.allCases.compactMap { opcode in
            let counter = counters[opcode.rawValue]
            let calls = counter.calls.load(ordering: .relaxed)
            guard calls > 0 else { return nil }
            return Row(opcode: opcode, calls: calls, errors: counter.errors.load(ordering: .relaxed),
                       nanoseconds: counter.nanoseconds.load(ordering: .relaxed))
        }
    }

    /// Counts one request that started at `start` (from `now()`), failed or not.
    func record(_ opcode: Opcode, since start: UInt64, failed: Bool) {
        let counter = counters[opcode.rawValue]
        counter.calls.wrappingAdd(1, ordering: .relaxed)
        if failed { counter.errors.wrappingAdd(1, ordering: .relaxed) }
        counter.nanoseconds.wrappingAdd(Self.now() &- start, ordering: .relaxed)
    }

    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(truncatingIfNeeded: time.tv_sec) &* 1_000_000_000 &+ UInt64(truncatingIfNeeded: time.tv_nsec)
    }
}
