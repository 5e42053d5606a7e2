import Foundation
import XCTest

/// `strata commit`, `import` and `unpack`: each OCI conversion rule, reproducibility, refused tar entries, and an
/// image's round trip through a private registry (Tests/Fixtures/registry-e2e.sh).
final class ImageTests: XCTestCase {
    var scratch: Scratch!

    override func setUp() { scratch = Scratch() }
    override func tearDown() { scratch.remove() }

    private func strata(_ arguments: String) -> Shell.Outcome {
        Shell.run(["bash", "-c", "cd \(scratch.path) && '\(Paths.strata)' \(arguments)"], timeout: 120)
    }

    /// The tar's entries as `tar -tv` lists them (type, mode, owner, size, name and link), sorted as written.
    private func listing(_ tar: String) -> String {
        Shell.bash("tar --numeric-owner -tvf \(tar) | awk '{$4=\"\"; $5=\"\"; print}' | tr -s ' '")
    }

    func testCommitFollowsTheOCILayerRules() {
        for format in ["kernel", "files"] {
            let stack = scratch.makeStack(format, format: format)
            let upper = "\(stack)/upper"
            // A hard link, a user and a private xattr, and a directory renamed as the kernel renames it (a redirect
            // to its old name, a whiteout there).
            Shell.bash("""
                ln \(upper)/merged/d/file \(upper)/merged/d/link
                setfattr -n user.kept -v yes \(upper)/empty; setfattr -n trusted.overlay.origin -v x \(upper)/empty
                mkdir \(upper)/big-renamed; setfattr -n trusted.overlay.redirect -v big \(upper)/big-renamed; mknod \(upper)/big c 0 0
                """)
            let layers = "lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(upper)"
            let outcome = strata("commit -o \(layers) --tar \(format).tar")
            XCTAssertEqual(outcome.status, 0, outcome.error)
            let entries = listing(scratch.sub("\(format).tar"))
            // OCI layers have no redirects: the renamed directory comes opaque, with its lower contents.
            for expected in ["---------- 0/0 0 bin/.wh.sh", "---------- 0/0 0 opq2/.wh..wh..opq", "---------- 0/0 0 .wh.big",
                             "hrw-r--r-- 0/0 0 merged/d/link link to merged/d/file",
                             "---------- 0/0 0 big-renamed/.wh..wh..opq", "-rw-r--r-- 0/0 4 big-renamed/entry-301",
                             "-rw-r--r-- 0/0 2 big-renamed/entry-2"] {
                XCTAssertTrue(entries.contains(expected + "\n"), "\(format): no \(expected) in\n\(entries)")
            }
            XCTAssertFalse(entries.contains("big-renamed/entry-8\n"), "a whited-out entry came along")
            let xattrs = Shell.bash("cd \(scratch.path) && mkdir -p x-\(format) && "
                + "tar --xattrs --xattrs-include='*' -xf \(format).tar -C x-\(format) empty && getfattr -d -m - x-\(format)/empty")
            XCTAssertTrue(xattrs.contains("user.kept=\"yes\""), xattrs)
            XCTAssertFalse(xattrs.contains("overlay"), xattrs)
        }
    }

    func testCommitIsReproducible() {
        let stack = scratch.makeStack("stack")
        let layers = "lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(stack)/upper"
        let first = strata("commit -o \(layers) --tar a.tgz --gzip").output
        Shell.bash("sleep 1")
        let second = strata("commit -o \(layers) --tar b.tgz --gzip").output
        XCTAssertEqual(first, second)
        XCTAssertTrue(first.hasPrefix("digest sha256:") && first.contains("\ndiff-id sha256:"), first)
        Shell.bash("cmp \(scratch.sub("a.tgz")) \(scratch.sub("b.tgz"))")
        XCTAssertEqual(Shell.bash("gzip -dc \(scratch.sub("a.tgz")) | sha256sum | cut -d' ' -f1"),
                       first.split(separator: "\n")[1].replacingOccurrences(of: "diff-id sha256:", with: "") + "\n")
        // No access or change times in the headers; modification times keep their nanoseconds.
        let headers = Shell.bash("python3 -c 'import tarfile, sys; [print(m.name, sorted(m.pax_headers.items())) for m in tarfile.open(sys.argv[1])]' \(scratch.sub("a.tgz"))")
        XCTAssertFalse(headers.contains("atime") || headers.contains("ctime"), headers)
        XCTAssertTrue(headers.contains("etc/passwd [('mtime', '1600000000.987654321')]"), headers)
    }

