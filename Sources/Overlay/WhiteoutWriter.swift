import CLinux
import Glibc
import SystemPackage

/// Writing whiteouts and opaque markers into the upper layer, in the forms the kernel reads. Each works on a
/// name in an upper directory the caller holds open (`directory`, resolved beneath the upper root).
extension LayerStack {
    /// Hides the lower objects at `name`: replaces whatever the upper layer holds there with a whiteout, in
    /// one rename, so that at every moment either the old entry or the whiteout is there. `upperIsEmpty`: the
    /// caller knows the upper layer holds nothing at `name`.
    func placeWhiteout(_ name: Name, in directory: CInt, upperIsEmpty: Bool = false) throws(Errno) {
        let (_, work) = try writable()
        let target = Spot(directory, name)
        let existing = upperIsEmpty ? nil : try Sys.statIfPresent(target)
        let marker = Whiteout.markerName(for: name)
        // A name too long for a `.wh.` file beside it can only be hidden by a device.
        if settings.whiteout != .file || marker == nil {
            let temporary = work.temporaryName()
            do throws(Errno) {
                try Sys.mknod(Spot(work.fd, temporary), S_IFCHR, 0)
                try replace(target, existing, with: temporary, work, stagedIsDirectory: false)
                return
            } catch .notPermitted where settings.whiteout == nil && marker != nil {
                work.discard(temporary)
            } catch {
                work.discard(temporary)
                throw error
            }
        }
        guard let marker else { throw .fileNameTooLong }
        // The marker goes in first: until the entry is gone, the entry still wins over its own marker.
        let temporary = work.temporaryName()
        Sys.close(try Sys.open(Spot(work.fd, temporary), O_WRONLY | O_CREAT | O_EXCL, 0o600))
        try Sys.rename(Spot(work.fd, temporary), Spot(directory, marker), movingDirectory: false)
        if let existing { try removeUpperEntry(target, existing) }
    }

    /// Puts the staged object `temporary` at `target` and discards what was there; where rename cannot
    /// overwrite (a directory with a non-directory or the reverse) the two are exchanged instead.
    /// `stagedIsDirectory`: what the caller staged, when it knows (else it is looked at).
    func replace(_ target: Spot, _ existing: stat?, with temporary: Name, _ work: WorkDirectory,
                 stagedIsDirectory known: Bool? = nil) throws(Errno) {
        let staged = Spot(work.fd, temporary)
        let stagedIsDirectory = if let known { known } else { try Sys.stat(staged).isDirectory }
        if let existing, existing.isDirectory || stagedIsDirectory {
            try Sys.rename(staged, target, CLinux_RENAME_EXCHANGE)
            work.discard(temporary)
        } else {
            try Sys.rename(staged, target, movingDirectory: false)
        }
    }

    /// Removes an upper entry; a directory (which may still hold whiteouts) is first moved out of sight.
    func removeUpperEntry(_ target: Spot, _ existing: stat) throws(Errno) {
        let (_, work) = try writable()
        if existing.isDirectory {
            let temporary = work.temporaryName()
            try Sys.rename(target, Spot(work.fd, temporary))
            work.discard(temporary)
        } else {
            try Sys.unlink(target)
        }
    }

    /// Whether the upper layer holds a whiteout for the name (either form).
    func upperWhiteout(_ target: Spot) throws(Errno) -> Whiteout.Format? {
        if let info = try Sys.statIfPresent(target), Whiteout.isDevice(info) { return .device }
        guard let name = target.name, let marker = Whiteout.markerName(for: name) else { return nil }
        return try Sys.statIfPresent(Spot(target.directory, marker)) != nil ? .file : nil
    }

    func removeWhiteoutMarker(_ target: Spot) throws(Errno) {
        guard let name = target.name, let marker = Whiteout.markerName(for: name) else { return }
        try Sys.unlink(Spot(target.directory, marker))
    }

    /// Whether a layer below the upper one still holds `name`, so that removing the upper entry would uncover it.
    /// `indexes` are the parent's, parallel to `parent`. `found` is the name's resolution in the merged directory
    /// when the caller has it: one that reached a lower object at this very name answers without a second lookup
    /// (one that stopped at the upper layer or followed a redirect did not look there).
    func lowerHolds(_ name: Name, in parent: [Source], indexes: [(any LayerListing)?] = [], root: [Source],
                    found: Resolution? = nil) -> Bool {
        let lower = parent.indices.filter { !layers[parent[$0].layer].isUpper }
        guard !lower.isEmpty else { return false }
        if let found, found.sources.contains(where: { source in lower.contains { parent[$0].child(name) == source } }) {
            return true
        }
        return (try? resolve(name, in: lower.map { parent[$0] }, indexes: lower.map { $0 < indexes.count ? indexes[$0] : nil },
                             root: root)) != nil
    }

    /// Marks a staged or upper directory as renamed from `origin`, in the kernel's format.
    func markRedirect(_ spot: Spot, _ origin: Redirect) throws(Errno) {
        try MarkerWriter.set(Redirect.writableNames, origin.value, on: spot)
    }

    /// Marks a staged or upper directory opaque.
    func markOpaque(_ spot: Spot) throws(Errno) {
        try MarkerWriter.set(OpaqueDirectory.writableNames, [0x79], on: spot)
    }
}
