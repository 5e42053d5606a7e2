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
        strata which|ls|layers|diff|stats|commit|import|unpack ...
        """,
        discussion: """
        Options (-o, comma-separated, as fuse-overlayfs takes them):
          lowerdir=TOP:...:BOTTOM   read-only layers, top first; \\: escapes a colon in a path
          upperdir=DIR              writable layer (needs workdir); without it the mount is read-only
          workdir=DIR               scratch directory on the same filesystem as upperdir
          timeout=SECONDS           how long the kernel caches names and attributes (default: forever)
          threaded=0|1              serve requests on several threads (default 1)
          whiteout=chardev|file     force the whiteout form written (default: as the kernel writes)
          volatile, fsync=0         skip syncs (callers' fsync, and the sync of each copy-up)
          writeback=0|1             the kernel's writeback cache (default 1)
          metacopy=on|off           chmod, chown, touch and xattr changes copy up metadata only, in the
                                    kernel's metacopy format (default off: fuse-overlayfs and tools that
                                    read upper layers directly do not understand it)
          uidmapping=C:H:N[:C:H:N...], gidmapping=...
                                    stored id C+n shows as H+n (outside every range: 65534); what users
                                    write is stored back as container ids
          squash_to_root, squash_to_uid=ID, squash_to_gid=ID
                                    every object shows this owner (the stored owner is kept)
          xattr_permissions=1|2     owner and mode kept in security.|user.containers.override_stat
                                    (uid:gid:mode) instead of the real ones, for daemons that cannot chown
          static_nlink              directories show one link
          noacl                     permissions by mode bits alone (default: POSIX ACLs enforced)
          allow_other, default_permissions, fsname=, subtype=, ro, max_read=, context=, ...
                                    handed to libfuse; as root allow_other, default_permissions, suid
                                    and dev are on
        -f stays in the foreground, -d prints every FUSE request, -V prints the version.
        Unmount with `fusermount3 -u MOUNTPOINT`, or by sending SIGTERM or SIGINT to the daemon.

        Looking into a stack (on a path in a live mount, or on -o lowerdir=...[,upperdir=...] and paths relative
        to the merged root): `strata which PATH...`, `strata ls [-l] [-a] PATH`, `strata layers`,
        `strata diff`; each takes --json, and -h for human-readable sizes where it prints sizes.
        `getfattr -n user.strata.layer PATH` on a mount names the layers serving PATH. `strata stats MOUNTPOINT`
        shows the requests the daemon has answered (calls, errors, time per opcode).

        Images: `strata commit -o lowerdir=...,upperdir=... --tar FILE|--oci DIR:TAG [--from TAG]|--layer-dir DIR`
        writes the upper layer as an OCI layer; `strata import ROOTFS --oci DIR:TAG` starts an image;
        `strata unpack DIR:TAG DEST` unpacks an image into layer directories and prints their lowerdir=.
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
            complain(error.description)
            throw ExitCode(1)
        }
    }

    static func complain(_ message: String) {
        var line = "strata: \(message)\n"
        _ = line.withUTF8 { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
