import CFuse3
import Glibc
import SystemPackage

/// The data of a write request as libfuse received it: memory, or a pipe the kernel spliced it into.
public struct WriteData {
    private let buffers: UnsafeMutablePointer<fuse_bufvec>

    init(_ buffers: UnsafeMutablePointer<fuse_bufvec>) { self.buffers = buffers }

    /// Writes it all to `fd` at `offset`, spliced from the pipe when it came in one (no copy through memory).
    public func write(to fd: CInt, at offset: Int64) throws(Errno) -> Int {
        let size = fuse_buf_size(buffers)
        let flags = fuse_buf_flags(rawValue: FUSE_BUF_IS_FD.rawValue | FUSE_BUF_FD_SEEK.rawValue)
        var target = fuse_bufvec(count: 1, idx: 0, off: 0,
                                 buf: (fuse_buf(size: size, flags: flags, mem: nil, fd: fd, pos: off_t(offset))))
        let written = fuse_buf_copy(&target, buffers, fuse_buf_copy_flags(rawValue: 0))
        if written < 0 { throw Errno(rawValue: CInt(-written)) }
        return written
    }
}
