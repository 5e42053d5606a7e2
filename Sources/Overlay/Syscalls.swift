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

    static func xattrNames(_ path: String) throws(Errno) -> [String] {
        let list = try readSized { buffer, size in CLinux_llistxattr(path, buffer?.assumingMemoryBound(to: CChar.self), size) }
        return list.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls a size-probing getter (size 0 asks for the size) until the value fits, as it may grow in between.
    private static func readSized(_ call: (UnsafeMutableRawPointer?, Int) -> Int) throws(Errno) -> [UInt8] {
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
