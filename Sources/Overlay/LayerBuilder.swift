import CLinux
import Glibc
import SystemPackage

/// Writes a layer directory in the overlay's on-disk format, one object at a time, from a source that cannot
/// be trusted (an image's layer tarball): every path is resolved beneath the layer root, names are bytes, and
/// nothing existing is followed. Objects replace what a path held before as GNU tar replaces it (a file over a
/// file, a directory over a non-directory); a non-directory never replaces a directory that still holds
/// something. Directory times are set at `finish()`, once nothing more is written below them.
public final class LayerBuilder {
    private let layer: Layer
    private var directoryTimes: [(LayerPath, timespec, timespec)] = []
    private let asRoot = geteuid() == 0

    /// What an object gets besides its content.
    public struct Metadata {
        public var uid: uid_t
        public var gid: gid_t
        /// Permission bits (with setuid, setgid and sticky).
        public var mode: mode_t
        public var modification: timespec
        public var xattrs: [(name: [UInt8], value: [UInt8])]

        public init(uid: uid_t, gid: gid_t, mode: mode_t, modification: timespec, xattrs: [(name: [UInt8], value: [UInt8])]) {
            self.uid = uid
            self.gid = gid
            self.mode = mode
            self.modification = modification
            self.xattrs = xattrs
        }
    }

    public init(directory: String) throws(Errno) {
        let fd = try Sys.openGiven(directory, CLinux_O_PATH | CLinux_O_DIRECTORY)
        let info: stat
        do { info = try Sys.fstat(fd) } catch {
            Sys.close(fd)
            throw error
        }
        layer = Layer(index: 0, path: directory, isUpper: false, rootFD: fd, device: info.st_dev)
    }

    deinit { Sys.close(layer.rootFD) }

    /// A directory at `path` (the root itself for the root); missing parents are made with mode 0755.
    public func directory(_ path: LayerPath, _ metadata: Metadata) throws(Errno) {
        try makeParents(of: path)
        if let name = path.name, let parent = path.parent {
            try layer.inDirectory(parent) { fd throws(Errno) in
                let spot = Spot(fd, name)
                let existing = try Sys.statIfPresent(spot)
                if let existing, !existing.isDirectory { try Sys.unlink(spot) }
                if existing?.isDirectory != true { try Sys.mkdir(spot, 0o700) }
                // A directory made where this layer whited the name out must not merge with the lower one.
                if let existing, Whiteout.isDevice(existing) { try MarkerWriter.set(OpaqueDirectory.writableNames, [0x79], on: spot) }
            }
        }
        try layer.at(path) { spot throws(Errno) in try apply(metadata, to: .spot(spot), isLink: false) }
        directoryTimes.append((path, metadata.modification, metadata.modification))
    }

