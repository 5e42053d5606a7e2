import Foundation
import Glibc
import XCTest

/// Directories and trees big enough to expose per-inode descriptors, unstable offsets and unbounded memory.
final class ScaleTests: XCTestCase {
    var scratch: Scratch!

    override func setUp() { scratch = Scratch() }
    override func tearDown() { scratch.remove() }

    private func mount(_ options: String, softFileLimit: Int? = nil) -> String {
        let mnt = scratch.sub("mnt")
        try? FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let limit = softFileLimit.map { "ulimit -Sn \($0); " } ?? ""
        Shell.bash("\(limit)exec '\(Paths.strata)' -o \(options) \(mnt)", timeout: 60)
        XCTAssertTrue(Mounts.isMounted(mnt))
        return mnt
    }

    /// 100k merged entries read in pieces: no duplicates, no markers, and telldir/seekdir positions hold.
    func testHundredThousandEntryDirectorySupportsSeekdirAndTelldir() throws {
        Shell.bash("""
            cd \(scratch.path) && mkdir -p l1/big l2/big upper/big work
            python3 - <<'PY'
            import os
            for i in range(60000): open(f"l2/big/lower-{i}", "w").close()
            for i in range(40000): open(f"l1/big/middle-{i}", "w").close()
            for i in range(0, 60000, 6): open(f"l1/big/.wh.lower-{i}", "w").close()
            for i in range(10000): open(f"upper/big/upper-{i}", "w").close()
            PY
            """)
        let expected = 60000 - 10000 + 40000 + 10000
        let mnt = mount("lowerdir=\(scratch.sub("l1")):\(scratch.sub("l2")),upperdir=\(scratch.sub("upper")),workdir=\(scratch.sub("work"))")
        defer { Mounts.unmount(mnt) }

        guard let directory = opendir(mnt + "/big") else { return XCTFail("opendir: \(errno)") }
        defer { closedir(directory) }
        func next() -> String? {
            guard let entry = readdir(directory) else { return nil }
            return withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        }
        var names: [String] = []
        var marks: [(position: Int, name: String)] = []
        while true {
            let position = telldir(directory)
            guard let name = next() else { break }
            if names.count % 25000 == 1 { marks.append((position, name)) }
            names.append(name)
        }
        let real = names.filter { $0 != "." && $0 != ".." }
        XCTAssertEqual(real.count, expected)
        XCTAssertEqual(Set(real).count, real.count, "duplicate names")
        XCTAssertFalse(real.contains { $0.hasPrefix(".wh.") || $0 == "lower-0" || $0 == "lower-6" })
        for mark in marks.reversed() {
            seekdir(directory, mark.position)
            XCTAssertEqual(next(), mark.name, "seekdir to a telldir position")
        }
        rewinddir(directory)
        var again: [String] = []
        while let name = next() { again.append(name) }
        XCTAssertEqual(again, names, "a second full read differs")
    }

    /// 200k entries walked with a soft limit of 1024 descriptors: nothing is held open per inode.
    func testFindOverTwoHundredThousandEntriesNeedsNoDescriptorPerInode() throws {
        Shell.bash("""
            cd \(scratch.path) && mkdir -p l1 l2 upper work
            python3 - <<'PY'
            import os
            for layer in ("l1", "l2"):
                for d in range(100):
                    os.makedirs(f"{layer}/d{d}", exist_ok=True)
                    for f in range(1000): open(f"{layer}/d{d}/{layer}-{f}", "w").close()
            PY
            """, timeout: 600)
        let mnt = mount("lowerdir=\(scratch.sub("l1")):\(scratch.sub("l2")),upperdir=\(scratch.sub("upper")),workdir=\(scratch.sub("work"))",
                        softFileLimit: 1024)
        defer { Mounts.unmount(mnt) }
        // -size makes find stat every entry, so every one of them becomes a node the daemon has to track.
        let outcome = Shell.run(["bash", "-c", "find \(mnt) -size -1 | wc -l"], timeout: 600)
        XCTAssertEqual(outcome.error, "")
        XCTAssertEqual(outcome.output.trimmingCharacters(in: .whitespacesAndNewlines), String(200_000))
        let status = Shell.bash("cat /proc/$(pgrep -f 'strata -o .* \(mnt)$')/status")
        let peak = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }?.split(separator: " ").dropFirst().first
        XCTAssertLessThan(Int(peak ?? "") ?? .max, 256 * 1024, "daemon peak memory in kB after 200k lookups")
    }
}
