import Foundation
import OCI
import Overlay

/// A stack as `explore`, `check` and `layers` look at it: every layer's items, read once from layer directories
/// (given with -o, or found from a path in a live mount) or straight from an OCI image's layer tarballs. Layers
/// are numbered as everywhere in Strata: 0 is the top, the last one the base.
public struct AnalyzedStack: Sendable {
    public struct Layer: Sendable {
        public var index: Int
        /// The layer directory, or the tarball's digest.
        public var label: String
        public var isUpper = false
        /// The image history entry that made the layer.
        public var createdBy: String?
        public var items: [LayerItem]

        public var entries: Int { items.count { $0.kind != .whiteout } }
        public var whiteouts: Int { items.count { $0.kind == .whiteout } }
        public var bytes: Int64 { items.reduce(0) { $0 + $1.storedBytes } }
    }

    public var layers: [Layer]
    /// What the stack is, for titles: the image reference or the top layer's directory.
    public var title: String

    public init(layers: [Layer], title: String) {
        self.layers = layers
        self.title = title
    }

    /// Where a stack comes from, as the commands take it.
    public enum Origin: Sendable {
        /// -o lowerdir=...[,upperdir=...], or (empty) the mount holding `path`.
        case directories(options: [String], path: [UInt8]?)
        /// An OCI image layout and tag, "DIR:TAG".
        case image(String)
    }

    public static func open(_ origin: Origin) throws(Inspection.Failure) -> AnalyzedStack {
        switch origin {
        case .directories(let options, let path):
            let inspection = try Inspection.open(options: options, paths: path.map { [$0] } ?? [])
            var layers: [Layer] = []
            for layer in inspection.stack.layers {
                let items: [LayerItem]
                do { items = try inspection.stack.inventory(of: layer) } catch {
                    throw Inspection.Failure(description: "\(layer.path): \(error)")
                }
                layers.append(Layer(index: layer.index, label: layer.path, isUpper: layer.isUpper, items: items))
            }
            return AnalyzedStack(layers: layers, title: inspection.stack.layers.first?.path ?? "")
        case .image(let reference):
            guard let colon = reference.lastIndex(of: ":") else {
                throw Inspection.Failure(description: "\(reference): give the image as DIR:TAG")
            }
            let layout = ImageLayout(String(reference[..<colon]))
            let tag = String(reference[reference.index(after: colon)...])
            let history: [(digest: String, path: String, createdBy: String?)]
            do { history = try layout.layerHistory(tagged: tag) } catch { throw Inspection.Failure(description: error.description) }
            var layers: [Layer] = []
            for (position, layer) in history.enumerated().reversed() {
                var items: [LayerItem]
                do { items = try LayerTarInventory.read(layer.path) } catch { throw Inspection.Failure(description: error.description) }
                // Stacking wants parents first; a tarball may name a child before its directory.
                items = items.enumerated().sorted { ($0.element.path.depth, $0.offset) < ($1.element.path.depth, $1.offset) }.map(\.element)
                layers.append(Layer(index: history.count - 1 - position, label: layer.digest, createdBy: layer.createdBy, items: items))
            }
            return AnalyzedStack(layers: layers, title: reference)
        }
    }
}
