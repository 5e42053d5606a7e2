import XCTest

/// fuse-overlayfs's options for rootless containers, seen through `stat`, `chown`, `chmod` and file access on a
/// mount, and in what the upper layer stores.
final class OwnershipTests: XCTestCase {
    var scratch: Scratch!
    var lower: String { scratch.sub("lower") }
    var upper: String { scratch.sub("upper") }
    var mnt: String { scratch.sub("mnt") }

    override func setUp() {
        scratch = Scratch()
        // Other users reach the mount through the scratch directory (made 0700).
        Shell.bash("""
            chmod 755 \(scratch.path)
            mkdir -p \(lower)/dir/sub1 \(lower)/dir/sub2 \(upper) \(scratch.sub("work")) \(mnt)
            echo a > \(lower)/root-file; echo b > \(lower)/one-file; echo c > \(lower)/far-file
            chown 1:1 \(lower)/one-file; chown 70000:70000 \(lower)/far-file
            mkdir -m 1777 \(lower)/shared
            """)
    }

    override func tearDown() { scratch.remove() }

    private func mount(_ options: String) {
        let layers = "lowerdir=\(lower),upperdir=\(upper),workdir=\(scratch.sub("work"))"
        let outcome = Mounts.strata(layers + (options.isEmpty ? "" : "," + options), at: mnt)
        XCTAssertEqual(outcome.status, 0, outcome.error)
    }

    private func owners(_ names: String...) -> String {
        Shell.bash("cd \(mnt) && stat -c '%n %u:%g' \(names.joined(separator: " "))")
    }

    /// The fuse-overlayfs manual's example: stored 0 and 1 show as the namespace's host ids, ids outside every
    /// range as 65534, and what the mount's users write is stored back in the container's ids.
    func testUidAndGidMappingShowHostIdsAndStoreContainerIds() {
        mount("uidmapping=0:1000:1:1:110000:65536,gidmapping=0:1000:1:1:110000:65536")
        defer { Mounts.unmount(mnt) }
        XCTAssertEqual(owners("root-file", "one-file", "far-file"),
                       "root-file 1000:1000\none-file 110000:110000\nfar-file 65534:65534\n")
        Shell.bash("chown 110005:110006 \(mnt)/root-file")
        Shell.bash("setpriv --reuid 1000 --regid 1000 --clear-groups touch \(mnt)/shared/made-by-1000")
        XCTAssertEqual(owners("root-file", "shared/made-by-1000"), "root-file 110005:110006\nshared/made-by-1000 1000:1000\n")
        XCTAssertEqual(Shell.bash("cd \(upper) && stat -c '%n %u:%g' root-file shared/made-by-1000"),
                       "root-file 6:7\nshared/made-by-1000 0:0\n")
    }

    func testSquashOptionsShowOneOwner() {
        for (options, expected) in [("squash_to_root", "0:0"), ("squash_to_uid=123,squash_to_gid=456", "123:456"),
                                    ("squash_to_root,squash_to_uid=7", "7:0")] {
            mount(options)
            XCTAssertEqual(owners("one-file", "far-file", "dir"),
                           "one-file \(expected)\nfar-file \(expected)\ndir \(expected)\n", options)
            Mounts.unmount(mnt)
        }
        XCTAssertEqual(Shell.bash("stat -c '%u:%g' \(lower)/one-file"), "1:1\n")
    }

    /// xattr_permissions=2: user.containers.override_stat stands in for the owner and mode, chown and chmod
    /// change it (the real file stays the daemon's), new objects get it, and users never see it.
    func testPermissionsAttributeStandsInForOwnerAndMode() {
        Shell.bash("setfattr -n user.containers.override_stat -v 5:6:0640 \(lower)/root-file")
        mount("xattr_permissions=2")
        defer { Mounts.unmount(mnt) }
        XCTAssertEqual(Shell.bash("stat -c '%u:%g %a %F' \(mnt)/root-file"), "5:6 640 regular file\n")
        Shell.bash("chmod 600 \(mnt)/root-file; chown 7 \(mnt)/root-file; chmod 751 \(mnt)/one-file")
        XCTAssertEqual(Shell.bash("stat -c '%u:%g %a' \(mnt)/root-file \(mnt)/one-file"), "7:6 600\n1:1 751\n")
        XCTAssertEqual(Shell.bash("getfattr --only-values -n user.containers.override_stat \(upper)/root-file"), "7:6:0600")
        XCTAssertEqual(Shell.bash("getfattr --only-values -n user.containers.override_stat \(upper)/one-file"), "1:1:0751")
        XCTAssertEqual(Shell.bash("stat -c '%u:%g %a' \(upper)/root-file"), "0:0 644\n")
        Shell.bash("mkdir -m 710 \(mnt)/made")
        XCTAssertEqual(Shell.bash("getfattr --only-values -n user.containers.override_stat \(upper)/made"), "0:0:0710")
        XCTAssertEqual(Shell.bash("getfattr -d -m - \(mnt)/root-file \(mnt)/made"), "")
    }

    func testStaticNlinkShowsOneLinkForDirectories() {
        mount("")
        XCTAssertEqual(Shell.bash("stat -c %h \(mnt)/dir"), "4\n")
        Mounts.unmount(mnt)
        mount("static_nlink")
        defer { Mounts.unmount(mnt) }
        XCTAssertEqual(Shell.bash("stat -c %h \(mnt)/dir \(mnt)/root-file"), "1\n1\n")
    }

    /// POSIX ACLs grant access beyond the mode bits, as on the kernel's overlay; `noacl` goes by mode bits alone.
    func testACLsAreEnforcedUnlessNoacl() {
        Shell.bash("chmod 600 \(lower)/root-file; setfacl -m u:1234:r \(lower)/root-file")
        let readAs1234 = "setpriv --reuid 1234 --regid 1234 --clear-groups cat \(mnt)/root-file 2>&1 || true"
        mount("")
        XCTAssertEqual(Shell.bash(readAs1234), "a\n")
        Mounts.unmount(mnt)
        mount("noacl")
        defer { Mounts.unmount(mnt) }
        XCTAssertTrue(Shell.bash(readAs1234).contains("Permission denied"))
    }
}
