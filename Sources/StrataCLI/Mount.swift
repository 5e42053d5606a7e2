import ArgumentParser
import Glibc
import Strata

/// Mounting, the default command: fuse-overlayfs's command line.
struct Mount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mount the layers at MOUNTPOINT (the default command).",
        discussion: "Unmount with `fusermount3 -u MOUNTPOINT`, or by sending SIGTERM or SIGINT to the daemon.")

    @Option(name: .customShort("o"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("Mount options, comma-separated, as fuse-overlayfs takes them:", valueName: "options"))
    var options: [MountOptionList] = []

    @Flag(name: .customShort("f"), help: "Stay in the foreground.")
    var foreground = false

    @Flag(name: .customShort("d"), help: "Print every FUSE request (implies -f).")
    var debug = false

    @Flag(name: [.customShort("V"), .customLong("version")], help: "Print the version and exit.")
    var printVersion = false

    @Argument(help: "Where to mount the merged view.")
    var mountpoint: String?

    func run() throws {
        if printVersion {
            print("strata: version \(StrataCommand.version)")
            return
        }
        guard let mountpoint else { throw ValidationError("missing the mountpoint") }
        let request = MountRequest(optionLists: options.map(\.text), mountpoint: mountpoint, foreground: foreground, debug: debug)
        if let executable = MountRequest.ownExecutable {
            request.handOver(beside: executable, name: CommandLine.arguments.first ?? "strata")
        }
        let status = request.serve()
        if status != 0 { throw ExitCode(status) }
    }
}

/// The -o argument: its text is parsed by `MountOptions`; the help lists each option as argument-parser lays out
/// a value list, so that the descriptions wrap in their own column at any terminal width.
struct MountOptionList: ExpressibleByArgument {
    let text: String

    init?(argument: String) { text = argument }

    static let options: [(name: String, meaning: String)] = [
        ("lowerdir=TOP:...:BOTTOM", "Read-only layers, top first; \\: escapes a colon in a path."),
        ("upperdir=DIR", "The writable layer (needs workdir); without it the mount is read-only."),
        ("workdir=DIR", "Scratch directory on the same filesystem as upperdir."),
        ("timeout=SECONDS", "How long the kernel caches names and attributes (default: forever)."),
        ("threaded=0|1", "Serve requests on several threads (default 1)."),
        ("io_uring=0|1", "Serve requests through FUSE over io_uring, on threads pinned to each CPU, where the kernel offers it (Linux 6.14+, /sys/module/fuse/parameters/enable_uring; default 1; threaded=0 serves through the device)."),
        ("whiteout=chardev|file", "Force the whiteout form written (default: as the kernel writes)."),
        ("volatile, fsync=0", "Skip syncs (callers' fsync, and the sync of each copy-up)."),
        ("writeback=0|1", "The kernel's writeback cache (default 1)."),
        ("metacopy=on|off", "chmod, chown, touch and xattr changes copy up metadata only, in the kernel's metacopy format (default off: fuse-overlayfs and tools that read upper layers directly do not understand it)."),
        ("watch, nowatch", "Show changes made to the layers underneath the mount at once (fanotify as root, else inotify); `strata refresh` does it on demand."),
        ("watch=fanotify|inotify", "Watch with this interface."),
        ("uidmapping=C:H:N[:...]", "Stored uid C+n shows as H+n (outside every range: 65534); what users write is stored back as container ids."),
        ("gidmapping=C:H:N[:...]", "The same for group ids."),
        ("squash_to_root", "Every object shows root as its owner (the stored owner is kept)."),
        ("squash_to_uid=ID, squash_to_gid=ID", "Every object shows this owner (the stored owner is kept)."),
        ("xattr_permissions=1|2", "Owner and mode kept in security.|user.containers.override_stat (uid:gid:mode) instead of the real ones, for daemons that cannot chown."),
        ("static_nlink", "Directories show one link."),
        ("noacl", "Permissions by mode bits alone (default: POSIX ACLs enforced)."),
        ("allow_other, ro, ...", "Handed to libfuse (default_permissions, fsname=, subtype=, max_read=, context=, ...); as root allow_other, default_permissions, suid and dev are on."),
    ]

    static var allValueStrings: [String] { options.map(\.name) }
    static var allValueDescriptions: [String: String] { Dictionary(options.map { ($0.name, $0.meaning) }, uniquingKeysWith: { first, _ in first }) }
}
