import Foundation
import XCTest

/// `strata which`, `ls`, `layers`, `diff` and the `user.strata.layer` attribute on the generated stack (layers:
/// 0 = upper, 1 = l1, 2 = l2, 3 = l3), in both whiteout formats, on layer directories and on a live mount.
final class InspectionTests: XCTestCase {
    var scratch: Scratch!

    override func setUp() { scratch = Scratch() }
    override func tearDown() { scratch.remove() }

    private func strata(_ arguments: [String], in directory: String? = nil) -> Shell.Outcome {
        let command = ([Paths.strata] + arguments).map { "'\($0)'" }.joined(separator: " ")
        return Shell.run(["bash", "-c", (directory.map { "cd '\($0)' && " } ?? "") + command], timeout: 120)
    }

    private func layers(_ stack: String) -> String { "lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/l3,upperdir=\(stack)/upper" }

    func testWhichNamesTheServingLayerOrWhatHides() {
        for format in ["kernel", "files"] {
            let stack = scratch.makeStack(format, format: format)
            let marker = { (directory: String, name: String) in format == "kernel" ? "\(directory)/\(name)" : "\(directory)/.wh.\(name)" }
            let outcome = strata(["which", "-o", layers(stack), "etc/passwd", "etc/hostname", "/removed/file", "removed/dir",
                                  "opq1/old1", "opq3/old3", "merged", "bin/sh", "flip", "flop", "nothere"])
            XCTAssertEqual(outcome.status, 0, outcome.error)
            XCTAssertEqual(outcome.output, """
                /etc/passwd\t0\tfile, copied up, shadows layer 3
                /etc/hostname\t2\tfile, shadows layer 3
                /removed/file\t-\twhited out by layer 2 (\(marker("removed", "file"))), hides layer 3
                /removed/dir\t-\twhited out by layer 1 (\(marker("removed", "dir"))), hides layer 3
                /opq1/old1\t-\thidden by opaque directory opq1 in layer 2, hides layer 3
                /opq3/old3\t-\thidden by opaque directory opq3 in layer 1, hides layer 3
                /merged\t0,1,2,3\tdirectory, merged from 4 layers
                /bin/sh\t-\twhited out by layer 0 (\(marker("bin", "sh"))), hides layer 3
                /flip\t1\tdirectory, shadows layer 3
                /flop\t1\tfile, shadows layer 3
                /nothere\t-\tnot in any layer

                """, format)
            let json = strata(["which", "--json", "-o", layers(stack), "removed/file"]).output
            let reports = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]]
            XCTAssertEqual(reports?.first?["state"] as? String, "whited-out")
            XCTAssertEqual(reports?.first?["hiddenBy"] as? Int, 2)
        }
    }

    func testLsShowsEachEntrysLayerAndTheHiddenNames() {
        let stack = scratch.makeStack("stack")
        XCTAssertEqual(strata(["ls", "-o", layers(stack), "removed"]).output,
                       "3\tdir\t(whited out in layer 1)\n3\tfile\t(whited out in layer 2)\n3\tkept\t\n")
        XCTAssertEqual(strata(["ls", "-l", "-o", layers(stack), "etc"]).output,
                       "2\tfile\t0644\t7\thostname\t\n0\tfile\t0644\t32\tpasswd\tcopied up\n")
        let opaque = strata(["ls", "-o", layers(stack), "opq1"]).output
        XCTAssertEqual(opaque, "2\tnew1\t\n3\told1\t(behind opaque directory in layer 2)\n")
    }

    func testLayersCountsWhatEachLayerHoldsAndHides() throws {
        let stack = scratch.makeStack("stack", format: "files")
        let outcome = strata(["layers", "--json", "-o", layers(stack)])
        XCTAssertEqual(outcome.status, 0, outcome.error)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(outcome.output.utf8)) as? [String: Any])
        let summaries = try XCTUnwrap(report["layers"] as? [[String: Any]])
        XCTAssertEqual(summaries.map { $0["directory"] as? String }, ["upper", "l1", "l2", "l3"].map { "\(stack)/\($0)" })
        XCTAssertEqual(summaries.map { $0["whiteouts"] as? Int }, [1, 1, 44, 0])
        XCTAssertEqual(summaries.map { $0["opaqueDirectories"] as? Int }, [1, 1, 1, 0])
        for (index, layer) in ["upper", "l1", "l2", "l3"].enumerated() {
            let bytes = Shell.bash("find \(stack)/\(layer) -type f ! -name '.wh.*' -printf '%s\\n' | awk '{s+=$1} END {print s+0}'")
            XCTAssertEqual("\(summaries[index]["bytes"] as? Int ?? -1)\n", bytes, layer)
        }
        XCTAssertEqual(summaries[0]["shadowedBytes"] as? Int, 0)
        // l3's hidden bytes: the files overridden, whited out or behind opaque directories above it.
        let hidden = ["etc/passwd", "etc/hostname", "removed/file", "removed/dir/x", "opq1/old1", "opq2/old2", "opq3/old3",
                      "flip", "flop/inside"] + stride(from: 1, through: 300, by: 7).map { "big/entry-\($0)" }
        let expected = Shell.bash("cd \(stack)/l3 && stat -c %s \(hidden.joined(separator: " ")) | awk '{s+=$1} END {print s}'")
        XCTAssertEqual("\(summaries[3]["shadowedBytes"] as? Int ?? -1)\n", expected)
        XCTAssertTrue(strata(["layers", "-h", "-o", layers(stack)]).output.contains("\t10M\t"))
    }

    func testDiffListsTheUpperLayersChangesInBothFormats() {
        for format in ["kernel", "files"] {
            let stack = scratch.makeStack(format, format: format)
            XCTAssertEqual(strata(["diff", "-o", layers(stack)]).output, """
                C /bin
                D /bin/sh
                A /empty
                C /etc
                C /etc/passwd
                C /merged
                A /merged/d
                A /merged/d/file
                C /opq2
                A /opq2/new2

                """, format)
        }
    }

    /// On a live mount: the attribute answers (and cannot be listed, set or removed), and the commands find the
    /// mount's layers from any path in it, also after changes made through it (copy-up, rename).
    func testLiveMountAnswersProvenance() {
        let stack = scratch.makeStack("stack")
        let mnt = scratch.sub("mnt")
        Shell.bash("mkdir -p \(mnt)")
        XCTAssertEqual(Mounts.strata(layers(stack) + ",workdir=\(stack)/work", at: mnt).status, 0)
        defer { Mounts.unmount(mnt) }
        XCTAssertEqual(Shell.bash("getfattr --only-values -n user.strata.layer \(mnt)/etc/hostname"), "2 \(stack)/l2\n")
        XCTAssertEqual(Shell.bash("getfattr --only-values -n user.strata.layer \(mnt)/merged/a"), "3 \(stack)/l3\n")
        XCTAssertEqual(Shell.bash("getfattr -d -m - \(mnt)/etc/hostname \(mnt)/merged"), "")
        for command in ["setfattr -n user.strata.layer -v 1", "setfattr -x user.strata.layer"] {
            XCTAssertNotEqual(Shell.run(["bash", "-c", "\(command) \(mnt)/etc/hostname"]).status, 0, command)
        }
        Shell.bash("echo more >> \(mnt)/etc/hostname; mv \(mnt)/merged \(mnt)/merged-renamed")
        XCTAssertEqual(strata(["which", "etc/hostname", "merged-renamed", "merged"], in: mnt).output, """
            /etc/hostname\t0\tfile, copied up, shadows layer 2,3
            /merged-renamed\t0,1,2,3\tdirectory, merged from 4 layers, renamed from merged
            /merged\t-\twhited out by layer 0 (merged), hides layer 1,2,3

            """)
        XCTAssertTrue(strata(["diff", mnt]).output.contains("C /etc/hostname\n"))
        // Writing one name of a lower hard-linked file copies up every name.
        Shell.bash("echo changed >> \(mnt)/data/hard1")
        XCTAssertEqual(strata(["which", "data/hard2"], in: mnt).output, "/data/hard2\t0\tfile, copied up, shadows layer 3\n")
        let report = try? JSONSerialization.jsonObject(with: Data(strata(["layers", "--json", mnt]).output.utf8)) as? [String: Any]
        let summaries = report?["layers"] as? [[String: Any]]
        XCTAssertEqual(summaries?.first?["redirectedDirectories"] as? Int, 1)
        let outside = strata(["which", scratch.path])
        XCTAssertNotEqual(outside.status, 0)
        XCTAssertTrue(outside.error.contains(scratch.path), outside.error)
    }
}

