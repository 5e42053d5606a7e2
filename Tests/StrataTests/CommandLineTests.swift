import Foundation
import XCTest

/// The fuse-overlayfs-compatible command line: what it accepts, what it refuses, and how a mount ends.
final class CommandLineTests: XCTestCase {
    var scratch: Scratch!
    var stack: String!
    var layers: String { "lowerdir=\(stack!)/l1:\(stack!)/l2:\(stack!)/l3" }
    var writable: String { layers + ",upperdir=\(stack!)/upper,workdir=\(stack!)/work" }

    override func setUp() {
        scratch = Scratch()
        stack = scratch.makeStack("stack")
    }

    override func tearDown() { scratch.remove() }

    private func mountpoint(_ name: String = "mnt") -> String {
        let path = scratch.sub(name)
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Everything under the scratch directory with sizes and times, to show that a refusal changed nothing.
    private func diskState() -> String {
        Shell.bash("find \(scratch.path) -printf '%p %y %s %T@ %m\\n' | sort")
    }

    private func assertRefused(_ options: String, at mountpoint: String, mentions expected: [String],
                               file: StaticString = #filePath, line: UInt = #line) {
        let before = diskState()
        let outcome = Mounts.strata(options, at: mountpoint)
        XCTAssertNotEqual(outcome.status, 0, "accepted: \(options)", file: file, line: line)
        for text in expected {
            XCTAssertTrue(outcome.error.contains(text), "error for \(options) does not name \(text): \(outcome.error)",
                          file: file, line: line)
        }
        XCTAssertFalse(Mounts.isMounted(mountpoint), "mounted after a refusal", file: file, line: line)
        XCTAssertEqual(before, diskState(), "a refusal changed the disk", file: file, line: line)
    }

    func testRefusesBadLayersWithTheirPathsAndChangesNothing() {
        let mnt = mountpoint()
        Shell.bash("echo x > \(scratch.sub("plain-file")); mkdir -p \(stack!)/upper/inner-work \(stack!)/work/inner-upper")
        assertRefused("lowerdir=\(scratch.sub("missing")):\(stack!)/l1", at: mnt,
                      mentions: ["lowerdir", scratch.sub("missing"), "No such file or directory"])
        assertRefused("lowerdir=\(scratch.sub("plain-file"))", at: mnt, mentions: [scratch.sub("plain-file"), "not a directory"])
        assertRefused("upperdir=\(stack!)/upper", at: mnt, mentions: ["lowerdir"])
        assertRefused(layers + ",upperdir=\(stack!)/upper", at: mnt, mentions: ["upperdir", "workdir"])
        assertRefused(layers + ",workdir=\(stack!)/work", at: mnt, mentions: ["workdir", "upperdir"])
        assertRefused(layers + ",upperdir=\(stack!)/upper,workdir=\(stack!)/upper/inner-work", at: mnt,
                      mentions: ["\(stack!)/upper/inner-work", "workdir"])
        assertRefused(layers + ",upperdir=\(stack!)/work/inner-upper,workdir=\(stack!)/work", at: mnt,
                      mentions: ["\(stack!)/work"])
        assertRefused(layers + ",upperdir=\(stack!)/l1,workdir=\(stack!)/work", at: mnt, mentions: ["\(stack!)/l1"])
        assertRefused(writable, at: scratch.sub("no-such-mountpoint"),
                      mentions: ["mountpoint", scratch.sub("no-such-mountpoint"), "No such file or directory"])
    }

    func testRefusesWorkdirOnAnotherFilesystem() {
        let tmpfs = mountpoint("tmpfs")
        Shell.bash("mount -t tmpfs tmpfs \(tmpfs) && mkdir \(tmpfs)/work")
        defer { Mounts.unmount(tmpfs) }
        assertRefused(layers + ",upperdir=\(stack!)/upper,workdir=\(tmpfs)/work", at: mountpoint(),
                      mentions: ["\(tmpfs)/work", "same filesystem"])
    }

    func testRefusesAMountpointInsideALayerAndALayerInsideTheMountpoint() {
        Shell.bash("mkdir -p \(stack!)/l2/inside \(scratch.sub("mnt/layer"))")
        assertRefused(writable, at: "\(stack!)/l2/inside", mentions: ["\(stack!)/l2/inside", "\(stack!)/l2"])
        let mnt = mountpoint()
        assertRefused("lowerdir=\(mnt)/layer:\(stack!)/l1", at: mnt, mentions: ["\(mnt)/layer", "mountpoint"])
    }

    func testEmptyOptionsAreAcceptedAndAnUnknownOneWarnsOnce() {
        let mnt = mountpoint()
        let outcome = Mounts.strata(",," + writable + ",,no_such_option=1,", at: mnt)
        XCTAssertEqual(outcome.status, 0, outcome.error)
        defer { Mounts.unmount(mnt) }
        XCTAssertEqual(outcome.error.split(separator: "\n").filter { $0.contains("no_such_option") }.count, 1, outcome.error)
        XCTAssertEqual(Shell.bash("cat \(mnt)/etc/hostname"), "middle\n")
    }

    /// libfuse's spellings: the option list glued to `-o`, options after the mountpoint, several `-o` flags.
    func testOptionSpellingsOfLibfuse() {
        for (index, arguments) in [["-o" + writable], ["-o", layers, "-o", "upperdir=\(stack!)/upper,workdir=\(stack!)/work"]]
            .enumerated() {
            let mnt = mountpoint("spelling\(index)")
            let outcome = Shell.run([Paths.strata, mnt] + arguments, timeout: 30)
            XCTAssertEqual(outcome.status, 0, "\(arguments): \(outcome.error)")
            XCTAssertEqual(Shell.bash("cat \(mnt)/etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n")
            Mounts.unmount(mnt)
        }
    }

    func testSymlinkedLayersResolveOnceAndEscapedColonsWork() {
        Shell.bash("""
            mkdir -p \(scratch.sub("graph/l")) '\(scratch.sub("odd:name"))'
            echo colon > '\(scratch.sub("odd:name"))/colon-file'
            ln -s ../../stack/l1 \(scratch.sub("graph/l/one"))
            ln -s ../../stack/l2 \(scratch.sub("graph/l/two"))
            """)
        let mnt = mountpoint()
        let escaped = scratch.sub("odd\\:name")
        // podman runs the mount program from its graph root with relative `l/ID` links.
        let outcome = Shell.run(["bash", "-c", "cd \(scratch.sub("graph")) && '\(Paths.strata)' -o "
                                 + "lowerdir='\(escaped)':l/one:l/two:\(stack!)/l3 \(mnt)"], timeout: 30)
        XCTAssertEqual(outcome.status, 0, outcome.error)
        defer { Mounts.unmount(mnt) }
        Shell.bash("ln -sfn ../../stack/l3 \(scratch.sub("graph/l/one"))")
        XCTAssertEqual(Shell.bash("cat \(mnt)/colon-file \(mnt)/flip/now-a-dir"), "colon\ndir\n")
    }

    func testRootMountsAllowOtherUsersWithPermissionChecks() {
        let mnt = mountpoint()
        XCTAssertEqual(Mounts.strata(writable, at: mnt).status, 0)
        defer { Mounts.unmount(mnt) }
        let options = Mounts.options(mnt)
        XCTAssertTrue(options.contains("allow_other"), "\(options)")
        XCTAssertTrue(options.contains("default_permissions"), "\(options)")
        XCTAssertFalse(options.contains("nosuid") || options.contains("nodev"), "setuid programs must work: \(options)")
        Shell.bash("chmod 755 \(scratch.path)")
        XCTAssertEqual(Shell.bash("runuser -u nobody -- cat \(mnt)/etc/hostname"), "middle\n")
        let denied = Shell.run(["runuser", "-u", "nobody", "--", "cat", mnt + "/perms/owned"])
        XCTAssertTrue(denied.error.contains("Permission denied"), denied.error)
    }

    func testVersionAndHelp() {
        for flag in ["-V", "--version"] {
            let outcome = Shell.run([Paths.strata, flag])
            XCTAssertEqual(outcome.status, 0)
            XCTAssertTrue(outcome.output.hasPrefix("strata: version "), outcome.output)
        }
        for flag in ["-h", "--help"] {
            let outcome = Shell.run([Paths.strata, flag])
            XCTAssertEqual(outcome.status, 0)
            for word in ["lowerdir", "upperdir", "workdir", "-f", "-d", "fusermount3 -u", "explore", "check"] {
                XCTAssertTrue(outcome.output.contains(word), "help lacks \(word)")
            }
        }
        let options = Shell.run([Paths.strata, "help", "mount"]).output
        for option in ["lowerdir=TOP:...:BOTTOM", "upperdir=DIR", "workdir=DIR", "metacopy=on|off", "uidmapping=", "noacl"] {
            XCTAssertTrue(options.contains(option), "mount help lacks \(option)")
        }
    }

    /// The man page argument-parser's plugin writes (scripts/test.sh and scripts/example.sh run it): every command,
    /// and the mount options as a list.
    func testManPage() throws {
        let page = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/plugins/GenerateManual/outputs/StrataCLI/strata.1").path
        let text = try XCTUnwrap(try? String(contentsOfFile: page, encoding: .utf8), "no man page at \(page): run swift package generate-manual")
        for word in ["explore", "check", "lowestEfficiency", "lowerdir=TOP:...:BOTTOM", "metacopy=on|off", "fusermount3 -u"] {
            XCTAssertTrue(text.contains(word), "the man page lacks \(word)")
        }
        let rendered = Shell.run(["bash", "-c", "MANWIDTH=80 man -l '\(page)' | col -b"])
        XCTAssertEqual(rendered.status, 0, rendered.error)
        XCTAssertTrue(rendered.output.contains("STRATA(1)"), rendered.output)
    }

    /// Every command's help at any terminal width: a name or label starts a line at its indent, and every
    /// description (of an option, a mount option, a command) starts and wraps in the one column argument-parser
    /// keeps for it; nothing is re-wrapped into another column mid-line.
    func testHelpColumnsStayAlignedAtAnyWidth() {
        let commands = ["", "mount", "which", "ls", "layers", "diff", "explore", "check", "stats", "refresh", "commit", "import", "unpack"]
        for command in commands {
            for width in [40, 60, 80, 132, 250] {
                let arguments = command.isEmpty ? ["--help"] : ["help", command]
                let outcome = Shell.run([Paths.strata] + arguments, environment: ["COLUMNS": String(width), "PATH": "/usr/bin:/bin"])
                XCTAssertEqual(outcome.status, 0, outcome.error)
                var inTable = false
                for line in outcome.output.split(separator: "\n", omittingEmptySubsequences: false) {
                    if ["ARGUMENTS:", "OPTIONS:", "SUBCOMMANDS:"].contains(line) { inTable = true; continue }
                    if line.isEmpty || !line.hasPrefix(" ") && line.hasSuffix(":") { inTable = line.isEmpty ? inTable : false; continue }
                    let indent = line.prefix { $0 == " " }.count
                    guard inTable else {
                        // Prose (the overview, a discussion) and the usage lines: no table squeezed into them.
                        XCTAssertTrue(indent == 0 || line.hasPrefix("       strata ") || line.hasPrefix("  See "),
                                      "strata \(command) at \(width) columns: \(line.debugDescription)")
                        continue
                    }
                    XCTAssertTrue([2, 8, 26, 28].contains(indent), "strata \(command) at \(width) columns: \(line.debugDescription)")
                    // A label with its description on the same line: the description starts in its column.
                    if indent == 2 || indent == 8, line.count > 26, line.dropFirst(indent).contains("  ") {
                        let characters = Array(line)
                        XCTAssertTrue(characters[25] == " " && characters[26] != " ",
                                      "strata \(command) at \(width) columns: \(line.debugDescription)")
                    }
                }
            }
        }
    }

    // MARK: The daemon

    func testMountsAreServedByTheDaemonWithoutTheCommandLinesLibraries() {
        let mnt = mountpoint("lean")
        XCTAssertEqual(Mounts.strata(writable, at: mnt).status, 0)
        defer { Mounts.unmount(mnt) }
        XCTAssertFalse(Shell.bash("ls \(mnt)").isEmpty, "the mount shows nothing")
        guard let pid = daemon(servingMountpoint: mnt) else { return XCTFail("no daemon found") }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) ?? ""
        XCTAssertTrue(executable.hasSuffix("/strata-mountd"), "served by \(executable)")
        let maps = (try? String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)) ?? ""
        for library in ["libFoundation", "libswiftCore", "ICU"] {
            XCTAssertFalse(maps.contains(library), "the daemon maps \(library)")
        }
    }

