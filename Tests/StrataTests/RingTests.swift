import Foundation
import XCTest

/// FUSE over io_uring: where the kernel offers it, requests come through per-CPU rings; with `io_uring=0`, or
/// where the kernel does not offer it, through the device. Either way a mount shows and keeps the same things,
/// `strata stats` says which way the requests came, and the daemon ends with its mount.
final class RingTests: XCTestCase {
    private static let parameter = "/sys/module/fuse/parameters/enable_uring"
    private var scratch: Scratch!
    private var saved: String?

    override func setUpWithError() throws {
        guard FileManager.default.isWritableFile(atPath: Self.parameter) else {
            throw XCTSkip("this kernel has no FUSE over io_uring (\(Self.parameter))")
        }
        saved = try String(contentsOfFile: Self.parameter, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        scratch = Scratch()
    }

    override func tearDown() {
        scratch?.remove()
        if let saved { offerRings(saved == "Y") }
    }

    private func offerRings(_ on: Bool) {
        Shell.bash("echo \(on ? "Y" : "N") > \(Self.parameter)")
    }

    /// Changes of every kind, large reads and writes (up to the 1 MiB a request carries) among them.
    private let workload = """
        set -euo pipefail
        cd "$1"
        seq 1 500000 > big
        dd if=big of=copy bs=1M iflag=direct oflag=direct status=none
        cmp big copy
        mkdir -p d/e && echo hello > d/e/f && ln -s d/e/f link && ln d/e/f hard
        mv d/e d/g && chmod 640 d/g/f && truncate -s 100 copy
        for i in $(seq 200); do echo $i > d/n$i; done
        rm -f d/n1?? && rmdir d/g 2>/dev/null || true
        cat hard d/g/f d/n5 > /dev/null
        sha256sum big | cut -c1-64 > big.sum
        """

    private func mountAndChange(_ name: String, options: String = "") throws -> (view: [String: [String: Any]], rings: UInt64, total: UInt64) {
        Shell.bash("mkdir -p \(scratch.sub(name))/{lower/a,upper,work,mnt} && echo base > \(scratch.sub(name))/lower/a/base")
        let root = scratch.sub(name)
        let mnt = root + "/mnt"
        let mounted = Mounts.strata("lowerdir=\(root)/lower,upperdir=\(root)/upper,workdir=\(root)/work\(options)", at: mnt)
        XCTAssertEqual(mounted.status, 0, mounted.error)
        defer { Mounts.unmount(mnt) }
        Shell.bash("bash -c '\(workload)' _ \(mnt)")
        XCTAssertEqual(Shell.bash("cd \(mnt) && sha256sum big | cut -c1-64"), Shell.bash("cat \(mnt)/big.sum"))
        let stats = Shell.run([Paths.strata, "stats", "--json", mnt])
        XCTAssertEqual(stats.status, 0, stats.error)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(stats.output.utf8)) as? [String: Any])
        let rings = try XCTUnwrap(report["ringRequests"] as? NSNumber).uint64Value
        let requests = try XCTUnwrap(report["requests"] as? [[String: Any]])
        let total = requests.reduce(UInt64(0)) { $0 + ((($1["calls"] as? NSNumber)?.uint64Value) ?? 0) }
        return (snapshot(mnt, inodes: false, stableTimes: true), rings, total)
    }

    func testRingsAndTheDeviceServeTheSameMount() throws {
        offerRings(true)
        let rings = try mountAndChange("rings")
        let device = try mountAndChange("device", options: ",io_uring=0")
        offerRings(false)
        let unoffered = try mountAndChange("unoffered")
        // FORGETs, and what came before the rings were registered, come through the device.
        XCTAssertGreaterThan(rings.rings, rings.total * 9 / 10, "requests through io_uring, of \(rings.total)")
        XCTAssertEqual(device.rings, 0)
        XCTAssertEqual(unoffered.rings, 0)
        assertSameView(device.view, rings.view, "io_uring against the device")
        assertSameView(device.view, unoffered.view, "a kernel that offers no io_uring")
        let upper = snapshot(scratch.sub("device/upper"), inodes: false, stableTimes: true)
        assertSameView(upper, snapshot(scratch.sub("rings/upper"), inodes: false, stableTimes: true), "upper layer, io_uring")
        assertSameView(upper, snapshot(scratch.sub("unoffered/upper"), inodes: false, stableTimes: true), "upper layer, no io_uring")
    }

    /// The ring threads end with the mount: unmounting, or a signal to the daemon, leaves no process behind.
    func testTheDaemonEndsWithItsMount() throws {
        offerRings(true)
        for stop in ["fusermount3 -u", "kill -TERM"] {
            let root = scratch.sub(stop.hasPrefix("kill") ? "signal" : "unmount")
            Shell.bash("mkdir -p \(root)/{lower,upper,work,mnt} && echo x > \(root)/lower/x")
            let mnt = root + "/mnt"
            XCTAssertEqual(Mounts.strata("lowerdir=\(root)/lower,upperdir=\(root)/upper,workdir=\(root)/work", at: mnt).status, 0)
            defer { if Mounts.isMounted(mnt) { Mounts.unmount(mnt) } }
            Shell.bash("cat \(mnt)/x > /dev/null && echo y > \(mnt)/y")
            let pid = Shell.bash("pgrep -f -n ' \(mnt)$'").trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertFalse(pid.isEmpty)
            Shell.bash(stop.hasPrefix("kill") ? "kill -TERM \(pid)" : "fusermount3 -u \(mnt)")
            XCTAssertTrue(waitUntil(10) { !FileManager.default.fileExists(atPath: "/proc/\(pid)") }, "\(stop): the daemon still runs")
            XCTAssertTrue(waitUntil(5) { !Mounts.isMounted(mnt) }, "\(stop): still mounted")
            XCTAssertEqual(Shell.bash("cat \(root)/upper/y"), "y\n")
        }
    }
}
