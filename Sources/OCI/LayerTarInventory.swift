import CArchive
import Glibc
import Overlay

/// What a layer tarball holds, read header by header without unpacking (libarchive skips each entry's data):
/// `.wh.NAME` entries become whiteout items, `.wh..wh..opq` makes its directory opaque, a hard link carries no
/// bytes of its own. Names are bytes and are checked as unpacking checks them: a tarball whose entry would land
/// outside the layer is refused by that entry's name.
public enum LayerTarInventory {
    public static func read(_ tarball: String) throws(LayerTar.Failure) -> [LayerItem] {
        var items: [LayerItem] = []
        var positions: [LayerPath: Int] = [:]
        var opaque: [LayerPath] = []
        try TarReading.forEachEntry(tarball) { entry, name, _ throws(LayerTar.Failure) in
            let path: LayerPath
            do throws(TarRefusal) { path = try TarNames.path(name) } catch {
                throw LayerTar.Failure(description: "\(tarball): refused tar entry \"\(Escaping.escape(name))\": \(error.reason)")
            }
            guard let last = path.name, let parent = path.parent else { return }
            if last.bytes.starts(with: Array(".wh.".utf8)) {
                if last.bytes == Array(".wh..wh..opq".utf8) {
                    opaque.append(parent)
                } else if let hidden = try? Name(Array(last.bytes.dropFirst(4))) {
                    positions[parent.appending(hidden)] = items.count
                    items.append(LayerItem(path: parent.appending(hidden), kind: .whiteout))
                }
                return
            }
            let mode = archive_entry_mode(entry)
            var item = LayerItem(path: path, kind: LayerItem.kind(ofMode: mode), size: archive_entry_size(entry),
                                 mode: UInt32(mode & 0o7777), uid: UInt32(clamping: archive_entry_uid(entry)),
                                 gid: UInt32(clamping: archive_entry_gid(entry)), modified: Int64(archive_entry_mtime(entry)))
            if let link = archive_entry_hardlink(entry) {
                // A second name of a file the layer already carries: the same object, no bytes of its own.
                item.kind = .file
                if let target = try? TarNames.path(TarNames.bytes(link)), let first = positions[target] {
                    item.size = items[first].size
                }
            } else if item.kind == .file {
                item.storedBytes = item.size
            } else if item.kind == .symlink {
                item.linkTarget = TarNames.bytes(archive_entry_symlink(entry))
                item.size = Int64(item.linkTarget?.count ?? 0)
            } else if item.kind != .file {
                item.size = 0
            }
            if let earlier = positions[path] {
                items[earlier] = item
            } else {
                positions[path] = items.count
                items.append(item)
            }
        }
        for directory in opaque {
            if let position = positions[directory] {
                items[position].opaque = true
            } else {
                var item = LayerItem(path: directory, kind: .directory, mode: 0o755)
                item.opaque = true
                positions[directory] = items.count
                items.append(item)
            }
        }
        return items
    }
}
