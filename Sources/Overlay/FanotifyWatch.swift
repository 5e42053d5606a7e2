import CLinux
import Glibc
import SystemPackage

/// The watch as root: fanotify, one mark per backing filesystem, events naming the directory (by handle) and
/// the entry. Events of the daemon's own process are its own changes through the mount and are passed over.
/// Each batch read goes to `changed` as layer changes; a lost batch (the queue overflowed, or a directory whose
/// handle no longer opens) goes as nil, for "anything may have changed".
final class FanotifyWatch: Sendable {
    /// A layer's root as the kernel names it, to find which layer an event's directory lies in.
    private struct Root: Sendable {
        let layer: Int
        let path: [UInt8]
    }

    private let group: CInt
    /// A descriptor on each watched filesystem, by fanotify's id of it, for opening the handles it reports.
    private let mounts: [UInt64: CInt]
    private let roots: [Root]
    private let loop = EventLoop()
    private let changed: @Sendable ([LayerChange]?) -> Void
    private let me = getpid()

    /// Fails where fanotify's filesystem marks are not permitted (without CAP_SYS_ADMIN).
    init(_ stack: LayerStack, changed: @escaping @Sendable ([LayerChange]?) -> Void) throws(LayerWatch.Failure) {
        do {
            group = try Sys.fanotifyGroup()
        } catch {
            throw LayerWatch.Failure(description: "watch: fanotify: \(error)")
        }
        var mounts: [UInt64: CInt] = [:]
        var roots: [Root] = []
        for layer in stack.layers {
            do {
                let id = try Sys.filesystemID(layer.rootFD)
                if mounts[id] == nil {
                    try Sys.fanotifyMarkFilesystem(group, layer.path)
                    // open_by_handle_at wants a descriptor it can read through, not the root's O_PATH one.
                    mounts[id] = try layer.openDirectory(.root, forReading: true)
                }
                roots.append(Root(layer: layer.index, path: try Sys.pathOfDescriptor(layer.rootFD)))
            } catch {
                Sys.close(group)
                mounts.values.forEach(Sys.close)
                throw LayerWatch.Failure(description: "watch: fanotify on \(layer.path): \(error)")
            }
        }
        self.mounts = mounts
        // The deepest root first, for layers nested in one another.
        self.roots = roots.sorted { $0.path.count > $1.path.count }
        self.changed = changed
        loop.start(group, label: "strata.watch.fanotify", parse: { [self] events, changes, lost in
            parse(events, into: &changes, lost: &lost)
        }, changed: changed)
    }

    func stop() {
        loop.stop()
        Sys.close(group)
        mounts.values.forEach(Sys.close)
    }

    /// Reads a buffer of events, each checked against its own stated lengths before anything in it is used.
    private func parse(_ events: UnsafeRawBufferPointer, into changes: inout [LayerChange], lost: inout Bool) {
        let headerSize = MemoryLayout<fanotify_event_metadata>.size
        var offset = 0
        while offset + headerSize <= events.count {
            let length = Int(events.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            guard length >= headerSize, offset + length <= events.count else { return }
            let mask = events.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)
            let pid = events.loadUnaligned(fromByteOffset: offset + 20, as: Int32.self)
            let metadataLength = Int(events.loadUnaligned(fromByteOffset: offset + 6, as: UInt16.self))
            defer { offset += length }
            if mask & CLinux_FAN_Q_OVERFLOW != 0 {
                lost = true
                continue
            }
            guard pid != me, metadataLength >= headerSize, metadataLength <= length else { continue }
            let info = UnsafeRawBufferPointer(rebasing: events[(offset + metadataLength)..<(offset + length)])
            switch describe(info) {
            case let .change(change): changes.append(change)
            case .lost: lost = true
            case .outside: break
            }
        }
    }

    private enum Described {
        case change(LayerChange)
        case outside
        case lost
    }

    /// The directory-and-name record of one event: the layer change it stands for, a place outside every layer,
    /// or lost (a handle that no longer opens: the directory is gone, and with it what the tree knows there).
    private func describe(_ info: UnsafeRawBufferPointer) -> Described {
        // fanotify_event_info_header (type, pad, length), the filesystem id, then a file_handle and the name.
        let fixed = 4 + 8 + 8
        guard info.count >= fixed, info[0] == CLinux_FAN_EVENT_INFO_TYPE_DFID_NAME else { return .outside }
        let recordLength = min(Int(info.loadUnaligned(fromByteOffset: 2, as: UInt16.self)), info.count)
        let fsid = info.loadUnaligned(fromByteOffset: 4, as: UInt64.self)
        let handleLength = Int(info.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        let handleType = info.loadUnaligned(fromByteOffset: 16, as: Int32.self)
        guard fixed + handleLength < recordLength, let mount = mounts[fsid] else { return .outside }
        let nameStart = fixed + handleLength
        let nameBytes = info[nameStart..<recordLength].prefix { $0 != 0 }
        let fd: CInt
        do {
            fd = try Sys.openByHandle(mount, type: handleType, UnsafeRawBufferPointer(rebasing: info[fixed..<nameStart]))
        } catch {
            return .lost
        }
        defer { Sys.close(fd) }
        guard let path = try? Sys.pathOfDescriptor(fd) else { return .lost }
        for root in roots {
            guard path.starts(with: root.path) else { continue }
            let rest = path.dropFirst(root.path.count)
            guard rest.isEmpty || rest.first == 0x2F || root.path == [0x2F] else { continue }
            var names: [Name] = []
            for component in rest.split(separator: 0x2F) {
                guard let name = try? Name(Array(component)) else { return .outside }
                names.append(name)
            }
            var directory = LayerPath(names)
            var entry = try? Name(Array(nameBytes))
            // An event on a directory itself names it ".": the change is to its entry in its parent.
            if entry == nil, nameBytes.elementsEqual([0x2E]), let parent = directory.parent, let own = directory.name {
                directory = parent
                entry = own
            }
            guard let entry else { return .outside }
            return .change(LayerChange(layer: root.layer, directory: directory, name: entry))
        }
        return .outside
    }
}
