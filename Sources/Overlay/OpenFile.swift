import CLinux
import Glibc
import SystemPackage

/// Operations on a file the caller has open: the descriptor is the backing file itself, so they pass straight
/// through to the kernel.
public enum OpenFile {
    public static func synchronize(_ fd: CInt, dataOnly: Bool) throws(Errno) {
        try Sys.sync(fd, dataOnly: dataOnly)
    }

    /// fallocate(2), including FALLOC_FL_PUNCH_HOLE.
    public static func allocate(_ fd: CInt, mode: Int32, offset: Int64, length: Int64) throws(Errno) {
        _ = try valueOrErrno { CLinux_fallocate(fd, mode, offset, length) }
    }

    /// lseek(2), including SEEK_DATA and SEEK_HOLE.
    public static func seek(_ fd: CInt, offset: Int64, whence: Int32) throws(Errno) -> Int64 {
        Int64(try Sys.seek(fd, off_t(offset), whence))
    }

    public static func copyRange(from source: CInt, at sourceOffset: Int64, to target: CInt, at targetOffset: Int64,
                                 length: Int) throws(Errno) -> Int {
        var inOffset = sourceOffset, outOffset = targetOffset
        return try Sys.copyRange(source, &inOffset, target, &outOffset, length)
    }
}

extension OverlayTree {
    /// fsyncdir: what changed in a directory was changed in its upper copy; one only in lower layers is unchanged.
    public func synchronizeDirectory(_ id: NodeID, dataOnly: Bool) throws(Errno) {
        let source = try nodes.view(id).top
        let layer = stack.layers[source.layer]
        guard layer.isUpper else { return }
        let fd = try layer.openDirectory(source.path, forReading: true)
        defer { Sys.close(fd) }
        try Sys.sync(fd, dataOnly: dataOnly)
    }
}
