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

    func testWatchOptions() throws {
        XCTAssertFalse(try MountOptions(parsing: ["lowerdir=/a"]).watch)
        let watched = try MountOptions(parsing: ["watch"])
        XCTAssertTrue(watched.watch)
        XCTAssertFalse(watched.watchInotify)
        let inotify = try MountOptions(parsing: ["watch=inotify"])
        XCTAssertTrue(inotify.watch && inotify.watchInotify)
        XCTAssertFalse(try MountOptions(parsing: ["watch,nowatch"]).watch)
        XCTAssertThrowsError(try MountOptions(parsing: ["watch=poll"])) { error in
            XCTAssertTrue("\(error)".contains("watch=poll"), "\(error)")
        }
    }

    func testOwnershipOptions() throws {
        let options = try MountOptions(parsing: ["uidmapping=0:1000:1:1:100000:65536,gidmapping=0:1000:1",
                                                 "squash_to_root,squash_to_gid=5,xattr_permissions=2,static_nlink,noacl"])
        XCTAssertEqual(options.mapping.uids.ranges.map(\.host), [1000, 100000])
        XCTAssertEqual(options.mapping.gids.ranges.map(\.count), [1])
        XCTAssertEqual(options.mapping.squashUID, 0)
        XCTAssertEqual(options.mapping.squashGID, 5)
        XCTAssertEqual(options.mapping.permissionsXattr, Array("user.containers.override_stat".utf8))
        XCTAssertTrue(options.mapping.staticDirectoryLinks)
        XCTAssertFalse(options.acl)
        XCTAssertEqual(options.warnings, [])
        for bad in ["uidmapping=0:1000", "gidmapping=a:b:c", "squash_to_uid=-1", "xattr_permissions=3"] {
            XCTAssertThrowsError(try MountOptions(parsing: [bad])) { error in
                XCTAssertTrue("\(error)".contains(bad), "\(error)")
            }
        }
    }
}
