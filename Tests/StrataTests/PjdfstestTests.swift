import Foundation
import XCTest

/// pjdfstest, the POSIX conformance suite filesystem projects run against themselves, through a Strata mount
/// over two populated lower layers (scripts/pjdfstest.sh): every assertion passes, as on kernel overlayfs.
final class PjdfstestTests: XCTestCase {
    func testEveryAssertionPasses() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let outcome = Shell.run([root.path + "/scripts/pjdfstest.sh", "strata"], timeout: 2400,
                                environment: ProcessInfo.processInfo.environment.merging(["PATH": "/opt/swift/usr/bin:/usr/sbin:/usr/bin:/sbin:/bin"]) { $1 })
        if outcome.status == 2, outcome.error.contains("source is not here") { throw XCTSkip(outcome.error) }
        XCTAssertEqual(outcome.status, 0, outcome.output + outcome.error)
        let summary = outcome.output.split(separator: "\n").last.map(String.init) ?? ""
        XCTAssertTrue(summary.hasSuffix(" passed, 0 failed"), outcome.output)
        let passed = Int(summary.split(separator: " ").first ?? "") ?? 0
        XCTAssertGreaterThanOrEqual(passed, 8798, "kernel overlayfs passes 8798 on the same suite")
    }
}
