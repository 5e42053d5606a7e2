import Foundation
import CLinux
import Glibc
@testable import Overlay
import SystemPackage
import XCTest

/// A name from a test's literal (tests may trap on a literal they got wrong).
func n(_ text: String) -> Name {
    // swiftlint:disable:next force_try
    try! Name(Array(text.utf8))
}

/// The engine on plain directories, no mount involved.
final class OverlayTreeTests: XCTestCase {
    var root: String!

    override func setUpWithError() throws {
        var template = Array("/tmp/strata-unit.XXXXXX".utf8CString)
        root = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        for layer in ["upper", "middle", "bottom", "work"] { try make(layer, directory: true) }
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(atPath: root)
    }

    private func make(_ path: String, directory: Bool = false, contents: String = "") throws {
        let full = root + "/" + path
        if directory {
            try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        } else {
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            XCTAssertTrue(FileManager.default.createFile(atPath: full, contents: Data(contents.utf8)))
        }
    }

    private func whiteoutDevice(_ path: String) {
        XCTAssertEqual(mknod(root + "/" + path, S_IFCHR | 0o600, 0), 0, "mknod needs root")
    }

    private func tree(upper: Bool = true) throws -> OverlayTree {
        try OverlayTree(stack: LayerStack(lowers: [root + "/middle", root + "/bottom"], upper: upper ? root + "/upper" : nil,
                                          workdir: root + "/work"))
    }

    private func names(_ tree: OverlayTree, _ node: NodeID) throws -> [String] {
        try tree.listDirectory(node).map { String(decoding: $0.name.bytes, as: UTF8.self) }.filter { $0 != "." && $0 != ".." }.sorted()
    }

    private func lookup(_ tree: OverlayTree, _ path: String) throws -> OverlayTree.Entry {
        var entry = OverlayTree.Entry(node: .root, attributes: try tree.attributes(of: .root))
        for name in path.split(separator: "/") { entry = try tree.lookup(parent: entry.node, name: n(String(name))) }
        return entry
    }

    func testUpperLayersOverrideAndWhiteoutsHide() throws {
        try make("bottom/etc/hostname", contents: "bottom")
        try make("middle/etc/hostname", contents: "middle")
        try make("bottom/etc/passwd", contents: "x")
        try make("bottom/etc/group", contents: "x")
        try make("bottom/etc/shadow", contents: "x")
        whiteoutDevice("middle/etc/passwd")
        try make("upper/etc/.wh.group")
        let overlay = try tree()
        let etc = try lookup(overlay, "etc")
        XCTAssertEqual(try names(overlay, etc.node), ["hostname", "shadow"])
        XCTAssertEqual(try lookup(overlay, "etc/hostname").attributes.st_size, 6)
        for hidden in ["passwd", "group", ".wh.group"] {
            XCTAssertThrowsError(try overlay.lookup(parent: etc.node, name: n(hidden))) {
                XCTAssertEqual($0 as? Errno, .noSuchFileOrDirectory, hidden)
            }
        }
    }

    func testEachOpaqueFormStopsTheDescent() throws {
        for form in ["trusted", "user", "marker"] {
            try make("bottom/\(form)/old")
            try make("middle/\(form)/new")
        }
        XCTAssertEqual(CLinux_lsetxattr(root + "/middle/trusted", "trusted.overlay.opaque", "y", 1, 0), 0)
        XCTAssertEqual(CLinux_lsetxattr(root + "/middle/user", "user.overlay.opaque", "y", 1, 0), 0)
        try make("middle/marker/.wh..wh..opq")
        let overlay = try tree()
        for form in ["trusted", "user", "marker"] {
            let directory = try lookup(overlay, form)
            XCTAssertEqual(try names(overlay, directory.node), ["new"], form)
            XCTAssertEqual(directory.attributes.st_nlink, 2, "\(form) is not merged, so its nlink is real")
        }
    }

