import CArchive
import CLinux
import Foundation
import Glibc

/// Extracts a layer tarball into a directory in an overlay's format: `.wh.NAME` entries become whiteouts (a
/// character device 0/0, or kept as `.wh.` files), `.wh..wh..opq` makes its directory opaque. Entries that would
/// land outside the directory (absolute paths, `..`, paths through symbolic links) are refused by name.
public enum LayerUnpack {
    public enum WhiteoutForm: String, Sendable {
        case chardev
        case file
    }

    public static func extract(_ tarball: String, into destination: String, whiteouts: WhiteoutForm) throws(LayerTar.Failure) {
        guard let reader = archive_read_new(), let writer = archive_write_disk_new() else {
            throw LayerTar.Failure(description: "libarchive: out of memory")
        }
        defer {
            archive_read_free(reader)
            archive_write_free(writer)
        }
        archive_read_support_format_all(reader)
        archive_read_support_filter_all(reader)
        let flags = ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_XATTR
            | ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS
        archive_write_disk_set_options(writer, flags)
        guard archive_read_open_filename(reader, tarball, 1 << 16) == ARCHIVE_OK else {
            throw LayerTar.Failure(description: "\(tarball): \(archiveError(reader))")
        }
        // libarchive extracts relative to the working directory, and its checks keep entries inside it.
        let previous = FileManager.default.currentDirectoryPath
        guard FileManager.default.changeCurrentDirectoryPath(destination) else {
            throw LayerTar.Failure(description: "\(destination): cannot enter")
        }
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        var entry: OpaquePointer?
        while true {
            let status = archive_read_next_header(reader, &entry)
            if status == ARCHIVE_EOF { break }
            guard status >= ARCHIVE_WARN, let entry else {
                throw LayerTar.Failure(description: "\(tarball): \(archiveError(reader))")
            }
            let name = String(cString: archive_entry_pathname(entry))
            try refuseEscape(name)
            let base = (name as NSString).lastPathComponent, parent = (name as NSString).deletingLastPathComponent
            if base == ".wh..wh..opq" {
                try makeDirectory(parent)
                if whiteouts == .file {
                    try extractEntry(reader, writer, entry, name)
                } else if CLinux_lsetxattr(parent.isEmpty ? "." : parent, "trusted.overlay.opaque", "y", 1, 0) != 0 {
                    throw LayerTar.Failure(description: "\(name): cannot mark \(parent) opaque: \(String(cString: strerror(errno)))")
                }
            } else if base.hasPrefix(".wh."), whiteouts == .chardev {
                try makeDirectory(parent)
                let target = (parent.isEmpty ? "" : parent + "/") + String(base.dropFirst(4))
                if mknod(target, S_IFCHR, 0) != 0 {
                    throw LayerTar.Failure(description: "\(name): cannot make the whiteout \(target): \(String(cString: strerror(errno)))")
                }
            } else {
                try extractEntry(reader, writer, entry, name)
            }
        }
        if archive_write_finish_entry(writer) < ARCHIVE_WARN || archive_write_close(writer) < ARCHIVE_WARN {
            throw LayerTar.Failure(description: "\(destination): \(archiveError(writer))")
        }
    }

    private static func refuseEscape(_ name: String) throws(LayerTar.Failure) {
        if name.hasPrefix("/") || name.split(separator: "/").contains("..") {
            throw LayerTar.Failure(description: "refused tar entry \(name): it would land outside the layer directory")
        }
    }

    private static func extractEntry(_ reader: OpaquePointer, _ writer: OpaquePointer, _ entry: OpaquePointer,
                                     _ name: String) throws(LayerTar.Failure) {
        if let link = archive_entry_hardlink(entry) { try refuseEscape(String(cString: link)) }
        guard archive_write_header(writer, entry) >= ARCHIVE_WARN else {
            throw LayerTar.Failure(description: "refused tar entry \(name): \(archiveError(writer))")
        }
        if archive_entry_size(entry) > 0 {
            var block: UnsafeRawPointer?
            var size = 0
            var offset: Int64 = 0
            while true {
                let status = archive_read_data_block(reader, &block, &size, &offset)
                if status == ARCHIVE_EOF { break }
                guard status >= ARCHIVE_WARN, archive_write_data_block(writer, block, size, offset) >= ARCHIVE_WARN else {
                    throw LayerTar.Failure(description: "\(name): \(archiveError(writer))")
                }
            }
        }
        guard archive_write_finish_entry(writer) >= ARCHIVE_WARN else {
            throw LayerTar.Failure(description: "\(name): \(archiveError(writer))")
        }
    }

    private static func makeDirectory(_ path: String) throws(LayerTar.Failure) {
        guard !path.isEmpty else { return }
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw LayerTar.Failure(description: "\(path): \(error.localizedDescription)")
        }
    }
}
