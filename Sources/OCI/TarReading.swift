import CArchive
import Glibc
import Overlay

/// A layer tarball read entry by entry through libarchive (any tar format, any compression), each entry's name
/// as its bytes; a damaged header is reported by its position and the entry before it.
enum TarReading {
    static func forEachEntry(_ tarball: String,
                             _ body: (_ entry: OpaquePointer, _ name: [UInt8], _ reader: OpaquePointer) throws(LayerTar.Failure) -> Void)
        throws(LayerTar.Failure) {
        LayerTar.useByteNames()
        guard let reader = archive_read_new() else { throw LayerTar.Failure(description: "libarchive: out of memory") }
        defer { archive_read_free(reader) }
        archive_read_support_format_all(reader)
        archive_read_support_filter_all(reader)
        guard archive_read_open_filename(reader, tarball, 1 << 16) == ARCHIVE_OK else {
            throw LayerTar.Failure(description: "\(tarball): entry 1: \(archiveError(reader, or: "not a tar archive"))")
        }
        var entry: OpaquePointer?
        var count = 0
        var previous = "the first entry"
        while true {
            let status = archive_read_next_header(reader, &entry)
            if status == ARCHIVE_EOF { return }
            count += 1
            guard status >= ARCHIVE_WARN, let entry else {
                throw LayerTar.Failure(description: "\(tarball): entry \(count) (after \(previous)): \(archiveError(reader, or: "a damaged header"))")
            }
            let name = TarNames.bytes(archive_entry_pathname(entry))
            previous = "\"" + Escaping.escape(name) + "\""
            try body(entry, name, reader)
        }
    }
}
