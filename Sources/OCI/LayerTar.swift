import CArchive
import Foundation
import Glibc
import Overlay

/// Writes exported entries as a layer tarball (PAX, so names, owners, nanosecond mtimes and xattrs fit) that
/// is byte-for-byte the same for the same layer: entries sorted, no atime or ctime, gzip without a timestamp.
public enum LayerTar {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static func write(_ entries: [ExportedEntry], to path: String, gzip: Bool) throws(Failure) {
        guard let archive = archive_write_new() else { throw Failure(description: "libarchive: out of memory") }
        defer { archive_write_free(archive) }
        func check(_ status: CInt, _ what: String) throws(Failure) {
            if status < ARCHIVE_WARN {
                throw Failure(description: "\(what): \(archiveError(archive))")
            }
        }
        try check(archive_write_set_format_pax(archive), "tar format")
        if gzip {
            try check(archive_write_add_filter_gzip(archive), "gzip")
            try check(archive_write_set_options(archive, "gzip:!timestamp"), "gzip options")
        }
        try check(archive_write_open_filename(archive, path), path)
        var firstNames: [String: String] = [:]
        for exported in entries {
            guard let entry = archive_entry_new() else { throw Failure(description: "libarchive: out of memory") }
            defer { archive_entry_free(entry) }
            let info = exported.info
            archive_entry_set_pathname(entry, exported.path)
            archive_entry_set_uid(entry, Int64(info.st_uid))
            archive_entry_set_gid(entry, Int64(info.st_gid))
            archive_entry_set_mode(entry, info.st_mode)
            archive_entry_set_mtime(entry, info.st_mtim.tv_sec, info.st_mtim.tv_nsec)
            archive_entry_set_size(entry, 0)
            for (name, value) in exported.xattrs {
                value.withUnsafeBytes { _ = archive_entry_xattr_add_entry(entry, name, $0.baseAddress, $0.count) }
            }
            var content = false
            if exported.kind == .object {
                switch info.st_mode & S_IFMT {
                case S_IFREG:
                    let key = "\(info.st_dev):\(info.st_ino)"
                    if info.st_nlink > 1, let first = firstNames[key] {
                        archive_entry_set_hardlink(entry, first)
                    } else {
                        if info.st_nlink > 1 { firstNames[key] = exported.path }
                        archive_entry_set_size(entry, Int64(info.st_size))
                        content = info.st_size > 0
                    }
                case S_IFLNK:
                    let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: exported.backing)) ?? ""
                    archive_entry_set_symlink(entry, target)
                case S_IFCHR, S_IFBLK:
                    archive_entry_set_rdev(entry, info.st_rdev)
                default:
                    break
                }
            }
            try check(archive_write_header(archive, entry), exported.path)
            if content { try copyContent(exported.backing, into: archive, exported.path) }
        }
        try check(archive_write_close(archive), path)
    }

    private static func copyContent(_ path: String, into archive: OpaquePointer, _ name: String) throws(Failure) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw Failure(description: "\(name): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 { throw Failure(description: "\(name): \(String(cString: strerror(errno)))") }
            if count == 0 { return }
            let written = buffer.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, count) }
            if written < 0 { throw Failure(description: "\(name): \(archiveError(archive))") }
        }
    }
}

/// libarchive's message for the last failure on `archive`.
func archiveError(_ archive: OpaquePointer) -> String {
    archive_error_string(archive).map { String(cString: $0) } ?? "failed"
}