    /// A regular file, its content written by `content` through the descriptor.
    public func file(_ path: LayerPath, _ metadata: Metadata, content: (CInt) throws(Errno) -> Void) throws(Errno) {
        try place(path) { spot throws(Errno) in
            let fd = try Sys.open(spot, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            defer { Sys.close(fd) }
            try content(fd)
            try apply(metadata, to: .descriptor(fd), isLink: false)
            try Sys.setTimes(fd, access: metadata.modification, modification: metadata.modification)
        }
    }

    public func symlink(_ path: LayerPath, target: [UInt8], _ metadata: Metadata) throws(Errno) {
        try place(path) { spot throws(Errno) in
            try Sys.symlink(target, spot)
            try apply(metadata, to: .spot(spot), isLink: true)
            try Sys.setTimes(spot, access: metadata.modification, modification: metadata.modification)
        }
    }

    /// A device node, fifo or socket (`mode` carries the type).
    public func special(_ path: LayerPath, mode: mode_t, device: dev_t, _ metadata: Metadata) throws(Errno) {
        try place(path) { spot throws(Errno) in
            try Sys.mknod(spot, mode & S_IFMT | 0o600, device)
            try apply(metadata, to: .spot(spot), isLink: false)
            try Sys.setTimes(spot, access: metadata.modification, modification: metadata.modification)
        }
    }

    /// Another name for an object already written (not a directory).
    public func hardLink(_ path: LayerPath, to existing: LayerPath) throws(Errno) {
        let info = try layer.stat(existing)
        if info.isDirectory { throw .notPermitted }
        try place(path) { spot throws(Errno) in
            try layer.at(existing) { source throws(Errno) in try Sys.link(source, spot) }
        }
    }

    /// Hides the name of the layers below: a character device 0/0 (`asFile`: an empty `.wh.NAME` file). Where
    /// this layer holds an object at the name already, that object hides it (a directory turns opaque).
    public func whiteout(_ path: LayerPath, asFile: Bool) throws(Errno) {
        guard let name = path.name, let parent = path.parent else { throw .invalidArgument }
        try makeParents(of: path)
        try layer.inDirectory(parent) { fd throws(Errno) in
            let spot = Spot(fd, name)
            if let existing = try Sys.statIfPresent(spot) {
                if existing.isDirectory { try MarkerWriter.set(OpaqueDirectory.writableNames, [0x79], on: spot) }
                return
            }
            if asFile {
                guard let marker = Whiteout.markerName(for: name) else { throw .fileNameTooLong }
                Sys.close(try Sys.open(Spot(fd, marker), O_WRONLY | O_CREAT | O_TRUNC, 0o644))
            } else {
                try Sys.mknod(spot, S_IFCHR, 0)
            }
        }
    }

    /// Makes the directory at `path` opaque: an xattr, or (`asFile`) a `.wh..wh..opq` file in it.
    public func opaque(_ path: LayerPath, asFile: Bool) throws(Errno) {
        if !path.isRoot { try ensureDirectory(path) }
        if asFile {
            try layer.inDirectory(path) { fd throws(Errno) in
                Sys.close(try Sys.open(Spot(fd, Whiteout.opaqueMarker), O_WRONLY | O_CREAT | O_TRUNC, 0o644))
            }
        } else {
            try layer.at(path) { spot throws(Errno) in try MarkerWriter.set(OpaqueDirectory.writableNames, [0x79], on: spot) }
        }
    }

    /// Sets the times of every directory written, deepest first, now that nothing more goes below them.
    public func finish() throws(Errno) {
        for (path, access, modification) in directoryTimes.reversed() {
            try layer.at(path) { spot throws(Errno) in try Sys.setTimes(spot, access: access, modification: modification) }
        }
        directoryTimes = []
    }

    /// A directory that has no entry of its own yet: made if missing, nothing changed if present. Something
    /// else in its place (a symbolic link, a file) is refused, never followed or replaced.
    private func ensureDirectory(_ path: LayerPath) throws(Errno) {
        guard let name = path.name, let parent = path.parent else { return }
        try layer.inDirectory(parent) { fd throws(Errno) in
            let spot = Spot(fd, name)
            guard let existing = try Sys.statIfPresent(spot) else { return try Sys.mkdir(spot, 0o755) }
            if existing.fileType == S_IFLNK { throw .tooManySymbolicLinkLevels }
            if !existing.isDirectory { throw .notDirectory }
        }
    }

    private func makeParents(of path: LayerPath) throws(Errno) {
        var missing: [LayerPath] = []
        var current = path.parent
        while let directory = current, !directory.isRoot {
            if try layer.statIfPresent(directory) != nil { break }
            missing.append(directory)
            current = directory.parent
        }
        if let present = current, !present.isRoot { try ensureDirectory(present) }
        for directory in missing.reversed() { try ensureDirectory(directory) }
    }

    /// Clears the way for a non-directory at `path` (removing a non-directory or an empty directory there), then
    /// makes it with `make`.
    private func place(_ path: LayerPath, _ make: (Spot) throws(Errno) -> Void) throws(Errno) {
        guard let name = path.name, let parent = path.parent else { throw .isDirectory }
        try makeParents(of: path)
        try layer.inDirectory(parent) { fd throws(Errno) in
            let spot = Spot(fd, name)
            if let existing = try Sys.statIfPresent(spot) {
                try Sys.unlink(spot, directory: existing.isDirectory)
            }
            try make(spot)
        }
    }

    /// Owner (where the daemon may give it), then mode (a chown clears setuid), then extended attributes.
    private func apply(_ metadata: Metadata, to object: BackingObject, isLink: Bool) throws(Errno) {
        do throws(Errno) {
            try object.chown(metadata.uid, metadata.gid)
        } catch .notPermitted where !asRoot {}
        if !isLink { try object.chmod(metadata.mode & 0o7777) }
        // As GNU tar, an attribute the filesystem refuses (a namespace it lacks, a value it rejects, such as a
        // malformed security.capability) is skipped, not fatal.
        for (name, value) in metadata.xattrs {
            do throws(Errno) {
                try object.setXattr(name, value)
            } catch .notPermitted, .notSupported, .permissionDenied, .invalidArgument, .outOfRange, .argListTooLong {}
        }
    }
}
