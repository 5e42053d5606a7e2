import Foundation
import XCTest

/// dive's efficiency figures in `strata layers` and its CI rules in `strata check`, on small stacks whose figures
/// are worked out by hand: layer directories, and an OCI image read from its tarballs (Fixtures/efficiency-image.py).
final class EfficiencyTests: XCTestCase {
    var scratch: Scratch!

    override func setUp() {
        scratch = Scratch()
        chmod(scratch.path, 0o755)
    }

    override func tearDown() { scratch.remove() }

    private func strata(_ arguments: [String], in directory: String? = nil, as user: String? = nil) -> Shell.Outcome {
        var command = ([Paths.strata] + arguments).map { "'\($0)'" }.joined(separator: " ")
        if let user { command = "setpriv --reuid=\(user) --regid=\(user) --clear-groups " + command }
        return Shell.run(["bash", "-c", (directory.map { "cd '\($0)' && " } ?? "") + command], timeout: 120)
    }

    private func efficiency(_ arguments: [String]) throws -> [String: Any] {
        let outcome = strata(["layers", "--json"] + arguments)
        XCTAssertEqual(outcome.status, 0, outcome.error)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(outcome.output.utf8)) as? [String: Any])
        return try XCTUnwrap(report["efficiency"] as? [String: Any])
    }

    func testPathsInOneLayerOnlyAreFullyEfficient() throws {
        let base = scratch.sub("base"), top = scratch.sub("top")
        Shell.bash("mkdir -p \(base)/etc \(top)/srv && head -c 5000 /dev/zero > \(base)/etc/a && head -c 300 /dev/zero > \(top)/srv/b")
        let figures = try efficiency(["-o", "lowerdir=\(top):\(base)"])
        XCTAssertEqual(figures["efficiency"] as? Double, 1)
        XCTAssertEqual(figures["wastedBytes"] as? Int, 0)
        XCTAssertEqual(figures["userWastedPercent"] as? Double, 0)
        XCTAssertEqual(figures["userBytes"] as? Int, 300)
        XCTAssertEqual((figures["inefficientFiles"] as? [Any])?.count, 0)
    }

    func testACopyUpCarriesItsBytesAgainAndAMetadataCopyNone() throws {
        let base = scratch.sub("base"), chmodded = scratch.sub("chmod"), metacopy = scratch.sub("metacopy")
        let megabytes10 = 10 << 20
        Shell.bash("""
            mkdir -p \(base) \(chmodded) \(metacopy)
            head -c \(megabytes10) /dev/zero > \(base)/big; echo small > \(base)/small
            cp \(base)/big \(chmodded)/big; chmod 600 \(chmodded)/big
            truncate -s \(megabytes10) \(metacopy)/big; chmod 600 \(metacopy)/big; setfattr -n trusted.overlay.metacopy \(metacopy)/big
            """)
        // A full copy: the path has two copies of 10 MiB; the second is wasted, and min/total is 1/2 for it.
        var figures = try efficiency(["-o", "lowerdir=\(chmodded):\(base)"])
        XCTAssertEqual(figures["wastedBytes"] as? Int, megabytes10)
        XCTAssertEqual(figures["efficiency"] as? Double ?? 0, Double(megabytes10 + 6) / Double(2 * megabytes10 + 6), accuracy: 1e-12)
        XCTAssertEqual(figures["userWastedPercent"] as? Double, 1)
        let wasted = try XCTUnwrap(figures["inefficientFiles"] as? [[String: Any]])
        XCTAssertEqual(wasted.first?["path"] as? String, "/big")
        XCTAssertEqual(wasted.first?["copies"] as? Int, 2)
        // The same change as a metadata-only copy-up: no data, no waste.
        figures = try efficiency(["-o", "lowerdir=\(base),upperdir=\(metacopy)"])
        XCTAssertEqual(figures["wastedBytes"] as? Int, 0)
        XCTAssertEqual(figures["efficiency"] as? Double, 1)
        XCTAssertEqual(figures["userBytes"] as? Int, 0)
        XCTAssertTrue(strata(["which", "-o", "lowerdir=\(base),upperdir=\(metacopy)", "big"]).output.contains("metadata copied up"))
    }

    func testAnImagesTarballsAgainstHandWorkedFigures() throws {
        let layout = scratch.sub("layout")
        Shell.bash("python3 '\(Paths.fixtures)/efficiency-image.py' '\(layout)'")
        // /big twice (10 MiB wasted); /small and /gone/a deleted (a whiteout, an opaque directory): their bytes
        // stay in the base for nothing; /etc/conf carried again (its second copy, 20 bytes, wasted).
        let big = 10 << 20
        let figures = try efficiency(["--image", "\(layout):wasteful"])
        XCTAssertEqual(figures["wastedBytes"] as? Int, big + 100 + 1000 + 20)
        let smallest = big + 100 + 10 + 1000 + 5, total = 2 * big + 200 + 30 + 2000 + 5
        XCTAssertEqual(figures["efficiency"] as? Double ?? 0, Double(smallest) / Double(total), accuracy: 1e-12)
        XCTAssertEqual(figures["userBytes"] as? Int, big + 25)
        XCTAssertEqual(figures["userWastedPercent"] as? Double ?? 0, Double(big + 1120) / Double(big + 25), accuracy: 1e-12)
        let paths = (figures["inefficientFiles"] as? [[String: Any]])?.compactMap { $0["path"] as? String }
        XCTAssertEqual(paths, ["/big", "/gone/a", "/small", "/etc/conf"])
        let table = strata(["layers", "-h", "--image", "\(layout):wasteful"]).output
        XCTAssertTrue(table.contains("efficiency 50.00%, wasted 10M bytes in 4 paths"), table)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(strata(["layers", "--json", "--image", "\(layout):wasteful"]).output.utf8)) as? [String: Any])
        XCTAssertEqual(json["history"] as? [String], ["COPY conf /etc/conf", "RUN chmod 600 /big && rm /small", "ADD rootfs /"])
        let layers = try XCTUnwrap(json["layers"] as? [[String: Any]])
        XCTAssertEqual(layers.map { $0["whiteouts"] as? Int }, [0, 1, 0])
        XCTAssertEqual(layers.map { $0["opaqueDirectories"] as? Int }, [1, 0, 0])
    }

    func testCheckAppliesDiveRulesFromFlagsAndDiveCI() throws {
        let layout = scratch.sub("layout"), config = scratch.sub("ci")
        Shell.bash("python3 '\(Paths.fixtures)/efficiency-image.py' '\(layout)' && mkdir -p \(config)")
        // Defaults: lowestEfficiency 0.9 and highestUserWastedPercent 0.1 fail the wasteful image, pass the lean one.
        var outcome = strata(["check", "--image", "\(layout):wasteful"], in: config)
        XCTAssertEqual(outcome.status, 1, outcome.error)
        XCTAssertTrue(outcome.output.contains("  FAIL: lowestEfficiency: image efficiency is too low"), outcome.output)
        XCTAssertTrue(outcome.output.contains("  FAIL: highestUserWastedPercent: too many bytes wasted"), outcome.output)
        XCTAssertTrue(outcome.output.contains("  SKIP: highestWastedBytes: rule disabled"), outcome.output)
        XCTAssertTrue(outcome.output.hasSuffix("Result:FAIL [Total:3] [Passed:0] [Failed:2] [Warn:0] [Skipped:1]\n"), outcome.output)
        outcome = strata(["check", "--image", "\(layout):lean"], in: config)
        XCTAssertEqual(outcome.status, 0, outcome.output + outcome.error)
        XCTAssertTrue(outcome.output.hasSuffix("Result:PASS [Total:3] [Passed:2] [Failed:0] [Warn:0] [Skipped:1]\n"), outcome.output)

        // A passing .dive-ci in the working directory, as dive reads it.
        try """
            rules:
              lowestEfficiency: 0.4
              highestWastedBytes: 20MB
              highestUserWastedPercent: disabled
            """.write(toFile: config + "/.dive-ci", atomically: true, encoding: .utf8)
        outcome = strata(["check", "--image", "\(layout):wasteful"], in: config)
        XCTAssertEqual(outcome.status, 0, outcome.output + outcome.error)
        XCTAssertTrue(outcome.output.contains("Using CI config: .dive-ci"), outcome.output)
        XCTAssertTrue(outcome.output.contains("  PASS: highestWastedBytes\n  PASS: lowestEfficiency\n"), outcome.output)
        // A flag overrides the file; 10MB (decimal) is less than the 10.0 MiB wasted.
        outcome = strata(["check", "--highestWastedBytes", "10MB", "--image", "\(layout):wasteful"], in: config)
        XCTAssertEqual(outcome.status, 1)
        XCTAssertTrue(outcome.output.contains("FAIL: highestWastedBytes: too many bytes wasted (wasted-bytes=10486880 > threshold=10000000)"), outcome.output)

        // A failing file named with --ci-config, and JSON.
        try "rules:\n  lowestEfficiency: 0.95\n".write(toFile: config + "/strict.yaml", atomically: true, encoding: .utf8)
        outcome = strata(["check", "--json", "--ci-config", "strict.yaml", "--image", "\(layout):wasteful"], in: config)
        XCTAssertEqual(outcome.status, 1, outcome.error)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(outcome.output.utf8)) as? [String: Any])
        XCTAssertEqual(json["result"] as? String, "FAIL")
        let rules = try XCTUnwrap(json["rules"] as? [[String: Any]])
        XCTAssertEqual(rules.map { $0["rule"] as? String }, ["highestUserWastedPercent", "highestWastedBytes", "lowestEfficiency"])
        XCTAssertEqual(rules.map { $0["status"] as? String }, ["FAIL", "SKIP", "FAIL"])

        // A value that is not one: a clear error naming the rule, status 2, no verdict.
        try "rules:\n  lowestEfficiency: lots\n".write(toFile: config + "/bad.yaml", atomically: true, encoding: .utf8)
        outcome = strata(["check", "--ci-config", "bad.yaml", "--image", "\(layout):lean"], in: config)
        XCTAssertEqual(outcome.status, 2)
        XCTAssertTrue(outcome.error.contains("bad.yaml: lowestEfficiency: \"lots\" is not a ratio"), outcome.error)
        try "rules:\n  lowestEfficency: 0.9\n".write(toFile: config + "/typo.yaml", atomically: true, encoding: .utf8)
        outcome = strata(["check", "--ci-config", "typo.yaml", "--image", "\(layout):lean"], in: config)
        XCTAssertEqual(outcome.status, 2)
        XCTAssertTrue(outcome.error.contains("unknown rule \"lowestEfficency\""), outcome.error)
    }

    /// A hostile image: a path 50,000 directories deep (stacked, measured and released without recursion), and an
    /// entry that climbs out of the layer, refused by name.
    func testHostileTarballs() throws {
        let deep = scratch.sub("deep"), climbing = scratch.sub("climbing")
        Shell.bash("""
            cd '\(Paths.fixtures)' && python3 -c '
            import io, sys, tarfile, oci_layout
            def tar(name):
                buffer = io.BytesIO()
                with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
                    info = tarfile.TarInfo(name); info.size = 1
                    archive.addfile(info, io.BytesIO(b"x"))
                return buffer.getvalue()
            oci_layout.write(sys.argv[1], {"deep": tar("a/" * 50000 + "f")})
            oci_layout.write(sys.argv[2], {"up": tar("../../etc/evil")})
            ' '\(deep)' '\(climbing)'
            """)
        var outcome = strata(["check", "--image", "\(deep):deep"])
        XCTAssertEqual(outcome.status, 0, outcome.error)
        XCTAssertTrue(outcome.output.contains("Result:PASS"), outcome.output)
        outcome = strata(["layers", "--image", "\(climbing):up"])
        XCTAssertEqual(outcome.status, 1)
        XCTAssertTrue(outcome.error.contains("refused tar entry \"../../etc/evil\""), outcome.error)
    }

    /// Layer directories and images need neither root nor a mount: an unprivileged user checks and lists them.
    func testNoRootNeeded() throws {
        let layout = scratch.sub("layout"), base = scratch.sub("base"), top = scratch.sub("top")
        Shell.bash("""
            python3 '\(Paths.fixtures)/efficiency-image.py' '\(layout)'
            mkdir -p \(base) \(top) && echo a > \(base)/a && echo b > \(top)/a && chmod -R a+rX \(scratch.path)
            """)
        var outcome = strata(["check", "--image", "\(layout):lean"], in: "/", as: "65534")
        XCTAssertEqual(outcome.status, 0, outcome.output + outcome.error)
        outcome = strata(["layers", "-o", "lowerdir=\(top):\(base)"], in: "/", as: "65534")
        XCTAssertEqual(outcome.status, 0, outcome.error)
        XCTAssertTrue(outcome.output.contains("efficiency 50.00%"), outcome.output)
    }
}
