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

    func testRingOption() throws {
        XCTAssertTrue(try MountOptions(parsing: ["lowerdir=/a"]).rings)
        XCTAssertFalse(try MountOptions(parsing: ["io_uring=0"]).rings)
        XCTAssertThrowsError(try MountOptions(parsing: ["io_uring=yes"])) { error in
            XCTAssertTrue("\(error)".contains("io_uring=yes"), "\(error)")
        }
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

final class MountRequestTests: XCTestCase {
    func testTheDaemonTakesBackWhatStrataHandsOver() {
        for request in [
            MountRequest(optionLists: ["lowerdir=a,upperdir=u,workdir=w", "allow_other"], mountpoint: "/m", foreground: false, debug: false),
            MountRequest(optionLists: [], mountpoint: "/m", foreground: true, debug: true),
            // A mountpoint or an option list that looks like a flag stays what it was.
            MountRequest(optionLists: ["-o", "-f"], mountpoint: "-d", foreground: true, debug: false),
            MountRequest(optionLists: ["lowerdir=a"], mountpoint: "-f", foreground: false, debug: true),
        ] {
            let arguments = request.daemonArguments(name: "/usr/bin/strata")
            XCTAssertEqual(arguments.first, "/usr/bin/strata")
            XCTAssertEqual(arguments.last, request.mountpoint, "pgrep -f finds a mount by its mountpoint at the end")
            XCTAssertEqual(MountRequest(daemonArguments: arguments), request, "\(arguments)")
        }
    }

    func testRefusesAnyOtherCommandLine() {
        for arguments in [["strata"], ["strata", "-x", "/m"], ["strata", "/m", "-o", "lowerdir=a", "/n"], ["strata", "-d", "-f", "/m"]] {
            XCTAssertNil(MountRequest(daemonArguments: arguments), "\(arguments)")
        }
    }
}

final class StatisticsTextTests: XCTestCase {
    func testReadsBackWhatTheDaemonAnswers() throws {
        let text = StatisticsText(requests: [.init(opcode: "LOOKUP", calls: 3, errors: 1, nanoseconds: 4500)], nodes: 7, watch: "off",
                                  ringRequests: 2)
        let read = try XCTUnwrap(StatisticsText(String(decoding: text.bytes, as: UTF8.self)))
        XCTAssertEqual(read, text)
        XCTAssertEqual(read.requests.first?.opcode, "LOOKUP")
        XCTAssertEqual(read.ringRequests, 2)
    }

    func testAnotherAnswerIsNone() {
        for answer in ["", "{\"nodes\": 1}", "LOOKUP 1 0\nnodes 1\nwatch off\nrings 0\n", "nodes 1\n", "nodes 1\nwatch off\n"] {
            XCTAssertNil(StatisticsText(answer), answer)
        }
    }
}
