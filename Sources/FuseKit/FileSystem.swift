import Glibc
import SystemPackage

/// The operations a FUSE server answers, in the kernel's terms (node ids, handles, offsets). Every method
/// either returns its answer or throws the errno the caller sees; FuseKit turns both into exactly one reply.
public protocol FileSystem: Sendable {
    /// What the server asks the kernel for at `init`; only what the kernel also offers is turned on.
    var capabilities: Capabilities { get }
    /// What libfuse would turn on by itself that the server does not want.
    var declinedCapabilities: Capabilities { get }

    func lookup(_ context: RequestContext, parent: UInt64, name: [UInt8]) throws(Errno) -> Entry
    func forget(node: UInt64, lookups: UInt64)
    /// `handle` is the caller's open file when it asked through one (fstat), which may be unlinked by now.
    func attributes(node: UInt64, handle: UInt64?) throws(Errno) -> Attributes
    func readlink(node: UInt64) throws(Errno) -> [UInt8]
    func open(_ context: RequestContext, node: UInt64, flags: Int32) throws(Errno) -> OpenHandle
    func read(node: UInt64, handle: UInt64, size: Int, offset: Int64) throws(Errno) -> ReadData
    func release(node: UInt64, handle: UInt64)
    func openDirectory(_ context: RequestContext, node: UInt64) throws(Errno) -> OpenHandle
    /// Fills `buffer` with entries from `offset` on; `buffer.plus` says whether the kernel wants attributes too.
    func readDirectory(node: UInt64, handle: UInt64, offset: Int64, into buffer: inout DirectoryBuffer) throws(Errno)
    func releaseDirectory(node: UInt64, handle: UInt64)
    func statistics(node: UInt64) throws(Errno) -> statvfs
    func extendedAttribute(node: UInt64, name: [UInt8]) throws(Errno) -> [UInt8]
    func extendedAttributeNames(node: UInt64) throws(Errno) -> [[UInt8]]

    // Changes. A read-only server throws EROFS from each.
    func create(_ context: RequestContext, parent: UInt64, name: [UInt8], mode: mode_t, flags: Int32) throws(Errno) -> (Entry, OpenHandle)
    func makeDirectory(_ context: RequestContext, parent: UInt64, name: [UInt8], mode: mode_t) throws(Errno) -> Entry
    func makeNode(_ context: RequestContext, parent: UInt64, name: [UInt8], mode: mode_t, device: dev_t) throws(Errno) -> Entry
    func makeSymlink(_ context: RequestContext, parent: UInt64, name: [UInt8], target: [UInt8]) throws(Errno) -> Entry
    func link(_ context: RequestContext, node: UInt64, newParent: UInt64, newName: [UInt8]) throws(Errno) -> Entry
    func unlink(parent: UInt64, name: [UInt8]) throws(Errno)
    func removeDirectory(parent: UInt64, name: [UInt8]) throws(Errno)
    func rename(parent: UInt64, name: [UInt8], newParent: UInt64, newName: [UInt8], flags: UInt32) throws(Errno)
    func setAttributes(node: UInt64, _ changes: AttributeChanges, handle: UInt64?) throws(Errno) -> Attributes
    /// Each write reaches the backing file: there is no flush (the kernel stops asking after the first close).
    func write(node: UInt64, handle: UInt64, data: WriteData, offset: Int64) throws(Errno) -> Int
    func synchronize(node: UInt64, handle: UInt64, dataOnly: Bool) throws(Errno)
    func synchronizeDirectory(node: UInt64, dataOnly: Bool) throws(Errno)
    func setExtendedAttribute(node: UInt64, name: [UInt8], value: [UInt8], flags: Int32) throws(Errno)
    func removeExtendedAttribute(node: UInt64, name: [UInt8]) throws(Errno)
    func allocate(node: UInt64, handle: UInt64, mode: Int32, offset: Int64, length: Int64) throws(Errno)
    func seek(node: UInt64, handle: UInt64, offset: Int64, whence: Int32) throws(Errno) -> Int64
    func copyRange(from: (node: UInt64, handle: UInt64, offset: Int64), to: (node: UInt64, handle: UInt64, offset: Int64),
                   length: Int, flags: Int32) throws(Errno) -> Int
}

