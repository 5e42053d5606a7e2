import CFuse3
import Glibc
import Synchronization
import SystemPackage

/// Holds the file system (and the request counters) for the C callbacks, which find it through the session's
/// userdata.
final class Dispatcher: Sendable {
    let fileSystem: any FileSystem
    let statistics: RequestStatistics
    /// What the kernel agreed to at init.
    let granted = Atomic<UInt32>(0)
    /// The connection's traffic with the kernel, where FuseKit takes it over from libfuse.
    let device: DeviceIO

    init(_ fileSystem: any FileSystem, statistics: RequestStatistics, device: DeviceIO) {
        self.fileSystem = fileSystem
        self.statistics = statistics
        self.device = device
    }

    static func of(_ request: fuse_req_t) -> Dispatcher {
        from(fuse_req_userdata(request))
    }

    static func from(_ userdata: UnsafeMutableRawPointer) -> Dispatcher {
        Unmanaged<Dispatcher>.fromOpaque(userdata).takeUnretainedValue()
    }

    func has(_ capability: Capabilities) -> Bool {
        granted.load(ordering: .relaxed) & capability.rawValue != 0
    }
}

private func context(_ request: fuse_req_t) -> RequestContext {
    guard let ctx = fuse_req_ctx(request)?.pointee else { return RequestContext(uid: 0, gid: 0, pid: 0, umask: 0o022) }
    return RequestContext(uid: ctx.uid, gid: ctx.gid, pid: ctx.pid, umask: ctx.umask)
}

/// A name (or link target) from the kernel, as bytes: never decoded as text.
func bytes(_ name: UnsafePointer<CChar>?) throws(Errno) -> [UInt8] {
    guard let name else { throw .ioError }
    return Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(name), count: strlen(name)))
}

/// An argument libfuse always passes for this request; its absence is an impossible state, answered with EIO.
func present<T>(_ pointer: UnsafeMutablePointer<T>?) throws(Errno) -> UnsafeMutablePointer<T> {
    guard let pointer else { throw .ioError }
    return pointer
}

func present<T>(_ pointer: UnsafePointer<T>?) throws(Errno) -> UnsafePointer<T> {
    guard let pointer else { throw .ioError }
    return pointer
}

