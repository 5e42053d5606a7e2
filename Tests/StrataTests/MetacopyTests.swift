import Foundation
import XCTest

/// `metacopy=on`: chmod, chown, utimensat and setxattr copy up a lower file's metadata only, in the kernel's
/// format, and the data follows on the first write; the kernel (metacopy=on) and Strata read each other's upper.
final class MetacopyTests: XCTestCase {
    var scratch: Scratch!

    override func setUp() { scratch = Scratch() }
    override func tearDown() { scratch.remove() }

    private func mounted(_ kind: String, _ stack: String, extra: String = "", _ body: (String) -> Void) {
        let mnt = scratch.sub("\(kind)-\(UUID().uuidString)"), work = scratch.sub("\(kind)-work-\(UUID().uuidString)")
        Shell.bash("mkdir -p \(mnt) \(work)")
        let options = "lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(stack)/upper,workdir=\(work)"
        let outcome = kind == "kernel" ? Mounts.kernelOverlay(options + ",redirect_dir=on,index=on,metacopy=on", at: mnt)
            : Mounts.strata(options + ",metacopy=on" + extra, at: mnt)
        XCTAssertEqual(outcome.status, 0, outcome.error)
        defer { Mounts.unmount(mnt) }
        body(mnt)
    }

    private func view(_ root: String) -> [String: [String: Any]] { snapshot(root, inodes: false, stableTimes: true) }

    /// The metadata changes an image build makes to a lower tree write no file data: each changed file in the
    /// upper layer has the lower one's size, no data blocks of its own, and the kernel's metacopy and origin
    /// attributes; reads show the lower data; `strata which` says so.
    func testMetadataChangesCopyNoData() {
        let stack = scratch.makeStack("stack")
        Shell.bash("mkdir -p \(stack)/l3/tree && for i in $(seq 1 50); do head -c 100000 /dev/urandom > \(stack)/l3/tree/f$i; done")
        let before = Shell.bash("cd \(stack)/l3/tree && md5sum f*")
        mounted("strata", stack) { mnt in
            Shell.bash("chmod -R g+w \(mnt)/tree && chown -R 1234:1234 \(mnt)/tree && touch -h -d @1600000000 \(mnt)/tree/f1 "
                       + "&& setfattr -n user.label -v built \(mnt)/tree/f2")
            XCTAssertEqual(Shell.bash("cd \(mnt)/tree && md5sum f*"), before, "the data is the lower layer's")
            XCTAssertEqual(Shell.bash("stat -c '%a %u %Y' \(mnt)/tree/f1"), "664 1234 1600000000\n")
            XCTAssertEqual(Shell.run([Paths.strata, "which", "\(mnt)/tree/f3"]).output, "/tree/f3\t0\tfile, metadata copied up, shadows layer 3\n")
        }
        // 50 files of 100 kB each, and not one data block: at most a block each for the attributes (touch -h, as
        // touch without it opens the file for writing, which copies the data up, in the kernel too).
        let blocks = Shell.bash("find \(stack)/upper/tree -type f -printf '%b\\n' | sort -n | tail -1").trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertLessThanOrEqual(Int(blocks) ?? 999, 8)
        XCTAssertEqual(Shell.bash("getfattr --only-values -n trusted.overlay.metacopy \(stack)/upper/tree/f7 | wc -c"), "0\n")
        XCTAssertTrue(Shell.bash("getfattr -d -m trusted.overlay.origin -e hex \(stack)/upper/tree/f7").contains("trusted.overlay.origin=0x00fb"))
    }

    /// The kernel mounted with metacopy=on shows the same view of Strata's upper layer, and Strata of the kernel's.
    /// (Hard links stay out: the kernel keeps a copied-up hard link's other names in its index, in the workdir,
    /// which Strata does not read; Strata links every name in the upper layer itself.)
    func testKernelAndStrataReadEachOthersMetadataOnlyCopies() {
        var views: [String: [String: [String: Any]]] = [:]
        let change = "chmod 600 etc/hostname bin/busybox && chown 77:77 data/sparse perms/setuid && touch -h -d @1500000001 merged/a/file"
            + " && setfattr -n user.x -v 1 flop && mv etc/hostname etc/renamed"
        for kind in ["kernel", "strata"] {
            let stack = scratch.makeStack("\(kind)-stack")
            mounted(kind, stack) { mnt in
                Shell.bash("cd \(mnt) && \(change)")
                views[kind] = view(mnt)
            }
            let other = kind == "kernel" ? "strata" : "kernel"
            mounted(other, stack) { mnt in
                assertSameView(views[kind] ?? [:], view(mnt), "\(other) reading the \(kind)'s metadata-only upper layer")
            }
            XCTAssertEqual(Shell.bash("getfattr --absolute-names -n trusted.overlay.metacopy \(stack)/upper/etc/renamed >/dev/null && echo metacopy"),
                           "metacopy\n", kind)
        }
        assertSameView(views["kernel"] ?? [:], views["strata"] ?? [:], "the same changes on both")
    }

