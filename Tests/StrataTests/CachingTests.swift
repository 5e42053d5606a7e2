import Foundation
import XCTest

/// What the kernel answers from its own caches once it has seen a tree, counted with `strata stats`: a second
/// walk lists no directory again, and stat-ing every file after a walk sends nothing at all.
final class CachingTests: XCTestCase {
    var scratch: Scratch!

    override func setUp() { scratch = Scratch() }
    override func tearDown() { scratch.remove() }

    /// Calls per opcode so far.
    private func requests(_ mnt: String) throws -> [String: Int] {
        let outcome = Shell.run([Paths.strata, "stats", "--json", mnt])
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(outcome.output.utf8)) as? [String: Any], outcome.error)
        let rows = try XCTUnwrap(report["requests"] as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: rows.compactMap { row in (row["opcode"] as? String).map { ($0, row["calls"] as? Int ?? 0) } })
    }

    /// The requests `body` caused, by opcode, leaving out GETXATTR (which `strata stats` itself sends) and
    /// STATFS (find and du ask each directory's filesystem type once).
    private func caused(_ mnt: String, _ body: () -> Void) throws -> [String: Int] {
        let before = try requests(mnt)
        body()
        var after = try requests(mnt)
        for (opcode, calls) in before { after[opcode, default: 0] -= calls }
        return after.filter { $0.value != 0 && $0.key != "GETXATTR" && $0.key != "STATFS" }
    }

    func testWarmWalksAndStatsSendNoRequests() throws {
        let stack = scratch.makeStack("stack")
        let mnt = scratch.sub("mnt")
        Shell.bash("mkdir -p \(mnt) && mkdir -p \(stack)/l3/wide && for i in $(seq 1 500); do echo $i > \(stack)/l3/wide/file-$i; done")
        XCTAssertEqual(Mounts.strata("lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(stack)/upper,workdir=\(stack)/work", at: mnt).status, 0)
        defer { Mounts.unmount(mnt) }
        let cold = try caused(mnt) { Shell.bash("find \(mnt) >/dev/null") }
        XCTAssertNil(cold["LOOKUP"], "readdirplus gives every entry with its listing: \(cold)")
        XCTAssertNil(cold["RELEASEDIR"], "no directory handles: \(cold)")
        XCTAssertLessThanOrEqual(cold["OPENDIR"] ?? 0, 1, "opendir is answered ENOSYS once: \(cold)")
        let warm = try caused(mnt) { Shell.bash("find \(mnt) >/dev/null") }
        XCTAssertEqual(warm.filter { $0.key != "GETATTR" }, [:], "a second walk lists nothing again: \(warm)")
        // The kernel forgets a directory's atime after each listing, so find's fstat of each one still asks.
        XCTAssertLessThanOrEqual(warm["GETATTR"] ?? 0, 40, "\(warm)")
        let stats = try caused(mnt) { Shell.bash("find \(mnt) -size +100 >/dev/null; du -s \(mnt) >/dev/null") }
        XCTAssertEqual(stats, [:], "stat-ing every file after a walk is answered by the kernel: \(stats)")
    }

    /// With no upper layer nothing is copied up, so the kernel opens files without asking: reading a file
    /// sends no OPEN or RELEASE, reading it again sends nothing at all, and the daemon keeps no more descriptors than
    /// its bound (a quarter of its descriptor limit, here 256 / 4) however many files are read.
    func testReadOnlyMountReadsFilesWithoutOpening() throws {
        let stack = scratch.makeStack("stack")
        let mnt = scratch.sub("mnt")
        Shell.bash("mkdir -p \(mnt) \(stack)/l3/wide && for i in $(seq 1 300); do echo \"file $i\" > \(stack)/l3/wide/file-$i; done")
        let mounted = Shell.run(["bash", "-c", "ulimit -n 256 && exec \(Paths.strata) -o lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3 \(mnt)"],
                                timeout: 30)
        XCTAssertEqual(mounted.status, 0, mounted.error)
        defer { Mounts.unmount(mnt) }
        let expected = Shell.bash("cd \(stack)/l3/wide && cat $(ls | sort -V) | md5sum")
        var shown = ""
        let cold = try caused(mnt) { shown = Shell.bash("cd \(mnt)/wide && cat $(ls | sort -V) | md5sum") }
        XCTAssertEqual(shown, expected, "every file reads as in its layer")
        XCTAssertNil(cold["RELEASE"], "\(cold)")
        XCTAssertLessThanOrEqual(cold["OPEN"] ?? 0, 1, "open is answered ENOSYS once: \(cold)")
        XCTAssertGreaterThanOrEqual(cold["READ"] ?? 0, 300, "\(cold)")
        let warm = try caused(mnt) { shown = Shell.bash("cd \(mnt)/wide && cat $(ls | sort -V) | md5sum") }
        XCTAssertEqual(shown, expected)
        // Nor a GETATTR: without the writeback cache (nothing to write) a close leaves the attributes valid.
        XCTAssertEqual(warm, [:], "the kernel kept every file's pages and attributes: \(warm)")
        let pid = Shell.bash("pgrep -n -f 'strata -o .* \(mnt)$'").trimmingCharacters(in: .whitespacesAndNewlines)
        let descriptors = Int(Shell.bash("ls /proc/\(pid)/fd | wc -l").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        XCTAssertGreaterThan(descriptors, 0)
        XCTAssertLessThan(descriptors, 64 + 40, "the kept descriptors stay within their bound")
        XCTAssertEqual(Shell.bash("head -c 6 \(mnt)/wide/file-7"), "file 7", "a file read again after its descriptor went")
    }
}