extension InspectionTests {
    /// `strata stats` on a live mount: the requests its daemon answered, by opcode, in columns or JSON; the
    /// attribute that carries them is never listed.
    func testStatsCountsTheRequestsOfALiveMount() throws {
        let stack = scratch.makeStack("stack")
        let mnt = scratch.sub("mnt")
        Shell.bash("mkdir -p \(mnt)")
        XCTAssertEqual(Mounts.strata(layers(stack) + ",workdir=\(stack)/work", at: mnt).status, 0)
        defer { Mounts.unmount(mnt) }
        Shell.bash("ls -l \(mnt)/big >/dev/null; cat \(mnt)/etc/hostname >/dev/null; ls \(mnt)/nothere 2>/dev/null || true")
        let json = strata(["stats", "--json", mnt]).output
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], json)
        let requests = try XCTUnwrap(report["requests"] as? [[String: Any]])
        let calls = Dictionary(uniqueKeysWithValues: requests.compactMap { row in
            (row["opcode"] as? String).map { ($0, row["calls"] as? Int ?? 0) }
        })
        XCTAssertGreaterThan(calls["LOOKUP"] ?? 0, 0, json)
        XCTAssertGreaterThan((calls["READDIRPLUS"] ?? 0) + (calls["READDIR"] ?? 0), 0, json)
        XCTAssertGreaterThan(calls["READ"] ?? 0, 0, json)
        XCTAssertGreaterThan(report["nodes"] as? Int ?? 0, 300, "the 300 entries of big are held")
        let table = strata(["stats", mnt]).output.split(separator: "\n")
        XCTAssertTrue(table.contains { $0.hasPrefix("LOOKUP\t") }, table.joined(separator: "\n"))
        XCTAssertFalse(Shell.bash("getfattr -d -m - \(mnt)").contains("strata"))
        XCTAssertNotEqual(strata(["stats", scratch.path]).status, 0)
    }
}
