/// A path inside a layer, or in the merged view, as the names that lead to it from the root (the root is
/// the empty path). Paths share their prefixes: a child is its parent's path plus one link, so the paths of
/// a whole tree cost one small object per name. Paths are only ever turned into syscall arguments by
/// `Layer`'s beneath-the-root resolution, one name at a time or in chunks within PATH_MAX.
public struct LayerPath: Hashable, Sendable, CustomStringConvertible {
    final class Link: Sendable {
        let parent: Link?
        let name: Name
        let depth: Int
        /// Bytes of "a/b/c" up to and including this name.
        let length: Int

        init(parent: Link?, name: Name) {
            self.parent = parent
            self.name = name
            depth = (parent?.depth ?? 0) + 1
            length = (parent.map { $0.length + 1 } ?? 0) + name.count
        }
    }

    private let last: Link?

    private init(_ last: Link?) { self.last = last }

    public static let root = LayerPath(nil)

    public init(_ names: some Sequence<Name>) {
        var link: Link?
        for name in names { link = Link(parent: link, name: name) }
        last = link
    }

    public var isRoot: Bool { last == nil }
    public var depth: Int { last?.depth ?? 0 }
    /// The length of the relative path "a/b/c" in bytes.
    public var length: Int { last?.length ?? 0 }
    /// The last name; nil for the root.
    public var name: Name? { last?.name }
    /// The directory holding it; nil for the root.
    public var parent: LayerPath? { last.map { LayerPath($0.parent) } }

    public func appending(_ name: Name) -> LayerPath { LayerPath(Link(parent: last, name: name)) }

    /// The names from the root down.
    public var components: [Name] {
        var names: [Name] = []
        names.reserveCapacity(depth)
        var link = last
        while let current = link {
            names.append(current.name)
            link = current.parent
        }
        return names.reversed()
    }

    /// Whether `self` is `ancestor` or lies below it.
    public func isWithin(_ ancestor: LayerPath) -> Bool {
        guard depth >= ancestor.depth else { return false }
        var link = last
        while let current = link, current.depth > ancestor.depth { link = current.parent }
        return LayerPath(link) == ancestor
    }

    /// "/a/b" with every name escaped for a terminal or a log; "/" for the root.
    public var description: String {
        isRoot ? "/" : components.map { "/" + $0.escaped }.joined()
    }

    /// The exact bytes of "a/b/c" (empty for the root), for reports that give names exactly.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(length)
        for (index, name) in components.enumerated() {
            if index > 0 { out.append(0x2F) }
            out += name.bytes
        }
        return out
    }

    public static func == (lhs: LayerPath, rhs: LayerPath) -> Bool {
        var left = lhs.last, right = rhs.last
        while true {
            if left === right { return true }
            guard let l = left, let r = right, l.depth == r.depth, l.name == r.name else { return false }
            left = l.parent
            right = r.parent
        }
    }

    public func hash(into hasher: inout Hasher) {
        var link = last
        hasher.combine(depth)
        while let current = link {
            hasher.combine(current.name)
            link = current.parent
        }
    }
}
