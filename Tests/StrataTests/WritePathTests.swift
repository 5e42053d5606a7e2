import Foundation
import XCTest

/// Changes made through Strata compared with the same changes made through kernel overlayfs, and the upper
/// layers each leaves behind read by the other.
final class WritePathTests: XCTestCase {
    var scratch: Scratch!

    override func setUp() { scratch = Scratch() }
    override func tearDown() { scratch.remove() }

    func mounted(_ kind: String, _ stack: String, workdir: String, _ body: (String) -> Void) {
        let mountpoint = scratch.sub("\(kind)-\(UUID().uuidString)")
        Shell.bash("mkdir -p \(mountpoint) \(workdir)")
        let options = "lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(stack)/upper,workdir=\(workdir)"
        // The kernel renames directories as Strata does only with redirect_dir=on (otherwise mv copies them),
        // and keeps hard links through copy-up only with index=on.
        let outcome = kind == "kernel" ? Mounts.kernelOverlay(options + ",redirect_dir=on,index=on", at: mountpoint)
            : Mounts.strata(options, at: mountpoint)
        XCTAssertEqual(outcome.status, 0, outcome.error)
        defer { Mounts.unmount(mountpoint) }
        body(mountpoint)
    }

    func view(_ root: String) -> [String: [String: Any]] {
        snapshot(root, inodes: false, stableTimes: true)
    }

    func testChangesMatchTheKernelAndEachReadsTheOthersUpperLayer() {
        let kernelStack = scratch.makeStack("kernel-stack")
        let strataStack = scratch.makeStack("strata-stack")
        let change = Paths.fixtures + "/change-stack.sh"
        var kernelView: [String: [String: Any]] = [:], strataView: [String: [String: Any]] = [:]
        mounted("kernel", kernelStack, workdir: kernelStack + "/kernel-work") { mnt in
            Shell.bash("'\(change)' \(mnt)")
            kernelView = view(mnt)
        }
        mounted("strata", strataStack, workdir: strataStack + "/work") { mnt in
            Shell.bash("'\(change)' \(mnt)")
            strataView = view(mnt)
        }
        assertSameView(kernelView, strataView, "after the same changes, Strata vs kernel")
        XCTAssertEqual(strataView["opq3/file"]?["size"] as? Int, 6)
        XCTAssertNil(strataView["opq3/old3"]); XCTAssertNil(strataView["opq3/new3"])

        mounted("kernel", strataStack, workdir: strataStack + "/kernel-work") { mnt in
            assertSameView(strataView, view(mnt), "kernel overlayfs reading Strata's upper layer")
        }
        mounted("strata", kernelStack, workdir: kernelStack + "/work") { mnt in
            assertSameView(kernelView, view(mnt), "Strata reading the kernel's upper layer")
        }
        // Nothing staged is left behind, and no marker files: the kernel writes device whiteouts, so does Strata.
        XCTAssertEqual(Shell.bash("ls -A \(strataStack)/work/work"), "")
        XCTAssertEqual(Shell.bash("find \(strataStack)/upper -name '.wh.*'"), "")
    }

    func testForcedFileWhiteoutsReadTheSame() {
        let stack = scratch.makeStack("stack", format: "files")
        let reference = scratch.makeStack("reference")
        var expected: [String: [String: Any]] = [:]
        mounted("kernel", reference, workdir: reference + "/kernel-work") { mnt in
            Shell.bash("rm \(mnt)/etc/passwd && rm -rf \(mnt)/merged && mkdir \(mnt)/merged && echo x > \(mnt)/merged/x")
            expected = view(mnt)
        }
        let mnt = scratch.sub("forced")
        Shell.bash("mkdir -p \(mnt)")
        let layers = "lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(stack)/upper,workdir=\(stack)/work,whiteout=file"
        XCTAssertEqual(Mounts.strata(layers, at: mnt).status, 0)
        Shell.bash("rm \(mnt)/etc/passwd && rm -rf \(mnt)/merged && mkdir \(mnt)/merged && echo x > \(mnt)/merged/x")
        assertSameView(expected, view(mnt), "file whiteouts vs kernel")
        Mounts.unmount(mnt)
        // bin/.wh.sh came with the fixture; merged, made again after its deletion, is an opaque directory now.
        XCTAssertEqual(Shell.bash("cd \(stack)/upper && find . -name '.wh.*' | sort"), "./bin/.wh.sh\n./etc/.wh.passwd\n")
        XCTAssertEqual(Shell.bash("getfattr --only-values -n trusted.overlay.opaque \(stack)/upper/merged"), "y")
        XCTAssertEqual(Shell.bash("find \(stack)/upper -type c"), "")
    }

