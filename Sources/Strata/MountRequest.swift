import Glibc

/// A mount as `strata` was asked for one (fuse-overlayfs's command line, already parsed), and the exit status it
/// ends with. `strata` hands it to `strata-mountd`, the executable beside it, which serves it: the daemon then
/// maps only what serving needs, not the command-line tools' libraries (Foundation and ICU alone were ~4 MB of
/// every mount's memory).
public struct MountRequest: Equatable, Sendable {
    public var optionLists: [String]
    public var mountpoint: String
    public var foreground: Bool
    public var debug: Bool

    public init(optionLists: [String], mountpoint: String, foreground: Bool, debug: Bool) {
        self.optionLists = optionLists
        self.mountpoint = mountpoint
        self.foreground = foreground
        self.debug = debug
    }

    /// The name of the daemon's executable, looked for beside `strata`'s own.
    public static let daemonName = "strata-mountd"

    /// The command line `strata-mountd` gets: `strata`'s own name first (so that `ps` and `pgrep -f` show the
    /// mount as it was asked for), then `-o LIST`s, `-f`, `-d` and the mountpoint, always in that order.
    public func daemonArguments(name: String) -> [String] {
        [name] + optionLists.flatMap { ["-o", $0] } + (foreground ? ["-f"] : []) + (debug ? ["-d"] : []) + [mountpoint]
    }

    /// Takes back what `daemonArguments` wrote; nil for anything else (the daemon is not for starting by hand).
    public init?(daemonArguments arguments: [String]) {
        guard arguments.count >= 2, let mountpoint = arguments.last else { return nil }
        var rest = arguments.dropFirst().dropLast()[...]
        var lists: [String] = []
        while rest.first == "-o", rest.count >= 2 {
            lists.append(rest[rest.index(after: rest.startIndex)])
            rest = rest.dropFirst(2)
        }
        let foreground = rest.first == "-f"
        if foreground { rest = rest.dropFirst() }
        let debug = rest.first == "-d"
        if debug { rest = rest.dropFirst() }
        guard rest.isEmpty else { return nil }
        self.init(optionLists: lists, mountpoint: mountpoint, foreground: foreground, debug: debug)
    }

    /// Replaces this process with `strata-mountd` beside `executable`; returns only when there is none there (a
    /// `strata` copied alone), and the caller then serves the mount itself.
    public func handOver(beside executable: String, name: String) {
        guard let slash = executable.lastIndex(of: "/") else { return }
        let daemon = String(executable[...slash]) + Self.daemonName
        guard access(daemon, X_OK) == 0 else { return }
        let arguments = daemonArguments(name: name)
        var pointers = arguments.map { strdup($0) } + [nil]
        execv(daemon, &pointers)
        DaemonLog.complain("\(daemon): cannot run it: \(String(cString: strerror(errno)))")
        exit(1)
    }

    /// Serves the mount in this process until it is unmounted: the exit status (2: options or directories
    /// refused, before anything is touched; 1: the mount failed).
    public func serve() -> Int32 {
        let plan: MountPlan
        do {
            let parsed = try MountOptions(parsing: optionLists)
            for warning in parsed.warnings { DaemonLog.complain(warning) }
            plan = try MountPlan(parsed, mountpoint: mountpoint)
        } catch {
            DaemonLog.complain(error.description)
            return 2
        }
        do {
            try Mounter.serve(plan, foreground: foreground, debug: debug)
            return 0
        } catch {
            DaemonLog.complain(error.description)
            return 1
        }
    }

    /// `strata`'s own executable, as the kernel knows it (`argv[0]` may be a bare name found on PATH).
    public static var ownExecutable: String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
