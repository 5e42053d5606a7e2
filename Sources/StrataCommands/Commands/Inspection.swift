import Strata
import Foundation
import Overlay

/// The layers a debugging command looks at, and the paths it asks about relative to their merged root: given as
/// `-o lowerdir=...[,upperdir=...]`, or found from a path inside a live Strata mount (whose root answers the
/// `user.strata.stack` attribute with its layers). Opened read-only, so a live mount is never disturbed.
public struct Inspection {
    public let stack: LayerStack
    /// The paths the command asks about, relative to the merged root.
    let paths: [LayerPath]

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Opens the stack and turns each of `paths` (as the bytes the user gave) into a path relative to its root.
    public static func open(options: [String], paths: [[UInt8]]) throws(Failure) -> Inspection {
        if !options.isEmpty {
            let parsed: MountOptions
            do { parsed = try MountOptions(parsing: options) } catch { throw Failure(description: error.description) }
            guard !parsed.lowers.isEmpty else { throw Failure(description: "-o needs lowerdir=") }
            let stack = try openStack(lowers: parsed.lowers.map(Self.absolute), upper: parsed.upper.map(Self.absolute))
            var relativePaths: [LayerPath] = []
            for path in paths { relativePaths.append(try relative(path)) }
            return Inspection(stack: stack, paths: relativePaths)
        }
        guard let first = paths.first else { throw Failure(description: "give a path inside a Strata mount, or -o lowerdir=...") }
        let (mountpoint, layers) = try findMount(containing: String(decoding: first, as: UTF8.self))
        let upper = layers.first { $0.upper }?.directory
        let stack = try openStack(lowers: layers.filter { !$0.upper }.map(\.directory), upper: upper)
        var relativePaths: [LayerPath] = []
        let root = try relative(Array(mountpoint.utf8))
        for path in paths {
            let absolute = try relative((path.first == 0x2F ? [] : Array(FileManager.default.currentDirectoryPath.utf8) + [0x2F]) + path)
            guard absolute.isWithin(root) else {
                throw Failure(description: "\(Escaping.escape(path)): outside the Strata mount at \(mountpoint)")
            }
            relativePaths.append(LayerPath(absolute.components.dropFirst(root.depth)))
        }
        return Inspection(stack: stack, paths: relativePaths)
    }

    /// Opens layer directories read-only, refusing a missing one by its path.
    static func openStack(lowers: [String], upper: String?) throws(Failure) -> LayerStack {
        for directory in lowers + (upper.map { [$0] } ?? []) {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw Failure(description: "\(directory): no such layer directory")
            }
        }
        do {
            return try LayerStack(lowers: lowers, upper: upper)
        } catch {
            throw Failure(description: "opening the layers: \(error)")
        }
    }

    /// The root of the Strata mount that `path` lies in.
    static func mountRoot(containing path: String) throws(Failure) -> String {
        try findMount(containing: path).0
    }

    /// The topmost directory above `path` that still answers `user.strata.stack` is the mount's root.
    private static func findMount(containing path: String) throws(Failure) -> (String, [(upper: Bool, directory: String)]) {
        var candidate = absolute(path)
        while !FileManager.default.fileExists(atPath: candidate), candidate != "/" {
            candidate = (candidate as NSString).deletingLastPathComponent
        }
        var root: String?
        var value: String?
        while true {
            if let found = ProvenanceXattr.read(ProvenanceXattr.stack, at: candidate) {
                root = candidate
                value = found
            } else if root != nil {
                break
            }
            if candidate == "/" { break }
            candidate = (candidate as NSString).deletingLastPathComponent
        }
        guard let root, let value else { throw Failure(description: "\(path): not inside a Strata mount (and no -o lowerdir= given)") }
        let layers = value.split(separator: "\n").compactMap { line -> (Bool, String)? in
            let fields = line.split(separator: " ", maxSplits: 2)
            guard fields.count == 3 else { return nil }
            return (fields[1] == "upper", String(fields[2]))
        }
        return (root, layers.map { (upper: $0.0, directory: $0.1) })
    }

    private static func absolute(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return URL(fileURLWithPath: joined).standardizedFileURL.path
    }

    /// A path the user typed, relative to the merged root: "." and empty components are nothing, ".." goes up.
    private static func relative(_ path: [UInt8]) throws(Failure) -> LayerPath {
        var names: [Name] = []
        for part in path.split(separator: UInt8(ascii: "/")) where !part.elementsEqual([UInt8(ascii: ".")]) {
            if part.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                _ = names.popLast()
                continue
            }
            do { names.append(try Name(Array(part))) } catch {
                throw Failure(description: "\(Escaping.escape(path)): \(error)")
            }
        }
        return LayerPath(names)
    }
}