    func testStrataWithoutItsDaemonServesTheMountItself() {
        let alone = scratch.sub("bin/strata")
        Shell.bash("mkdir -p \(scratch.sub("bin")) && cp \(Paths.strata) \(alone)")
        let mnt = mountpoint("alone")
        XCTAssertEqual(Shell.run([alone, "-o", writable, mnt], timeout: 30).status, 0)
        defer { Mounts.unmount(mnt) }
        XCTAssertTrue(Mounts.isMounted(mnt))
        XCTAssertFalse(Shell.bash("ls \(mnt)").isEmpty, "the mount shows nothing")
        let stats = Shell.run([alone, "stats", mnt])
        XCTAssertEqual(stats.status, 0, stats.error)
        XCTAssertFalse(stats.output.isEmpty, "no statistics")
    }

    func testTheDaemonIsNotForStartingByHand() {
        let daemon = (Paths.strata as NSString).deletingLastPathComponent + "/strata-mountd"
        for arguments in [[], ["-x", mountpoint()]] {
            let outcome = Shell.run([daemon] + arguments)
            XCTAssertEqual(outcome.status, 2, "strata-mountd \(arguments)")
            XCTAssertTrue(outcome.error.contains("is started by strata"), outcome.error)
        }
    }

    // MARK: Ending a mount

