import Glibc
import SystemPackage

/// fuse-overlayfs's options for rootless containers: how the owners and permissions stored in the layers appear
/// in the mount (uidmapping, gidmapping, squash_to_*, xattr_permissions, static_nlink), and how the mount's
/// changes to them are stored.
public struct AttributeMapping: Sendable, Equatable {
    public var uids = IDMap()
    public var gids = IDMap()
    /// Every object shows this owner (squash_to_uid, squash_to_gid; squash_to_root sets both to 0).
    public var squashUID: uid_t?
    public var squashGID: gid_t?
    /// The extended attribute ("uid:gid:mode") that stands in for the real owner and mode, for a daemon
    /// that may not chown (xattr_permissions=1 and 2).
    public var permissionsXattr: [UInt8]?
    /// Directories show one link (static_nlink).
    public var staticDirectoryLinks = false

    public init() {}

    /// Nothing to map: the backing filesystem's owners are the mount's.
    public var isIdentity: Bool { self == AttributeMapping() }

    /// A stored stat as the mount shows it; `override` reads the named permissions attribute, if there is one.
    func present(_ info: inout stat, override: ([UInt8]) -> [UInt8]?) {
        if let value = permissionsXattr.flatMap(override), let stored = StoredPermissions(value) {
            info.st_uid = stored.uid
            info.st_gid = stored.gid
            info.st_mode = (info.st_mode & S_IFMT) | (stored.mode & 0o7777)
        }
        info.st_uid = squashUID ?? uids.shown(info.st_uid)
        info.st_gid = squashGID ?? gids.shown(info.st_gid)
        if staticDirectoryLinks, info.isDirectory { info.st_nlink = 1 }
    }
}

/// container:host:count triples: a stored id `container + n` shows as `host + n`. An id outside every range
/// shows as the overflow id 65534, as in a user namespace; no ranges at all maps nothing.
public struct IDMap: Sendable, Equatable {
    public struct Range: Sendable, Equatable {
        public let container: UInt32
        public let host: UInt32
        public let count: UInt32
    }

    public var ranges: [Range] = []
    static let overflow: UInt32 = 65534

    public init() {}

    /// Parses "C:H:S[:C:H:S…]"; nil when the list is not whole triples of numbers.
    public init?(_ text: String) {
        let fields = text.split(separator: ":", omittingEmptySubsequences: false)
        let values = fields.compactMap { UInt32($0) }
        guard !values.isEmpty, values.count == fields.count, values.count % 3 == 0 else { return nil }
        ranges = stride(from: 0, to: values.count, by: 3).map {
            Range(container: values[$0], host: values[$0 + 1], count: values[$0 + 2])
        }
    }

    func shown(_ stored: UInt32) -> UInt32 {
        guard !ranges.isEmpty else { return stored }
        for range in ranges where stored >= range.container && stored - range.container < range.count {
            let (shown, overflow) = range.host.addingReportingOverflow(stored - range.container)
            return overflow ? Self.overflow : shown
        }
        return Self.overflow
    }

    func stored(_ shown: UInt32) -> UInt32 {
        guard !ranges.isEmpty else { return shown }
        for range in ranges where shown >= range.host && shown - range.host < range.count {
            let (stored, overflow) = range.container.addingReportingOverflow(shown - range.host)
            return overflow ? Self.overflow : stored
        }
        return Self.overflow
    }
}

/// The value of the permissions attribute: "uid:gid:mode", the mode in octal, sometimes followed by ":type".
struct StoredPermissions: Equatable {
    var uid: uid_t
    var gid: gid_t
    var mode: mode_t

    init(uid: uid_t, gid: gid_t, mode: mode_t) {
        self.uid = uid
        self.gid = gid
        self.mode = mode
    }

    init?(_ value: [UInt8]) {
        let fields = String(decoding: value, as: UTF8.self).split(separator: ":")
        guard fields.count >= 3, let uid = uid_t(fields[0]), let gid = gid_t(fields[1]),
              let mode = mode_t(fields[2], radix: 8) else { return nil }
        self.init(uid: uid, gid: gid, mode: mode)
    }

    var value: [UInt8] { Array("\(uid):\(gid):0\(String(mode & 0o7777, radix: 8))".utf8) }
}