extension fuse_lowlevel_ops {
    /// The callback table: each entry decodes its arguments, calls the file system, and replies once.
    static func dispatching() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, connection in
            guard let userdata, let connection else { return }
            let dispatcher = Unmanaged<Dispatcher>.fromOpaque(userdata).takeUnretainedValue()
            connection.pointee.want |= connection.pointee.capable & dispatcher.fileSystem.capabilities.rawValue
            connection.pointee.want &= ~dispatcher.fileSystem.declinedCapabilities.rawValue
            dispatcher.granted.store(connection.pointee.want, ordering: .relaxed)
        }
        ops.lookup = { request, parent, name in
            answerEntry(request, .lookup) { fs, context throws(Errno) in
                try fs.lookup(context, parent: parent, name: try bytes(name))
            }
        }
        ops.forget = { request, node, lookups in
            guard let request else { return }
            let start = RequestStatistics.now()
            let dispatcher = Dispatcher.of(request)
            dispatcher.fileSystem.forget(node: node, lookups: lookups)
            Reply(request).none()
            dispatcher.statistics.record(.forget, since: start, failed: false)
        }
        ops.forget_multi = { request, count, nodes in
            guard let request else { return }
            let start = RequestStatistics.now()
            let dispatcher = Dispatcher.of(request)
            for item in UnsafeBufferPointer(start: nodes, count: nodes == nil ? 0 : count) {
                dispatcher.fileSystem.forget(node: item.ino, lookups: item.nlookup)
            }
            Reply(request).none()
            dispatcher.statistics.record(.forget, since: start, failed: false)
        }
        ops.getattr = { request, node, info in
            let handle = info.map { $0.pointee.fh }
            respond(request, .getattr) { fs, _ throws(Errno) in .attributes(try fs.attributes(node: node, handle: handle)) }
        }
        ops.readlink = { request, node in
            respond(request, .readlink) { fs, _ throws(Errno) in .readlink(try fs.readlink(node: node)) }
        }
        ops.open = { request, node, info in
            respond(request, .open) { fs, context throws(Errno) in
                let info = try present(info)
                if let request, Dispatcher.of(request).has(.noOpenSupport) { throw .noFunction }
                return .open(try fs.open(context, node: node, flags: info.pointee.flags), info)
            }
        }
        ops.read = { request, node, size, offset, info in
            respond(request, .read) { fs, _ throws(Errno) in
                .data(try fs.read(node: node, handle: try present(info).pointee.fh, size: size, offset: Int64(offset)))
            }
        }
        ops.release = { request, node, info in
            respond(request, .release) { fs, _ throws(Errno) in
                fs.release(node: node, handle: try present(info).pointee.fh)
                return .success
            }
        }
        ops.opendir = { request, node, info in
            respond(request, .opendir) { fs, context throws(Errno) in
                if let request, Dispatcher.of(request).has(.noOpendirSupport) { throw .noFunction }
                return .open(try fs.openDirectory(context, node: node), try present(info))
            }
        }
        ops.readdir = { request, node, size, offset, info in
            readDirectory(request, .readdir, node, size, offset, info, plus: false)
        }
        ops.readdirplus = { request, node, size, offset, info in
            readDirectory(request, .readdirplus, node, size, offset, info, plus: true)
        }
        ops.releasedir = { request, node, info in
            respond(request, .releasedir) { fs, _ throws(Errno) in
                fs.releaseDirectory(node: node, handle: try present(info).pointee.fh)
                return .success
            }
        }
        ops.statfs = { request, node in
            respond(request, .statfs) { fs, _ throws(Errno) in .statistics(try fs.statistics(node: node)) }
        }
        ops.getxattr = { request, node, name, size in
            respond(request, .getxattr) { fs, _ throws(Errno) in
                .sized(try fs.extendedAttribute(node: node, name: try bytes(name)), capacity: size)
            }
        }
        ops.listxattr = { request, node, size in
            respond(request, .listxattr) { fs, _ throws(Errno) in
                let names = try fs.extendedAttributeNames(node: node)
                return .sized(names.flatMap { $0 + [0] }, capacity: size)
            }
        }
        ops.create = { request, parent, name, mode, info in
            respond(request, .create) { fs, context throws(Errno) in
                let info = try present(info)
                let (entry, handle) = try fs.create(context, parent: parent, name: try bytes(name), mode: mode,
                                                    flags: info.pointee.flags)
                return .created(entry, handle, info)
            }
        }
        ops.mkdir = { request, parent, name, mode in
            answerEntry(request, .mkdir) { fs, context throws(Errno) in
                try fs.makeDirectory(context, parent: parent, name: try bytes(name), mode: mode)
            }
        }
        ops.mknod = { request, parent, name, mode, device in
            answerEntry(request, .mknod) { fs, context throws(Errno) in
                try fs.makeNode(context, parent: parent, name: try bytes(name), mode: mode, device: device)
            }
        }
        ops.symlink = { request, target, parent, name in
            answerEntry(request, .symlink) { fs, context throws(Errno) in
                try fs.makeSymlink(context, parent: parent, name: try bytes(name), target: try bytes(target))
            }
        }
        ops.link = { request, node, newParent, newName in
            answerEntry(request, .link) { fs, context throws(Errno) in
                try fs.link(context, node: node, newParent: newParent, newName: try bytes(newName))
            }
        }
        ops.unlink = { request, parent, name in
            respond(request, .unlink) { fs, _ throws(Errno) in try fs.unlink(parent: parent, name: try bytes(name)); return .success }
        }
        ops.rmdir = { request, parent, name in
            respond(request, .rmdir) { fs, _ throws(Errno) in try fs.removeDirectory(parent: parent, name: try bytes(name)); return .success }
        }
        ops.rename = { request, parent, name, newParent, newName, flags in
            respond(request, .rename) { fs, _ throws(Errno) in
                try fs.rename(parent: parent, name: try bytes(name), newParent: newParent, newName: try bytes(newName), flags: flags)
                return .success
            }
        }
        ops.setattr = { request, node, attributes, fields, info in
            let handle = info.map { $0.pointee.fh }
            respond(request, .setattr) { fs, _ throws(Errno) in
                let changes = AttributeChanges(try present(attributes).pointee, fields)
                return .attributes(try fs.setAttributes(node: node, changes, handle: handle))
            }
        }
        ops.write_buf = { request, node, buffers, offset, info in
            respond(request, .write) { fs, _ throws(Errno) in
                .count(try fs.write(node: node, handle: try present(info).pointee.fh, data: WriteData(try present(buffers)),
                                    offset: Int64(offset)))
            }
        }
        ops.fsync = { request, node, dataOnly, info in
            respond(request, .fsync) { fs, _ throws(Errno) in
                try fs.synchronize(node: node, handle: try present(info).pointee.fh, dataOnly: dataOnly != 0)
                return .success
            }
        }
        ops.fsyncdir = { request, node, dataOnly, _ in
            respond(request, .fsyncdir) { fs, _ throws(Errno) in
                try fs.synchronizeDirectory(node: node, dataOnly: dataOnly != 0)
                return .success
            }
        }
        ops.setxattr = { request, node, name, value, size, flags in
            let bytes = Array(UnsafeRawBufferPointer(start: value, count: value == nil ? 0 : size))
            respond(request, .setxattr) { fs, _ throws(Errno) in
                try fs.setExtendedAttribute(node: node, name: try FuseKit.bytes(name), value: bytes, flags: flags)
                return .success
            }
        }
        ops.removexattr = { request, node, name in
            respond(request, .removexattr) { fs, _ throws(Errno) in
                try fs.removeExtendedAttribute(node: node, name: try bytes(name))
                return .success
            }
        }
        ops.fallocate = { request, node, mode, offset, length, info in
            respond(request, .fallocate) { fs, _ throws(Errno) in
                try fs.allocate(node: node, handle: try present(info).pointee.fh, mode: mode, offset: Int64(offset),
                                length: Int64(length))
                return .success
            }
        }
        ops.lseek = { request, node, offset, whence, info in
            respond(request, .lseek) { fs, _ throws(Errno) in
                .offset(try fs.seek(node: node, handle: try present(info).pointee.fh, offset: Int64(offset), whence: whence))
            }
        }
        ops.copy_file_range = { request, inNode, inOffset, inInfo, outNode, outOffset, outInfo, length, flags in
            respond(request, .copyFileRange) { fs, _ throws(Errno) in
                let source = (inNode, try present(inInfo).pointee.fh, Int64(inOffset))
                let target = (outNode, try present(outInfo).pointee.fh, Int64(outOffset))
                return .count(try fs.copyRange(from: source, to: target, length: length, flags: flags))
            }
        }
        return ops
    }
}

