import ArgumentParser
import Glibc
import Strata

/// Mounting, the default command: fuse-overlayfs's command line.
struct Mount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mount the layers at MOUNTPOINT (the default command; see `strata --help` for the options).")

    @Option(name: .customShort("o"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("Mount options, comma-separated (see below).", valueName: "options"))
    var options: [String] = []

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
        let plan: MountPlan
        do {
            let parsed = try MountOptions(parsing: options)
            for warning in parsed.warnings { StrataCommand.complain(warning) }
            plan = try MountPlan(parsed, mountpoint: mountpoint)
        } catch {
            StrataCommand.complain(error.description)
            throw ExitCode(2)
        }
        do {
            try Mounter.serve(plan, foreground: foreground, debug: debug)
        } catch {
            StrataCommand.complain(error.description)
            throw ExitCode(1)
        }
    }
}
