import Overlay

/// The `-o` option list as fuse-overlayfs reads it, sorted into overlay settings and libfuse mount options.
public struct MountOptions: Equatable, Sendable {
    /// Top layer first, as written (not yet resolved).
    public var lowers: [String] = []
    public var upper: String?
    public var work: String?
    /// Options handed to libfuse unchanged (allow_other, fsname=…, ro, …).
    public var fuseOptions: [String] = []
    /// Seconds the kernel may cache entries and attributes.
    public var timeout: Double = 1_000_000_000
    /// Serve on several threads (the default); `threaded=0` serves on one.
    public var threaded = true
    /// `io_uring=0` serves through the device alone, even where the kernel offers FUSE over io_uring.
    public var rings = true
    /// Forced whiteout form (`whiteout=chardev|file`); nil writes what the kernel writes.
    public var whiteout: Whiteout.Format?
    /// `volatile` or `fsync=0`: no syncs, neither the callers' nor copy-up's.
    public var skipSync = false
    /// `writeback=0` turns the kernel's writeback cache off.
    public var writeback = true
    /// `metacopy=on`: chmod, chown, utimensat and xattr changes copy up metadata only.
    public var metacopy = false
    /// uidmapping, gidmapping, squash_to_*, xattr_permissions and static_nlink.
    public var mapping = AttributeMapping()
    /// `watch`: changes made in the layers by others show in the mount at once (see `LayerWatch`).
    public var watch = false
    /// `watch=inotify`: watch with inotify even where fanotify is permitted (as a rootless daemon does).
    public var watchInotify = false
    /// `noacl`: the kernel checks permissions by mode bits alone, ignoring POSIX ACLs.
    public var acl = true
    /// One line per option that was not understood and is ignored.
    public var warnings: [String] = []

    /// Options that libfuse itself applies to the mount.
    static let fuseFlags: Set<String> = [
        "allow_other", "allow_root", "default_permissions", "auto_unmount", "blkdev", "ro", "rw",
        "suid", "nosuid", "dev", "nodev", "exec", "noexec", "async", "sync", "dirsync",
        "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime",
    ]
    static let fuseValues: Set<String> = ["fsname", "subtype", "max_read", "context", "fscontext", "defcontext", "rootcontext"]

    public init() {}

    /// Parses every `-o` argument; later occurrences of an option override earlier ones, as with mount(8).
    public init(parsing arguments: [String]) throws(ConfigurationError) {
        for argument in arguments {
            for option in Self.split(argument) where !option.isEmpty {
                try apply(option)
            }
        }
    }

    private mutating func apply(_ option: String) throws(ConfigurationError) {
        let key: String
        let value: String?
        if let equals = option.firstIndex(of: "=") {
            key = String(option[..<equals])
            value = String(option[option.index(after: equals)...])
        } else {
            key = option
            value = nil
        }
        switch (key, value) {
        case let ("lowerdir", value?):
            lowers = Self.splitLayers(value)
        case let ("upperdir", value?):
            upper = value
        case let ("workdir", value?):
            work = value
        case let ("timeout", value?):
            guard let seconds = Double(value), seconds >= 0 else { throw .invalid(option: option, reason: "not a number of seconds") }
            timeout = seconds
        case let ("whiteout", value?):
            guard let format = Whiteout.Format(rawValue: value) else {
                throw .invalid(option: option, reason: "expected chardev or file")
            }
            whiteout = format
        case ("volatile", nil):
            skipSync = true
        case let ("fsync", value?):
            guard value == "0" || value == "1" else { throw .invalid(option: option, reason: "expected 0 or 1") }
            skipSync = value == "0"
        case let ("metacopy", value?):
            guard value == "on" || value == "off" else { throw .invalid(option: option, reason: "expected on or off") }
            metacopy = value == "on"
        case let ("writeback", value?):
            guard value == "0" || value == "1" else { throw .invalid(option: option, reason: "expected 0 or 1") }
            writeback = value == "1"
        case let ("uidmapping", value?), let ("gidmapping", value?):
            guard let map = IDMap(value) else {
                throw .invalid(option: option, reason: "expected container:host:count triples, as 0:1000:1:1:100000:65536")
            }
            if key == "uidmapping" { mapping.uids = map } else { mapping.gids = map }
        case ("squash_to_root", nil):
            mapping.squashUID = mapping.squashUID ?? 0
            mapping.squashGID = mapping.squashGID ?? 0
        case let ("squash_to_uid", value?), let ("squash_to_gid", value?):
            guard let id = UInt32(value) else { throw .invalid(option: option, reason: "expected a numeric id") }
            if key == "squash_to_uid" { mapping.squashUID = id } else { mapping.squashGID = id }
        case let ("xattr_permissions", value?):
            switch value {
            case "0": mapping.permissionsXattr = nil
            case "1": mapping.permissionsXattr = Array("security.containers.override_stat".utf8)
            case "2": mapping.permissionsXattr = Array("user.containers.override_stat".utf8)
            default: throw .invalid(option: option, reason: "expected 0, 1 or 2")
            }
        case ("static_nlink", nil):
            mapping.staticDirectoryLinks = true
        case ("watch", nil):
            watch = true
        case let ("watch", value?):
            guard value == "fanotify" || value == "inotify" else { throw .invalid(option: option, reason: "expected fanotify or inotify") }
            watch = true
            watchInotify = value == "inotify"
        case ("nowatch", nil):
            watch = false
        case ("noacl", nil):
            acl = false
        case ("acl", nil):
            acl = true
        case let ("threaded", value?):
            guard value == "0" || value == "1" else { throw .invalid(option: option, reason: "expected 0 or 1") }
            threaded = value == "1"
        case let ("io_uring", value?):
            guard value == "0" || value == "1" else { throw .invalid(option: option, reason: "expected 0 or 1") }
            rings = value == "1"
        case (_, nil) where Self.fuseFlags.contains(key), (_, .some) where Self.fuseValues.contains(key):
            fuseOptions.removeAll { $0 == key || $0.hasPrefix(key + "=") }
            fuseOptions.append(option)
        default:
            warnings.append("unknown option ignored: \(option)")
        }
    }

    /// Splits at commas outside double quotes (an SELinux `context="a,b"` holds commas).
    static func split(_ list: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var quoted = false
        for character in list {
            if character == "\"" { quoted.toggle() }
            if character == ",", !quoted {
                parts.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        parts.append(current)
        return parts
    }

    /// Splits a lowerdir value at colons; `\:` stands for a colon inside a path.
    static func splitLayers(_ value: String) -> [String] {
        var layers: [String] = []
        var current = ""
        var escaped = false
        for character in value {
            if escaped {
                if character != ":" { current.append("\\") }
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == ":" {
                layers.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        if escaped { current.append("\\") }
        layers.append(current)
        return layers.filter { !$0.isEmpty }
    }
}

public enum ConfigurationError: Error, Equatable, CustomStringConvertible {
    case invalid(option: String, reason: String)
    case path(String, option: String, reason: String)

    public var description: String {
        switch self {
        case let .invalid(option, reason): "option \(option): \(reason)"
        case let .path(path, option, reason): "\(option) \(path): \(reason)"
        }
    }
}
