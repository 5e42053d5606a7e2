import CLinux
import Glibc
import Synchronization
import SystemPackage

// Every raw call the engine makes goes through here, so errno is read in exactly one place and EINTR is
// retried in exactly one place. Calls name objects by a `Spot` (an open directory and one name in it), never
// by a multi-component path: paths inside layers are resolved only by `Layer.directory(_:)`, beneath the
// layer root.

@inline(__always)
func valueOrErrno<T: FixedWidthInteger>(_ body: () -> T) throws(Errno) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Errno(rawValue: errno)
        if code != .interrupted { throw code }
    }
}

/// An object named relative to an open directory: one name in it, or (nil) the directory itself.
struct Spot {
    let directory: CInt
    let name: Name?

    init(_ directory: CInt, _ name: Name?) {
        self.directory = directory
        self.name = name
    }

    /// The name as the *at calls take it: the directory itself is "" with AT_EMPTY_PATH, or "." where a call
    /// has no AT_EMPTY_PATH.
    func withPath<T, E: Error>(self: Bool = false, _ body: (UnsafePointer<CChar>) throws(E) -> T) throws(E) -> T {
        if let name { return try name.withCString(body) }
        return try Escaping.withCString(self ? [0x2E] : [], body)
    }

    var emptyPathFlag: CInt { name == nil ? CLinux_AT_EMPTY_PATH : 0 }
}

enum Sys {
    static func stat(_ spot: Spot) throws(Errno) -> Glibc.stat {
        var buffer = Glibc.stat()
        _ = try valueOrErrno {
            spot.withPath { fstatat(spot.directory, $0, &buffer, CLinux_AT_SYMLINK_NOFOLLOW | spot.emptyPathFlag) }
        }
        return buffer
    }

    /// Like `stat`, but a missing name is an answer (`nil`), not an error.
    static func statIfPresent(_ spot: Spot) throws(Errno) -> Glibc.stat? {
        do {
            return try stat(spot)
        } catch .noSuchFileOrDirectory, .notDirectory {
            return nil
        }
    }

    static func fstat(_ fd: CInt) throws(Errno) -> Glibc.stat {
        var buffer = Glibc.stat()
        _ = try valueOrErrno { Glibc.fstat(fd, &buffer) }
        return buffer
    }

    /// Never follows a symbolic link at the name: the daemon opens objects, not what links point at.
    static func open(_ spot: Spot, _ flags: CInt, _ mode: mode_t = 0) throws(Errno) -> CInt {
        try valueOrErrno {
            spot.withPath(self: true) { openat(spot.directory, $0, flags | CLinux_O_CLOEXEC | CLinux_O_NOFOLLOW, mode) }
        }
    }

    /// Opens a path the user gave on the command line (a layer root, the workdir), relative to the working
    /// directory; nothing inside a layer is ever opened this way.
    static func openGiven(_ path: String, _ flags: CInt) throws(Errno) -> CInt {
        try valueOrErrno { Glibc.open(path, flags | CLinux_O_CLOEXEC) }
    }

    /// One step of beneath-the-root resolution: `path` ("a/b/c", no symbolic link, no "..") below `directory`.
    static func openBeneath(_ directory: CInt, _ path: [UInt8], _ flags: CInt) throws(Errno) -> CInt {
        let resolve = CLinux_RESOLVE_BENEATH | CLinux_RESOLVE_NO_SYMLINKS | CLinux_RESOLVE_NO_MAGICLINKS
        return try valueOrErrno {
            Escaping.withCString(path) { CLinux_openat2(directory, $0, flags | CLinux_O_CLOEXEC, 0, resolve) }
        }
    }

    static func close(_ fd: CInt) {
        _ = Glibc.close(fd)
    }

    static func readlink(_ spot: Spot) throws(Errno) -> [UInt8] {
        var capacity = 256
        while true {
            var buffer = [UInt8](repeating: 0, count: capacity)
            let count = try valueOrErrno {
                buffer.withUnsafeMutableBytes { bytes in
                    spot.withPath { path in
                        bytes.baseAddress.map { readlinkat(spot.directory, path, $0.assumingMemoryBound(to: CChar.self), capacity) } ?? -1
                    }
                }
            }
            if count < capacity { return Array(buffer[..<count]) }
            capacity *= 4
        }
    }

    /// The UUID of the filesystem `fd` is on; empty where it has none (or the kernel cannot tell).
    static func filesystemUUID(_ fd: CInt) -> [UInt8] {
        var uuid = [UInt8](repeating: 0, count: 16)
        var length: UInt32 = 0
        let status = uuid.withUnsafeMutableBufferPointer { CLinux_filesystem_uuid(fd, $0.baseAddress, &length) }
        return status == 0 ? Array(uuid.prefix(Int(length))) : []
    }

