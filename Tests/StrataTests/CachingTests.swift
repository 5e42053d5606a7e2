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
}
