import CFuse3
import CLinux
import Glibc
import Synchronization

/// FUSE over io_uring (Linux 6.14, where `/sys/module/fuse/parameters/enable_uring` is on): the kernel hands
/// each request to a queue of the CPU it was made on, and this pool serves each queue on threads pinned to that
/// CPU. A request is then answered where it was asked, with no wakeup of another CPU on either side of the
/// round trip, and one system call (commit the reply, fetch the next) instead of a read and a write. The
/// device stays libfuse's for INIT, FORGET and INTERRUPT, which the kernel still sends there, and for
/// notifications.
///
/// Each thread owns one ring with one entry: the kernel gives a queue's next request to its most recently
/// freed entry, so a caller that waits on each answer is served by one warm thread, and a request that blocks
/// (a long copy-up, an fsync) leaves the queue's other threads free.
///
/// Once the INIT reply asks for rings, the kernel holds every request until each CPU's queue has an entry, and
/// goes back to the device only if a registration fails: so every ring is made before the reply is sent,
/// and a thread that cannot start has its ring send a registration the kernel refuses.
final class RingPool: Sendable {
    let threadsPerQueue: Int
    private let statistics: RequestStatistics
    private let session = Atomic<UInt>(0)
    private let key: pthread_key_t
    private let stopEvent: CInt
    private let prepared = Mutex<[RingThread]>([])
    private let threads = Mutex<[pthread_t]>([])

    init?(threadsPerQueue: Int, statistics: RequestStatistics) {
        var key = pthread_key_t()
        guard pthread_key_create(&key, nil) == 0 else { return nil }
        let stopEvent = eventfd(0, CInt(EFD_CLOEXEC))
        guard stopEvent >= 0 else {
            pthread_key_delete(key)
            return nil
        }
        self.key = key
        self.stopEvent = stopEvent
        self.threadsPerQueue = threadsPerQueue
        self.statistics = statistics
    }

    deinit {
        pthread_key_delete(key)
        close(stopEvent)
    }

    func attach(_ session: OpaquePointer) { self.session.store(UInt(bitPattern: session), ordering: .releasing) }

    /// The entry whose request this thread is serving, if it is one of the pool's.
    var current: RingEntry? {
        guard let stored = pthread_getspecific(key) else { return nil }
        return Unmanaged<RingEntry>.fromOpaque(stored).takeUnretainedValue()
    }

    /// Makes every ring, before the INIT reply asks for them; false (nothing kept) when one cannot be made.
    func prepare(device: CInt, payloadSize: Int) -> Bool {
        guard let cpus = Self.possibleCPUs() else { return false }
        var made: [RingThread] = []
        for queue in 0..<cpus {
            for _ in 0..<threadsPerQueue {
                guard let thread = RingThread(pool: self, queue: queue, device: device, payloadSize: payloadSize) else {
                    return false
                }
                made.append(thread)
            }
        }
        prepared.withLock { $0 = made }
        return true
    }

    /// After the kernel took the INIT reply: a thread for each prepared ring.
    func start() {
        for thread in prepared.withLock({ list in defer { list = [] }; return list }) {
            let context = Unmanaged.passRetained(thread)
            var id = pthread_t()
            let started = pthread_create(&id, nil, { context in
                if let context { Unmanaged<RingThread>.fromOpaque(context).takeRetainedValue().run() }
                return nil
            }, context.toOpaque())
            if started == 0 {
                threads.withLock { $0.append(id) }
            } else {
                context.release()
                thread.refuse()
            }
        }
    }

    /// Rings prepared for an INIT reply that was not sent.
    func discard() { prepared.withLock { $0 = [] } }

    /// Ends every thread (after the unmount, which ends their commands anyway) and waits for them.
    func join() {
        var one: UInt64 = 1
        _ = write(stopEvent, &one, 8)
        for thread in threads.withLock({ list in defer { list = [] }; return list }) { pthread_join(thread, nil) }
    }

    fileprivate var stopDescriptor: CInt { stopEvent }

    fileprivate func serve(_ entry: RingEntry, _ buffer: inout fuse_buf) {
        guard let session = OpaquePointer(bitPattern: self.session.load(ordering: .acquiring)) else { return }
        pthread_setspecific(key, Unmanaged.passUnretained(entry).toOpaque())
        fuse_session_process_buf(session, &buffer)
        pthread_setspecific(key, nil)
        statistics.recordRing()
    }

