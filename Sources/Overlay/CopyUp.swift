import CLinux
import Glibc
import SystemPackage

/// Copying an object from a lower layer into the upper one: built in the work directory with its content,
/// owner, mode, extended attributes and times, then renamed into place in one step.
extension LayerStack {
    /// Copies `source` (a lower layer's object) to `path` in the upper layer, whose parent must already exist
    /// there. `data: false` copies only metadata (for an open with O_TRUNC). `inode` is the number the file
    /// showed, recorded so that it keeps showing it.
    func copyUp(_ path: String, from source: Source, inode: UInt64, data: Bool) throws(Errno) {
        let (upper, work) = try writable()
        let lower = layers[source.layer]
        let lowerPath = source.path
        let info = try Sys.stat(lower.rootFD, lowerPath)
        let temporary = work.temporaryName()
        do {
            switch info.fileType {
            case S_IFREG: try copyContent(lower, lowerPath, size: info.st_size, to: work, temporary, data: data)
            case S_IFDIR: try Sys.mkdir(work.fd, temporary, 0o700)
            case S_IFLNK: try Sys.symlink(Sys.readlink(lower.rootFD, lowerPath), work.fd, temporary)
            default: try Sys.mknod(work.fd, temporary, info.st_mode, info.st_rdev)
            }
            try copyMetadata(from: lower.absolute(lowerPath), info, to: work, temporary)
            if !info.isDirectory { try OriginInode.record(inode, at: work.path + "/" + temporary) }
            try Sys.setTimes(work.fd, temporary, access: info.st_atim, modification: info.st_mtim)
            // Moving the copy in touches its parent; a copy-up is no change to the parent, so its times stay.
            let parent = upper.relative(String(path.prefix(upTo: path.lastIndex(of: "/") ?? path.startIndex)))
            let parentInfo = try Sys.stat(upper.rootFD, parent)
            try Sys.rename(work.fd, temporary, upper.rootFD, path, CLinux_RENAME_NOREPLACE)
            try Sys.setTimes(upper.rootFD, parent, access: parentInfo.st_atim, modification: parentInfo.st_mtim)
        } catch {
            work.discard(temporary)
            throw error
        }
    }

    func writable() throws(Errno) -> (Layer, WorkDirectory) {
        guard let upper, let work else { throw .readOnlyFileSystem }
        return (upper, work)
    }

    /// Clones where the filesystem can; otherwise copies only the data segments, so holes stay holes.
    private func copyContent(_ lower: Layer, _ path: String, size: off_t, to work: WorkDirectory,
                             _ temporary: String, data: Bool) throws(Errno) {
        let source = try Sys.open(lower.rootFD, path, O_RDONLY | CLinux_O_NOFOLLOW)
        defer { Sys.close(source) }
        let target = try Sys.open(work.fd, temporary, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        defer { Sys.close(target) }
        guard data, size > 0 else { return }
        if (try? Sys.clone(target, from: source)) != nil { return }
        var position: off_t = 0
        while position < size {
            let start: off_t
            do throws(Errno) {
                start = try Sys.seek(source, position, CLinux_SEEK_DATA)
            } catch .noSuchAddressOrDevice {
                break
            }
            let end = try Sys.seek(source, start, CLinux_SEEK_HOLE)
            try copyRange(source, target, from: start, to: end)
            position = end
        }
        try Sys.truncate(target, size)
        if !volatile { try Sys.sync(target) }
    }

    private func copyRange(_ source: CInt, _ target: CInt, from start: off_t, to end: off_t) throws(Errno) {
        var inOffset = Int64(start), outOffset = Int64(start)
        while inOffset < Int64(end) {
            let wanted = Int(min(Int64(end) - inOffset, 1 << 30))
            let copied: Int
            do throws(Errno) {
                copied = try Sys.copyRange(source, &inOffset, target, &outOffset, wanted)
            } catch .improperLink, .invalidArgument, .notSupported, .noFunction {
                return try copyByReading(source, target, from: off_t(inOffset), to: end)
            }
            if copied == 0 { break }
        }
    }

    private func copyByReading(_ source: CInt, _ target: CInt, from start: off_t, to end: off_t) throws(Errno) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var offset = start
        while offset < end {
            let count = try valueOrErrno { pread(source, buffer.baseAddress, min(buffer.count, Int(end - offset)), offset) }
            if count == 0 { break }
            var written = 0
            while written < count {
                written += try valueOrErrno {
                    pwrite(target, buffer.baseAddress! + written, count - written, offset + off_t(written))
                }
            }
            offset += off_t(count)
        }
    }

    /// Owner before mode (a chown clears setuid and setgid), then every extended attribute but the overlay's own
    /// (ACLs are attributes too).
    private func copyMetadata(from lowerPath: String, _ info: stat, to work: WorkDirectory, _ temporary: String) throws(Errno) {
        try Sys.chown(work.fd, temporary, info.st_uid, info.st_gid)
        if info.fileType != S_IFLNK { try Sys.chmod(work.fd, temporary, info.st_mode & 0o7777) }
        let target = work.path + "/" + temporary
        for name in try Sys.xattrNames(lowerPath) where !PrivateXattr.isPrivate(name) {
            guard let value = try Sys.xattr(lowerPath, name) else { continue }
            try Sys.setXattr(target, name, value)
        }
    }
}

/// The inode number a copied-up file showed before, kept in an overlay-private attribute so that `st_ino`
/// stays the same after copy-up and across remounts (the kernel keeps it through its origin file handle).
enum OriginInode {
    static let names = ["trusted.overlay.strata.ino", "user.overlay.strata.ino"]

    static func record(_ inode: UInt64, at path: String) throws(Errno) {
        let value = Array(String(inode).utf8)
        do throws(Errno) {
            try Sys.setXattr(path, names[0], value)
        } catch .notPermitted, .notSupported {
            try Sys.setXattr(path, names[1], value)
        }
    }

    /// Each reads the form it would have written: root the trusted one, others the user one.
    private static let readable = geteuid() == 0 ? [names[0]] : [names[1]]

    static func read(_ path: String) -> UInt64? {
        for name in readable {
            if let value = try? Sys.xattr(path, name), let inode = UInt64(String(decoding: value, as: UTF8.self)) {
                return inode
            }
        }
        return nil
    }
}