    /// An image committed on top of an imported one unpacks into layer directories in the kernel's format that
    /// the kernel's overlay mounts with the same view as the stack it came from.
    func testOCILayoutUnpacksIntoLayersTheKernelMounts() {
        let stack = scratch.makeStack("stack")
        Shell.bash("rm \(stack)/l3/dev/sock")  // tar has no sockets
        let flat = scratch.sub("flat")
        Shell.bash("mkdir -p \(flat) && cp -a \(stack)/l3/. \(flat)/")
        XCTAssertEqual(strata("import \(flat) --oci layout:base").status, 0)
        // The image: l3 as its base, then the l2, l1 and upper layers committed one by one on top.
        var below = "\(stack)/l3", tag = "base"
        for layer in ["l2", "l1", "upper"] {
            let outcome = strata("commit -o lowerdir=\(below),upperdir=\(stack)/\(layer) --oci layout:\(layer) --from \(tag)")
            XCTAssertEqual(outcome.status, 0, outcome.error)
            below = "\(stack)/\(layer):" + below
            tag = layer
        }
        let unpacked = strata("unpack layout:upper unpacked")
        XCTAssertEqual(unpacked.status, 0, unpacked.error)
        let lowers = unpacked.output.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(lowers, "lowerdir=" + (0...3).reversed().map { scratch.sub("unpacked/\($0)") }.joined(separator: ":"))
        let original = scratch.sub("original"), copy = scratch.sub("copy")
        Shell.bash("mkdir -p \(original) \(copy)")
        XCTAssertEqual(Mounts.kernelOverlay("lowerdir=\(stack)/upper:\(stack)/l1:\(stack)/l2:\(stack)/l3", at: original).status, 0)
        defer { Mounts.unmount(original) }
        XCTAssertEqual(Mounts.kernelOverlay(lowers, at: copy).status, 0)
        defer { Mounts.unmount(copy) }
        assertSameView(snapshot(original, inodes: false), snapshot(copy, inodes: false), "unpacked image vs its layers")
    }

    /// `--layer-dir` gives a layer the kernel stacks like the upper layer it came from; `unpack --whiteout file`
    /// gives `.wh.` files and opaque markers that Strata reads the same way.
    func testLayerDirectoryAndFileWhiteoutsShowTheSameView() {
        let stack = scratch.makeStack("stack")
        let lowers = "\(stack)/l1:\(stack)/l2:\(stack)/l3"
        XCTAssertEqual(strata("commit -o lowerdir=\(lowers),upperdir=\(stack)/upper --layer-dir layer --oci layout:top").status, 0)
        XCTAssertEqual(Shell.bash("find \(scratch.sub("layer")) -name '.wh.*'"), "")
        XCTAssertEqual(strata("unpack layout:top files --whiteout file").status, 0)
        XCTAssertEqual(Shell.bash("cd \(scratch.sub("files/0")) && find . -name '.wh.*' | sort"), "./bin/.wh.sh\n./opq2/.wh..wh..opq\n")
        var views: [[String: [String: Any]]] = []
        for (index, top) in [stack + "/upper", scratch.sub("layer"), scratch.sub("files/0")].enumerated() {
            let mnt = scratch.sub("mnt\(index)")
            Shell.bash("mkdir -p \(mnt)")
            let options = "lowerdir=\(top):\(lowers)"
            XCTAssertEqual((index == 2 ? Mounts.strata(options, at: mnt) : Mounts.kernelOverlay(options, at: mnt)).status, 0)
            views.append(snapshot(mnt, inodes: false))
            Mounts.unmount(mnt)
        }
        assertSameView(views[0], views[1], "kernel on the layer directory")
        assertSameView(views[0], views[2], "strata on the layer with .wh. files")
    }

    func testUnpackRefusesEntriesThatEscape() {
        let work = scratch.sub("evil")
        Shell.bash("mkdir -p \(work) && python3 '\(Paths.fixtures)/evil-tars.py' \(work)")
        for name in ["absolute", "dotdot", "symlink", "hardlink"] {
            let outcome = Shell.run(["bash", "-c", "cd \(work) && '\(Paths.strata)' unpack \(name):evil out-\(name)"], timeout: 60)
            XCTAssertNotEqual(outcome.status, 0, name)
            XCTAssertTrue(outcome.error.contains("refused tar entry"), "\(name): \(outcome.error)")
        }
        XCTAssertEqual(Shell.bash("ls -d /tmp/strata-escaped-* \(scratch.path)/strata-escaped-* \(work)/strata-escaped-* 2>/dev/null || true"), "")
        // A layer that does not match its digest is refused before anything is unpacked.
        Shell.bash("cd \(work) && mkdir -p empty && '\(Paths.strata)' import empty --oci layout:tampered >/dev/null && "
            + "for blob in layout/blobs/sha256/*; do tar -tf $blob >/dev/null 2>&1 && echo x >> $blob; done; true")
        let tampered = Shell.run(["bash", "-c", "cd \(work) && '\(Paths.strata)' unpack layout:tampered out-tampered"], timeout: 60)
        XCTAssertNotEqual(tampered.status, 0)
        XCTAssertTrue(tampered.error.contains("does not match its digest"), tampered.error)
        // A digest in the layout's JSON that climbs out of blobs/ is no digest at all.
        Shell.bash("cd \(work) && cp -r absolute climbing && sed -i 's|\"digest\": *\"sha256:[0-9a-f]*\"|\"digest\":\"sha256:../../../../../etc/passwd\"|' climbing/index.json")
        let climbing = Shell.run(["bash", "-c", "cd \(work) && '\(Paths.strata)' unpack climbing:evil out-climbing"], timeout: 60)
        XCTAssertEqual(climbing.status, 1)
        XCTAssertTrue(climbing.error.contains("is not a sha256 digest"), climbing.error)
    }