    /// The kernel makes a queue for every possible CPU, online or not (`num_possible_cpus`), and waits for all.
    private static func possibleCPUs() -> Int? {
        let fd = open("/sys/devices/system/cpu/possible", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 256)
        let count = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        // A list of CPU ranges ("0-1", "0,2-3"): the highest number ends it.
        let last = bytes[0..<count].split { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "\n") }.last
        guard let last, let highest = Int(String(decoding: last, as: UTF8.self)), highest < 1024 else { return nil }
        return highest + 1
    }
}

/// One thread of the pool: its ring, its one entry, its CPU.
// Unchecked: made on the thread that answers INIT and handed to the one thread that runs it; never used by two
// threads at once.
private final class RingThread: @unchecked Sendable {
    private static let entryCommand: UInt64 = 1
    private static let stopPoll: UInt64 = 2
    let pool: RingPool
    let queue: Int
    let device: CInt
    private let ring: UnsafeMutableRawPointer
    private let entry: RingEntry

    init?(pool: RingPool, queue: Int, device: CInt, payloadSize: Int) {
        // A descriptor of its own: libfuse closes the session's at unmount, while the ring may still submit.
        let own = dup(device)
        guard own >= 0 else { return nil }
        guard let ring = CLinux_ring_create(4) else {
            close(own)
            return nil
        }
        self.ring = ring
        self.pool = pool
        self.queue = queue
        self.device = own
        entry = RingEntry(payloadSize: payloadSize)
    }

    deinit {
        CLinux_ring_destroy(ring)
        close(device)
    }

    /// A thread that could not start: the kernel, refusing this registration (one buffer, not two), stops
    /// waiting for rings and serves the connection through the device.
    func refuse() {
        guard command(CLinux_FUSE_IO_URING_CMD_REGISTER, buffers: 1) else { return }
        var result: Int32 = 0, what: UInt64 = 0
        while CLinux_ring_wait(ring, &result, &what) == -EINTR {}
    }

    func run() {
        pin()
        _ = CLinux_name_thread("strata-ring-\(queue)")
        guard CLinux_ring_poll(ring, pool.stopDescriptor, Self.stopPoll) == 0 else { return refuse() }
        guard command(CLinux_FUSE_IO_URING_CMD_REGISTER, buffers: 2) else { return }
        // Whether the entry has served a request since it last registered: a registration refused at once ends it.
        var served = false
        while true {
            var result: Int32 = 0, what: UInt64 = 0
            let waited = CLinux_ring_wait(ring, &result, &what)
            if waited == -EINTR { continue }
            // The kernel ends the entry's command with an error when the connection goes (ENOTCONN) or the ring
            // is torn down (ECANCELED); the stop poll ends the thread when the mount has ended.
            guard waited == 0, what == Self.entryCommand, result != -ENOTCONN, result != -ECANCELED else { return }
            // Any other refusal (a commit the kernel could not match) leaves the entry unregistered, and a queue
            // without entries would hold its CPU's requests for good: the entry registers again.
            guard result == 0 else {
                guard served, command(CLinux_FUSE_IO_URING_CMD_REGISTER, buffers: 2) else { return }
                served = false
                continue
            }
            served = true
            if var buffer = entry.request() {
                pool.serve(entry, &buffer)
                if !entry.replied { entry.fail(EIO) }
            } else {
                entry.fail(EIO)
            }
            guard command(CLinux_FUSE_IO_URING_CMD_COMMIT_AND_FETCH, buffers: 0) else { return }
        }
    }

    private func command(_ command: Int, buffers: UInt32) -> Bool {
        CLinux_ring_fuse_command(ring, device, UInt32(command), buffers == 0 ? nil : entry.buffers, buffers, UInt16(queue),
                                 command == CLinux_FUSE_IO_URING_CMD_REGISTER ? 0 : entry.commitID, Self.entryCommand) == 0
    }

    /// Requests made on this CPU come to this queue: serving them here wakes no other CPU.
    private func pin() {
        var set = cpu_set_t()
        withUnsafeMutableBytes(of: &set) { bytes in
            if queue / 8 < bytes.count { bytes[queue / 8] |= UInt8(1 << (queue % 8)) }
        }
        _ = CLinux_set_affinity(MemoryLayout<cpu_set_t>.size, &set)
    }
}

