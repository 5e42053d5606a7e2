import CArchive
import Glibc
import Overlay
import SystemPackage

/// Extracts a layer tarball into a directory in an overlay's format: `.wh.NAME` entries become whiteouts (a
/// character device 0/0, or kept as `.wh.` files), `.wh..wh..opq` makes its directory opaque. The tarball is
/// hostile input: names are bytes, every path is resolved beneath the directory (`LayerBuilder`), entries that
/// would land outside are refused by name, and the overlay's own attributes are never taken from it.
public enum LayerUnpack {
    public enum WhiteoutForm: String, Sendable {
        case chardev
        case file
    }

    /// What an unpack left out on purpose.
    public struct Report: Sendable {
        /// Overlay-private and Strata attributes the tarball carried, dropped.
        public var droppedXattrs = 0
        /// The first entry that carried one, escaped, for the warning.
        public var firstDropped: String?
    }

    public static func extract(_ tarball: String, into destination: String,
                               whiteouts: WhiteoutForm) throws(LayerTar.Failure) -> Report {
        let builder: LayerBuilder
        do { builder = try LayerBuilder(directory: destination) } catch {
            throw LayerTar.Failure(description: "\(destination): \(error)")
        }
        var report = Report()
        try TarReading.forEachEntry(tarball) { entry, name, reader throws(LayerTar.Failure) in
            let shown = "\"" + Escaping.escape(name) + "\""
            do {
                try unpack(entry, named: name, from: reader, into: builder, whiteouts: whiteouts, report: &report)
            } catch let refusal as TarRefusal {
                throw LayerTar.Failure(description: "refused tar entry \(shown): \(refusal.reason)")
            } catch let error as Errno {
                throw LayerTar.Failure(description: "refused tar entry \(shown): \(reason(error))")
            } catch {
                throw LayerTar.Failure(description: "refused tar entry \(shown): \(error)")
            }
        }
        do { try builder.finish() } catch { throw LayerTar.Failure(description: "\(destination): \(error)") }
        return report
    }

    private static func unpack(_ entry: OpaquePointer, named name: [UInt8], from reader: OpaquePointer,
                               into builder: LayerBuilder, whiteouts: WhiteoutForm, report: inout Report) throws {
        let path = try TarNames.path(name)
        let metadata = self.metadata(entry, name: name, report: &report)
        let type = archive_entry_filetype(entry) & S_IFMT
        if path.isRoot, type != S_IFDIR { throw TarRefusal("a non-directory cannot stand for the layer's root") }
        if let last = path.name, let parent = path.parent, last.bytes.starts(with: Array(".wh.".utf8)) {
            if last.bytes == Array(".wh..wh..opq".utf8) {
                return try builder.opaque(parent, asFile: whiteouts == .file)
            }
            if whiteouts == .chardev {
                let hidden = Array(last.bytes.dropFirst(4))
                guard let target = try? Name(hidden) else { throw TarRefusal("a whiteout that hides no name") }
                return try builder.whiteout(parent.appending(target), asFile: false)
            }
        }
        if let link = archive_entry_hardlink(entry) {
            return try builder.hardLink(path, to: try TarNames.path(TarNames.bytes(link)))
        }
        switch type {
        case S_IFDIR:
            try builder.directory(path, metadata)
        case S_IFREG:
            try builder.file(path, metadata) { fd throws(Errno) in try copyData(reader, to: fd, size: archive_entry_size(entry)) }
        case S_IFLNK:
            guard let target = archive_entry_symlink(entry) else { throw TarRefusal("a symbolic link without a target") }
            try builder.symlink(path, target: TarNames.bytes(target), metadata)
        case S_IFCHR, S_IFBLK, S_IFIFO:
            try builder.special(path, mode: type, device: archive_entry_rdev(entry), metadata)
        default:
            throw TarRefusal(type == S_IFSOCK ? "a socket, which tar cannot carry" : "an entry of no known type (mode \(String(archive_entry_mode(entry), radix: 8)))")
        }
    }

    private static func metadata(_ entry: OpaquePointer, name: [UInt8], report: inout Report) -> LayerBuilder.Metadata {
        var xattrs: [(name: [UInt8], value: [UInt8])] = []
        archive_entry_xattr_reset(entry)
        var xattrName: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while archive_entry_xattr_next(entry, &xattrName, &value, &size) == ARCHIVE_OK {
            let key = TarNames.bytes(xattrName)
            if ReservedXattr.isReserved(key) {
                report.droppedXattrs += 1
                if report.firstDropped == nil { report.firstDropped = "\"\(Escaping.escape(name))\" (\(Escaping.escape(key)))" }
                continue
            }
            xattrs.append((key, value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []))
        }
        let mtime = timespec(tv_sec: archive_entry_mtime(entry), tv_nsec: Int(archive_entry_mtime_nsec(entry)))
        return LayerBuilder.Metadata(uid: uid_t(clamping: archive_entry_uid(entry)), gid: gid_t(clamping: archive_entry_gid(entry)),
                                     mode: archive_entry_perm(entry), modification: mtime, xattrs: xattrs)
    }

    /// Writes the entry's data blocks where they belong (holes stay holes), then sets the file's size.
    private static func copyData(_ reader: OpaquePointer, to fd: CInt, size: Int64) throws(Errno) {
        var block: UnsafeRawPointer?
        var length = 0
        var offset: Int64 = 0
        while true {
            let status = archive_read_data_block(reader, &block, &length, &offset)
            if status == ARCHIVE_EOF { break }
            guard status >= ARCHIVE_WARN else { throw .ioError }
            var written = 0
            while written < length {
                let count = pwrite(fd, block.map { $0 + written }, length - written, off_t(offset) + off_t(written))
                if count < 0 {
                    if errno == EINTR { continue }
                    throw Errno(rawValue: errno)
                }
                written += count
            }
        }
        if ftruncate(fd, off_t(max(0, size))) != 0 { throw Errno(rawValue: errno) }
    }

    private static func reason(_ error: Errno) -> String {
        switch error {
        case .directoryNotEmpty: "it would replace a directory that is not empty"
        case .noSuchFileOrDirectory: "a hard link to a name the layer does not hold (yet)"
        case .notPermitted: "not permitted (a hard link to a directory, or a device without privilege)"
        case .fileNameTooLong: "a name longer than 255 bytes"
        case .tooManySymbolicLinkLevels, .improperLink: "its path goes through a symbolic link"
        case .notDirectory: "its path goes through something that is not a directory"
        default: "\(error)"
        }
    }
}