    /// The path the kernel gives an open descriptor, as bytes (for matching a watched directory to its layer).
    static func pathOfDescriptor(_ fd: CInt) throws(Errno) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: Int(CLinux_PATH_MAX) + 1)
        let count = try valueOrErrno {
            buffer.withUnsafeMutableBufferPointer { bytes in
                bytes.withMemoryRebound(to: CChar.self) { text in
                    text.baseAddress.map { Glibc.readlink("/proc/self/fd/\(fd)", $0, text.count - 1) } ?? -1
                }
            }
        }
        return Array(buffer[0..<count])
    }

    /// The filesystem id statfs(2) gives a descriptor, the one fanotify reports events with.
    static func filesystemID(_ fd: CInt) throws(Errno) -> UInt64 {
        var id: UInt64 = 0
        _ = try valueOrErrno { CLinux_filesystem_id(fd, &id) }
        return id
    }

    static func fanotifyGroup() throws(Errno) -> CInt { try valueOrErrno { CLinux_fanotify_init() } }

    static func fanotifyMarkFilesystem(_ fd: CInt, _ path: String) throws(Errno) {
        _ = try valueOrErrno { CLinux_fanotify_mark_filesystem(fd, path) }
    }

    static func openByHandle(_ mountFD: CInt, type: CInt, _ handle: UnsafeRawBufferPointer) throws(Errno) -> CInt {
        try valueOrErrno {
            CLinux_open_by_handle(mountFD, type, handle.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt32(handle.count))
        }
    }

    static func inotifyGroup() throws(Errno) -> CInt { try valueOrErrno { inotify_init1(CInt(IN_NONBLOCK | IN_CLOEXEC)) } }

    /// Watches the directory open as `directory` (a descriptor opened beneath its layer's root, reached through
    /// its /proc link, so no path inside a layer is resolved again here).
    static func inotifyWatch(_ group: CInt, _ directory: CInt) throws(Errno) -> CInt {
        try valueOrErrno { inotify_add_watch(group, "/proc/self/fd/\(directory)", CLinux_IN_EVENTS) }
    }

    static func inotifyRemove(_ group: CInt, _ watch: CInt) { _ = inotify_rm_watch(group, watch) }

    /// A read that may find nothing (a non-blocking descriptor): 0 then.
    static func readAvailable(_ fd: CInt, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        do {
            return try valueOrErrno { Glibc.read(fd, buffer.baseAddress, buffer.count) }
        } catch .wouldBlock {
            return 0
        }
    }

    /// Lets the calling thread run on every CPU the process may use. A thread inherits its creator's CPU mask,
    /// and the threads that serve FUSE over io_uring are each pinned to one CPU.
    static func runOnAnyCPU() {
        var all = cpu_set_t()
        withUnsafeMutableBytes(of: &all) { bytes in for index in bytes.indices { bytes[index] = 0xFF } }
        _ = CLinux_set_affinity(MemoryLayout<cpu_set_t>.size, &all)
    }

    /// Waits up to `milliseconds` for `fd` to be readable.
    static func waitReadable(_ fd: CInt, milliseconds: CInt) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, milliseconds) > 0
    }

    static func statfs(_ fd: CInt) throws(Errno) -> statvfs {
        var buffer = statvfs()
        _ = try valueOrErrno { fstatvfs(fd, &buffer) }
        return buffer
    }
}

extension Glibc.stat {
    var fileType: mode_t { st_mode & S_IFMT }
    var isDirectory: Bool { fileType == S_IFDIR }
}

extension Sys {
    static func mkdir(_ spot: Spot, _ mode: mode_t) throws(Errno) {
        _ = try valueOrErrno { spot.withPath { mkdirat(spot.directory, $0, mode) } }
    }

    static func mknod(_ spot: Spot, _ mode: mode_t, _ device: dev_t) throws(Errno) {
        _ = try valueOrErrno { spot.withPath { mknodat(spot.directory, $0, mode, device) } }
    }

    static func symlink(_ target: [UInt8], _ spot: Spot) throws(Errno) {
        _ = try valueOrErrno {
            Escaping.withCString(target) { target in spot.withPath { symlinkat(target, spot.directory, $0) } }
        }
    }

    static func link(_ from: Spot, _ to: Spot) throws(Errno) {
        _ = try valueOrErrno {
            from.withPath { old in to.withPath { linkat(from.directory, old, to.directory, $0, from.emptyPathFlag) } }
        }
    }

    static func unlink(_ spot: Spot, directory: Bool = false) throws(Errno) {
        // Counted once done: a directory opened before the count moved is then never taken for the one after.
        defer { if directory { DirectoryChanges.happened() } }
        _ = try valueOrErrno { spot.withPath { unlinkat(spot.directory, $0, directory ? AT_REMOVEDIR : 0) } }
    }

