import CFuse3
import Glibc

/// The reply buffer of one readdir or readdirplus request, filled entry by entry until the next one
/// would not fit.
public struct DirectoryBuffer: ~Copyable {
    private let request: fuse_req_t
    private let storage: UnsafeMutableRawBufferPointer
    private var used = 0
    /// Whether the kernel asked for readdirplus: entries carry attributes and count as lookups.
    public let plus: Bool

    init(request: fuse_req_t, capacity: Int, plus: Bool) {
        self.request = request
        self.storage = .allocate(byteCount: capacity, alignment: 8)
        self.plus = plus
    }

    deinit { storage.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[..<used]) }

    /// Adds a plain entry; false when the buffer is full (the entry was not added).
    public mutating func add(name: [UInt8], inode: UInt64, type: UInt8, nextOffset: Int64) -> Bool {
        var attributes = stat()
        attributes.st_ino = ino_t(inode)
        attributes.st_mode = mode_t(type) << 12
        let remaining = storage.count - used
        let size = Self.withCString(name) { fuse_add_direntry(request, cursor, remaining, $0, &attributes, off_t(nextOffset)) }
        guard size <= remaining else { return false }
        used += size
        return true
    }

    /// Adds a readdirplus entry; `entry` is asked only once the entry is known to fit, since an entry handed to
    /// the kernel counts as a lookup (an entry with node 0 sends only the name, type and inode number). False when full.
    public mutating func addPlus(name: [UInt8], nextOffset: Int64, entry: () -> Entry) -> Bool {
        let remaining = storage.count - used
        guard Self.withCString(name, { fuse_add_direntry_plus(request, nil, 0, $0, nil, 0) }) <= remaining else { return false }
        var param = Reply.entryParam(entry())
        used += Self.withCString(name) { fuse_add_direntry_plus(request, cursor, remaining, $0, &param, off_t(nextOffset)) }
        return true
    }

    private var cursor: UnsafeMutablePointer<CChar>? {
        storage.baseAddress.map { ($0 + used).assumingMemoryBound(to: CChar.self) }
    }

    private static func withCString<T>(_ name: [UInt8], _ body: (UnsafePointer<CChar>) -> T) -> T {
        (name + [0]).withUnsafeBytes { bytes in
            // Never empty (it holds the terminator); "" stands in for the address to avoid a trap.
            let base = bytes.baseAddress ?? UnsafeRawPointer(("" as StaticString).utf8Start)
            return body(base.assumingMemoryBound(to: CChar.self))
        }
    }
}
