import CLinux
import Glibc
import Synchronization
import SystemPackage

/// What a copy-up of a regular file takes along.
enum CopyUpContent: Sendable {
    /// Everything: a change to the data follows.
    case data
    /// Metadata alone, as the kernel's metacopy: chmod, chown, utimensat and xattrs change nothing else, so the
    /// data stays below until something writes it (see `fillData`).
    case metadata
    /// Metadata alone, and no pointer to the data either: the file is about to be truncated (O_TRUNC).
    case nothing
}

/// Copying an object from a lower layer into the upper one: built in the work directory with its content,
/// owner, mode, extended attributes and times (`stageCopy`), then renamed into place in one step (`install`).
extension LayerStack {
    /// Builds a copy of `source` (a lower layer's object) in the work directory and returns its name there and
    /// the lower object's attributes. `inode` is the number the file showed, recorded so that it keeps showing it.
    /// A lower object that is a directory where the node was not, or the other way round (swapped under a live
    /// mount), is not what the kernel holds: its node is stale, and nothing is copied.
    func stageCopy(of source: Source, isDirectory: Bool, inode: UInt64,
                   content: CopyUpContent) throws(Errno) -> (name: Name, info: stat) {
        let (_, work) = try writable()
        let lower = layers[source.layer]
        let temporary = work.temporaryName()
        let staged = Spot(work.fd, temporary)
        var info = stat()
        do {
            try lower.at(source.path) { original throws(Errno) in
                info = try Sys.stat(original)
                if info.isDirectory != isDirectory { throw .staleNFSFileHandle }
                if info.fileType == S_IFREG {
                    try copyFile(original, source, info, to: staged, content: content, inode: inode)
                    return
                }
                switch info.fileType {
                case S_IFDIR: try Sys.mkdir(staged, 0o700)
                case S_IFLNK: try Sys.symlink(Sys.readlink(original), staged)
                default: try Sys.mknod(staged, info.st_mode, info.st_rdev)
                }
                try copyMetadata(from: .spot(original), info, to: .spot(staged))
                // A directory shows its lower directory's number without a record (see Resolution).
                if !info.isDirectory { try OriginInode.record(inode, on: .spot(staged)) }
            }
        } catch {
            work.discard(temporary)
            throw error
        }
        return (temporary, info)
    }

    /// Moves a staged copy to `path` in the upper layer, whose parent must exist there. Moving it in touches the
    /// parent; a copy-up is no change to the parent, so its times stay.
    /// `afterwards` gets the parent directory, once the copy is in it.
    func install(_ staged: Name, isDirectory: Bool, at path: LayerPath, afterwards: (CInt) -> Void) throws(Errno) {
        let (upper, work) = try writable()
        guard let parent = path.parent, let name = path.name else { throw Impossible.state("copy-up of the root") }
        // Opened for reading, not O_PATH: futimens then takes it as it is, with no second open.
        let directory = try upper.openDirectory(parent, forReading: true)
        defer { Sys.close(directory) }
        let parentInfo = try Sys.fstat(directory)
        try Sys.rename(Spot(work.fd, staged), Spot(directory, name), CLinux_RENAME_NOREPLACE, movingDirectory: isDirectory)
        try Sys.setTimes(directory, access: parentInfo.st_atim, modification: parentInfo.st_mtim)
        afterwards(directory)
    }

    func writable() throws(Errno) -> (Layer, WorkDirectory) {
        guard let upper, let work else { throw .readOnlyFileSystem }
        return (upper, work)
    }