    func testCopyUpKeepsContentModeOwnerTimesXattrsAndInode() {
        let stack = scratch.makeStack("stack")
        Shell.bash("setfattr -n user.origin -v kept \(stack)/l3/perms/owned")
        Shell.bash("setfacl -m u:4321:rw,g:4321:r \(stack)/l3/perms/owned; setfacl -d -m u:4321:rwx \(stack)/l3/perms/sticky")
        let acls = Shell.bash("cd \(stack)/l3/perms && getfacl -n owned sticky")
        let mnt = scratch.sub("mnt")
        Shell.bash("mkdir -p \(mnt)")
        let options = "lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(stack)/upper,workdir=\(stack)/work"
        XCTAssertEqual(Mounts.strata(options, at: mnt).status, 0)
        let before = Shell.bash("stat -c '%i %a %u %g %Y' \(mnt)/perms/owned \(mnt)/data/sparse")
        Shell.bash("setfattr -n user.touched -v 1 \(mnt)/perms/owned; printf y | dd of=\(mnt)/data/sparse bs=1 seek=9000000 conv=notrunc status=none")
        let after = Shell.bash("stat -c '%i %a %u %g %Y' \(mnt)/perms/owned \(mnt)/data/sparse")
        XCTAssertEqual(before.split(separator: "\n")[0], after.split(separator: "\n")[0])
        XCTAssertEqual(before.split(separator: "\n")[1].split(separator: " ")[0], after.split(separator: "\n")[1].split(separator: " ")[0])
        XCTAssertTrue(Shell.bash("getfattr -d \(mnt)/perms/owned").contains("user.origin=\"kept\""))
        // ACLs (access and default) come along with a copy-up.
        Shell.bash("touch \(mnt)/perms/sticky/new")
        XCTAssertEqual(Shell.bash("cd \(stack)/upper/perms && getfacl -n owned sticky"), acls)
        XCTAssertTrue(acls.contains("user:4321:rw-") && acls.contains("default:user:4321:rwx"), acls)
        Mounts.unmount(mnt)
        // Holes stay holes in the upper copy, and the inode numbers survive a remount.
        let blocks = Int(Shell.bash("stat -c %b \(stack)/upper/data/sparse").trimmingCharacters(in: .whitespacesAndNewlines))!
        XCTAssertLessThan(blocks, 1000)
        XCTAssertEqual(Mounts.strata(options, at: mnt).status, 0)
        defer { Mounts.unmount(mnt) }
        XCTAssertEqual(after, Shell.bash("stat -c '%i %a %u %g %Y' \(mnt)/perms/owned \(mnt)/data/sparse"))
    }
}

extension WritePathTests {
    /// Locks, copy_file_range, SEEK_DATA/SEEK_HOLE and fsync of files and directories answer as on the kernel.
    func testFileInterfacesMatchTheKernel() {
        var outputs: [String] = []
        for kind in ["kernel", "strata"] {
            let stack = scratch.makeStack("\(kind)-stack")
            mounted(kind, stack, workdir: stack + "/\(kind)-work") { mnt in
                outputs.append(Shell.bash("python3 '\(Paths.fixtures)/file-interfaces.py' \(mnt)"))
            }
        }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertTrue(outputs[1].contains("flock held elsewhere EAGAIN\nflock after unlock None\n"), outputs[1])
        XCTAssertTrue(outputs[1].contains("child lock at 0 EAGAIN\nchild lock at 4 granted\n"), outputs[1])
        XCTAssertTrue(outputs[1].contains("fsync perms None\n"), outputs[1])
    }

