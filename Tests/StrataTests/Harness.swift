import Foundation
import XCTest

/// Runs programs for the tests, always under `timeout`, so a stuck mount fails a test instead of hanging it.
enum Shell {
    struct Outcome {
        let status: Int32
        let output: String
        let error: String
    }

    @discardableResult
    static func run(_ arguments: [String], timeout: Int = 120, environment: [String: String]? = nil) -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["-k", "5", String(timeout)] + arguments
        if let environment { process.environment = environment }
        // stderr goes to a file, so a chatty child never blocks on a full pipe while stdout is drained.
        let errorPath = NSTemporaryDirectory() + "strata-stderr-" + UUID().uuidString
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errorPath) }
        let output = Pipe()
        let error = FileHandle(forWritingAtPath: errorPath)!
        process.standardOutput = output
        process.standardError = error
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return Outcome(status: 127, output: "", error: "\(error)") }
        try? error.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let err = FileManager.default.contents(atPath: errorPath) ?? Data()
        return Outcome(status: process.terminationStatus, output: String(decoding: out, as: UTF8.self),
                       error: String(decoding: err, as: UTF8.self))
    }

    /// Runs a bash script; fails the test when it exits non-zero.
    @discardableResult
    static func bash(_ script: String, timeout: Int = 300, file: StaticString = #filePath, line: UInt = #line) -> String {
        let outcome = run(["bash", "-euo", "pipefail", "-c", script], timeout: timeout)
        XCTAssertEqual(outcome.status, 0, "script failed: \(script)\n\(outcome.error)", file: file, line: line)
        return outcome.output
    }
}

enum Paths {
    /// The `strata` binary under test: $STRATA_BINARY (scripts/test.sh points it at the release build), else
    /// the one built beside the test bundle.
    static let strata: String = {
        if let binary = ProcessInfo.processInfo.environment["STRATA_BINARY"], !binary.isEmpty { return binary }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundle, bundle.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("strata").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/strata").path
    }()

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
}

/// A unique scratch directory; removing it first unmounts whatever a test left mounted below it.
final class Scratch {
    let path: String

    init(_ name: String = "strata-test") {
        var template = Array("/tmp/\(name).XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    func sub(_ relative: String) -> String { path + "/" + relative }

    func remove() {
        for mountpoint in Mounts.all().filter({ $0.hasPrefix(path + "/") }).reversed() {
            Mounts.unmount(mountpoint)
        }
        Shell.run(["rm", "-rf", path])
    }

    /// Builds the generated layer stack (see Fixtures/make-stack.sh) under `name`.
    func makeStack(_ name: String, format: String = "kernel") -> String {
        let root = sub(name)
        Shell.bash("'\(Paths.fixtures)/make-stack.sh' '\(root)' \(format)")
        return root
    }
}

enum Mounts {
    static func all() -> [String] {
        let table = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        return table.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 1 ? fields[1].replacingOccurrences(of: "\\040", with: " ") : nil
        }
    }

    static func isMounted(_ path: String) -> Bool { all().contains(path) }

    static func options(_ path: String) -> [String] {
        let table = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 3, fields[1] == path { return fields[3].split(separator: ",").map(String.init) }
        }
        return []
    }

    /// Unmounts FUSE politely, anything else (or a stuck FUSE mount) lazily.
    static func unmount(_ path: String) {
        if Shell.run(["fusermount3", "-u", path], timeout: 15).status != 0 {
            Shell.run(["umount", "-l", path], timeout: 15)
        }
    }

    /// Mounts with `strata -o OPTIONS MOUNTPOINT` (daemonized); the outcome says whether it went live.
    @discardableResult
    static func strata(_ options: String, at mountpoint: String, extra: [String] = []) -> Shell.Outcome {
        Shell.run([Paths.strata, "-o", options] + extra + [mountpoint], timeout: 30)
    }

    static func kernelOverlay(_ options: String, at mountpoint: String) -> Shell.Outcome {
        Shell.run(["mount", "-t", "overlay", "overlay", "-o", options, mountpoint], timeout: 30)
    }
}

/// A daemon run as nobody, as rootless podman runs it: `prepare` gives a directory to nobody and opens
/// /dev/fuse to it (libfuse opens it itself; this machine keeps it root-only), `finish` undoes that.
struct Rootless {
    /// The command prefix that runs a command as nobody.
    let user = "setpriv --reuid=65534 --regid=65534 --clear-groups"
    private let fuseMode: String

    init(_ directory: String, in scratch: Scratch) {
        Shell.bash("chown -R 65534:65534 \(directory) && chmod 755 \(scratch.path)")
        fuseMode = Shell.bash("stat -c %a /dev/fuse").trimmingCharacters(in: .whitespacesAndNewlines)
        Shell.bash("chmod 666 /dev/fuse")
    }

    func finish(unmounting mountpoint: String) {
        Shell.run(["bash", "-c", "\(user) fusermount3 -u \(mountpoint)"], timeout: 15)
        Shell.bash("chmod \(fuseMode) /dev/fuse")
    }
}

/// Polls `condition` every `interval` seconds until it holds or `seconds` have passed.
func waitUntil(_ seconds: Double, interval: Double = 0.05, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(useconds_t(interval * 1_000_000))
    }
    return condition()
}

/// What `snapshot.py` reports for a tree: one line per path with every stat field users see.
/// `stableTimes` drops the times a test run set itself, which differ from run to run.
func snapshot(_ root: String, inodes: Bool = true, stableTimes: Bool = false,
              file: StaticString = #filePath, line: UInt = #line) -> [String: [String: Any]] {
    let arguments = ["python3", Paths.fixtures + "/snapshot.py", root] + (inodes ? [] : ["--no-ino"])
        + (stableTimes ? ["--stable-times"] : [])
    let outcome = Shell.run(arguments, timeout: 300)
    XCTAssertEqual(outcome.status, 0, outcome.error, file: file, line: line)
    var view: [String: [String: Any]] = [:]
    for entry in outcome.output.split(separator: "\n") {
        guard var record = try? JSONSerialization.jsonObject(with: Data(entry.utf8)) as? [String: Any],
              let path = record.removeValue(forKey: "path") as? String else { continue }
        view[path] = record
    }
    return view
}

/// Asserts two views are equal, listing every differing path (the first 20) rather than one dump.
func assertSameView(_ expected: [String: [String: Any]], _ actual: [String: [String: Any]], _ message: String,
                    file: StaticString = #filePath, line: UInt = #line) {
    var differences: [String] = []
    for path in Set(expected.keys).union(actual.keys).sorted() {
        let left = expected[path].map { NSDictionary(dictionary: $0) }
        let right = actual[path].map { NSDictionary(dictionary: $0) }
        if left != right {
            differences.append("\(path): expected \(expected[path].map { "\($0)" } ?? "absent"), got \(actual[path].map { "\($0)" } ?? "absent")")
        }
    }
    XCTAssertTrue(differences.isEmpty, "\(message): \(differences.count) paths differ\n"
                  + differences.prefix(20).joined(separator: "\n"), file: file, line: line)
    XCTAssertFalse(expected.isEmpty, "\(message): empty view", file: file, line: line)
}
