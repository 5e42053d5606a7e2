import Glibc

/// A validated mount: every directory resolved to an absolute path without symbolic links (podman passes
/// `l/ID` links relative to its working directory), every refusal made before anything is touched.
public struct MountPlan: Sendable {
    public let lowers: [String]
    public let upper: String?
    public let work: String?
    public let mountpoint: String
    public let fuseOptions: [String]
    public let options: MountOptions

    public var isReadOnly: Bool { upper == nil }

    public init(_ options: MountOptions, mountpoint: String, asRoot: Bool = geteuid() == 0) throws(ConfigurationError) {
        guard !options.lowers.isEmpty else { throw .invalid(option: "lowerdir", reason: "no lower layer given") }
        switch (options.upper, options.work) {
        case (_?, nil): throw .invalid(option: "upperdir", reason: "needs a workdir as well")
        case (nil, _?): throw .invalid(option: "workdir", reason: "needs an upperdir as well")
        default: break
        }
        var layers: [(option: String, path: String)] = []
        for lower in options.lowers { layers.append(("lowerdir", try Self.directory(lower, option: "lowerdir"))) }
        let upper = try options.upper.map { path throws(ConfigurationError) in try Self.directory(path, option: "upperdir") }
        let work = try options.work.map { path throws(ConfigurationError) in try Self.directory(path, option: "workdir") }
        if let upper, let work {
            layers.append(("upperdir", upper))
            layers.append(("workdir", work))
            var upperInfo = stat(), workInfo = stat()
            _ = lstat(upper, &upperInfo)
            _ = lstat(work, &workInfo)
            if upperInfo.st_dev != workInfo.st_dev {
                throw .path(work, option: "workdir", reason: "not on the same filesystem as upperdir \(upper)")
            }
        }
        for (index, layer) in layers.enumerated() {
            for other in layers[(index + 1)...] where Self.overlap(layer.path, other.path) {
                throw .path(other.path, option: other.option, reason: "overlaps \(layer.option) \(layer.path)")
            }
        }
        let mountpoint = try Self.directory(mountpoint, option: "mountpoint")
        for layer in layers {
            if Self.contains(layer.path, mountpoint) {
                throw .path(mountpoint, option: "mountpoint", reason: "lies inside \(layer.option) \(layer.path)")
            }
            if Self.contains(mountpoint, layer.path) {
                throw .path(layer.path, option: layer.option, reason: "lies inside the mountpoint \(mountpoint)")
            }
        }

        var fuseOptions = ["fsname=strata", "subtype=strata"]
        // As root, like a kernel overlay mount: device nodes and setuid programs of a root filesystem work.
        if asRoot { fuseOptions += ["allow_other", "default_permissions", "dev", "suid"] }
        if upper == nil { fuseOptions.append("ro") }
        for option in options.fuseOptions {
            let key = option.split(separator: "=", maxSplits: 1)[0]
            fuseOptions.removeAll { $0.split(separator: "=", maxSplits: 1)[0] == key }
            fuseOptions.append(option)
        }
        self.lowers = layers.filter { $0.option == "lowerdir" }.map(\.path)
        self.upper = upper
        self.work = work
        self.mountpoint = mountpoint
        self.fuseOptions = fuseOptions
        self.options = options
    }

    /// The canonical path of an existing directory, or an error naming the path and the reason.
    static func directory(_ path: String, option: String) throws(ConfigurationError) -> String {
        guard let resolved = realpath(path, nil) else {
            throw .path(path, option: option, reason: String(cString: strerror(errno)))
        }
        defer { free(resolved) }
        var info = stat()
        let canonical = String(cString: resolved)
        guard lstat(canonical, &info) == 0 else {
            throw .path(path, option: option, reason: String(cString: strerror(errno)))
        }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw .path(path, option: option, reason: "not a directory") }
        return canonical
    }

    /// Whether `inner` is `outer` or lies below it.
    static func contains(_ outer: String, _ inner: String) -> Bool {
        outer == inner || outer == "/" || inner.hasPrefix(outer + "/")
    }

    static func overlap(_ a: String, _ b: String) -> Bool { contains(a, b) || contains(b, a) }
}
