import ArgumentParser
import Glibc
import Strata

@main
struct StrataCommand: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "strata",
        abstract: "Mount a stack of layer directories as one union filesystem (overlayfs semantics, over FUSE).",
        usage: """
        strata [-f] [-d] -o lowerdir=TOP:...:BOTTOM[,upperdir=DIR,workdir=DIR,...] MOUNTPOINT
        strata which|ls|layers|diff|explore|check|stats|refresh|commit|import|unpack ...
        """,
        discussion: """
        With no command, strata mounts: `strata -o lowerdir=...,upperdir=...,workdir=... MOUNTPOINT`, as \
        fuse-overlayfs takes it; -f stays in the foreground, -d prints every FUSE request. `strata help mount` \
        lists the mount options (lowerdir, upperdir, workdir, ...). Unmount with `fusermount3 -u \
        MOUNTPOINT`, or by sending SIGTERM or SIGINT to the daemon.

        Looking into a stack: on a path in a live mount, on -o lowerdir=...[,upperdir=...] with paths relative \
        to the merged root, or (layers, explore, check) on an OCI image with --image DIR:TAG. \
        `getfattr -n user.strata.layer PATH` on a mount names the layers serving PATH.

        Images: `strata commit` writes the upper layer as an OCI layer, `strata import` starts an image from a \
        directory, `strata unpack` unpacks an image into layer directories and prints their lowerdir=.
        """,
        subcommands: [Mount.self, Which.self, List.self, Layers.self, Diff.self, Explore.self, Check.self, Stats.self, Refresh.self, Commit.self, Import.self, Unpack.self],
        defaultSubcommand: Mount.self)

    /// fuse-overlayfs and libfuse also take the option list glued to the flag (`-olowerdir=...`).
    static func main() {
        DaemonLog.install()
        let arguments = CommandLine.arguments.dropFirst().flatMap { argument in
            argument.hasPrefix("-o") && argument.count > 2 ? ["-o", String(argument.dropFirst(2))] : [argument]
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    /// Runs a command's `body`; prints what it returns, or the failure and exits 1.
    static func printing(_ body: () throws -> String) throws {
        do {
            print(try body(), terminator: "")
        } catch let error as CustomStringConvertible {
            DaemonLog.complain(error.description)
            throw ExitCode(1)
        }
    }
}