    /// Names of every shape unpack as GNU tar extracts them (one character, ./, //, trailing slashes, 255 bytes,
    /// non-UTF-8, duplicates, a file over an empty directory and a directory over a file); a file over a directory
    /// that still holds something is refused by its name, as GNU tar refuses it.
    func testTarNamesOfEveryShapeUnpackAsGNUTar() {
        let work = scratch.sub("shapes")
        Shell.bash("mkdir -p \(work)/gnu \(work)/gnu-full && python3 '\(Paths.fixtures)/shape-tars.py' \(work)")
        Shell.bash("tar -xf \(work)/shapes.tar -C \(work)/gnu")
        let outcome = Shell.run([Paths.strata, "unpack", "--whiteout", "file", "\(work)/layout:shapes", "\(work)/strata"])
        XCTAssertEqual(outcome.status, 0, outcome.error)
        let listing = "find . -mindepth 1 -printf '%p %y %s %m\\n' | LC_ALL=C sort | od -An -c"
        XCTAssertEqual(Shell.bash("cd \(work)/strata/0 && \(listing)"), Shell.bash("cd \(work)/gnu && \(listing)"))
        XCTAssertEqual(Shell.bash("cat \(work)/strata/0/dup \(work)/strata/0/emptydir"), "twonow a file")
        let gnu = Shell.run(["tar", "-xf", "\(work)/nonempty.tar", "-C", "\(work)/gnu-full"])
        XCTAssertNotEqual(gnu.status, 0)
        let refused = Shell.run([Paths.strata, "unpack", "\(work)/layout:nonempty", "\(work)/strata-full"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.error.contains("refused tar entry \"full\": it would replace a directory that is not empty"), refused.error)
    }

    /// Overlay-private attributes in a tarball's PAX headers (a redirect that would climb out, among them) are
    /// dropped, counted in one warning, and never written; other attributes are kept.
    func testUnpackDropsOverlayPrivateAttributes() {
        let work = scratch.sub("private")
        Shell.bash("""
            mkdir -p \(work)/src/dir && echo x > \(work)/src/dir/file
            setfattr -n trusted.overlay.redirect -v /../../etc \(work)/src/dir
            setfattr -n user.overlay.opaque -v y \(work)/src/dir; setfattr -n user.strata.layer -v 0 \(work)/src/dir/file
            setfattr -n user.kept -v yes \(work)/src/dir/file
            cd \(work)/src && tar --xattrs --xattrs-include='*' --format=pax -cf \(work)/layer.tar dir
            """)
        // GNU tar stores them: the tarball really carries what an image could.
        XCTAssertTrue(Shell.bash("tar --xattrs --xattrs-include='*' -tvvf \(work)/layer.tar; strings \(work)/layer.tar")
            .contains("trusted.overlay.redirect"))
        let layout = "\(work)/layout"
        Shell.bash("python3 '\(Paths.fixtures)/oci_layout.py' \(layout) x \(work)/layer.tar")
        let outcome = Shell.run([Paths.strata, "unpack", "\(layout):x", "\(work)/out"])
        XCTAssertEqual(outcome.status, 0, outcome.error)
        let warnings = outcome.error.split(separator: "\n")
        XCTAssertEqual(warnings.count, 1, outcome.error)
        XCTAssertTrue(warnings.first?.contains("dropped 3 overlay-private attributes") == true, outcome.error)
        XCTAssertEqual(Shell.bash("getfattr -R -d -m - --absolute-names \(work)/out/0 | grep -v '^#' | grep . | sort"), "user.kept=\"yes\"\n")
        // Importing the same directory leaves them out of the image too, with one warning.
        let imported = Shell.run([Paths.strata, "import", "\(work)/src", "--tar", "\(work)/imported.tar"])
        XCTAssertEqual(imported.status, 0, imported.error)
        XCTAssertEqual(imported.error.split(separator: "\n").count, 1, imported.error)
        XCTAssertTrue(imported.error.contains("left out 3 overlay-private attributes"), imported.error)
        let carried = Shell.bash("tar --xattrs --xattrs-include='*' -tvvf \(work)/imported.tar 2>&1; strings \(work)/imported.tar")
        XCTAssertFalse(carried.contains("overlay.") || carried.contains("strata.layer"), carried)
        XCTAssertTrue(carried.contains("user.kept"), carried)
    }

    func testImageRoundTripThroughARegistry() {
        let outcome = Shell.run([Paths.fixtures + "/registry-e2e.sh", Paths.strata], timeout: 900)
        XCTAssertEqual(outcome.status, 0, outcome.output + outcome.error)
        for step in ["registry", "import and unpack", "commit", "push and pull", "pulled layers mount", "umoci agrees",
                     "podman pulls and runs it"] {
            XCTAssertTrue(outcome.output.contains("ok \(step)"), "step \(step) missing:\n\(outcome.output)")
        }
    }
}