    /// A directory removed (or renamed over) while a shell is in it lists empty and stats with its links (none
    /// for a directory of the upper layer alone), as on the kernel's overlay, instead of "No such file or
    /// directory".
    func testRemovedWorkingDirectoryMatchesTheKernel() {
        var outputs: [String] = []
        for kind in ["kernel", "strata"] {
            let stack = scratch.makeStack("\(kind)-stack")
            Shell.bash("mkdir \(stack)/l1/empty-lower")
            mounted(kind, stack, workdir: stack + "/\(kind)-work") { mnt in
                outputs.append(Shell.bash("""
                    cd \(mnt) && mkdir gone && cd gone && rmdir \(mnt)/gone
                    ls -la . 2>&1 && echo "ls 0" || echo "ls $?"
                    stat -c '%h %F %a' . 2>&1 || true
                    touch new 2>&1 | sed 's/.*: //' || true
                    getfattr -d . 2>&1 && echo "getfattr 0" || echo "getfattr $?"
                    cd \(mnt)/empty-lower && rmdir \(mnt)/empty-lower
                    ls -la . 2>&1 && echo "ls 0" || echo "ls $?"
                    stat -c '%h %F %a' . 2>&1 || true
                    mkdir \(mnt)/moving \(mnt)/replaced && cd \(mnt)/replaced && mv -T \(mnt)/moving \(mnt)/replaced
                    ls -la . 2>&1 && echo "ls 0" || echo "ls $?"
                    stat -c '%h %F %a' . 2>&1 || true
                    """))
            }
        }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertTrue(outputs[1].hasPrefix("total 0\nls 0\n0 directory 755\nNo such file or directory\n"), outputs[1])
    }

    /// Renaming a lower directory of 5000 files writes one directory, one redirect and one whiteout, never EXDEV,
    /// and the kernel reads the result the same way.
    func testDirectoryRenameIsARedirectTheKernelFollows() {
        let stack = scratch.makeStack("stack")
        Shell.bash("mkdir -p \(stack)/l3/huge/sub && for i in $(seq 1 5000); do : > \(stack)/l3/huge/sub/f$i; done")
        let mnt = scratch.sub("mnt")
        Shell.bash("mkdir -p \(mnt)")
        let options = "lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(stack)/upper,workdir=\(stack)/work"
        XCTAssertEqual(Mounts.strata(options, at: mnt).status, 0)
        let rename = Shell.run(["python3", "-c", "import os,sys; os.rename(sys.argv[1], sys.argv[2]); os.rename(sys.argv[2] + '/sub', sys.argv[1] + '-sub')",
                                mnt + "/huge", mnt + "/huge2"])
        XCTAssertEqual(rename.status, 0, rename.error)
        var strataView: [String: [String: Any]] = [:]
        strataView = view(mnt)
        Mounts.unmount(mnt)
        XCTAssertEqual(strataView.keys.filter { $0.hasPrefix("huge-sub/") }.count, 5000)
        XCTAssertNil(strataView["huge"])
        XCTAssertEqual(Shell.bash("find \(stack)/upper/huge2 \(stack)/upper/huge-sub -type d | sort"),
                       "\(stack)/upper/huge-sub\n\(stack)/upper/huge2\n")
        XCTAssertEqual(Shell.bash("getfattr --only-values -n trusted.overlay.redirect \(stack)/upper/huge2"), "huge")
        XCTAssertEqual(Shell.bash("getfattr --only-values -n trusted.overlay.redirect \(stack)/upper/huge-sub"), "/huge/sub")
        XCTAssertEqual(Shell.bash("stat -c %F \(stack)/upper/huge"), "character special file\n")
        mounted("kernel", stack, workdir: stack + "/kernel-work") { kernel in
            assertSameView(strataView, view(kernel), "kernel overlayfs following Strata's redirects")
        }
    }
}

