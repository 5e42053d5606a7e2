import Foundation
import XCTest

/// Layers and images as hostile input: nothing in a layer makes Strata serve, read or change anything outside
/// the layers it was given (a canary beside them stays unreadable and unchanged), it answers as the kernel
/// does where the kernel has an answer, and the mount stays up.
final class HostileLayerTests: XCTestCase {
    var scratch: Scratch!

    override func setUp() { scratch = Scratch() }
    override func tearDown() { scratch.remove() }

    /// A canary directory outside every layer, with a file whose content must never come out of a mount.
    private func makeCanary() -> String {
        let canary = scratch.sub("canary")
        Shell.bash("mkdir -p \(canary)/etc && echo SECRET-CANARY > \(canary)/etc/secret && echo SECRET-CANARY > \(canary)/secret")
        return canary
    }

    private func canaryState(_ canary: String) -> String {
        Shell.bash("cd \(canary) && find . -printf '%p %m %s %T@ %C@\\n' | sort && cat etc/secret secret")
    }

    /// What `ls` says of each directory below `mount`, one line each, in a stable order.
    private func listings(_ mount: String, _ names: [String]) -> String {
        names.map { name in
            let outcome = Shell.run(["ls", "\(mount)/\(name)"])
            let error = outcome.error.components(separatedBy: ": ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            return "\(name): " + (outcome.status == 0 ? outcome.output.split(separator: "\n").joined(separator: " ") : error)
        }.joined(separator: "\n")
    }

    /// Redirects that climb out (relative or absolute, with ".."), malformed, overlong, empty or non-UTF-8, in a
    /// lower layer: each fails that lookup as the kernel fails it (EINVAL or EACCES), valid ones are followed,
    /// and the host directory they aim at is never listed or read. Each bad one is logged once.
    func testEscapingRedirectsFailAsInTheKernelAndAreLoggedOnce() {
        let canary = makeCanary()
        let lower = scratch.sub("A"), top = scratch.sub("B")
        Shell.bash("""
            mkdir -p \(lower)/real \(lower)/sub/deep "\(lower)/$(printf 'r\\351al')" \(top)
            echo hi > \(lower)/real/file; echo uni > "\(lower)/$(printf 'r\\351al')/f"
            """)
        let values: [(String, String)] = [
            ("up", "../canary"), ("absup", "/../canary"), ("inner", "/real/../../canary"), ("deepup", "../../../../../../tmp"),
            ("empty", ""), ("dot", "."), ("dotdot", ".."), ("slashed", "sub/deep"), ("double", "//real"), ("trailing", "/real/"),
            ("host", canary), ("hostrel", String(canary.dropFirst())), ("latin", "$(printf '/r\\351al')"), ("abs", "/real"),
            ("sibling", "real"),
        ]
        for (name, value) in values {
            Shell.bash("mkdir \(top)/\(name) && setfattr -n trusted.overlay.redirect -v \"\(value)\" \(top)/\(name)")
        }
        Shell.bash("mkdir \(top)/long \(top)/longabs && setfattr -n trusted.overlay.redirect -v \"$(printf 'x%.0s' $(seq 300))\" \(top)/long"
                   + " && setfattr -n trusted.overlay.redirect -v \"/$(printf 'x%.0s' $(seq 300))\" \(top)/longabs")
        let names = values.map(\.0)
        let layers = "lowerdir=\(top):\(lower)"
        let kernel = scratch.sub("kernel"), mount = scratch.sub("mnt")
        Shell.bash("mkdir -p \(kernel) \(mount)")
        XCTAssertEqual(Mounts.kernelOverlay(layers, at: kernel).status, 0)
        let kernelSays = listings(kernel, names + ["long", "longabs"])
        Mounts.unmount(kernel)

        // In the foreground the daemon logs to standard error (detached, to syslog).
        let log = scratch.sub("strata.log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        daemon.arguments = ["-k", "5", "120", Paths.strata, "-f", "-o", layers, mount]
        daemon.standardError = FileHandle(forWritingAtPath: log)
        XCTAssertNoThrow(try daemon.run())
        defer { Mounts.unmount(mount); daemon.waitUntilExit() }
        Shell.bash("for i in $(seq 50); do mountpoint -q \(mount) && exit 0; sleep 0.1; done; exit 1")
        let strataSays = listings(mount, names + ["long", "longabs"])
        XCTAssertEqual(strataSays, listings(mount, names + ["long", "longabs"]), "a second look answers the same")
        // The same answers as the kernel, except that Strata refuses a name longer than NAME_MAX outright where the
        // kernel's lookup of it just misses (and shows the directory empty).
        func lenient(_ text: String) -> String {
            text.replacingOccurrences(of: "long: Invalid argument", with: "long: ")
                .replacingOccurrences(of: "longabs: Invalid argument", with: "longabs: ")
        }
        XCTAssertEqual(lenient(strataSays), lenient(kernelSays))
        XCTAssertTrue(kernelSays.contains("up: Invalid argument") && kernelSays.contains("absup: Permission denied"), kernelSays)
        XCTAssertTrue(strataSays.contains("abs: file") && strataSays.contains("latin: f") && strataSays.contains("long: Invalid argument"),
                      strataSays)
        for name in names { _ = Shell.run(["cat", "\(mount)/\(name)/secret", "\(mount)/\(name)/etc/secret"]) }
        XCTAssertFalse(Shell.run(["grep", "-r", "SECRET-CANARY", mount]).output.contains("SECRET"))
        XCTAssertTrue(Mounts.isMounted(mount), "the mount stays up")
        Mounts.unmount(mount)
        daemon.waitUntilExit()
        let logged = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        let lines = logged.split(separator: "\n").filter { $0.contains("invalid redirect") }
        XCTAssertEqual(lines.count, 13, logged)
        XCTAssertEqual(Set(lines).count, lines.count, "each invalid redirect is logged once:\n\(logged)")
        XCTAssertTrue(logged.contains("layer 0 (\(top)): /absup: invalid redirect \"/../canary\""), logged)
    }

    /// The same values in the user namespace (as rootless tools write them) are validated just the same.
    func testUserNamespaceRedirectsAreValidatedTheSame() {
        let canary = makeCanary()
        let lower = scratch.sub("A"), top = scratch.sub("B"), mount = scratch.sub("mnt")
        Shell.bash("""
            mkdir -p \(lower)/real \(top)/esc \(top)/abs \(top)/ok \(mount) && echo hi > \(lower)/real/file
            setfattr -n user.overlay.redirect -v ../canary \(top)/esc
            setfattr -n user.overlay.redirect -v /../canary \(top)/abs
            setfattr -n user.overlay.redirect -v /real \(top)/ok
            """)
        XCTAssertEqual(Mounts.strata("lowerdir=\(top):\(lower)", at: mount).status, 0)
        defer { Mounts.unmount(mount) }
        XCTAssertEqual(listings(mount, ["esc", "abs", "ok"]), "esc: Invalid argument\nabs: Permission denied\nok: file")
        XCTAssertNotEqual(Shell.run(["cat", "\(mount)/abs/secret"]).status, 0)
        XCTAssertTrue(Mounts.isMounted(mount))
        XCTAssertEqual(canaryState(canary), canaryState(canary))
    }

    /// Symbolic links inside layers are served as links and never followed by the daemon: a layer whose `etc` is
    /// a link to a host directory, a subdirectory that is a link in one layer and a directory in another, and a
    /// lower directory swapped for a link (or renamed) underneath a live mount.
    func testSymlinksAndDirectoriesSwappedUnderneathNeverLeadOutside() {
        let canary = makeCanary()
        let before = canaryState(canary)
        let lower = scratch.sub("A"), top = scratch.sub("B"), upper = scratch.sub("U"), work = scratch.sub("W")
        let mount = scratch.sub("mnt")
        Shell.bash("""
            mkdir -p \(lower)/etc \(lower)/dir/sub \(lower)/swap/inner \(lower)/moved/inner \(top)/dir \(upper) \(work) \(mount)
            echo lower > \(lower)/etc/passwd; echo lower > \(lower)/dir/sub/file
            echo lower > \(lower)/swap/inner/file; echo lower > \(lower)/moved/inner/file
            ln -s \(canary)/etc \(top)/etc; ln -s ../../canary \(top)/dir/sub
            """)
        XCTAssertEqual(Mounts.strata("lowerdir=\(top):\(lower),upperdir=\(upper),workdir=\(work)", at: mount).status, 0)
        defer { Mounts.unmount(mount) }
        XCTAssertEqual(Shell.bash("readlink \(mount)/etc \(mount)/dir/sub"), "\(canary)/etc\n../../canary\n")
        XCTAssertEqual(Shell.bash("cat \(mount)/swap/inner/file \(mount)/moved/inner/file"), "lower\nlower\n")
        // Someone swaps a lower directory for a link to the host, and renames another, under the live mount.
        Shell.bash("mv \(lower)/swap \(lower)/swap.old && ln -s \(canary) \(lower)/swap && mv \(lower)/moved \(lower)/elsewhere")
        // Once the kernel looks again, the merged `swap` is that link, and a process resolving a path through it
        // reaches whatever the link names in its own view of the filesystem, as on any filesystem. So the
        // processes below see an empty directory where the canary is: whatever they reach comes from the daemon.
        let hidden = "unshare -m bash -c 'mount -t tmpfs none \(canary) && \"$@\"' --"
        for path in ["swap/secret", "swap/etc/secret", "swap/inner/file", "moved/inner/file", "moved/secret"] {
            XCTAssertFalse(Shell.run(["bash", "-c", "\(hidden) cat \(mount)/\(path)"]).output.contains("SECRET"), path)
        }
        // Changes that would copy the swapped directory up fail, and the daemon writes nothing outside the layers.
        for change in ["echo x >> \(mount)/swap/inner/file", "touch \(mount)/swap/new", "mkdir \(mount)/swap/inner/d",
                       "chmod 700 \(mount)/swap", "chmod -h 700 \(mount)/swap", "mv \(mount)/swap \(mount)/swap2",
                       "setfattr -h -n user.x -v 1 \(mount)/swap", "rm -rf \(mount)/moved"] {
            _ = Shell.run(["bash", "-c", "\(hidden) \(change)"])
        }
        XCTAssertFalse(Shell.run(["bash", "-c", "\(hidden) grep -r SECRET-CANARY \(mount)"]).output.contains("SECRET"))
        XCTAssertTrue(Mounts.isMounted(mount), "the mount stays up")
        XCTAssertEqual(canaryState(canary), before, "nothing outside the layers changed")
    }

    /// Markers with values that do not parse: an opaque xattr other than "y" does not make a directory opaque, a
    /// garbage origin or inode record is ignored, a garbage or overflowing nlink shows the real count, and a
    /// character device that is not 0/0 is a device, all as the kernel shows them.
    func testGarbageMarkerValuesReadAsInTheKernel() {
        let lower = scratch.sub("A"), upper = scratch.sub("U")
        Shell.bash("""
            mkdir -p \(lower) \(upper)
            for v in y n yes x Y; do mkdir -p \(lower)/o_$v \(upper)/o_$v; echo lower > \(lower)/o_$v/lowerfile
              setfattr -n trusted.overlay.opaque -v "$v" \(upper)/o_$v; done
            mkdir \(lower)/obin \(upper)/obin; echo l > \(lower)/obin/lowerfile; setfattr -n trusted.overlay.opaque -v 0x00 \(upper)/obin
            echo data > \(lower)/f; echo up > \(upper)/f; setfattr -n trusted.overlay.origin -v 0xdeadbeef \(upper)/f
            setfattr -n trusted.overlay.strata.ino -v 123abc \(upper)/f
            mkdir \(lower)/od \(upper)/od; echo x > \(lower)/od/lf; setfattr -n trusted.overlay.origin -v garbage \(upper)/od
            echo h > \(upper)/h1; ln \(upper)/h1 \(upper)/h2; setfattr -n trusted.overlay.nlink -v garbage \(upper)/h1
            setfattr -n trusted.overlay.nlink -v U+99999999999999999999 \(upper)/h2
            echo h > \(upper)/g1; ln \(upper)/g1 \(upper)/g2; setfattr -n trusted.overlay.nlink -v U-9223372036854775808 \(upper)/g1
            mknod \(upper)/dev13 c 1 3; echo x > \(lower)/dev13
            """)
        var views: [String] = []
        for kind in ["kernel", "strata"] {
            let work = scratch.sub("\(kind)-work"), mount = scratch.sub(kind)
            Shell.bash("mkdir -p \(work) \(mount)")
            let options = "lowerdir=\(lower),upperdir=\(upper),workdir=\(work)"
            let outcome = kind == "kernel" ? Mounts.kernelOverlay(options, at: mount) : Mounts.strata(options, at: mount)
            XCTAssertEqual(outcome.status, 0, outcome.error)
            views.append(Shell.bash("cd \(mount) && for d in o_* obin od; do echo \"$d: $(ls $d | tr '\\n' ' ')\"; done; cat f; "
                                    + "stat -c '%n %h %i %F %t:%T' h1 h2 g1 g2 f dev13"))
            XCTAssertTrue(Mounts.isMounted(mount))
            Mounts.unmount(mount)
        }
        XCTAssertEqual(views[1], views[0])
        XCTAssertTrue(views[1].contains("o_y: \n") && views[1].contains("o_n: lowerfile"), views[1])
    }

    /// `.wh.` markers of any type hide their name and are never followed (a link marker pointing at the canary,
    /// a directory marker); the opaque marker as a link still only marks.
    func testWhiteoutMarkersOfAnyTypeHideAndAreNeverFollowed() {
        let canary = makeCanary()
        let before = canaryState(canary)
        let lower = scratch.sub("A"), top = scratch.sub("B"), mount = scratch.sub("mnt")
        Shell.bash("""
            mkdir -p \(lower)/d \(top)/d \(mount); echo x > \(lower)/a; echo x > \(lower)/b; echo x > \(lower)/d/old
            ln -s \(canary)/secret \(top)/.wh.a; mkdir \(top)/.wh.b; ln -s \(canary) \(top)/d/.wh..wh..opq
            """)
        XCTAssertEqual(Mounts.strata("lowerdir=\(top):\(lower)", at: mount).status, 0)
        defer { Mounts.unmount(mount) }
        XCTAssertEqual(Shell.bash("cd \(mount) && ls -A . d"), ".:\nd\n\nd:\n")
        XCTAssertNotEqual(Shell.run(["cat", "\(mount)/.wh.a"]).status, 0)
        XCTAssertEqual(canaryState(canary), before)
    }

    /// Every byte value but '/' and NUL, in names a lower layer holds and names made through the mount:
    /// created, listed, stat'ed, renamed and deleted as on the kernel, and the upper layers end up alike.
    func testNamesOfEveryByteWorkAsInTheKernel() {
        var transcripts: [String] = [], uppers: [String] = []
        let script = Paths.fixtures + "/byte-names.py"
        for kind in ["kernel", "strata"] {
            let base = scratch.sub(kind)
            Shell.bash("mkdir -p \(base)/l \(base)/u \(base)/w \(base)/m && python3 \(script) prepare \(base)/l")
            let options = "lowerdir=\(base)/l,upperdir=\(base)/u,workdir=\(base)/w"
            let outcome = kind == "kernel" ? Mounts.kernelOverlay(options + ",redirect_dir=on,index=on", at: base + "/m")
                : Mounts.strata(options, at: base + "/m")
            XCTAssertEqual(outcome.status, 0, outcome.error)
            transcripts.append(Shell.bash("python3 \(script) exercise \(base)/m"))
            Mounts.unmount(base + "/m")
            uppers.append(Shell.bash("python3 \(script) tree \(base)/u"))
        }
        XCTAssertEqual(transcripts[1], transcripts[0])
        XCTAssertEqual(uppers[1], uppers[0])
        XCTAssertGreaterThan(transcripts[1].split(separator: "\n").filter { $0.hasSuffix(" ok") }.count, 1500)
        // A latin-1 name lists as itself: \xe9 is one byte, not U+FFFD.
        XCTAssertTrue(transcripts[1].contains("stat 6ce97a 100000"), String(transcripts[1].prefix(400)))
    }

    /// The inspection commands print names escaped for a terminal (as `ls -b` does) and give them exactly in JSON.
    func testInspectionCommandsEscapeNamesAndJSONGivesThemExactly() throws {
        let lower = scratch.sub("A")
        Shell.bash("mkdir -p \(lower)/dir && echo x > \"\(lower)/dir/$(printf 'lat\\351n')\" && echo y > \"\(lower)/dir/$(printf 'tab\\tname')\"")
        let listing = Shell.run([Paths.strata, "ls", "-o", "lowerdir=\(lower)", "dir"])
        XCTAssertEqual(listing.output, "0\tlat\\351n\t\n0\ttab\\011name\t\n", listing.error)
        let json = Shell.run([Paths.strata, "ls", "--json", "-o", "lowerdir=\(lower)", "dir"]).output
        let reports = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        XCTAssertEqual(reports.count, 2)
        XCTAssertEqual(reports[0]["path"] as? String, "dir/lat\\351n")
        XCTAssertEqual((reports[0]["pathBytes"] as? String).flatMap { Data(base64Encoded: $0) }, Data("dir/lat".utf8) + Data([0xE9]) + Data("n".utf8))
        XCTAssertEqual(reports[1]["path"] as? String, "dir/tab\tname", "valid UTF-8 comes out as itself")
        XCTAssertNil(reports[1]["pathBytes"])
        // Such a name can be asked about as the shell passes it (the bytes, not their UTF-8 repair).
        let which = Shell.run(["bash", "-c", "'\(Paths.strata)' which -o lowerdir=\(lower) $'dir/lat\\xe9n' $'dir/lat\\xe9'"])
        XCTAssertEqual(which.output, "/dir/lat\\351n\t0\tfile\n/dir/lat\\351\t-\tnot in any layer\n", which.error)
    }

    /// A daemon run by an unprivileged user reads the user-namespace markers of layers that user owns, and
    /// validates them the same way: an escaping redirect is refused, a valid one followed.
    func testRootlessDaemonValidatesUserMarkersTheSame() {
        let canary = makeCanary()
        let before = canaryState(canary)
        let base = scratch.sub("rootless")
        Shell.bash("""
            mkdir -p \(base)/A/real \(base)/B/esc \(base)/B/ok \(base)/mnt && echo hi > \(base)/A/real/file
            setfattr -n user.overlay.redirect -v /../../canary \(base)/B/esc; setfattr -n user.overlay.redirect -v /real \(base)/B/ok
            """)
        let rootless = Rootless(base, in: scratch)
        let user = rootless.user
        defer { rootless.finish(unmounting: "\(base)/mnt") }
        let mounted = Shell.run(["bash", "-c", "\(user) \(Paths.strata) -o lowerdir=\(base)/B:\(base)/A \(base)/mnt"], timeout: 30)
        XCTAssertEqual(mounted.status, 0, mounted.error)
        let seen = Shell.run(["bash", "-c", "\(user) ls \(base)/mnt/ok; \(user) ls \(base)/mnt/esc; \(user) cat \(base)/mnt/esc/secret"])
        XCTAssertEqual(seen.output, "file\n")
        XCTAssertTrue(seen.error.contains("mnt/esc': Permission denied"), seen.error)
        XCTAssertFalse(seen.output.contains("SECRET"))
        XCTAssertEqual(canaryState(canary), before)
    }

    /// Runs a fuzzer fixture with a fixed seed and a bounded count; it prints "COUNT ...: ..., 0 problems" when
    /// all went well.
    private func fuzz(_ fixture: String, count: Int, file: StaticString = #filePath, line: UInt = #line) {
        let work = scratch.sub(fixture)
        Shell.bash("mkdir -p \(work)")
        let outcome = Shell.run(["python3", Paths.fixtures + "/\(fixture).py", Paths.strata, work, "20261201", String(count)], timeout: 600)
        XCTAssertEqual(outcome.status, 0, outcome.output + outcome.error, file: file, line: line)
        XCTAssertTrue(outcome.output.hasPrefix("\(count) ") && outcome.output.contains(" 0 problems"), outcome.output, file: file, line: line)
    }

    /// Random layer tarballs through `strata unpack`: no crash, every refusal names its entry, nothing written
    /// outside the destination, no overlay-private attribute taken from a tarball.
    func testFuzzedTarballsNeverCrashUnpackOrEscape() {
        fuzz("fuzz-tars", count: 2500)
    }

    /// Random hostile layer stacks, mounted, walked, read and changed: no crash, the canary untouched.
    func testFuzzedLayerStacksNeverCrashTheMountOrReachTheCanary() {
        fuzz("fuzz-layers", count: 150)
    }
}