    func testMergedDirectoryShowsItsLowerInodeNumberAndNlinkOne() throws {
        try make("upper/dir/a")
        try make("middle/dir/b")
        let overlay = try tree()
        let directory = try lookup(overlay, "dir")
        var middle = stat()
        XCTAssertEqual(lstat(root + "/middle/dir", &middle), 0)
        XCTAssertEqual(directory.attributes.st_ino, middle.st_ino)
        XCTAssertEqual(directory.attributes.st_nlink, 1)
        let entry = try overlay.listDirectory(.root).first { $0.name == n("dir") }
        XCTAssertEqual(entry?.inode, UInt64(middle.st_ino))
        XCTAssertEqual(try names(overlay, directory.node), ["a", "b"])
    }

    func testLowerNonDirectoryBelowADirectoryIsHidden() throws {
        try make("upper/x/inside")
        try make("middle/x", contents: "file")
        try make("bottom/x/deep")
        let overlay = try tree()
        XCTAssertEqual(try names(overlay, try lookup(overlay, "x").node), ["inside"])
    }

    func testForgetReleasesNodes() throws {
        for index in 0..<100 { try make("bottom/d/f\(index)") }
        let overlay = try tree()
        let directory = try lookup(overlay, "d")
        var nodes: [NodeID] = []
        for index in 0..<100 { nodes.append(try overlay.lookup(parent: directory.node, name: n("f\(index)")).node) }
        _ = try overlay.lookup(parent: directory.node, name: n("f0"))
        XCTAssertEqual(overlay.nodeCount, 102)
        for node in nodes { overlay.forget(node, lookups: 1) }
        XCTAssertEqual(overlay.nodeCount, 3, "f0 was looked up twice and is still held")
        overlay.forget(nodes[0], lookups: 1)
        overlay.forget(directory.node, lookups: 1)
        XCTAssertEqual(overlay.nodeCount, 1)
        XCTAssertThrowsError(try overlay.attributes(of: nodes[5]))
    }

    /// A directory renamed away or removed, and another made at its path: what is made there next goes into the
    /// new one (a thread keeps the directory it last resolved, for as long as no directory has moved).
    func testChangesFollowADirectoryMadeWhereAnotherWas() throws {
        try make("bottom/d/lower")
        let overlay = try tree()
        let file = NewObject.file(mode: 0o644, flags: O_WRONLY)
        func create(_ parent: NodeID, _ name: String) throws {
            let (_, descriptor) = try overlay.create(parent: parent, name: n(name), file, owner: nil)
            if let descriptor { Sys.close(descriptor.rawValue) }
        }
        try create(try lookup(overlay, "d").node, "first")
        try overlay.rename(parent: .root, name: n("d"), newParent: .root, newName: n("moved"), flags: 0)
        _ = try overlay.create(parent: .root, name: n("d"), .directory(mode: 0o755), owner: nil)
        try create(try lookup(overlay, "d").node, "second")
        _ = try overlay.create(parent: .root, name: n("gone"), .directory(mode: 0o755), owner: nil)
        try create(try lookup(overlay, "gone").node, "inside")
        try overlay.remove(parent: try lookup(overlay, "gone").node, name: n("inside"), directory: false)
        try overlay.remove(parent: .root, name: n("gone"), directory: true)
        _ = try overlay.create(parent: .root, name: n("gone"), .directory(mode: 0o755), owner: nil)
        try create(try lookup(overlay, "gone").node, "again")
        XCTAssertEqual(try names(overlay, try lookup(overlay, "moved").node), ["first", "lower"])
        XCTAssertEqual(try names(overlay, try lookup(overlay, "d").node), ["second"])
        XCTAssertEqual(try names(overlay, try lookup(overlay, "gone").node), ["again"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/upper/d/second"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/upper/gone/again"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/upper/moved/second"))
    }

    func testInodeNumbersAreTaggedPerFilesystemOnlyWhenLayersDiffer() {
        let same = InodeNumbering(devices: [7, 7, 7])
        XCTAssertEqual(same.number(backing: 42, device: 7), 42)
        let mixed = InodeNumbering(devices: [7, 9, 7])
        XCTAssertEqual(mixed.number(backing: 42, device: 7), 42)
        XCTAssertNotEqual(mixed.number(backing: 42, device: 9), 42)
        XCTAssertEqual(mixed.number(backing: 42, device: 9), mixed.number(backing: 42, device: 9))
    }
}
