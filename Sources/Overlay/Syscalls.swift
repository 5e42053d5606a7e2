import CLinux
import Glibc
import SystemPackage

// Every raw call the engine makes goes through here, so errno is read in exactly one place
// and EINTR is retried in exactly one place.

@inline(__always)
func valueOrErrno<T: FixedWidthInteger>(_ body: () -> T) throws(Errno) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Errno(rawValue: errno)
        if code != .interrupted { throw code }
    }
}

enum Sys {
    static func stat(_ dirFD: CInt, _ path: String) throws(Errno) -> Glibc.stat {
        var buffer = Glibc.stat()
        _ = try valueOrErrno { fstatat(dirFD, path, &buffer, CLinux_AT_SYMLINK_NOFOLLOW) }
        return buffer
    }

    /// Like `stat`, but a missing name is an answer (`nil`), not an error.
    static func statIfPresent(_ dirFD: CInt, _ path: String) throws(Errno) -> Glibc.stat? {
        do {
            return try stat(dirFD, path)
        } catch .noSuchFileOrDirectory, .notDirectory {
            return nil
        }
    }

    static func fstat(_ fd: CInt) throws(Errno) -> Glibc.stat {
        var buffer = Glibc.stat()
        _ = try valueOrErrno { Glibc.fstat(fd, &buffer) }
        return buffer
    }

    static func open(_ dirFD: CInt, _ path: String, _ flags: CInt, _ mode: mode_t = 0) throws(Errno) -> CInt {
        try valueOrErrno { openat(dirFD, path, flags | CLinux_O_CLOEXEC, mode) }
    }

    static func close(_ fd: CInt) {
        _ = Glibc.close(fd)
    }

    static func readlink(_ dirFD: CInt, _ path: String) throws(Errno) -> [UInt8] {
        var capacity = 256
        while true {
            var buffer = [UInt8](repeating: 0, count: capacity)
            let count = try valueOrErrno {
                buffer.withUnsafeMutableBytes { readlinkat(dirFD, path, $0.baseAddress!.assumingMemoryBound(to: CChar.self), capacity) }
            }
            if count < capacity { return Array(buffer[..<count]) }
            capacity *= 4
        }
    }

    /// The value of an extended attribute, or `nil` when the file does not carry it.
    static func xattr(_ path: String, _ name: String) throws(Errno) -> [UInt8]? {
        do {
            return try readSized { buffer, size in CLinux_lgetxattr(path, name, buffer, size) }
        } catch .noData {
            return nil
        }
    }

    static func xattr(_ fd: CInt, _ name: String) throws(Errno) -> [UInt8]? {
        do {
            return try readSized { buffer, size in CLinux_fgetxattr(fd, name, buffer, size) }
        } catch .noData {
            return nil
        }
    }