/// A setattr request: only the fields that are set change. Times may carry UTIME_NOW.
public struct AttributeChanges: Sendable {
    public var mode: mode_t?
    public var uid: uid_t?
    public var gid: gid_t?
    public var size: off_t?
    public var access: timespec?
    public var modification: timespec?

    init(_ attributes: stat, _ fields: Int32) {
        func has(_ bit: Int32) -> Bool { fields & bit != 0 }
        let now = timespec(tv_sec: 0, tv_nsec: (1 << 30) - 1)  // UTIME_NOW, hidden from Swift behind a macro
        if has(1 << 0) { mode = attributes.st_mode }
        if has(1 << 1) { uid = attributes.st_uid }
        if has(1 << 2) { gid = attributes.st_gid }
        if has(1 << 3) { size = attributes.st_size }
        if has(1 << 7) { access = now } else if has(1 << 4) { access = attributes.st_atim }
        if has(1 << 8) { modification = now } else if has(1 << 5) { modification = attributes.st_mtim }
    }
}

/// Who asks: the calling process's credentials, for permission and ownership decisions.
public struct RequestContext: Sendable {
    public let uid: uid_t
    public let gid: gid_t
    public let pid: pid_t
    public let umask: mode_t
}

/// A node handed to the kernel by lookup (or readdirplus), with how long the kernel may trust it.
public struct Entry: Sendable {
    public var node: UInt64
    public var attributes: stat
    public var entryTimeout: Double
    public var attributeTimeout: Double

    public init(node: UInt64, attributes: stat, entryTimeout: Double, attributeTimeout: Double) {
        self.node = node
        self.attributes = attributes
        self.entryTimeout = entryTimeout
        self.attributeTimeout = attributeTimeout
    }
}

public struct Attributes: Sendable {
    public var attributes: stat
    public var timeout: Double

    public init(_ attributes: stat, timeout: Double) {
        self.attributes = attributes
        self.timeout = timeout
    }
}

public struct OpenHandle: Sendable {
    public var handle: UInt64
    /// Keep the page cache from earlier opens (the file did not change behind the kernel's back).
    public var keepCache: Bool
    /// Let the kernel cache the listing of a directory.
    public var cacheDirectory: Bool

    public init(handle: UInt64, keepCache: Bool = false, cacheDirectory: Bool = false) {
        self.handle = handle
        self.keepCache = keepCache
        self.cacheDirectory = cacheDirectory
    }
}

/// Data for a read reply: a range of a descriptor is spliced to the kernel without passing through memory.
public enum ReadData: Sendable {
    case descriptor(CInt, offset: Int64, size: Int)
    /// A descriptor the reply closes once the data is sent (one the server made for this read alone).
    case ownDescriptor(CInt, offset: Int64, size: Int)
    case bytes([UInt8])
}

public struct Capabilities: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let spliceRead = Capabilities(rawValue: 1 << 9)
    public static let spliceWrite = Capabilities(rawValue: 1 << 7)
    public static let spliceMove = Capabilities(rawValue: 1 << 8)
    public static let readdirPlus = Capabilities(rawValue: 1 << 13)
    public static let readdirPlusAuto = Capabilities(rawValue: 1 << 14)
    public static let cacheSymlinks = Capabilities(rawValue: 1 << 23)
    public static let parallelDirectoryOperations = Capabilities(rawValue: 1 << 18)
    public static let writebackCache = Capabilities(rawValue: 1 << 16)
    /// The kernel enforces POSIX ACLs (and turns default_permissions on).
    public static let posixACL = Capabilities(rawValue: 1 << 19)
    /// The server needs no OPENDIR or RELEASEDIR: FuseKit answers opendir with ENOSYS, after which the kernel
    /// sends neither and keeps directory listings in its cache.
    public static let noOpendirSupport = Capabilities(rawValue: 1 << 24)
    /// The server needs no OPEN for files: FuseKit answers open with ENOSYS, after which the kernel opens files
    /// by itself, sends no RELEASE, keeps their pages from one open to the next, and passes handle 0 (no handle)
    /// wherever a request names an open file.
    public static let noOpenSupport = Capabilities(rawValue: 1 << 17)
}
