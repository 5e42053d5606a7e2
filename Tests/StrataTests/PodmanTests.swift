import XCTest

/// podman mounting every container and image through strata as containers/storage's mount_program, with
/// private storage (Tests/Fixtures/podman-e2e.sh holds the steps).
final class PodmanTests: XCTestCase {
    private func runEndToEnd(options: String = "", file: StaticString = #filePath, line: UInt = #line) {
        let outcome = Shell.run([Paths.fixtures + "/podman-e2e.sh", Paths.strata, options], timeout: 900)
        XCTAssertEqual(outcome.status, 0, outcome.output + outcome.error, file: file, line: line)
        for step in ["import", "run", "diff", "whiteout", "strata diff", "commit", "read-only mounts", "two containers", "clean"] {
            XCTAssertTrue(outcome.output.contains("ok \(step)"), "step \(step) missing:\n\(outcome.output)",
                          file: file, line: line)
        }
    }

    func testPodmanRunsDiffsAndCommitsContainersOnStrata() {
        runEndToEnd()
    }

    func testPodmanWithFileWhiteouts() {
        runEndToEnd(options: "whiteout=file")
    }
}
