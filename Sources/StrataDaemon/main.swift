import Glibc
import Strata

// `strata-mountd`: serves one mount that `strata` handed over (see `MountRequest`).
DaemonLog.install()
guard let request = MountRequest(daemonArguments: CommandLine.arguments) else {
    DaemonLog.complain("\(MountRequest.daemonName) is started by strata: strata -o lowerdir=...[,upperdir=...,workdir=...] MOUNTPOINT")
    exit(2)
}
exit(request.serve())
