import CFuse3
import CLinux
import Glibc
import Synchronization

/// libfuse's reads from and writes to /dev/fuse, taken over (`fuse_session_custom_io`) for what libfuse 3.14
/// cannot do itself: offer the kernel FUSE over io_uring in the INIT reply (a flag it predates), and carry the
/// replies to requests that came through a ring (`RingPool`) back into that ring instead of the device.
final class DeviceIO: Sendable {
    /// The INIT request's id (0 once answered) and the flags the kernel offered in it, seen as libfuse reads it.
    private let initUnique = Atomic<UInt64>(0)
    private let offered = Atomic<UInt64>(0)
    let rings: RingPool?

    init(rings: RingPool?) { self.rings = rings }

    /// Installs the hooks on a mounted session (its descriptor stays libfuse's).
    static func install(_ session: OpaquePointer) -> Bool {
        var io = fuse_custom_io()
        io.read = { fd, buffer, size, userdata in
            let count = Glibc.read(fd, buffer, size)
            if count > 0, let buffer, let userdata { Dispatcher.from(userdata).device.noteRequest(buffer, count) }
            return count
        }
        io.writev = { fd, vectors, count, userdata in
            guard let vectors, let userdata else { return Glibc.writev(fd, vectors, count) }
            return Dispatcher.from(userdata).device.send(fd, vectors, Int(count))
        }
        io.splice_send = { pipe, pipeOffset, fd, fdOffset, length, flags, userdata in
            // A request that came through a ring is answered in the ring (`Reply` reads data straight into it),
            // never on the device, where the kernel would not find it.
            if let userdata, Dispatcher.from(userdata).device.rings?.current != nil {
                errno = EIO
                return -1
            }
            return CLinux_splice(pipe, pipeOffset, fd, fdOffset, length, flags)
        }
        return fuse_session_custom_io(session, &io, fuse_session_fd(session)) == 0
    }

    private func noteRequest(_ buffer: UnsafeMutableRawPointer, _ count: Int) {
        let header = MemoryLayout<fuse_in_header>.size
        guard count >= header + MemoryLayout<fuse_init_in>.size else { return }
        let request = buffer.loadUnaligned(as: fuse_in_header.self)
        guard request.opcode == FUSE_INIT.rawValue else { return }
        let arguments = (buffer + header).loadUnaligned(as: fuse_init_in.self)
        var offered = UInt64(arguments.flags)
        if arguments.flags & UInt32(FUSE_INIT_EXT) != 0 { offered |= UInt64(arguments.flags2) << 32 }
        self.offered.store(offered, ordering: .relaxed)
        initUnique.store(request.unique, ordering: .releasing)
    }

    /// One reply (or notification) from libfuse: into the ring its request came from, or to the device.
    private func send(_ fd: CInt, _ vectors: UnsafeMutablePointer<iovec>, _ count: Int) -> Int {
        guard count > 0, vectors[0].iov_len >= MemoryLayout<fuse_out_header>.size, let base = vectors[0].iov_base else {
            return Glibc.writev(fd, vectors, CInt(count))
        }
        let header = base.loadUnaligned(as: fuse_out_header.self)
        if let entry = rings?.current, entry.unique == header.unique {
            return entry.reply(vectors, count)
        }
        if header.unique != 0, header.unique == initUnique.load(ordering: .acquiring),
           initUnique.compareExchange(expected: header.unique, desired: 0, ordering: .relaxed).exchanged {
            return sendInitReply(fd, vectors, count, offered: offered.load(ordering: .relaxed))
        }
        return Glibc.writev(fd, vectors, CInt(count))
    }

    /// libfuse's INIT reply, with FUSE over io_uring asked for when the kernel offered it and every ring could
    /// be made; the rings register once the kernel has taken the reply (it refuses them before).
    private func sendInitReply(_ fd: CInt, _ vectors: UnsafeMutablePointer<iovec>, _ count: Int, offered: UInt64) -> Int {
        guard let rings, count == 2, let base = vectors[1].iov_base, vectors[1].iov_len >= MemoryLayout<fuse_init_out>.size,
              offered & CLinux_FUSE_OVER_IO_URING != 0, offered & UInt64(FUSE_INIT_EXT) != 0 else {
            return Glibc.writev(fd, vectors, CInt(count))
        }
        var reply = base.loadUnaligned(as: fuse_init_out.self)
        guard reply.flags & UInt32(FUSE_INIT_EXT) != 0 else { return Glibc.writev(fd, vectors, CInt(count)) }
        // The kernel sizes every ring buffer for the largest request or reply it may send.
        let pages = reply.flags & UInt32(FUSE_MAX_PAGES) != 0 ? Int(reply.max_pages) : 32
        let largest = max(8192, Int(reply.max_write), pages * Int(getpagesize()))
        guard rings.prepare(device: fd, payloadSize: largest) else { return Glibc.writev(fd, vectors, CInt(count)) }
        reply.flags2 |= UInt32(truncatingIfNeeded: CLinux_FUSE_OVER_IO_URING >> 32)
        let sent = withUnsafeMutableBytes(of: &reply) { patched -> Int in
            vectors[1].iov_base = patched.baseAddress
            return Glibc.writev(fd, vectors, CInt(count))
        }
        vectors[1].iov_base = base
        if sent > 0 { rings.start() } else { rings.discard() }
        return sent
    }
}
