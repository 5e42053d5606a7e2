import Crypto
import Foundation

/// An OCI image layout directory: `oci-layout`, `blobs/sha256/<hex>`, and `index.json` whose manifests are
/// tagged by `org.opencontainers.image.ref.name`. Only what commit, import and unpack need.
public struct ImageLayout {
    public let directory: String

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    struct Descriptor: Codable, Equatable {
        var mediaType: String
        var digest: String
        var size: Int64
        var annotations: [String: String]?
    }

    struct Manifest: Codable {
        var schemaVersion = 2
        var mediaType = "application/vnd.oci.image.manifest.v1+json"
        var config: Descriptor
        var layers: [Descriptor]
    }

    struct Index: Codable {
        var schemaVersion = 2
        var manifests: [Descriptor] = []
    }

    struct Config: Codable {
        struct RootFS: Codable {
            var type = "layers"
            var diff_ids: [String] = []
        }

        struct History: Codable {
            var created_by: String
        }

        var architecture = "amd64"
        var os = "linux"
        var config: [String: [String]]? = [:]
        var rootfs = RootFS()
        var history: [History] = []
    }

    static let refName = "org.opencontainers.image.ref.name"
    static let layerTypes = ["application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip"]

    public init(_ directory: String) { self.directory = directory }

    /// A layer file the layout does not hold yet: its digest (of the file) and diff ID (of the uncompressed tar).
    public struct Layer {
        public let digest: String
        public let diffID: String
        public let size: Int64
        public let gzip: Bool

        public init(digest: String, diffID: String, size: Int64, gzip: Bool) {
            self.digest = digest
            self.diffID = diffID
            self.size = size
            self.gzip = gzip
        }
    }

    /// Appends `layer` on top of the image tagged `base` (or as a first layer) and tags the result `tag`.
    public func append(_ layer: Layer, file: String, tag: String, base: String?, createdBy: String) throws(Failure) {
        try createIfMissing()
        var index = try readIndex()
        var layers: [Descriptor] = []
        var config = Config()
        if let base {
            let manifest = try manifest(tagged: base, in: index)
            layers = manifest.layers
            config = try decode(Config.self, blob: manifest.config.digest)
        }
        try store(file: file, digest: layer.digest)
        layers.append(Descriptor(mediaType: Self.layerTypes[layer.gzip ? 1 : 0], digest: layer.digest, size: layer.size))
        config.rootfs.diff_ids.append(layer.diffID)
        config.history.append(Config.History(created_by: createdBy))
        let configBlob = try storeJSON(config)
        let manifestBlob = try storeJSON(Manifest(
            config: Descriptor(mediaType: "application/vnd.oci.image.config.v1+json", digest: configBlob.digest, size: configBlob.size),
            layers: layers))
        index.manifests.removeAll { $0.annotations?[Self.refName] == tag }
        index.manifests.append(Descriptor(mediaType: "application/vnd.oci.image.manifest.v1+json", digest: manifestBlob.digest,
                                          size: manifestBlob.size, annotations: [Self.refName: tag]))
        try write(encode(index), to: directory + "/index.json")
    }

    /// The layer blobs of the image tagged `tag`, bottom first, each checked against its digest.
    public func layerFiles(tagged tag: String) throws(Failure) -> [(path: String, gzip: Bool)] {
        let manifest = try manifest(tagged: tag, in: try readIndex())
        var files: [(path: String, gzip: Bool)] = []
        for layer in manifest.layers {
            let path = try blobPath(layer.digest)
            if (try? fileDigest(path)) != layer.digest { throw Failure(description: "\(path): does not match its digest") }
            files.append((path, layer.mediaType.hasSuffix("gzip")))
        }
        return files
    }

    /// The layers of the image tagged `tag`, bottom first: each blob (checked against its digest) and the
    /// history entry that made it (`created_by`; history entries marked `empty_layer` made no layer).
    public func layerHistory(tagged tag: String) throws(Failure) -> [(digest: String, path: String, createdBy: String?)] {
        let manifest = try manifest(tagged: tag, in: try readIndex())
        let files = try layerFiles(tagged: tag)
        let history = ((try? decode(HistoryOnly.self, blob: manifest.config.digest))?.history ?? []).filter { $0.empty_layer != true }
        return manifest.layers.enumerated().map { position, layer in
            (layer.digest, files[position].path, position < history.count ? history[position].created_by : nil)
        }
    }

