import CLinux
import Glibc
import Synchronization
import SystemPackage

/// Extended attribute calls, by spot (never following a symbolic link at the name) or by open descriptor.
/// Attribute names are bytes like file names: whatever the caller or the layer gives.
extension Sys {
    /// The value of an extended attribute, or `nil` when the object does not carry it.
    static func xattr(_ spot: Spot, _ name: [UInt8]) throws(Errno) -> [UInt8]? {
        try absentIsNil { () throws(Errno) in
            try readSized { buffer, size in
                Escaping.withCString(name) { attribute in
                    XattrCall.run(spot, at: { CLinux_getxattrat($0, $1, $2, attribute, buffer, size) },
                                  path: { CLinux_lgetxattr($0, attribute, buffer, size) })
                }
            }
        }
    }

    static func xattr(_ fd: CInt, _ name: [UInt8]) throws(Errno) -> [UInt8]? {
        try absentIsNil { () throws(Errno) in
            try readSized { buffer, size in Escaping.withCString(name) { CLinux_fgetxattr(fd, $0, buffer, size) } }
        }
    }

    /// An attribute of a path the user gave (a mount's own answers), not of anything inside a layer.
    static func xattr(givenPath path: String, _ name: [UInt8]) throws(Errno) -> [UInt8]? {
        try absentIsNil { () throws(Errno) in
            try readSized { buffer, size in Escaping.withCString(name) { CLinux_lgetxattr(path, $0, buffer, size) } }
        }
    }

    static func xattrNames(_ spot: Spot) throws(Errno) -> [[UInt8]] {
        let list = try readSized { buffer, size in
            let list = buffer?.assumingMemoryBound(to: CChar.self)
            return XattrCall.run(spot, at: { CLinux_listxattrat($0, $1, $2, list, size) },
                                 path: { CLinux_llistxattr($0, list, size) })
        }
        return list.split(separator: 0).map(Array.init)
    }

    static func xattrNames(_ fd: CInt) throws(Errno) -> [[UInt8]] {
        let list = try readSized { buffer, size in CLinux_flistxattr(fd, buffer?.assumingMemoryBound(to: CChar.self), size) }
        return list.split(separator: 0).map(Array.init)
    }

    static func setXattr(_ spot: Spot, _ name: [UInt8], _ value: [UInt8], flags: CInt = 0) throws(Errno) {
        _ = try valueOrErrno {
            value.withUnsafeBytes { bytes in
                Escaping.withCString(name) { attribute in
                    XattrCall.run(spot, at: { CLinux_setxattrat($0, $1, $2, attribute, bytes.baseAddress, bytes.count, flags) },
                                  path: { CLinux_lsetxattr($0, attribute, bytes.baseAddress, bytes.count, flags) })
                }
            }
        }
    }

    static func setXattr(_ fd: CInt, _ name: [UInt8], _ value: [UInt8], flags: CInt = 0) throws(Errno) {
        _ = try valueOrErrno {
            value.withUnsafeBytes { bytes in
                Escaping.withCString(name) { CLinux_fsetxattr(fd, $0, bytes.baseAddress, bytes.count, flags) }
            }
        }
    }

    static func removeXattr(_ spot: Spot, _ name: [UInt8]) throws(Errno) {
        _ = try valueOrErrno {
            Escaping.withCString(name) { attribute in
                XattrCall.run(spot, at: { CLinux_removexattrat($0, $1, $2, attribute) },
                              path: { CLinux_lremovexattr($0, attribute) })
            }
        }
    }

    static func removeXattr(_ fd: CInt, _ name: [UInt8]) throws(Errno) {
        _ = try valueOrErrno { Escaping.withCString(name) { CLinux_fremovexattr(fd, $0) } }
    }

    private static func absentIsNil(_ body: () throws(Errno) -> [UInt8]) throws(Errno) -> [UInt8]? {
        do {
            return try body()
        } catch .noData {
            return nil
        }
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
}

/// How an attribute call reaches a spot: the *xattrat calls of Linux 6.13 take the directory and one name, as
/// every other call does. Older kernels have only path-based calls; there the spot is reached through
/// /proc/self/fd/DIR/NAME, which finds the directory by its descriptor, not by a path inside the layer.
enum XattrCall {
    /// Set once a kernel answered ENOSYS: it stays so for the life of the process.
    private static let unavailable = Atomic<Bool>(false)

    /// The raw result of the call (-1 with errno set on failure), through whichever form this kernel has.
    static func run<R: FixedWidthInteger>(_ spot: Spot, at: (CInt, UnsafePointer<CChar>, CInt) -> R,
                                          path: (UnsafePointer<CChar>) -> R) -> R {
        if !unavailable.load(ordering: .relaxed) {
            let result = spot.withPath(self: true) { at(spot.directory, $0, CLinux_AT_SYMLINK_NOFOLLOW) }
            if result != -1 || errno != ENOSYS { return result }
            unavailable.store(true, ordering: .relaxed)
        }
        var proc = Array("/proc/self/fd/\(spot.directory)".utf8)
        if let name = spot.name { proc += [0x2F] + name.bytes }
        return Escaping.withCString(proc, path)
    }
}