extension WritePathTests {
    /// Writing one name of a lower hard-linked file changes every name, keeps one inode number, and stays so
    /// after a remount and under the kernel (fuse-overlayfs shows the old content under both after a remount).
    func testHardLinksSurviveCopyUp() {
        let stack = scratch.makeStack("stack")
        let mnt = scratch.sub("mnt")
        Shell.bash("mkdir -p \(mnt)")
        let options = "lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(stack)/upper,workdir=\(stack)/work"
        let show = "cd \(mnt) && stat -c '%n %i %h' data/hard1 data/hard2 && cat data/hard1 data/hard2"
        XCTAssertEqual(Mounts.strata(options, at: mnt).status, 0)
        let before = Shell.bash(show)
        Shell.bash("echo changed >> \(mnt)/data/hard1")
        let after = Shell.bash(show)
        let inode = before.split(separator: "\n")[0].split(separator: " ")[1]
        XCTAssertEqual(after, "data/hard1 \(inode) 2\ndata/hard2 \(inode) 2\nshared\nchanged\nshared\nchanged\n")
        Shell.bash("echo again > \(mnt)/pair/two")
        XCTAssertEqual(Shell.bash("cat \(mnt)/pair/one"), "again\n")
        Mounts.unmount(mnt)

        XCTAssertEqual(Mounts.strata(options, at: mnt).status, 0)
        XCTAssertEqual(Shell.bash(show), after, "after a remount")
        Shell.bash("rm \(mnt)/data/hard2")
        XCTAssertEqual(Shell.bash("cat \(mnt)/data/hard1; stat -c %h \(mnt)/data/hard1"), "shared\nchanged\n1\n")
        Mounts.unmount(mnt)
        mounted("kernel", stack, workdir: stack + "/kernel-work") { kernel in
            XCTAssertEqual(Shell.bash("cat \(kernel)/data/hard1 \(kernel)/pair/one \(kernel)/pair/two"), "shared\nchanged\nagain\nagain\n")
            XCTAssertFalse(FileManager.default.fileExists(atPath: kernel + "/data/hard2"))
        }
    }
}

extension WritePathTests {
    /// Seeded random sequences of changes: every step succeeds or fails alike, and the trees end up alike.
    func testSeededRandomChangesMatchTheKernel() {
        for seed in 1...3 {
            let script = scratch.sub("ops-\(seed).sh")
            Shell.bash("python3 '\(Paths.fixtures)/random-ops.py' \(seed) 150 > \(script)")
            var views: [[String: [String: Any]]] = []
            var logs: [String] = []
            for kind in ["kernel", "strata"] {
                let stack = scratch.makeStack("\(kind)-\(seed)")
                let log = scratch.sub("\(kind)-\(seed).log")
                mounted(kind, stack, workdir: stack + "/\(kind)-work") { mnt in
                    Shell.bash("cd \(mnt) && STATUS_LOG=\(log) bash \(script)", timeout: 300)
                    views.append(view(mnt))
                }
                logs.append(Shell.bash("cat \(log)"))
            }
            let steps = logs.map { $0.split(separator: "\n") }
            let differing = zip(steps[0], steps[1]).filter { $0 != $1 }.map { "kernel: \($0) / strata: \($1)" }
            XCTAssertEqual(differing, [], "seed \(seed): step results differ")
            XCTAssertEqual(steps[0].count, steps[1].count)
            assertSameView(views[0], views[1], "seed \(seed): Strata vs kernel")
        }
    }
}

extension WritePathTests {
    /// Two stress-ng stressors that failed through the mount: 255-byte names (no `.wh.` twin of such a name can
    /// exist, so none is looked for), and SEEK_DATA/SEEK_HOLE on data still in the kernel's writeback cache.
    func testStressNgFilenameAndSeekStressorsPass() {
        let stack = scratch.makeStack("stack")
        mounted("strata", stack, workdir: stack + "/work") { mnt in
            Shell.bash("mkdir -p \(mnt)/merged/stress")
            for stressor in ["filename", "seek"] {
                let outcome = Shell.run(["stress-ng", "--\(stressor)", "2", "--timeout", "5s", "--temp-path", "\(mnt)/merged/stress"],
                                        timeout: 120)
                XCTAssertEqual(outcome.status, 0, "\(stressor): \(outcome.output)\(outcome.error)")
                XCTAssertTrue((outcome.output + outcome.error).contains("successful run completed"), outcome.output + outcome.error)
            }
        }
    }
}
