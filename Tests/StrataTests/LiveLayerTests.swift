import Foundation
import XCTest

/// Layers changed underneath a live mount: with `-o watch` the mount shows each change at once (polled for
/// at most 100 ms by Fixtures/live-changes.py, through stat, ls and cat), with fanotify as root and inotify
/// rootless; without it, `strata refresh` makes it show.
final class LiveLayerTests: XCTestCase {
    var scratch: Scratch!

    override func setUp() { scratch = Scratch() }
    override func tearDown() { scratch.remove() }

    private let fixture = Paths.fixtures + "/live-changes.py"

    private func layers(_ base: String) -> String {
        "lowerdir=\(base)/B:\(base)/A,upperdir=\(base)/U,workdir=\(base)/W"
    }

    private func prepare() -> String {
        let base = scratch.sub("stack")
        Shell.bash("python3 '\(fixture)' prepare \(base)")
        return base
    }

    private func watchMethod(_ mnt: String, as user: String = "") throws -> String {
        let outcome = Shell.run(["bash", "-c", "\(user) \(Paths.strata) stats --json \(mnt)"])
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(outcome.output.utf8)) as? [String: Any], outcome.error)
        return report["watch"] as? String ?? ""
    }

    private func assertEveryCheckPasses(_ outcome: Shell.Outcome, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(outcome.status, 0, outcome.output + outcome.error, file: file, line: line)
        XCTAssertFalse(outcome.output.contains("FAIL"), outcome.output, file: file, line: line)
        XCTAssertEqual(outcome.output.split(separator: "\n").filter { $0.hasPrefix("ok ") }.count, 23, outcome.output,
                       file: file, line: line)
    }

    func testChangesUnderneathShowAtOnceWithFanotify() throws {
        try checkChangesShow(option: "watch", method: "fanotify", whiteouts: "chardev")
    }

    func testChangesUnderneathShowAtOnceWithInotify() throws {
        try checkChangesShow(option: "watch=inotify", method: "inotify", whiteouts: "file")
    }

    private func checkChangesShow(option: String, method: String, whiteouts: String,
                                  file: StaticString = #filePath, line: UInt = #line) throws {
        let base = prepare()
        let mnt = base + "/mnt"
        XCTAssertEqual(Mounts.strata(layers(base) + "," + option, at: mnt).status, 0, file: file, line: line)
        defer { Mounts.unmount(mnt) }
        XCTAssertEqual(try watchMethod(mnt), method, file: file, line: line)
        assertEveryCheckPasses(Shell.run(["python3", fixture, "run", base, mnt, "trusted", whiteouts]), file: file, line: line)
    }

    /// A daemon without privileges cannot mark filesystems with fanotify: it watches with inotify, and the
    /// layers carry user.overlay.* markers and `.wh.` file whiteouts, as rootless ones do.
    func testRootlessDaemonWatchesWithInotify() throws {
        let base = prepare()
        let mnt = base + "/mnt"
        let rootless = Rootless(base, in: scratch)
        let user = rootless.user
        defer { rootless.finish(unmounting: mnt) }
        let mounted = Shell.run(["bash", "-c", "\(user) \(Paths.strata) -o \(layers(base)),watch \(mnt)"], timeout: 30)
        XCTAssertEqual(mounted.status, 0, mounted.error)
        XCTAssertEqual(try watchMethod(mnt, as: user), "inotify")
        assertEveryCheckPasses(Shell.run(["bash", "-c", "\(user) /usr/bin/python3 '\(fixture)' run \(base) \(mnt) user file"]))
    }

    /// The daemon's own changes through the mount come back from the watch as events, and are recognised:
    /// what the kernel cached of them stays cached, so the same work afterwards sends the same requests as on
    /// a mount without a watch.
    func testOwnChangesAreNotEchoedBack() throws {
        var seen: [String: [String: Int]] = [:]
        for option in ["", ",watch", ",watch=inotify"] {
            let base = prepare()
            let mnt = base + "/mnt"
            XCTAssertEqual(Mounts.strata(layers(base) + option, at: mnt).status, 0)
            Shell.bash("""
                cd \(mnt); ls -lR >/dev/null
                for i in $(seq 1 20); do echo $i > new-$i; done; mkdir d; mv new-1 d/; chmod 600 new-2
                echo more >> edited; ln -s x link; rm only; setfattr -n user.k -v v new-3; mv dir dir3
                touch dir3/sub/file; ln edited hard; mkdir -p deep/er; rmdir deep/er
                """)
            // Whatever echo there is arrives within this.
            usleep(500_000)
            let before = try requests(mnt)
            Shell.bash("cd \(mnt); ls -lR >/dev/null; cat new-* d/new-1 edited dir3/sub/file hard >/dev/null; ! stat only 2>/dev/null")
            var after = try requests(mnt)
            for (opcode, calls) in before { after[opcode, default: 0] -= calls }
            seen[option] = after.filter { $0.value != 0 && $0.key != "GETXATTR" }
            Mounts.unmount(mnt)
            Shell.bash("rm -rf \(base)")
        }
        for (option, method) in [(",watch", "fanotify"), (",watch=inotify", "inotify")] {
            assertNoMoreRequests(seen[option] ?? [:], than: seen[""] ?? [:], method)
        }
    }

    /// The same requests as without a watch, READs within one. Runs have seen READ 2 against 1 both ways (the
    /// mount without a watch sending more, and a watched one): the kernel's page cache decides, not the daemon.
    /// An echo would not show in READs alone: it drops what the kernel holds of the inode, attributes too, so
    /// it would also send GETATTRs, which must match exactly.
    private func assertNoMoreRequests(_ watched: [String: Int], than plain: [String: Int], _ method: String) {
        XCTAssertEqual(watched.filter { $0.key != "READ" }, plain.filter { $0.key != "READ" }, method)
        XCTAssertLessThanOrEqual(abs((watched["READ"] ?? 0) - (plain["READ"] ?? 0)), 1, "READs: \(method)")
    }

    private func requests(_ mnt: String) throws -> [String: Int] {
        let outcome = Shell.run([Paths.strata, "stats", "--json", mnt])
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(outcome.output.utf8)) as? [String: Any], outcome.error)
        let rows = try XCTUnwrap(report["requests"] as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: rows.compactMap { row in (row["opcode"] as? String).map { ($0, row["calls"] as? Int ?? 0) } })
    }

    /// Past fs.inotify.max_user_watches the daemon says so once and watches no more directories; what it
    /// watches stays right, and `strata refresh` reaches the rest.
    func testRunningOutOfInotifyWatchesWarnsOnceAndRefreshStillWorks() throws {
        let base = scratch.sub("wide")
        let mnt = base + "/mnt"
        Shell.bash("""
            mkdir -p \(base)/A \(base)/U \(base)/W \(mnt)
            for i in $(seq 1 60); do mkdir -p \(base)/A/d$i/e; echo old > \(base)/A/d$i/e/f; done; echo old > \(base)/A/top
            """)
        let limitPath = "/proc/sys/fs/inotify/max_user_watches"
        let limit = Shell.bash("cat \(limitPath)").trimmingCharacters(in: .whitespacesAndNewlines)
        let used = Int(Shell.bash("cat /proc/*/fdinfo/* 2>/dev/null | grep -c '^inotify wd:' || true")
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        Shell.bash("echo \(used + 20) > \(limitPath)")
        defer { Shell.bash("echo \(limit) > \(limitPath)") }
        let log = scratch.sub("daemon.log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        // In the foreground, so that its warnings go to the log rather than to syslog.
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: Paths.strata)
        daemon.arguments = ["-f", "-o", "lowerdir=\(base)/A,upperdir=\(base)/U,workdir=\(base)/W,watch=inotify", mnt]
        daemon.standardInput = FileHandle.nullDevice
        daemon.standardOutput = FileHandle.nullDevice
        daemon.standardError = FileHandle(forWritingAtPath: log)
        try daemon.run()
        defer {
            Mounts.unmount(mnt)
            if daemon.isRunning { kill(daemon.processIdentifier, SIGKILL) }
        }
        XCTAssertTrue(waitUntil(20) { Mounts.isMounted(mnt) }, "never mounted")
        Shell.bash("find \(mnt) -type f -exec cat {} + >/dev/null")
        let logged = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        XCTAssertEqual(logged.split(separator: "\n").filter { $0.contains("max_user_watches") }.count, 1, logged)
        // The root was watched first: a change there shows.
        Shell.bash("echo new > \(base)/A/top")
        XCTAssertTrue(waitUntil(2, interval: 0.005) { (try? String(contentsOfFile: mnt + "/top", encoding: .utf8)) == "new\n" })
        // The last directories read were not: refresh makes their changes show.
        Shell.bash("for i in $(seq 1 60); do echo new > \(base)/A/d$i/e/f; done")
        Shell.bash("\(Paths.strata) refresh \(mnt)")
        let stale = (1...60).filter { (try? String(contentsOfFile: "\(mnt)/d\($0)/e/f", encoding: .utf8)) != "new\n" }
        XCTAssertEqual(stale, [])
        XCTAssertTrue(Mounts.isMounted(mnt))
    }

    /// A git checkout stacked as a lower layer, switched to another commit from outside while a process reads
    /// through the mount: afterwards the mount shows what a fresh mount of the same layers shows.
    func testGitCheckoutUnderneathMatchesAFreshMount() throws {
        let base = scratch.sub("git")
        let mnt = base + "/mnt", fresh = base + "/fresh"
        Shell.bash("""
            mkdir -p \(base)/repo \(base)/U \(base)/W \(base)/U2 \(base)/W2 \(mnt) \(fresh)
            cd \(base)/repo && git init -q && git config user.email t@t && git config user.name t
            for i in $(seq 1 40); do mkdir -p src/m$((i % 7)); echo "one $i" > src/m$((i % 7))/f$i.c; done
            echo readme > README; git add -A && git commit -qm one
            git checkout -qb two; git rm -rq src/m3; for i in $(seq 1 40); do [ -f src/m$((i % 7))/f$i.c ] && echo "two $i" >> src/m$((i % 7))/f$i.c; done
            mkdir -p new/deep && echo added > new/deep/file && git mv README README.md && git add -A && git commit -qm two
            git checkout -q master
            """)
        XCTAssertEqual(Mounts.strata("lowerdir=\(base)/repo,upperdir=\(base)/U,workdir=\(base)/W,watch", at: mnt).status, 0)
        defer { Mounts.unmount(mnt) }
        let reader = Process()
        reader.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        reader.arguments = ["60", "bash", "-c", "while :; do find \(mnt)/src -type f -exec cat {} + >/dev/null 2>&1; done"]
        try reader.run()
        defer { reader.terminate() }
        Shell.bash("cd \(base)/repo && git checkout -q two")
        reader.terminate()
        reader.waitUntilExit()
        XCTAssertEqual(Mounts.strata("lowerdir=\(base)/repo,upperdir=\(base)/U2,workdir=\(base)/W2", at: fresh).status, 0)
        defer { Mounts.unmount(fresh) }
        let expected = snapshot(fresh, inodes: false)
        XCTAssertNotNil(expected["new/deep/file"])
        XCTAssertTrue(waitUntil(5) { NSDictionary(dictionary: snapshot(mnt, inodes: false)).isEqual(to: expected) })
        assertSameView(expected, snapshot(mnt, inodes: false), "the watched mount after git checkout")
    }

    /// Without `-o watch`, `strata refresh` makes named paths, or the whole mount, show what the layers hold.
    func testRefreshShowsChangesOfNamedPathsOrTheWholeMount() {
        let base = prepare()
        let mnt = base + "/mnt"
        XCTAssertEqual(Mounts.strata(layers(base), at: mnt).status, 0)
        defer { Mounts.unmount(mnt) }
        XCTAssertEqual(Shell.bash("cat \(mnt)/edited; cat \(mnt)/nothing-yet 2>/dev/null || echo absent"), "old\nabsent\n")
        Shell.bash("echo new > \(base)/A/edited; echo made > \(base)/A/nothing-yet")
        XCTAssertEqual(Shell.bash("cat \(mnt)/edited; cat \(mnt)/nothing-yet 2>/dev/null || echo absent"), "old\nabsent\n",
                       "cached until refreshed")
        Shell.bash("\(Paths.strata) refresh \(mnt) edited \(mnt)/nothing-yet")
        XCTAssertEqual(Shell.bash("cat \(mnt)/edited \(mnt)/nothing-yet"), "new\nmade\n")
        Shell.bash("cat \(mnt)/dir/sub/file >/dev/null; echo more > \(base)/A/dir/sub/more; echo changed > \(base)/A/dir/sub/file")
        XCTAssertEqual(Shell.bash("ls \(mnt)/dir/sub; cat \(mnt)/dir/sub/file"), "file\nin dir\n", "cached until refreshed")
        Shell.bash("\(Paths.strata) refresh \(mnt)")
        XCTAssertEqual(Shell.bash("ls \(mnt)/dir/sub; cat \(mnt)/dir/sub/file"), "file\nmore\nchanged\n")
        let outside = Shell.run([Paths.strata, "refresh", scratch.path])
        XCTAssertNotEqual(outside.status, 0)
        XCTAssertTrue(outside.error.contains("not inside a Strata mount"), outside.error)
    }
}