/// A ring entry's two buffers, as the kernel fills them with a request and reads the reply back: the headers
/// (`CLinux_fuse_uring_req_header`) and the payload (names, written data; read data and other replies). The
/// payload sits behind room for a request's two headers, so that the request libfuse parses (fuse_in_header,
/// the opcode's header, the payload) is laid out in one piece without copying the payload.
final class RingEntry {
    private static let headerRoom = 256
    private static let headerSize = MemoryLayout<CLinux_fuse_uring_req_header>.size
    private let headers: UnsafeMutableRawPointer
    private let region: UnsafeMutableRawPointer
    private let payload: UnsafeMutableRawPointer
    private let payloadSize: Int
    let buffers: UnsafeMutablePointer<iovec>
    private(set) var unique: UInt64 = 0
    private(set) var commitID: UInt64 = 0
    private(set) var replied = false

    init(payloadSize: Int) {
        self.payloadSize = payloadSize
        headers = UnsafeMutableRawPointer.allocate(byteCount: Self.headerSize, alignment: 64)
        headers.initializeMemory(as: UInt8.self, repeating: 0, count: Self.headerSize)
        region = UnsafeMutableRawPointer.allocate(byteCount: Self.headerRoom + payloadSize, alignment: 4096)
        payload = region + Self.headerRoom
        buffers = .allocate(capacity: 2)
        buffers[0] = iovec(iov_base: headers, iov_len: Self.headerSize)
        buffers[1] = iovec(iov_base: payload, iov_len: payloadSize)
    }

    deinit {
        headers.deallocate()
        region.deallocate()
        buffers.deallocate()
    }

    /// Where a reply's data goes: a reply written here is not copied again.
    var payloadArea: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: payload, count: payloadSize) }

    private var inOut: UnsafeMutableRawPointer { headers + Int(CLinux_FUSE_URING_IN_OUT_OFFSET) }
    private var opIn: UnsafeMutableRawPointer { headers + Int(CLinux_FUSE_URING_OP_IN_OFFSET) }
    private var entryInOut: UnsafeMutablePointer<CLinux_fuse_uring_ent_in_out> {
        (headers + Int(CLinux_FUSE_URING_ENTRY_OFFSET)).assumingMemoryBound(to: CLinux_fuse_uring_ent_in_out.self)
    }

    /// The request the kernel put in the entry, laid out as libfuse reads one from the device; nil when its
    /// sizes do not add up.
    func request() -> fuse_buf? {
        replied = false
        let header = inOut.loadUnaligned(as: fuse_in_header.self)
        unique = header.unique
        commitID = entryInOut.pointee.commit_id
        let inHeader = MemoryLayout<fuse_in_header>.size
        let payloadLength = Int(entryInOut.pointee.payload_sz)
        let opcodeHeader = Int(header.len) - inHeader - payloadLength
        guard payloadLength <= payloadSize, opcodeHeader >= 0, opcodeHeader <= 128, header.total_extlen == 0 else { return nil }
        let start = payload - inHeader - opcodeHeader
        start.copyMemory(from: inOut, byteCount: inHeader)
        (start + inHeader).copyMemory(from: opIn, byteCount: opcodeHeader)
        var buffer = fuse_buf()
        buffer.size = Int(header.len)
        buffer.mem = start
        return buffer
    }

    /// libfuse's reply to the entry's request (an out header, then its parts), put where the kernel reads it.
    func reply(_ vectors: UnsafeMutablePointer<iovec>, _ count: Int) -> Int {
        guard let base = vectors[0].iov_base else { return fail(EIO) }
        var length = 0
        for index in 1..<max(count, 1) {
            let part = vectors[index]
            guard length + part.iov_len <= payloadSize else { return fail(EIO) }
            if let source = part.iov_base, source != payload + length {
                (payload + length).copyMemory(from: source, byteCount: part.iov_len)
            }
            length += part.iov_len
        }
        var header = base.loadUnaligned(as: fuse_out_header.self)
        header.len = UInt32(MemoryLayout<fuse_out_header>.size + length)
        return finish(header, payload: length)
    }

    /// Answers the request with an error of the pool's own (its reply could not be carried).
    @discardableResult
    func fail(_ code: CInt) -> Int {
        var header = fuse_out_header()
        header.unique = unique
        header.error = -code
        header.len = UInt32(MemoryLayout<fuse_out_header>.size)
        return finish(header, payload: 0)
    }

    private func finish(_ header: fuse_out_header, payload length: Int) -> Int {
        inOut.storeBytes(of: header, as: fuse_out_header.self)
        entryInOut.pointee.payload_sz = UInt32(length)
        replied = true
        return Int(header.len)
    }
}
