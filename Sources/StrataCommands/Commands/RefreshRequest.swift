import Foundation
import Overlay
import Strata

/// `strata refresh MOUNTPOINT [PATH...]`: a mount's daemon reads the named paths (or everything) again from
/// the layers, and the kernel drops what it cached of them, for layers changed underneath a mount without
/// `-o watch`. Asked as the `user.strata.refresh` attribute of each path (everything at and below it), or, for
/// a path the mount does not show (a name created underneath may be cached as absent), as the
/// `user.strata.refresh-entries` attribute of the deepest directory on the way that it shows (that directory's
/// names alone); answered once the kernel has dropped it all.
public enum RefreshRequest {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static func refresh(mount: String, paths: [String]) throws(Failure) {
        let root: String
        do { root = try Inspection.mountRoot(containing: mount) } catch { throw Failure(description: error.description) }
        for path in paths.isEmpty ? [root] : paths {
            var target = path.hasPrefix("/") ? path : root + "/" + path
            var asked = ControlAttribute.refresh
            while !exists(target), let slash = target.lastIndex(of: "/"), target != root {
                target = slash == target.startIndex ? "/" : String(target[..<slash])
                asked = ControlAttribute.refreshEntries
            }
            guard target == root || target.hasPrefix(root + "/") else {
                throw Failure(description: "\(path): not inside the mount at \(root)")
            }
            do {
                _ = try ProvenanceXattr.ask(asked, at: target)
            } catch {
                throw Failure(description: "\(target): the mount refused the refresh (\(error); not a Strata mount of this version?)")
            }
        }
    }

    private static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }
}
