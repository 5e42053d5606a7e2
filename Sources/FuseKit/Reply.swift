import CFuse3
import Glibc
import SystemPackage

/// The one answer a request gets. Every reply method consumes it; a reply dropped unanswered answers EIO,
/// so no request can leave the kernel waiting.
struct Reply: ~Copyable {
    private let request: fuse_req_t

    init(_ request: fuse_req_t) { self.request = request }

    deinit { fuse_reply_err(request, EIO) }

    consuming func error(_ code: Errno) {
        fuse_reply_err(request, code.rawValue)
        discard self
    }

    consuming func success() {
        fuse_reply_err(request, 0)
        discard self
    }

    consuming func none() {
        fuse_reply_none(request)
        discard self
    }

    consuming func entry(_ entry: Entry) {
        var param = Self.entryParam(entry)
        fuse_reply_entry(request, &param)
        discard self
    }

    consuming func attributes(_ reply: Attributes) {
        var attributes = reply.attributes
        fuse_reply_attr(request, &attributes, reply.timeout)
        discard self
    }

    consuming func readlink(_ target: [UInt8]) {
        (target + [0]).withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { _ = fuse_reply_readlink(request, $0.baseAddress) }
        }
        discard self
    }

    consuming func open(_ handle: OpenHandle, _ info: UnsafeMutablePointer<fuse_file_info>) {
        info.pointee.fh = handle.handle
        info.pointee.keep_cache = handle.keepCache ? 1 : 0
        info.pointee.cache_readdir = handle.cacheDirectory ? 1 : 0
        fuse_reply_open(request, info)
        discard self
    }

    consuming func data(_ data: ReadData) {
        switch data {
        case let .descriptor(fd, offset, size):
            Self.send(request, fd, offset, size)
        case let .ownDescriptor(fd, offset, size):
            Self.send(request, fd, offset, size)
            close(fd)
        case let .bytes(bytes):
            bytes.withUnsafeBytes { _ = fuse_reply_buf(request, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
        }
        discard self
    }

    /// Data read from a backing file: through a ring, read straight into the buffer the kernel copies it from
    /// (a pipe would add a copy there); through the device, spliced (no copy through the daemon).
    private static func send(_ request: fuse_req_t, _ fd: CInt, _ offset: Int64, _ size: Int) {
        guard let entry = Dispatcher.of(request).device.rings?.current else { return splice(request, fd, offset, size) }
        let buffer = entry.payloadArea
        var done = 0
        while done < min(size, buffer.count) {
            let got = pread(fd, buffer.baseAddress.map { $0 + done }, min(size, buffer.count) - done, off_t(offset) + off_t(done))
            if got < 0, errno == EINTR { continue }
            if got < 0 {
                fuse_reply_err(request, errno)
                return
            }
            if got == 0 { break }
            done += got
        }
        fuse_reply_buf(request, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), done)
    }

    private static func splice(_ request: fuse_req_t, _ fd: CInt, _ offset: Int64, _ size: Int) {
        let flags = fuse_buf_flags(rawValue: FUSE_BUF_IS_FD.rawValue | FUSE_BUF_FD_SEEK.rawValue)
        var vector = fuse_bufvec(count: 1, idx: 0, off: 0,
                                 buf: (fuse_buf(size: size, flags: flags, mem: nil, fd: fd, pos: off_t(offset))))
        fuse_reply_data(request, &vector, FUSE_BUF_SPLICE_MOVE)
    }

    consuming func created(_ entry: Entry, _ handle: OpenHandle, _ info: UnsafeMutablePointer<fuse_file_info>) {
        var param = Self.entryParam(entry)
        info.pointee.fh = handle.handle
        info.pointee.keep_cache = handle.keepCache ? 1 : 0
        fuse_reply_create(request, &param, info)
        discard self
    }

    consuming func count(_ count: Int) {
        fuse_reply_write(request, count)
        discard self
    }

    consuming func offset(_ offset: Int64) {
        fuse_reply_lseek(request, off_t(offset))
        discard self
    }

    consuming func buffer(_ bytes: UnsafeRawBufferPointer) {
        fuse_reply_buf(request, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
        discard self
    }

    consuming func statistics(_ statistics: statvfs) {
        var statistics = statistics
        fuse_reply_statfs(request, &statistics)
        discard self
    }

    /// An xattr value or name list: its size when the caller asked with size 0, ERANGE when it does not fit.
    consuming func sized(_ bytes: [UInt8], capacity: Int) {
        if capacity == 0 {
            fuse_reply_xattr(request, bytes.count)
        } else if bytes.count > capacity {
            fuse_reply_err(request, ERANGE)
        } else {
            bytes.withUnsafeBytes { _ = fuse_reply_buf(request, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
        }
        discard self
    }

    static func entryParam(_ entry: Entry) -> fuse_entry_param {
        var param = fuse_entry_param()
        param.ino = fuse_ino_t(entry.node)
        param.attr = entry.attributes
        param.entry_timeout = entry.entryTimeout
        param.attr_timeout = entry.attributeTimeout
        return param
    }
}
