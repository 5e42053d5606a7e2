import CArchive
import Glibc
import Overlay
import SystemPackage

/// Writes exported entries as a layer tarball (PAX, so names, owners, nanosecond mtimes and xattrs fit) that
/// is byte-for-byte the same for the same layer: entries sorted, no atime or ctime, gzip without a timestamp.
public enum LayerTar {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// libarchive converts names between the locale's encoding and UTF-8 (for PAX records). Under C.UTF-8 a
    /// UTF-8 name passes unchanged and any other name is kept as bytes (with PAX's `hdrcharset=BINARY`).
    static func useByteNames() {
        _ = setlocale(LC_CTYPE, "C.UTF-8")
    }

    public static func write(_ entries: [ExportedEntry], from stack: LayerStack, to path: String, gzip: Bool) throws(Failure) {
        useByteNames()
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
        var firstNames: [String: [UInt8]] = [:]
        for exported in entries {
            guard let entry = archive_entry_new() else { throw Failure(description: "libarchive: out of memory") }
            defer { archive_entry_free(entry) }
            let info = exported.info
            let name = exported.path.bytes
            Escaping.withCString(name) { archive_entry_set_pathname(entry, $0) }
            archive_entry_set_uid(entry, Int64(info.st_uid))
            archive_entry_set_gid(entry, Int64(info.st_gid))
            archive_entry_set_mode(entry, info.st_mode)
            archive_entry_set_mtime(entry, info.st_mtim.tv_sec, info.st_mtim.tv_nsec)
            archive_entry_set_size(entry, 0)
            for (key, value) in exported.xattrs {
                Escaping.withCString(key) { key in value.withUnsafeBytes { archive_entry_xattr_add_entry(entry, key, $0.baseAddress, $0.count) } }
            }
            var content = false
            if exported.kind == .object {
                switch info.st_mode & S_IFMT {
                case S_IFREG:
                    let key = "\(info.st_dev):\(info.st_ino)"
                    if info.st_nlink > 1, let first = firstNames[key] {
                        Escaping.withCString(first) { archive_entry_set_hardlink(entry, $0) }
                    } else {
                        if info.st_nlink > 1 { firstNames[key] = name }
                        archive_entry_set_size(entry, Int64(info.st_size))
                        content = info.st_size > 0
                    }
                case S_IFLNK:
                    Escaping.withCString(exported.linkTarget ?? []) { archive_entry_set_symlink(entry, $0) }
                case S_IFCHR, S_IFBLK:
                    archive_entry_set_rdev(entry, info.st_rdev)
                default:
                    break
                }
            }
            try check(archive_write_header(archive, entry), exported.path.description)
            if content { try copyContent(exported, from: stack, into: archive) }
        }
        try check(archive_write_close(archive), path)
    }

    private static func copyContent(_ exported: ExportedEntry, from stack: LayerStack, into archive: OpaquePointer) throws(Failure) {
        let name = exported.path.description
        let fd: CInt
        do { fd = try stack.openContent(exported) } catch { throw Failure(description: "\(name): \(error)") }
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
func archiveError(_ archive: OpaquePointer, or fallback: String = "failed") -> String {
    archive_error_string(archive).map { String(cString: $0) } ?? fallback
}