    /// `movingDirectory: false` where the caller knows the object moved is no directory and replaces none, so
    /// that every path still leads to the directory it led to.
    static func rename(_ from: Spot, _ to: Spot, _ flags: UInt32 = 0, movingDirectory: Bool = true) throws(Errno) {
        defer { if movingDirectory { DirectoryChanges.happened() } }
        _ = try valueOrErrno {
            from.withPath(self: true) { old in
                to.withPath(self: true) { CLinux_renameat2(from.directory, old, to.directory, $0, flags) }
            }
        }
    }

    static func chown(_ spot: Spot, _ uid: uid_t, _ gid: gid_t) throws(Errno) {
        _ = try valueOrErrno {
            spot.withPath { fchownat(spot.directory, $0, uid, gid, CLinux_AT_SYMLINK_NOFOLLOW | spot.emptyPathFlag) }
        }
    }

    static func chown(_ fd: CInt, _ uid: uid_t, _ gid: gid_t) throws(Errno) {
        _ = try valueOrErrno { fchown(fd, uid, gid) }
    }

    /// Never follows a symbolic link at the name (a link itself answers EOPNOTSUPP). One call where the kernel
    /// has fchmodat2 (Linux 6.6); before it, glibc's fchmodat, which takes three.
    static func chmod(_ spot: Spot, _ mode: mode_t) throws(Errno) {
        guard spot.name != nil else { return try withOpened(spot) { fd throws(Errno) in try chmod(fd, mode) } }
        if !noFchmodat2.load(ordering: .relaxed) {
            do throws(Errno) {
                _ = try valueOrErrno {
                    spot.withPath { CLinux_fchmodat2(spot.directory, $0, mode, CLinux_AT_SYMLINK_NOFOLLOW) }
                }
                return
            } catch .noFunction {
                noFchmodat2.store(true, ordering: .relaxed)
            } catch .notPermitted {
                // A seccomp filter that predates the call may answer EPERM for it: glibc's way tells.
            }
        }
        _ = try valueOrErrno { spot.withPath { fchmodat(spot.directory, $0, mode, CLinux_AT_SYMLINK_NOFOLLOW) } }
    }

    /// Set once the kernel answered ENOSYS to fchmodat2.
    private static let noFchmodat2 = Atomic<Bool>(false)

    static func chmod(_ fd: CInt, _ mode: mode_t) throws(Errno) {
        _ = try valueOrErrno { fchmod(fd, mode) }
    }

    static func setTimes(_ fd: CInt, access: timespec, modification: timespec) throws(Errno) {
        var times = [access, modification]
        _ = try valueOrErrno { futimens(fd, &times) }
    }

    /// Sets access and modification times without following a symbolic link at the name.
    static func setTimes(_ spot: Spot, access: timespec, modification: timespec) throws(Errno) {
        guard spot.name != nil else {
            return try withOpened(spot) { fd throws(Errno) in try setTimes(fd, access: access, modification: modification) }
        }
        var times = [access, modification]
        _ = try valueOrErrno { spot.withPath { utimensat(spot.directory, $0, &times, CLinux_AT_SYMLINK_NOFOLLOW) } }
    }

    /// Runs `body` on a readable descriptor of a directory spot (an `O_PATH` descriptor cannot take every call).
    static func withOpened<T>(_ spot: Spot, _ body: (CInt) throws(Errno) -> T) throws(Errno) -> T {
        let fd = try open(spot, O_RDONLY | CLinux_O_DIRECTORY)
        defer { close(fd) }
        return try body(fd)
    }

    static func truncate(_ fd: CInt, _ size: off_t) throws(Errno) {
        _ = try valueOrErrno { ftruncate(fd, size) }
    }

    static func sync(_ fd: CInt, dataOnly: Bool = false) throws(Errno) {
        _ = try valueOrErrno { dataOnly ? fdatasync(fd) : fsync(fd) }
    }

    static func seek(_ fd: CInt, _ offset: off_t, _ whence: CInt) throws(Errno) -> off_t {
        try valueOrErrno { lseek(fd, offset, whence) }
    }

    /// Copies `length` bytes in the kernel; returns how many were copied (0 at end of file).
    static func copyRange(_ from: CInt, _ fromOffset: inout Int64, _ to: CInt, _ toOffset: inout Int64,
                          _ length: Int) throws(Errno) -> Int {
        try valueOrErrno { CLinux_copy_file_range(from, &fromOffset, to, &toOffset, length, 0) }
    }

    static func clone(_ to: CInt, from: CInt) throws(Errno) {
        _ = try valueOrErrno { CLinux_ficlone(to, from) }
    }
}
