import Glibc

/// The st_ino the mount shows for a backing inode, as the kernel's overlayfs does: with every layer on one
/// filesystem the backing number itself; otherwise the number tagged with its filesystem's position in the
/// stack, so numbers from different filesystems never collide and stay the same across remounts.
struct InodeNumbering: Sendable {
    private let filesystemIDs: [dev_t: UInt64]
    private static let tagShift: UInt64 = 56

    init(devices: [dev_t]) {
        var ids: [dev_t: UInt64] = [:]
        for device in devices where ids[device] == nil {
            ids[device] = UInt64(ids.count)
        }
        filesystemIDs = ids
    }

    func number(backing ino: ino_t, device: dev_t) -> UInt64 {
        let tag = filesystemIDs[device] ?? 0
        return tag == 0 ? UInt64(ino) : (tag << Self.tagShift) | (UInt64(ino) & ((1 << Self.tagShift) - 1))
    }
}