    static func xattrNames(_ path: String) throws(Errno) -> [String] {
        let list = try readSized { buffer, size in CLinux_llistxattr(path, buffer?.assumingMemoryBound(to: CChar.self), size) }
        return list.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    static func xattrNames(_ fd: CInt) throws(Errno) -> [String] {
        let list = try readSized { buffer, size in CLinux_flistxattr(fd, buffer?.assumingMemoryBound(to: CChar.self), size) }
        return list.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls a size-probing getter (size 0 asks for the size) until the value fits, as it may grow in between.
    /// Most values are short: a first try with a small buffer usually saves the probe.
    private static func readSized(_ call: (UnsafeMutableRawPointer?, Int) -> Int) throws(Errno) -> [UInt8] {
        var small = [UInt8](repeating: 0, count: 256)
        do {
            let count = try valueOrErrno { small.withUnsafeMutableBytes { call($0.baseAddress, $0.count) } }
            return Array(small[..<count])
        } catch .outOfRange {}
        while true {
            let size = try valueOrErrno { call(nil, 0) }
            if size == 0 { return [] }
            var buffer = [UInt8](repeating: 0, count: size)
            do {
                let count = try valueOrErrno { buffer.withUnsafeMutableBytes { call($0.baseAddress, size) } }
                return Array(buffer[..<count])
            } catch .outOfRange {
                continue
            }
        }
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
    static func mkdir(_ dirFD: CInt, _ path: String, _ mode: mode_t) throws(Errno) {
        _ = try valueOrErrno { mkdirat(dirFD, path, mode) }
    }

    static func mknod(_ dirFD: CInt, _ path: String, _ mode: mode_t, _ device: dev_t) throws(Errno) {
        _ = try valueOrErrno { mknodat(dirFD, path, mode, device) }
    }

    static func symlink(_ target: [UInt8], _ dirFD: CInt, _ path: String) throws(Errno) {
        _ = try valueOrErrno {
            (target + [0]).withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { symlinkat($0.baseAddress!, dirFD, path) }
            }
        }
    }

    static func link(_ fromFD: CInt, _ from: String, _ toFD: CInt, _ to: String) throws(Errno) {
        _ = try valueOrErrno { linkat(fromFD, from, toFD, to, 0) }
    }

    static func unlink(_ dirFD: CInt, _ path: String, directory: Bool = false) throws(Errno) {
        _ = try valueOrErrno { unlinkat(dirFD, path, directory ? AT_REMOVEDIR : 0) }
    }

    static func rename(_ fromFD: CInt, _ from: String, _ toFD: CInt, _ to: String, _ flags: UInt32 = 0) throws(Errno) {
        _ = try valueOrErrno { CLinux_renameat2(fromFD, from, toFD, to, flags) }
    }

    static func chown(_ dirFD: CInt, _ path: String, _ uid: uid_t, _ gid: gid_t) throws(Errno) {
        _ = try valueOrErrno { fchownat(dirFD, path, uid, gid, CLinux_AT_SYMLINK_NOFOLLOW) }
    }

    static func chown(_ fd: CInt, _ uid: uid_t, _ gid: gid_t) throws(Errno) {
        _ = try valueOrErrno { fchown(fd, uid, gid) }
    }

    static func chmod(_ dirFD: CInt, _ path: String, _ mode: mode_t) throws(Errno) {
        _ = try valueOrErrno { fchmodat(dirFD, path, mode, 0) }
    }

    /// Sets access and modification times without following a final symbolic link.
    static func setTimes(_ fd: CInt, access: timespec, modification: timespec) throws(Errno) {
        var times = [access, modification]
        _ = try valueOrErrno { futimens(fd, &times) }
    }

    static func chmod(_ fd: CInt, _ mode: mode_t) throws(Errno) {
        _ = try valueOrErrno { fchmod(fd, mode) }
    }

    static func setTimes(_ dirFD: CInt, _ path: String, access: timespec, modification: timespec) throws(Errno) {
        var times = [access, modification]
        _ = try valueOrErrno { utimensat(dirFD, path, &times, CLinux_AT_SYMLINK_NOFOLLOW) }
    }

    static func truncate(_ fd: CInt, _ size: off_t) throws(Errno) {
        _ = try valueOrErrno { ftruncate(fd, size) }
    }

    static func sync(_ fd: CInt, dataOnly: Bool = false) throws(Errno) {
        _ = try valueOrErrno { dataOnly ? fdatasync(fd) : fsync(fd) }
    }

    static func setXattr(_ path: String, _ name: String, _ value: [UInt8], flags: CInt = 0) throws(Errno) {
        _ = try valueOrErrno {
            value.withUnsafeBytes { CLinux_lsetxattr(path, name, $0.baseAddress, $0.count, flags) }
        }
    }

    static func setXattr(_ fd: CInt, _ name: String, _ value: [UInt8], flags: CInt = 0) throws(Errno) {
        _ = try valueOrErrno {
            value.withUnsafeBytes { CLinux_fsetxattr(fd, name, $0.baseAddress, $0.count, flags) }
        }
    }

    static func removeXattr(_ fd: CInt, _ name: String) throws(Errno) {
        _ = try valueOrErrno { CLinux_fremovexattr(fd, name) }
    }

    static func removeXattr(_ path: String, _ name: String) throws(Errno) {
        _ = try valueOrErrno { CLinux_lremovexattr(path, name) }
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