    /// A regular file: content and metadata go through the two descriptors, and a copy of the data is synced
    /// before it is moved into place (unless volatile), as the kernel does, so that no crash leaves a partial copy
    /// showing. A metadata-only copy has the lower file's size and no data blocks, and says so in the kernel's
    /// format (metacopy, and origin naming the lower file); like the kernel, it is not synced: the rename that
    /// moves it into place leaves the old metadata or the new.
    private func copyFile(_ original: Spot, _ lower: Source, _ info: stat, to staged: Spot, content: CopyUpContent,
                          inode: UInt64) throws(Errno) {
        let source = try Sys.open(original, O_RDONLY)
        defer { Sys.close(source) }
        let target = try Sys.open(staged, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        defer { Sys.close(target) }
        let copiesData = content == .data && info.st_size > 0
        if copiesData { try copyContent(source, target, info) }
        if content == .metadata { try Sys.truncate(target, info.st_size) }
        try copyMetadata(from: .descriptor(source), info, to: .descriptor(target))
        // A metadata-only file shows its data's number, as the kernel shows its origin's: no record needed (and
        // none taking an xattr block, so that a metadata-only copy uses no block at all where the filesystem
        // keeps small attributes in the inode).
        if content != .metadata { try OriginInode.record(inode, on: .descriptor(target)) }
        if content == .metadata {
            try MarkerWriter.set(Metacopy.writableNames, [], on: .descriptor(target))
            if let origin = Origin.record(of: original, uuid: filesystemUUIDs[lower.layer]) {
                try MarkerWriter.set(Origin.writableNames, origin, on: .descriptor(target))
            }
        }
        if copiesData, !volatile { try Sys.sync(target) }
    }

    /// Copies a metadata-only file's data into it, in place, from `data`; synced (unless volatile) before the
    /// metacopy marker goes, so that a crash leaves the marker, and so the old data, or the whole new copy. From
    /// then on the file keeps showing `inode` by the record other copy-ups carry.
    func fillData(_ upper: Spot, from data: Source, inode: UInt64) throws(Errno) {
        let source = try layers[data.layer].at(data.path) { spot throws(Errno) in try Sys.open(spot, O_RDONLY) }
        defer { Sys.close(source) }
        let target = try Sys.open(upper, O_WRONLY)
        defer { Sys.close(target) }
        let info = try Sys.fstat(source)
        if info.st_size > 0 { try copyContent(source, target, info) }
        try OriginInode.record(inode, on: .descriptor(target))
        if !volatile { try Sys.sync(target) }
        for name in Metacopy.writableNames {
            do throws(Errno) { try Sys.removeXattr(target, name) } catch .noData, .notSupported, .notPermitted {}
        }
    }

    /// Clones where the filesystem can; otherwise copies only the data segments, so holes stay holes.
    private func copyContent(_ source: CInt, _ target: CInt, _ info: stat) throws(Errno) {
        if !cloning.unsupported {
            do throws(Errno) {
                return try Sys.clone(target, from: source)
            } catch .notSupported, .improperLink, .invalidArgument, .badFileDescriptor, .notPermitted {
                // Remembered per mount: the layers' filesystem does not change.
                cloning.markUnsupported()
            }
        }
        // A file with as many blocks as bytes has no holes to look for.
        if Int64(info.st_blocks) >= Int64(info.st_size) / 512 + (info.st_size % 512 == 0 ? 0 : 1) {
            try copyRange(source, target, from: 0, to: info.st_size)
        } else {
            var position: off_t = 0
            while position < info.st_size {
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
        }
        try Sys.truncate(target, info.st_size)
    }

    private func copyRange(_ source: CInt, _ target: CInt, from start: off_t, to end: off_t) throws(Errno) {
        var inOffset = Int64(start), outOffset = Int64(start)
        while inOffset < Int64(end) {
            // 1 MiB a call, as the kernel's overlayfs copies up (OVL_COPY_UP_CHUNK_SIZE): a cold 1 GiB file took
            // 3.0 s in one call on this VM's disk, 0.75 s in 1 MiB calls (256 KiB: 3.4 s, 2 MiB: 2.2 s).
            let wanted = Int(min(Int64(end) - inOffset, 1 << 20))
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
                    pwrite(target, buffer.baseAddress.map { $0 + written }, count - written, offset + off_t(written))
                }
            }
            offset += off_t(count)
        }
    }

