import Foundation
import XCTest

/// What survives: a killed daemon, a full disk, concurrent writers, and a long run of random changes.
final class DurabilityTests: XCTestCase {
    var scratch: Scratch!
    var layers: String { "lowerdir=\(scratch.sub("lower")),upperdir=\(scratch.sub("upper")),workdir=\(scratch.sub("work"))" }
    var mnt: String { scratch.sub("mnt") }

    override func setUp() {
        scratch = Scratch()
        Shell.bash("mkdir -p \(scratch.sub("lower")) \(scratch.sub("upper")) \(scratch.sub("work")) \(scratch.sub("mnt"))")
    }

    override func tearDown() { scratch.remove() }

    private func mount(_ options: String? = nil) {
        let outcome = Mounts.strata(options ?? layers, at: mnt)
        XCTAssertEqual(outcome.status, 0, outcome.error)
    }

    private func daemonPID() -> String {
        Shell.bash("pgrep -n -f 'strata -o .* \(mnt)$'").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// kill -9 at several moments of copying up 1 GiB: after remounting, the file is whole (old or new), and
    /// the work directory holds nothing.
    func testKillDuringCopyUpLeavesTheFileWhole() {
        Shell.bash("dd if=/dev/urandom of=\(scratch.sub("lower/big")) bs=1M count=1024 status=none")
        let original = Shell.bash("sha256sum < \(scratch.sub("lower/big"))")
        for delay in ["0.1", "1.0"] {
            mount()
            let pid = daemonPID()
            Shell.run(["bash", "-c", "(echo appended >> \(mnt)/big) 2>/dev/null & sleep \(delay); kill -9 \(pid); wait"], timeout: 120)
            Mounts.unmount(mnt)
            mount()
            let size = Int(Shell.bash("stat -c %s \(mnt)/big").trimmingCharacters(in: .whitespacesAndNewlines))!
            XCTAssertTrue(size == 1 << 30 || size == (1 << 30) + 9, "size \(size) after kill at \(delay)s")
            XCTAssertEqual(Shell.bash("head -c \(1 << 30) \(mnt)/big | sha256sum"), original, "content after kill at \(delay)s")
            XCTAssertEqual(Shell.bash("ls -A \(scratch.sub("work/work"))"), "", "leftovers in workdir after remount")
            Mounts.unmount(mnt)
        }
        XCTAssertEqual(Shell.bash("sha256sum < \(scratch.sub("lower/big"))"), original, "the lower layer changed")
    }

    /// A copy-up that runs out of space fails with ENOSPC and leaves the lower file visible and unchanged.
    func testFullUpperLayerFailsTheWriteAndKeepsTheLowerFile() {
        let small = scratch.sub("small")
        Shell.bash("""
            mkdir -p \(small) && mount -t tmpfs -o size=1m tmpfs \(small) && mkdir \(small)/upper \(small)/work
            dd if=/dev/urandom of=\(scratch.sub("lower/big")) bs=1M count=4 status=none
            """)
        defer { Mounts.unmount(small) }
        mount("lowerdir=\(scratch.sub("lower")),upperdir=\(small)/upper,workdir=\(small)/work")
        defer { Mounts.unmount(mnt) }
        let outcome = Shell.run(["bash", "-c", "echo more >> \(mnt)/big"])
        XCTAssertNotEqual(outcome.status, 0)
        XCTAssertTrue(outcome.error.contains("No space left on device"), outcome.error)
        XCTAssertEqual(Shell.bash("cmp \(mnt)/big \(scratch.sub("lower/big")) && echo same"), "same\n")
        XCTAssertEqual(Shell.bash("ls -A \(small)/upper \(small)/work/work"), "\(small)/upper:\n\n\(small)/work/work:\n")
    }

    func testConcurrentAppendersAndRenamersLoseNothing() {
        Shell.bash("seq 1 100 > \(scratch.sub("lower/log")); mkdir \(scratch.sub("lower/dir"))")
        mount()
        defer { Mounts.unmount(mnt) }
        Shell.bash("""
            cd \(mnt)
            for w in a b; do
              ( for i in $(seq 1 500); do echo "$w-$i" >> log; done ) &
              ( for i in $(seq 1 200); do echo "$w$i" > dir/$w.tmp; mv dir/$w.tmp dir/$w-$i; [ $i -gt 1 ] && rm dir/$w-$((i-1)); done ) &
            done
            wait
            """, timeout: 300)
        let lines = Shell.bash("cat \(mnt)/log").split(separator: "\n")
        XCTAssertEqual(lines.count, 1100)
        XCTAssertEqual(Set(lines).count, 1100, "a line was lost or torn")
        XCTAssertEqual(Shell.bash("ls \(mnt)/dir"), "a-200\nb-200\n")
        XCTAssertEqual(Shell.bash("cat \(mnt)/dir/a-200 \(mnt)/dir/b-200"), "a200\nb200\n")
    }

    /// Random writes, appends, truncates, punched holes and shared-mmap writes against a model of the file,
    /// on a file that starts in the lower layer, then checked again after a remount.
    func testRandomChangesMatchAModelAcrossARemount() {
        Shell.bash("dd if=/dev/urandom of=\(scratch.sub("lower/data")) bs=1k count=300 status=none")
        mount()
        let exercise = Paths.fixtures + "/exercise.py"
        let run = Shell.run(["python3", exercise, mnt + "/data", "42", "15"], timeout: 120)
        XCTAssertEqual(run.status, 0, run.output + run.error)
        Mounts.unmount(mnt)
        mount()
        defer { Mounts.unmount(mnt) }
        let verify = Shell.run(["python3", exercise, mnt + "/data", "42", "0", "--verify-only"], timeout: 120)
        XCTAssertEqual(verify.status, 0, verify.output + verify.error)
        XCTAssertEqual(Shell.bash("cmp \(scratch.sub("lower/data")) <(head -c 307200 /dev/zero) >/dev/null || echo differs"), "differs\n")
    }

    /// An open file that is deleted still answers fstat, reads and writes.
    func testUnlinkedOpenFileStillWorks() {
        Shell.bash("echo lower > \(scratch.sub("lower/file"))")
        mount()
        defer { Mounts.unmount(mnt) }
        let output = Shell.bash("""
            python3 -c '
            import os, sys
            fd = os.open(sys.argv[1], os.O_RDWR)
            os.unlink(sys.argv[1])
            os.pwrite(fd, b"written", 0)
            print(os.fstat(fd).st_size, os.pread(fd, 7, 0).decode(), os.path.exists(sys.argv[1]))
            # A temporary file (created, unlinked, then used), as apt makes them: truncate, chmod, xattrs.
            temporary = os.open(sys.argv[1] + ".tmp", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.unlink(sys.argv[1] + ".tmp")
            os.write(temporary, b"0123456789")
            os.ftruncate(temporary, 4)
            os.fchmod(temporary, 0o640)
            os.setxattr(temporary, "user.note", b"kept")
            print(os.fstat(temporary).st_size, oct(os.fstat(temporary).st_mode & 0o777), os.getxattr(temporary, "user.note").decode())
            os.close(temporary)
            ' \(mnt)/file
            """)
        XCTAssertEqual(output, "7 written False\n4 0o640 kept\n")
    }

    /// Removing or replacing files leaves the mount's syncfs clean: `sync -f` exits 0, as on the kernel's
    /// overlay (the kernel writes back the times of each removed file, and an error there is syncfs's).
    func testSyncAfterRemovingFilesSucceeds() {
        Shell.bash("echo lower > \(scratch.sub("lower/lowfile"))")
        mount()
        defer { Mounts.unmount(mnt) }
        let outcome = Shell.run(["bash", "-c", """
            cd \(mnt) && echo x > new && rm new && rm lowfile && echo a > a && echo b > b && mv a b && sync -f . && cat b
            """])
        XCTAssertEqual(outcome.status, 0, outcome.error)
        XCTAssertEqual(outcome.output, "a\n")
        XCTAssertEqual(Shell.bash("ls -A \(mnt)"), "b\n")
    }
}
