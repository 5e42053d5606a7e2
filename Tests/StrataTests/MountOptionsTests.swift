@testable import Strata
import XCTest

final class MountOptionsTests: XCTestCase {
    func testSplitsLayersTopFirstWithEscapedColons() throws {
        let options = try MountOptions(parsing: ["lowerdir=a\\:b:c,upperdir=u,workdir=w"])
        XCTAssertEqual(options.lowers, ["a:b", "c"])
        XCTAssertEqual(options.upper, "u")
        XCTAssertEqual(options.work, "w")
    }

    func testEmptyElementsAndQuotedCommas() throws {
        let options = try MountOptions(parsing: [",lowerdir=a,,context=\"system_u:object_r:x:s0:c1,c2\",", "allow_other"])
        XCTAssertEqual(options.lowers, ["a"])
        XCTAssertEqual(options.fuseOptions, ["context=\"system_u:object_r:x:s0:c1,c2\"", "allow_other"])
        XCTAssertEqual(options.warnings, [])
    }

    func testUnknownOptionsWarnAndLaterOptionsOverride() throws {
        let options = try MountOptions(parsing: ["lowerdir=a,bogus,lowerdir=b,fsname=x", "fsname=y"])
        XCTAssertEqual(options.lowers, ["b"])
        XCTAssertEqual(options.fuseOptions, ["fsname=y"])
        XCTAssertEqual(options.warnings, ["unknown option ignored: bogus"])
    }

    func testBadTimeoutNamesTheOption() {
        XCTAssertThrowsError(try MountOptions(parsing: ["timeout=soon"])) { error in
            XCTAssertTrue("\(error)".contains("timeout=soon"))
        }
    }
}
