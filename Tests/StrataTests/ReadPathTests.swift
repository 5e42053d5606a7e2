import Foundation
import XCTest

/// The merged view through Strata, compared with kernel overlayfs mounting the very same layer directories.
final class ReadPathTests: XCTestCase {
    var scratch: Scratch!

    override func setUp() { scratch = Scratch() }
    override func tearDown() { scratch.remove() }

    /// The kernel's own view, minus its readdir inode numbers, which it gets wrong for merged upper
    /// directories on first listing (Strata is checked for those separately).
    private func kernelView(_ options: String, inodes: Bool = true) -> [String: [String: Any]] {
        let mountpoint = scratch.sub("kernel-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        let outcome = Mounts.kernelOverlay(options, at: mountpoint)
        XCTAssertEqual(outcome.status, 0, outcome.error)
        defer { Mounts.unmount(mountpoint) }
        return snapshot(mountpoint, inodes: inodes).mapValues { $0.filter { $0.key != "d_ino_mismatch" } }
    }

    private func strataView(_ options: String, inodes: Bool = true) -> [String: [String: Any]] {
        let mountpoint = scratch.sub("strata-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        let outcome = Mounts.strata(options, at: mountpoint)
        XCTAssertEqual(outcome.status, 0, outcome.error)
        defer { Mounts.unmount(mountpoint) }
        return snapshot(mountpoint, inodes: inodes)
    }

    func testMergedViewMatchesKernelWithUpperLayer() {
        let stack = scratch.makeStack("stack")
        try? FileManager.default.createDirectory(atPath: stack + "/kernel-work", withIntermediateDirectories: true)
        let layers = "lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(stack)/upper"
        let kernel = kernelView(layers + ",workdir=\(stack)/kernel-work")
        let strata = strataView(layers + ",workdir=\(stack)/work")
        assertSameView(kernel, strata, "Strata vs kernel overlayfs")
        XCTAssertEqual(strata.filter { $0.value["d_ino_mismatch"] != nil }.keys.sorted(), [],
                       "readdir d_ino differs from stat st_ino")
        // The stack exercises what it claims to: whiteouts, opaque directories, type changes, hard links.
        XCTAssertNil(strata["removed/file"]); XCTAssertNil(strata["removed/dir"]); XCTAssertNil(strata["bin/sh"])
        XCTAssertNotNil(strata["removed/kept"]); XCTAssertNil(strata["opq1/old1"]); XCTAssertNil(strata["opq2/old2"])
        XCTAssertNil(strata["opq3/old3"]); XCTAssertNotNil(strata["opq3/new3"]); XCTAssertNil(strata["flop/inside"])
        XCTAssertEqual(strata["data/hard1"]?["ino"] as? Int, strata["data/hard2"]?["ino"] as? Int)
        XCTAssertEqual(strata["merged"]?["nlink"] as? Int, 1)
        XCTAssertEqual(strata.keys.filter { $0.hasPrefix("big/") }.count, 300 - 43 + 40)
    }

    func testLowerOnlyMountMatchesKernelAndIsReadOnly() {
        let stack = scratch.makeStack("stack")
        let layers = "lowerdir=\(stack)/upper:\(stack)/l1:\(stack)/l2:\(stack)/l3"
        assertSameView(kernelView(layers), strataView(layers), "read-only Strata vs kernel overlayfs")

        let mountpoint = scratch.sub("ro")
        try? FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        XCTAssertEqual(Mounts.strata(layers, at: mountpoint).status, 0)
        defer { Mounts.unmount(mountpoint) }
        for attempt in ["touch \(mountpoint)/new", "echo x >> \(mountpoint)/etc/hostname", "mkdir \(mountpoint)/d",
                        "rm \(mountpoint)/etc/passwd"] {
            let outcome = Shell.run(["bash", "-c", attempt])
            XCTAssertNotEqual(outcome.status, 0, attempt)
            XCTAssertTrue(outcome.error.contains("Read-only file system"), "\(attempt): \(outcome.error)")
        }
    }

    /// `.wh.NAME` whiteouts, `.wh..wh..opq` markers and user.overlay.opaque (forms fuse-overlayfs and OCI
    /// tools write, which the kernel does not read) give exactly the view the kernel gives of the kernel forms.
    func testFileWhiteoutsAndUserOpaqueGiveTheKernelView() {
        let kernelStack = scratch.makeStack("kernel-stack", format: "kernel")
        let fileStack = scratch.makeStack("file-stack", format: "files")
        try? FileManager.default.createDirectory(atPath: kernelStack + "/kernel-work", withIntermediateDirectories: true)
        let kernel = kernelView("lowerdir=\(kernelStack)/l1:\(kernelStack)/l2:\(kernelStack)/l3,"
                                + "upperdir=\(kernelStack)/upper,workdir=\(kernelStack)/kernel-work", inodes: false)
        let strata = strataView("lowerdir=\(fileStack)/l1:\(fileStack)/l2:\(fileStack)/l3,"
                                + "upperdir=\(fileStack)/upper,workdir=\(fileStack)/work", inodes: false)
        assertSameView(kernel, strata, "file-form whiteouts vs kernel forms")
        XCTAssertFalse(strata.keys.contains { $0.contains(".wh.") })
    }

    func testInodeNumbersSurviveRemount() {
        let stack = scratch.makeStack("stack")
        let options = "lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(stack)/upper,workdir=\(stack)/work"
        assertSameView(strataView(options), strataView(options), "first vs second mount")
    }

    /// With a layer on another filesystem, inode numbers stay unique across layers and stable across mounts.
    func testLayersOnSeveralFilesystemsKeepInodeNumbersUnique() {
        let stack = scratch.makeStack("stack")
        let tmpfs = scratch.sub("tmpfs")
        Shell.bash("mkdir -p \(tmpfs) && mount -t tmpfs tmpfs \(tmpfs) && cp -a \(stack)/l2 \(tmpfs)/l2")
        defer { Mounts.unmount(tmpfs) }
        let options = "lowerdir=\(stack)/l1:\(tmpfs)/l2:\(stack)/l3,upperdir=\(stack)/upper,workdir=\(stack)/work"
        let view = strataView(options)
        var owners: [Int: Set<String>] = [:]
        for (path, record) in view where record["type"] as? Int != 0o040000 {
            owners[record["ino"] as! Int, default: []].insert(path)
        }
        let shared = owners.values.filter { $0.count > 1 }.map { $0.sorted() }
        XCTAssertEqual(shared.sorted { $0[0] < $1[0] }, [["data/hard1", "data/hard2"], ["pair/one", "pair/two"]])
        XCTAssertEqual(view.filter { $0.value["d_ino_mismatch"] != nil }.count, 0)
        assertSameView(view, strataView(options), "remount across filesystems")
    }

    func testExtendedAttributesHideOverlayPrivateNames() {
        let stack = scratch.makeStack("stack")
        Shell.bash("""
            setfattr -n user.comment -v hello \(stack)/l3/etc/passwd
            setfattr -n user.comment -v upper \(stack)/upper/etc/passwd
            setfattr -n trusted.overlay.origin -v x \(stack)/upper/etc/passwd
            setfattr -n user.overlay.redirect -v x \(stack)/upper/etc/passwd
            """)
        let mountpoint = scratch.sub("mnt")
        try? FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        let options = "lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(stack)/upper,workdir=\(stack)/work"
        XCTAssertEqual(Mounts.strata(options, at: mountpoint).status, 0)
        defer { Mounts.unmount(mountpoint) }
        let listing = Shell.bash("getfattr -d -m - --absolute-names \(mountpoint)/etc/passwd")
        XCTAssertTrue(listing.contains("user.comment=\"upper\""), listing)
        XCTAssertFalse(listing.contains("overlay"), listing)
        let opaque = Shell.run(["getfattr", "-n", "trusted.overlay.opaque", mountpoint + "/opq1"])
        XCTAssertNotEqual(opaque.status, 0)
        XCTAssertTrue(opaque.error.contains("No such attribute"), opaque.error)
        XCTAssertTrue(Shell.bash("getfattr -d -m - --absolute-names \(mountpoint)/opq2").isEmpty)
        XCTAssertTrue(Shell.bash("stat -f -c %b \(mountpoint)").trimmingCharacters(in: .whitespacesAndNewlines) != "0")
    }
}