    private func daemon(servingMountpoint mountpoint: String) -> pid_t? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = pid_t(entry),
                  let raw = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let arguments = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if arguments.first?.hasSuffix("/strata") == true, arguments.last == mountpoint { return pid }
        }
        return nil
    }

    private func assertDaemonEnds(_ how: String, stop: (String, pid_t) -> Void) {
        let mnt = mountpoint(how)
        XCTAssertEqual(Mounts.strata(writable, at: mnt).status, 0)
        XCTAssertTrue(Mounts.isMounted(mnt), "\(how): returned before the mount was live")
        guard let pid = daemon(servingMountpoint: mnt) else { return XCTFail("\(how): no daemon found") }
        stop(mnt, pid)
        XCTAssertTrue(waitUntil(10) { !Mounts.isMounted(mnt) }, "\(how): still mounted")
        XCTAssertTrue(waitUntil(10) { kill(pid, 0) != 0 || self.isZombie(pid) }, "\(how): daemon still running")
    }

    private func isZombie(_ pid: pid_t) -> Bool {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        return status.contains(") Z ")
    }

    func testFusermountUnmountEndsTheDaemon() {
        assertDaemonEnds("fusermount") { mnt, _ in Shell.bash("fusermount3 -u \(mnt)", timeout: 15) }
    }

    func testSigtermEndsTheDaemon() {
        assertDaemonEnds("sigterm") { _, pid in kill(pid, SIGTERM) }
    }

    func testSigintEndsTheDaemon() {
        assertDaemonEnds("sigint") { _, pid in kill(pid, SIGINT) }
    }

    /// In the foreground, started the way a test harness or supervisor starts it (SIGTERM may arrive blocked).
    func testForegroundMountEndsOnSigtermWithStatusZero() throws {
        let mnt = mountpoint()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Paths.strata)
        process.arguments = ["-f", "-o", writable, mnt]
        process.standardInput = FileHandle.nullDevice
        try process.run()
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            Mounts.unmount(mnt)
        }
        XCTAssertTrue(waitUntil(20) { Mounts.isMounted(mnt) }, "never mounted")
        XCTAssertEqual(Shell.bash("cat \(mnt)/etc/hostname"), "middle\n")
        process.terminate()
        XCTAssertTrue(waitUntil(10) { !process.isRunning }, "still running after SIGTERM")
        XCTAssertFalse(Mounts.isMounted(mnt))
        if !process.isRunning { XCTAssertEqual(process.terminationStatus, 0) }
    }
}
