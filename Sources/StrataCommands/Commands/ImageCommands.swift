import Foundation
import OCI
import Overlay

/// `strata commit`, `import` and `unpack`: a layer out of an overlay into OCI form, and OCI images back into
/// layer directories. Strata reads and writes the OCI image layout; moving images to and from registries is
/// left to the tools made for it (skopeo, podman).
public enum ImageCommands {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Where a commit goes; any combination of the three.
    public struct Destinations {
        public var tar: String?
        public var gzip = false
        /// "DIR:TAG", with `base` the tag of the image in DIR to build on.
        public var layout: String?
        public var base: String?
        /// A layer directory in the kernel's format.
        public var layerDirectory: String?

        public init(tar: String?, gzip: Bool, layout: String?, base: String?, layerDirectory: String?) {
            self.tar = tar
            self.gzip = gzip
            self.layout = layout
            self.base = base
            self.layerDirectory = layerDirectory
        }
    }

    /// The upper layer of `-o lowerdir=...,upperdir=...` as an image layer; prints its digest and diff ID.
    public static func commit(options: [String], to destinations: Destinations) throws(Failure) -> String {
        let stack: LayerStack
        do { stack = try Inspection.open(options: options, paths: []).stack } catch { throw Failure(description: error.description) }
        guard stack.upper != nil else { throw Failure(description: "commit needs upperdir= (the layer to commit)") }
        return try write(stack, to: destinations, createdBy: "strata commit")
    }

    /// A plain directory (a root filesystem) as a layer, the first of an image. The overlay's own attributes
    /// found on it are left out (`warn` gets one line saying how many).
    public static func importDirectory(_ directory: String, to destinations: Destinations,
                                       warn: (String) -> Void) throws(Failure) -> String {
        var destinations = destinations
        destinations.base = nil
        let stack: LayerStack
        do { stack = try Inspection.openStack(lowers: [directory], upper: nil) } catch { throw Failure(description: error.description) }
        let output = try write(stack, to: destinations, createdBy: "strata import")
        let dropped: Int
        do { dropped = try stack.reservedXattrCount() } catch { throw Failure(description: "\(directory): \(error)") }
        if dropped > 0 { warn("left out \(dropped) overlay-private attribute\(dropped == 1 ? "" : "s") (trusted.overlay.*, user.overlay.*, user.strata.*) found in \(directory)") }
        return output
    }

    /// Every layer of the image `DIR:TAG` into its own directory under `destination`; returns the `lowerdir=`
    /// value that mounts them. Overlay-private attributes in the tarballs are dropped (`warn` gets one line).
    public static func unpack(_ image: String, into destination: String, whiteouts: String,
                              warn: (String) -> Void) throws(Failure) -> String {
        guard let whiteouts = LayerUnpack.WhiteoutForm(rawValue: whiteouts) else {
            throw Failure(description: "--whiteout \(whiteouts): expected chardev or file")
        }
        let (directory, tag) = try split(image)
        do {
            let layers = try ImageLayout(directory).layerFiles(tagged: tag)
            var paths: [String] = []
            var dropped = 0
            var first: String?
            for (index, layer) in layers.enumerated() {
                let path = (destination as NSString).appendingPathComponent(String(index))
                if FileManager.default.fileExists(atPath: path) { throw Failure(description: "\(path): already exists") }
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                let report = try LayerUnpack.extract(layer.path, into: path, whiteouts: whiteouts)
                dropped += report.droppedXattrs
                first = first ?? report.firstDropped.map { "layer \(index): \($0)" }
                paths.append(URL(fileURLWithPath: path).standardizedFileURL.path)
            }
            if dropped > 0, let first {
                warn("dropped \(dropped) overlay-private attribute\(dropped == 1 ? "" : "s") from the image's tarballs, never written (first: \(first))")
            }
            return "lowerdir=" + paths.reversed().joined(separator: ":") + "\n"
        } catch let error as Failure {
            throw error
        } catch {
            throw Failure(description: "\(error)")
        }
    }

    private static func write(_ stack: LayerStack, to destinations: Destinations, createdBy: String) throws(Failure) -> String {
        do {
            let entries = try stack.exportTopLayer()
            let scratch = try FileManager.default.url(for: .itemReplacementDirectory, in: .userDomainMask,
                                                      appropriateFor: URL(fileURLWithPath: destinations.tar ?? "/tmp"), create: true).path
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let plain = scratch + "/layer.tar"
            try LayerTar.write(entries, from: stack, to: plain, gzip: false)
            let diffID = try fileDigest(plain)
            var file = plain
            if destinations.gzip {
                file = scratch + "/layer.tar.gz"
                try LayerTar.write(entries, from: stack, to: file, gzip: true)
            }
            let digest = destinations.gzip ? try fileDigest(file) : diffID
            let size = (try FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.int64Value ?? 0
            if let layout = destinations.layout {
                let (directory, tag) = try split(layout)
                try ImageLayout(directory).append(ImageLayout.Layer(digest: digest, diffID: diffID, size: size, gzip: destinations.gzip),
                                                  file: file, tag: tag, base: destinations.base, createdBy: createdBy)
            }
            if let directory = destinations.layerDirectory {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                _ = try LayerUnpack.extract(plain, into: directory, whiteouts: .chardev)
            }
            if let tar = destinations.tar {
                if FileManager.default.fileExists(atPath: tar) { try FileManager.default.removeItem(atPath: tar) }
                try FileManager.default.moveItem(atPath: file, toPath: tar)
            }
            return "digest \(digest)\ndiff-id \(diffID)\n"
        } catch let error as Failure {
            throw error
        } catch {
            throw Failure(description: "\(error)")
        }
    }

    private static func split(_ reference: String) throws(Failure) -> (String, String) {
        guard let colon = reference.lastIndex(of: ":"), colon != reference.startIndex,
              reference.index(after: colon) != reference.endIndex else {
            throw Failure(description: "\(reference): expected DIR:TAG")
        }
        return (String(reference[..<colon]), String(reference[reference.index(after: colon)...]))
    }
}
