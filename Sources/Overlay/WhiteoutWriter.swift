import CLinux
import Glibc
import SystemPackage

/// Writing whiteouts and opaque markers into the upper layer, in the forms the kernel reads.
extension LayerStack {
    /// Hides the lower objects at `path`: replaces whatever the upper layer holds
    /// there with a whiteout, in one rename, so that at every moment either the old entry or the whiteout is there.
    func placeWhiteout(_ path: String) throws(Errno) {
        let (upper, work) = try writable()
        let existing = try Sys.statIfPresent(upper.rootFD, path)
        if settings.whiteout != .file {
            let temporary = work.temporaryName()
            do throws(Errno) {
                try Sys.mknod(work.fd, temporary, S_IFCHR, 0)
                try replace(path, existing, with: temporary, upper, work)
                return
            } catch .notPermitted where settings.whiteout == nil {
                work.discard(temporary)
            } catch {
                work.discard(temporary)
                throw error
            }
        }
        // The marker goes in first: until the entry is gone, the entry still wins over its own marker.
        let marker = Whiteout.markerPath(for: path)
        let temporary = work.temporaryName()
        Sys.close(try Sys.open(work.fd, temporary, O_WRONLY | O_CREAT | O_EXCL, 0o600))
        try Sys.rename(work.fd, temporary, upper.rootFD, marker)
        if let existing { try removeUpperEntry(path, existing) }
    }

    /// Puts the staged object `temporary` at `path` and discards what was there; where rename cannot overwrite
    /// (a directory with a non-directory or the reverse) the two are exchanged instead.
    func replace(_ path: String, _ existing: stat?, with temporary: String, _ upper: Layer, _ work: WorkDirectory) throws(Errno) {
        let stagedIsDirectory = try Sys.stat(work.fd, temporary).isDirectory
        if let existing, existing.isDirectory || stagedIsDirectory {
            try Sys.rename(work.fd, temporary, upper.rootFD, path, CLinux_RENAME_EXCHANGE)
            work.discard(temporary)
        } else {
            try Sys.rename(work.fd, temporary, upper.rootFD, path)
        }
    }

    /// Removes an upper entry; a directory (which may still hold whiteouts) is first moved out of sight.
    func removeUpperEntry(_ path: String, _ existing: stat) throws(Errno) {
        let (upper, work) = try writable()
        if existing.isDirectory {
            let temporary = work.temporaryName()
            try Sys.rename(upper.rootFD, path, work.fd, temporary)
            work.discard(temporary)
        } else {
            try Sys.unlink(upper.rootFD, path)
        }
    }

    /// Whether the upper layer holds a whiteout for `path` (either form).
    func upperWhiteout(_ path: String) throws(Errno) -> Whiteout.Format? {
        let (upper, _) = try writable()
        if let info = try Sys.statIfPresent(upper.rootFD, path), Whiteout.isDevice(info) { return .device }
        let marker = Whiteout.markerPath(for: path)
        return try Sys.statIfPresent(upper.rootFD, marker) != nil ? .file : nil
    }

    func removeWhiteoutMarker(_ path: String) throws(Errno) {
        let (upper, _) = try writable()
        try Sys.unlink(upper.rootFD, Whiteout.markerPath(for: path))
    }

    /// Whether a layer below the upper one still holds `name`, so that removing the upper entry would uncover it.
    func lowerHolds(_ name: String, in parent: [Source], root: [Source]) -> Bool {
        let lower = parent.filter { !layers[$0.layer].isUpper }
        guard !lower.isEmpty else { return false }
        return (try? resolve(name, in: lower, root: root)) != nil
    }

    /// Marks a staged or upper directory as renamed from `origin`, in the kernel's format.
    func markRedirect(_ absolutePath: String, origin: String) throws(Errno) {
        do throws(Errno) {
            try Sys.setXattr(absolutePath, Redirect.xattrNames[0], Array(origin.utf8))
        } catch .notPermitted, .notSupported {
            try Sys.setXattr(absolutePath, Redirect.xattrNames[1], Array(origin.utf8))
        }
    }

    /// Marks a staged directory opaque, in the trusted namespace where the daemon may write it.
    func markOpaque(_ absolutePath: String) throws(Errno) {
        do throws(Errno) {
            try Sys.setXattr(absolutePath, OpaqueDirectory.xattrNames[0], Array("y".utf8))
        } catch .notPermitted, .notSupported {
            try Sys.setXattr(absolutePath, OpaqueDirectory.xattrNames[1], Array("y".utf8))
        }
    }
}