    /// A config as any builder writes it, read only for its history.
    private struct HistoryOnly: Decodable {
        struct Entry: Decodable {
            var created_by: String?
            var empty_layer: Bool?
        }

        var history: [Entry]?
    }

    private func manifest(tagged tag: String, in index: Index) throws(Failure) -> Manifest {
        guard let descriptor = index.manifests.first(where: { $0.annotations?[Self.refName] == tag }) else {
            throw Failure(description: "\(directory): no image tagged \(tag)")
        }
        return try decode(Manifest.self, blob: descriptor.digest)
    }

    private func createIfMissing() throws(Failure) {
        do {
            try FileManager.default.createDirectory(atPath: directory + "/blobs/sha256", withIntermediateDirectories: true)
        } catch {
            throw Failure(description: "\(directory): \(error.localizedDescription)")
        }
        if !FileManager.default.fileExists(atPath: directory + "/oci-layout") {
            try write(Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8), to: directory + "/oci-layout")
        }
    }

    private func readIndex() throws(Failure) -> Index {
        guard let data = FileManager.default.contents(atPath: directory + "/index.json") else { return Index() }
        do { return try JSONDecoder().decode(Index.self, from: data) } catch {
            throw Failure(description: "\(directory)/index.json: \(error)")
        }
    }

    /// Where a blob lives. A digest comes from the layout's own JSON, which an image's author wrote: anything but
    /// "sha256:" and 64 hex digits (a "../" in it, say) is refused before it becomes a path.
    private func blobPath(_ digest: String) throws(Failure) -> String {
        let hex = digest.utf8.dropFirst(7)
        guard digest.hasPrefix("sha256:"), hex.count == 64,
              hex.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw Failure(description: "\(directory): \(digest.debugDescription) is not a sha256 digest")
        }
        return directory + "/blobs/sha256/" + String(decoding: hex, as: UTF8.self)
    }

    /// A JSON blob (a manifest or a config), checked against its digest before it is believed.
    private func decode<T: Decodable>(_ type: T.Type, blob digest: String) throws(Failure) -> T {
        let path = try blobPath(digest)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure(description: "\(directory): blob \(digest) is missing")
        }
        guard Self.digest(data) == digest else { throw Failure(description: "\(path): does not match its digest") }
        do { return try JSONDecoder().decode(type, from: data) } catch { throw Failure(description: "blob \(digest): \(error)") }
    }

    private func encode<T: Encodable>(_ value: T) throws(Failure) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do { return try encoder.encode(value) } catch { throw Failure(description: "\(error)") }
    }

    private func storeJSON<T: Encodable>(_ value: T) throws(Failure) -> (digest: String, size: Int64) {
        let data = try encode(value)
        let digest = Self.digest(data)
        try write(data, to: try blobPath(digest))
        return (digest, Int64(data.count))
    }

    private static func digest(_ data: Data) -> String {
        "sha256:" + SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    private func store(file: String, digest: String) throws(Failure) {
        let target = try blobPath(digest)
        if FileManager.default.fileExists(atPath: target) { return }
        do { try FileManager.default.copyItem(atPath: file, toPath: target) } catch {
            throw Failure(description: "\(target): \(error.localizedDescription)")
        }
    }

    private func write(_ data: Data, to path: String) throws(Failure) {
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw Failure(description: "\(path): \(error.localizedDescription)")
        }
    }
}

/// SHA-256 of a file's bytes, as an OCI digest ("sha256:<hex>").
public func fileDigest(_ path: String) throws -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else { throw ImageLayout.Failure(description: "\(path): cannot read") }
    defer { try? handle.close() }
    var hasher = SHA256()
    while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
    return "sha256:" + hasher.finalize().map { String(format: "%02x", $0) }.joined()
}