/// The answers an operation can give, so that each callback is one expression and `respond` replies once.
private enum Answer {
    case attributes(Attributes)
    case readlink([UInt8])
    case open(OpenHandle, UnsafeMutablePointer<fuse_file_info>)
    case data(ReadData)
    case statistics(statvfs)
    case sized([UInt8], capacity: Int)
    case created(Entry, OpenHandle, UnsafeMutablePointer<fuse_file_info>)
    case entry(Entry)
    case count(Int)
    case offset(Int64)
    case success
}

/// Runs an operation and replies once: its answer, or the errno it threw; and counts it.
private func respond(_ request: fuse_req_t?, _ opcode: Opcode,
                     _ body: (any FileSystem, RequestContext) throws(Errno) -> Answer) {
    guard let request else { return }
    let start = RequestStatistics.now()
    let dispatcher = Dispatcher.of(request)
    let reply = Reply(request)
    let answer: Answer
    do throws(Errno) {
        answer = try body(dispatcher.fileSystem, context(request))
    } catch {
        reply.error(error)
        return dispatcher.statistics.record(opcode, since: start, failed: true)
    }
    switch answer {
    case let .attributes(attributes): reply.attributes(attributes)
    case let .readlink(target): reply.readlink(target)
    case let .open(handle, info): reply.open(handle, info)
    case let .data(data): reply.data(data)
    case let .statistics(statistics): reply.statistics(statistics)
    case let .sized(bytes, capacity): reply.sized(bytes, capacity: capacity)
    case let .created(entry, handle, info): reply.created(entry, handle, info)
    case let .count(count): reply.count(count)
    case let .offset(offset): reply.offset(offset)
    case let .entry(entry): reply.entry(entry)
    case .success: reply.success()
    }
    dispatcher.statistics.record(opcode, since: start, failed: false)
}

private func answerEntry(_ request: fuse_req_t?, _ opcode: Opcode,
                         _ body: (any FileSystem, RequestContext) throws(Errno) -> Entry) {
    respond(request, opcode) { fs, context throws(Errno) in .entry(try body(fs, context)) }
}

private func readDirectory(_ request: fuse_req_t?, _ opcode: Opcode, _ node: fuse_ino_t, _ size: Int, _ offset: off_t,
                           _ info: UnsafeMutablePointer<fuse_file_info>?, plus: Bool) {
    guard let request else { return }
    let start = RequestStatistics.now()
    let dispatcher = Dispatcher.of(request)
    let reply = Reply(request)
    guard let info else {
        reply.error(.ioError)
        return dispatcher.statistics.record(opcode, since: start, failed: true)
    }
    var buffer = DirectoryBuffer(request: request, capacity: size, plus: plus)
    do throws(Errno) {
        try dispatcher.fileSystem.readDirectory(node: node, handle: info.pointee.fh, offset: Int64(offset), into: &buffer)
    } catch {
        reply.error(error)
        return dispatcher.statistics.record(opcode, since: start, failed: true)
    }
    reply.buffer(buffer.bytes)
    dispatcher.statistics.record(opcode, since: start, failed: false)
}