    /// The first write copies the data in (once, in place), and the file stops being metadata-only; hard links
    /// keep one inode and their shared content; a renamed metadata-only file still finds its data.
    func testWritesRenamesAndHardLinksOfMetadataOnlyFiles() {
        let stack = scratch.makeStack("stack")
        mounted("strata", stack) { mnt in
            let inode = Shell.bash("stat -c %i \(mnt)/data/hard1")
            Shell.bash("chmod 600 \(mnt)/data/hard1 \(mnt)/etc/hostname && mv \(mnt)/etc/hostname \(mnt)/etc/moved")
            XCTAssertEqual(Shell.bash("stat -c '%i %a' \(mnt)/data/hard1 \(mnt)/data/hard2"), "\(inode.dropLast()) 600\n\(inode.dropLast()) 600\n")
            XCTAssertEqual(Shell.bash("cat \(mnt)/etc/moved \(mnt)/data/hard2"), "middle\nshared\n")
            Shell.bash("echo more >> \(mnt)/data/hard2")
            XCTAssertEqual(Shell.bash("cat \(mnt)/data/hard1"), "shared\nmore\n")
            XCTAssertEqual(Shell.bash("stat -c %i \(mnt)/data/hard1"), inode)
        }
        XCTAssertEqual(Shell.bash("getfattr --absolute-names -d -m trusted.overlay.metacopy \(stack)/upper/data/hard1"), "",
                       "written: no longer metadata-only")
        XCTAssertEqual(Shell.bash("getfattr --only-values --absolute-names -n trusted.overlay.redirect \(stack)/upper/etc/moved"), "/etc/hostname")
        mounted("strata", stack) { mnt in
            XCTAssertEqual(Shell.bash("cat \(mnt)/etc/moved \(mnt)/data/hard1 \(mnt)/data/hard2"), "middle\nshared\nmore\nshared\nmore\n")
        }
        mounted("kernel", stack) { mnt in
            XCTAssertEqual(Shell.bash("cat \(mnt)/etc/moved \(mnt)/data/hard1"), "middle\nshared\nmore\n")
        }
    }

    /// `strata commit` exports a metadata-only file with its whole content.
    func testCommitExportsTheData() {
        let stack = scratch.makeStack("stack")
        mounted("strata", stack) { mnt in Shell.bash("chmod 700 \(mnt)/etc/hostname \(mnt)/data/sparse") }
        let tar = scratch.sub("layer.tar")
        let outcome = Shell.run([Paths.strata, "commit", "-o", "lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(stack)/upper",
                                 "--tar", tar])
        XCTAssertEqual(outcome.status, 0, outcome.error)
        XCTAssertEqual(Shell.bash("tar -xOf \(tar) etc/hostname"), "middle\n")
        XCTAssertEqual(Shell.bash("tar -xOf \(tar) data/sparse | md5sum"), Shell.bash("md5sum < \(stack)/l3/data/sparse"))
        XCTAssertFalse(Shell.bash("tar --xattrs --xattrs-include='*' -tvvf \(tar) 2>&1; strings \(tar)").contains("overlay.metacopy"))
    }

    /// Without `metacopy=on` (the default, as in the kernel) a chmod copies the data, so the upper layer reads
    /// the same in fuse-overlayfs and in tools that read upper layers directly.
    func testDefaultCopiesTheData() {
        let stack = scratch.makeStack("stack")
        let mnt = scratch.sub("mnt")
        Shell.bash("mkdir -p \(mnt)")
        XCTAssertEqual(Mounts.strata("lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(stack)/upper,workdir=\(stack)/work", at: mnt).status, 0)
        Shell.bash("chmod 600 \(mnt)/etc/hostname")
        Mounts.unmount(mnt)
        XCTAssertEqual(Shell.bash("cat \(stack)/upper/etc/hostname"), "middle\n")
        XCTAssertEqual(Shell.bash("getfattr --absolute-names -d -m trusted.overlay.metacopy \(stack)/upper/etc/hostname"), "")
    }

    /// kill -9 while a metadata-only file's data is being copied in (a 256 MiB append): after a remount the file
    /// is whole, old or new.
    func testKillDuringTheDataCopyLeavesTheFileWhole() {
        let stack = scratch.makeStack("stack")
        Shell.bash("dd if=/dev/urandom of=\(stack)/l3/huge bs=1M count=256 status=none")
        let original = Shell.bash("sha256sum < \(stack)/l3/huge")
        let mnt = scratch.sub("mnt")
        let options = "lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(stack)/upper,workdir=\(stack)/work,metacopy=on"
        Shell.bash("mkdir -p \(mnt)")
        XCTAssertEqual(Mounts.strata(options, at: mnt).status, 0)
        Shell.bash("chmod 600 \(mnt)/huge")
        let pid = Shell.bash("pgrep -n -f 'strata -o .* \(mnt)$'").trimmingCharacters(in: .whitespacesAndNewlines)
        Shell.run(["bash", "-c", "(echo appended >> \(mnt)/huge) 2>/dev/null & sleep 0.3; kill -9 \(pid); wait"], timeout: 120)
        Mounts.unmount(mnt)
        XCTAssertEqual(Mounts.strata(options, at: mnt).status, 0)
        defer { Mounts.unmount(mnt) }
        let size = Int(Shell.bash("stat -c %s \(mnt)/huge").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        XCTAssertTrue(size == 256 << 20 || size == (256 << 20) + 9, "size \(size)")
        XCTAssertEqual(Shell.bash("head -c \(256 << 20) \(mnt)/huge | sha256sum"), original)
        XCTAssertEqual(Shell.bash("stat -c %a \(mnt)/huge"), "600\n", "the new metadata stays")
    }
}
