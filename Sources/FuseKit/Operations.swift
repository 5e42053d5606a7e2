import CFuse3
import Glibc
import SystemPackage

/// Holds the file system for the C callbacks, which find it through the session's userdata.
final class Dispatcher: Sendable {
    let fileSystem: any FileSystem
    init(_ fileSystem: any FileSystem) { self.fileSystem = fileSystem }

    static func of(_ request: fuse_req_t) -> any FileSystem {
        Unmanaged<Dispatcher>.fromOpaque(fuse_req_userdata(request)).takeUnretainedValue().fileSystem
    }
}

private func context(_ request: fuse_req_t) -> RequestContext {
    let ctx = fuse_req_ctx(request)!.pointee
    return RequestContext(uid: ctx.uid, gid: ctx.gid, pid: ctx.pid, umask: ctx.umask)
}

extension fuse_lowlevel_ops {
    /// The callback table: each entry decodes its arguments, calls the file system, and replies once.
    static func dispatching() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, connection in
            let fileSystem = Unmanaged<Dispatcher>.fromOpaque(userdata!).takeUnretainedValue().fileSystem
            let connection = connection!
            connection.pointee.want |= connection.pointee.capable & fileSystem.capabilities.rawValue
        }
        ops.lookup = { request, parent, name in
            let name = String(cString: name!)
            answerEntry(request) { fs throws(Errno) in try fs.lookup(context(request!), parent: parent, name: name) }
        }
        ops.forget = { request, node, lookups in
            Dispatcher.of(request!).forget(node: node, lookups: lookups)
            Reply(request!).none()
        }
        ops.forget_multi = { request, count, nodes in
            let fs = Dispatcher.of(request!)
            for item in UnsafeBufferPointer(start: nodes, count: count) {
                fs.forget(node: item.ino, lookups: item.nlookup)
            }
            Reply(request!).none()
        }
        ops.getattr = { request, node, info in
            let handle = info.map { $0.pointee.fh }
            respond(request) { fs throws(Errno) in .attributes(try fs.attributes(node: node, handle: handle)) }
        }
        ops.readlink = { request, node in
            respond(request) { fs throws(Errno) in .readlink(try fs.readlink(node: node)) }
        }
        ops.open = { request, node, info in
            let flags = info!.pointee.flags
            respond(request) { fs throws(Errno) in .open(try fs.open(context(request!), node: node, flags: flags), info!) }
        }
        ops.read = { request, node, size, offset, info in
            let handle = info!.pointee.fh
            respond(request) { fs throws(Errno) in .data(try fs.read(node: node, handle: handle, size: size, offset: Int64(offset))) }
        }
        ops.release = { request, node, info in
            Dispatcher.of(request!).release(node: node, handle: info!.pointee.fh)
            Reply(request!).success()
        }
        ops.opendir = { request, node, info in
            respond(request) { fs throws(Errno) in .open(try fs.openDirectory(context(request!), node: node), info!) }
        }
        ops.readdir = { request, node, size, offset, info in
            readDirectory(request!, node, size, offset, info!, plus: false)
        }
        ops.readdirplus = { request, node, size, offset, info in
            readDirectory(request!, node, size, offset, info!, plus: true)
        }
        ops.releasedir = { request, node, info in
            Dispatcher.of(request!).releaseDirectory(node: node, handle: info!.pointee.fh)
            Reply(request!).success()
        }
        ops.statfs = { request, node in
            respond(request) { fs throws(Errno) in .statistics(try fs.statistics(node: node)) }
        }
        ops.getxattr = { request, node, name, size in
            let name = String(cString: name!)
            respond(request) { fs throws(Errno) in .sized(try fs.extendedAttribute(node: node, name: name), capacity: size) }
        }
        ops.listxattr = { request, node, size in
            respond(request) { fs throws(Errno) in
                let names = try fs.extendedAttributeNames(node: node)
                return .sized(names.flatMap { Array($0.utf8) + [0] }, capacity: size)
            }
        }
        ops.create = { request, parent, name, mode, info in
            let name = String(cString: name!)
            let flags = info!.pointee.flags
            respond(request) { fs throws(Errno) in
                let (entry, handle) = try fs.create(context(request!), parent: parent, name: name, mode: mode, flags: flags)
                return .created(entry, handle, info!)
            }
        }
        ops.mkdir = { request, parent, name, mode in
            let name = String(cString: name!)
            answerEntry(request) { fs throws(Errno) in try fs.makeDirectory(context(request!), parent: parent, name: name, mode: mode) }
        }
        ops.mknod = { request, parent, name, mode, device in
            let name = String(cString: name!)
            answerEntry(request) { fs throws(Errno) in
                try fs.makeNode(context(request!), parent: parent, name: name, mode: mode, device: device)
            }
        }
        ops.symlink = { request, target, parent, name in
            let target = Array(String(cString: target!).utf8), name = String(cString: name!)
            answerEntry(request) { fs throws(Errno) in try fs.makeSymlink(context(request!), parent: parent, name: name, target: target) }
        }
        ops.link = { request, node, newParent, newName in
            let newName = String(cString: newName!)
            answerEntry(request) { fs throws(Errno) in try fs.link(context(request!), node: node, newParent: newParent, newName: newName) }
        }
        ops.unlink = { request, parent, name in
            let name = String(cString: name!)
            respond(request) { fs throws(Errno) in try fs.unlink(parent: parent, name: name); return .success }
        }
        ops.rmdir = { request, parent, name in
            let name = String(cString: name!)
            respond(request) { fs throws(Errno) in try fs.removeDirectory(parent: parent, name: name); return .success }
        }
        ops.rename = { request, parent, name, newParent, newName, flags in
            let name = String(cString: name!), newName = String(cString: newName!)
            respond(request) { fs throws(Errno) in
                try fs.rename(parent: parent, name: name, newParent: newParent, newName: newName, flags: flags)
                return .success
            }
        }
        ops.setattr = { request, node, attributes, fields, info in
            let changes = AttributeChanges(attributes!.pointee, fields)
            let handle = info.map { $0.pointee.fh }
            respond(request) { fs throws(Errno) in .attributes(try fs.setAttributes(node: node, changes, handle: handle)) }
        }
        ops.write_buf = { request, node, buffers, offset, info in
            let handle = info!.pointee.fh
            respond(request) { fs throws(Errno) in
                .count(try fs.write(node: node, handle: handle, data: WriteData(buffers!), offset: Int64(offset)))
            }
        }
        ops.fsync = { request, node, dataOnly, info in
            let handle = info!.pointee.fh
            respond(request) { fs throws(Errno) in
                try fs.synchronize(node: node, handle: handle, dataOnly: dataOnly != 0)
                return .success
            }
        }
        ops.fsyncdir = { request, node, dataOnly, _ in
            respond(request) { fs throws(Errno) in
                try fs.synchronizeDirectory(node: node, dataOnly: dataOnly != 0)
                return .success
            }
        }
        ops.setxattr = { request, node, name, value, size, flags in
            let name = String(cString: name!)
            let bytes = Array(UnsafeRawBufferPointer(start: value, count: size))
            respond(request) { fs throws(Errno) in
                try fs.setExtendedAttribute(node: node, name: name, value: bytes, flags: flags)
                return .success
            }
        }
        ops.removexattr = { request, node, name in
            let name = String(cString: name!)
            respond(request) { fs throws(Errno) in try fs.removeExtendedAttribute(node: node, name: name); return .success }
        }
        ops.fallocate = { request, node, mode, offset, length, info in
            let handle = info!.pointee.fh
            respond(request) { fs throws(Errno) in
                try fs.allocate(node: node, handle: handle, mode: mode, offset: Int64(offset), length: Int64(length))
                return .success
            }
        }
        ops.lseek = { request, node, offset, whence, info in
            let handle = info!.pointee.fh
            respond(request) { fs throws(Errno) in
                .offset(try fs.seek(node: node, handle: handle, offset: Int64(offset), whence: whence))
            }
        }
        ops.copy_file_range = { request, inNode, inOffset, inInfo, outNode, outOffset, outInfo, length, flags in
            let source = (inNode, inInfo!.pointee.fh, Int64(inOffset)), target = (outNode, outInfo!.pointee.fh, Int64(outOffset))
            respond(request) { fs throws(Errno) in
                .count(try fs.copyRange(from: source, to: target, length: length, flags: flags))
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
    case count(Int)
    case offset(Int64)
    case success
}

private func respond(_ request: fuse_req_t?, _ body: (any FileSystem) throws(Errno) -> Answer) {
    let request = request!
    let reply = Reply(request)
    let answer: Answer
    do throws(Errno) {
        answer = try body(Dispatcher.of(request))
    } catch {
        return reply.error(error)
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
    case .success: reply.success()
    }
}

private func answerEntry(_ request: fuse_req_t?, _ body: (any FileSystem) throws(Errno) -> Entry) {
    let request = request!
    let reply = Reply(request)
    let entry: Entry
    do throws(Errno) {
        entry = try body(Dispatcher.of(request))
    } catch {
        return reply.error(error)
    }
    reply.entry(entry)
}

private func readDirectory(_ request: fuse_req_t, _ node: fuse_ino_t, _ size: Int, _ offset: off_t,
                           _ info: UnsafeMutablePointer<fuse_file_info>, plus: Bool) {
    let reply = Reply(request)
    var buffer = DirectoryBuffer(request: request, capacity: size, plus: plus)
    do throws(Errno) {
        try Dispatcher.of(request).readDirectory(node: node, handle: info.pointee.fh, offset: Int64(offset), into: &buffer)
    } catch {
        return reply.error(error)
    }
    reply.buffer(buffer.bytes)
}