    /// Owner before mode (a chown clears setuid and setgid), then every extended attribute but the overlay's own
    /// (ACLs are attributes too), then the times.
    private func copyMetadata(from source: BackingObject, _ info: stat, to target: BackingObject) throws(Errno) {
        try target.chown(info.st_uid, info.st_gid)
        if info.fileType != S_IFLNK { try target.chmod(info.st_mode & 0o7777) }
        for name in try source.xattrNames() where !Xattr.isPrivate(name) {
            guard let value = try source.xattr(name) else { continue }
            try target.setXattr(name, value)
        }
        try target.setTimes(access: info.st_atim, modification: info.st_mtim)
    }
}

/// An object in a layer, reached through an open descriptor (a file the caller has open, or one just made) or
/// by its spot (any object).
enum BackingObject {
    case descriptor(CInt)
    case spot(Spot)

    func chown(_ uid: uid_t, _ gid: gid_t) throws(Errno) {
        switch self {
        case let .descriptor(fd): try Sys.chown(fd, uid, gid)
        case let .spot(spot): try Sys.chown(spot, uid, gid)
        }
    }

    func chmod(_ mode: mode_t) throws(Errno) {
        switch self {
        case let .descriptor(fd): try Sys.chmod(fd, mode)
        case let .spot(spot): try Sys.chmod(spot, mode)
        }
    }

    func xattrNames() throws(Errno) -> [[UInt8]] {
        switch self {
        case let .descriptor(fd): try Sys.xattrNames(fd)
        case let .spot(spot): try Sys.xattrNames(spot)
        }
    }

    func xattr(_ name: [UInt8]) throws(Errno) -> [UInt8]? {
        switch self {
        case let .descriptor(fd): try Sys.xattr(fd, name)
        case let .spot(spot): try Sys.xattr(spot, name)
        }
    }

    func setXattr(_ name: [UInt8], _ value: [UInt8], flags: CInt = 0) throws(Errno) {
        switch self {
        case let .descriptor(fd): try Sys.setXattr(fd, name, value, flags: flags)
        case let .spot(spot): try Sys.setXattr(spot, name, value, flags: flags)
        }
    }

    func removeXattr(_ name: [UInt8]) throws(Errno) {
        switch self {
        case let .descriptor(fd): try Sys.removeXattr(fd, name)
        case let .spot(spot): try Sys.removeXattr(spot, name)
        }
    }

    func stat() throws(Errno) -> Glibc.stat {
        switch self {
        case let .descriptor(fd): try Sys.fstat(fd)
        case let .spot(spot): try Sys.stat(spot)
        }
    }

    /// The caller's open descriptor, when it has one, spares an open.
    func truncate(_ size: off_t, through open: CInt?) throws(Errno) {
        switch self {
        case let .descriptor(fd): try Sys.truncate(fd, size)
        case let .spot(spot):
            if let open { return try Sys.truncate(open, size) }
            let fd = try Sys.open(spot, O_WRONLY)
            defer { Sys.close(fd) }
            try Sys.truncate(fd, size)
        }
    }

    var descriptor: CInt? {
        if case let .descriptor(fd) = self { return fd }
        return nil
    }

    func setTimes(access: timespec, modification: timespec) throws(Errno) {
        switch self {
        case let .descriptor(fd): try Sys.setTimes(fd, access: access, modification: modification)
        case let .spot(spot): try Sys.setTimes(spot, access: access, modification: modification)
        }
    }
}

/// Whether the layers' filesystem refused a reflink once; a mount then stops asking.
final class CloneSupport: Sendable {
    private let refused = Atomic<Bool>(false)
    var unsupported: Bool { refused.load(ordering: .relaxed) }
    func markUnsupported() { refused.store(true, ordering: .relaxed) }
}
