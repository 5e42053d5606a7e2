import Foundation
import XCTest

/// Many processes changing one mount at the same moment, served on several threads (the default): every
/// object is copied up once, changes to one name or directory do not interleave, and nothing is lost.
final class ConcurrencyTests: XCTestCase {
    var scratch: Scratch!

    override func setUp() {
        scratch = Scratch()
        Shell.bash("mkdir -p \(scratch.sub("lower")) \(scratch.sub("upper")) \(scratch.sub("work")) \(scratch.sub("mnt"))")
    }

    override func tearDown() { scratch.remove() }

    private func mounted(_ extra: String = "", _ body: (String) -> Void) {
        let mnt = scratch.sub("mnt")
        let outcome = Mounts.strata("lowerdir=\(scratch.sub("lower")),upperdir=\(scratch.sub("upper")),workdir=\(scratch.sub("work"))"
                                    + extra, at: mnt)
        XCTAssertEqual(outcome.status, 0, outcome.error)
        defer { Mounts.unmount(mnt) }
        body(mnt)
    }

    private func concurrent(_ arguments: [String]) -> String {
        let outcome = Shell.run(["python3", Paths.fixtures + "/concurrent-changes.py"] + arguments, timeout: 600)
        XCTAssertEqual(outcome.status, 0, outcome.error)
        return outcome.output
    }

    /// 4 processes append at once to each of 200 lower files: each file is copied up once, no caller sees an
    /// error, and every line is there (with threaded=1 before, appenders got EEXIST and 93 files lost writes).
    func testAppendersToLowerFilesLoseNothing() {
        Shell.bash("cd \(scratch.sub("lower")) && for i in $(seq 0 199); do echo \"lower $i\" > f$i; done")
        mounted { mnt in
            XCTAssertEqual(concurrent(["appenders", mnt, "4", "200"]), "ok\n")
        }
        XCTAssertEqual(Shell.bash("ls -A \(scratch.sub("work/work"))"), "", "no staged copy left behind")
        XCTAssertEqual(Shell.bash("ls \(scratch.sub("upper")) | wc -l"), "200\n")
    }

    /// The same on one thread (threaded=0) gives the same result.
    func testAppendersOnOneThreadLoseNothing() {
        Shell.bash("cd \(scratch.sub("lower")) && for i in $(seq 0 49); do echo \"lower $i\" > f$i; done")
        mounted(",threaded=0") { mnt in
            XCTAssertEqual(concurrent(["appenders", mnt, "4", "50"]), "ok\n")
        }
    }

    /// Creates, renames and unlinks of new and lower names by 4 processes in one lower directory.
    func testCreateRenameUnlinkInOneDirectory() {
        Shell.bash("mkdir \(scratch.sub("lower/dir")) && cd \(scratch.sub("lower/dir")) && "
                   + "for p in 0 1 2 3; do for r in $(seq 0 99); do echo $p$r > lower$p-$r; done; done")
        mounted { mnt in
            XCTAssertEqual(concurrent(["namespace", mnt, "4", "100"]), "ok\n")
        }
        // What the upper layer holds reads the same when mounted again.
        mounted { mnt in
            XCTAssertEqual(Shell.bash("ls \(mnt)/dir | wc -l"), "204\n")
            XCTAssertEqual(Shell.bash("ls \(mnt)/dir | grep -c '^lower.*-moved$'"), "200\n")
        }
    }

    /// Readers of lower files while a writer copies the same files up: each read shows the old content or the
    /// new, never an error or a mix.
    func testReadersDuringCopyUps() {
        Shell.bash("cd \(scratch.sub("lower")) && for i in $(seq 0 299); do echo \"lower $i\" > f$i; done")
        mounted { mnt in
            XCTAssertEqual(concurrent(["readers", mnt, "300"]), "ok\n")
        }
    }

    /// The write-path tests' seeded random sequences, one per process, each in its own copy of the fixture
    /// stack, all at once: every step answers as the same sequence does alone on the kernel, and the trees end
    /// the same.
    func testSeededRandomSequencesFromSeveralProcessesMatchTheKernel() {
        let processes = 4
        var views: [[String: [String: Any]]] = []
        var logs: [[String]] = []
        for kind in ["kernel", "strata"] {
            let stack = scratch.sub("\(kind)-stack")
            for index in 0..<processes {
                let one = scratch.sub("\(kind)-one-\(index)")
                Shell.bash("'\(Paths.fixtures)/make-stack.sh' \(one) kernel >/dev/null && for layer in l1 l2 l3 upper; do "
                           + "mkdir -p \(stack)/$layer/p\(index) && (cd \(one)/$layer && mv -- $(ls -A) \(stack)/$layer/p\(index)/); done")
                Shell.bash("python3 '\(Paths.fixtures)/random-ops.py' \(10 + index) 120 > \(scratch.sub("ops-\(index).sh"))")
            }
            let mnt = scratch.sub("\(kind)-mnt"), work = scratch.sub("\(kind)-work")
            Shell.bash("mkdir -p \(mnt) \(work)")
            let options = "lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(stack)/upper,workdir=\(work)"
            let outcome = kind == "kernel" ? Mounts.kernelOverlay(options + ",redirect_dir=on,index=on", at: mnt)
                : Mounts.strata(options, at: mnt)
            XCTAssertEqual(outcome.status, 0, outcome.error)
            // The model runs the sequences one after another; Strata runs them all at once.
            let together = kind == "strata" ? "&" : ";"
            Shell.bash((0..<processes).map { index in
                "(cd \(mnt)/p\(index) && STATUS_LOG=\(scratch.sub("\(kind)-\(index).log")) bash \(scratch.sub("ops-\(index).sh"))) \(together)"
            }.joined(separator: " ") + " wait", timeout: 600)
            views.append(snapshot(mnt, inodes: false, stableTimes: true))
            logs.append((0..<processes).map { Shell.bash("cat \(scratch.sub("\(kind)-\($0).log"))") })
            Mounts.unmount(mnt)
        }
        for index in 0..<processes {
            let steps = logs.map { $0[index].split(separator: "\n") }
            XCTAssertEqual(steps[0].count, steps[1].count)
            let differing = zip(steps[0], steps[1]).filter { $0 != $1 }.map { "kernel: \($0) / strata: \($1)" }
            XCTAssertEqual(differing, [], "process \(index): step results differ")
        }
        assertSameView(views[0], views[1], "\(processes) sequences at once on Strata vs one by one on the kernel")
    }
}
