import FuseKit

/// Attributes through which `strata` commands ask a live mount's daemon (never listed, never stored).
public enum ControlAttribute {
    /// `strata stats`: the root answers with `StatisticsText`.
    public static let statistics = Array("user.strata.stats".utf8)
    /// `strata refresh`: the path, and everything below it, is read again from the layers.
    public static let refresh = Array("user.strata.refresh".utf8)
    /// `strata refresh` of a name the mount does not show: the directory's names alone are read again.
    public static let refreshEntries = Array("user.strata.refresh-entries".utf8)
}

/// What the daemon answers for `user.strata.stats`: a line "OPCODE CALLS ERRORS NANOSECONDS" per opcode asked,
/// then "nodes N", "watch METHOD" and "rings N" (requests that came through FUSE over io_uring). Plain lines, so that the daemon needs no encoder (it links no Foundation:
/// its memory is what a mount costs); `strata stats` reads them into its report.
public struct StatisticsText: Equatable, Sendable {
    public struct Request: Equatable, Sendable {
        public var opcode: String
        public var calls: UInt64
        public var errors: UInt64
        public var nanoseconds: UInt64
    }

    public var requests: [Request]
    /// Nodes the kernel holds: the daemon's memory grows with them.
    public var nodes: Int
    /// How layer changes underneath are seen: "fanotify", "inotify" or "off" (`-o watch`).
    public var watch: String
    /// Requests that came through FUSE over io_uring rather than the device.
    public var ringRequests: UInt64

    init(requests: [Request], nodes: Int, watch: String, ringRequests: UInt64) {
        self.requests = requests
        self.nodes = nodes
        self.watch = watch
        self.ringRequests = ringRequests
    }

    init(_ statistics: RequestStatistics, nodes: Int, watch: String) {
        self.init(requests: statistics.rows.map {
            Request(opcode: $0.opcode.name, calls: $0.calls, errors: $0.errors, nanoseconds: $0.nanoseconds)
        }, nodes: nodes, watch: watch, ringRequests: statistics.ringRequests)
    }

    var bytes: [UInt8] {
        let lines = requests.map { "\($0.opcode) \($0.calls) \($0.errors) \($0.nanoseconds)\n" }
        return Array((lines.joined() + "nodes \(nodes)\nwatch \(watch)\nrings \(ringRequests)\n").utf8)
    }

    /// Reads a daemon's answer; nil when it is not one (another program's attribute, or an older daemon's).
    public init?(_ text: String) {
        var requests: [Request] = []
        var nodes: Int?
        var watch: String?
        var rings: UInt64?
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            switch fields.count {
            case 2 where fields[0] == "nodes": nodes = Int(fields[1])
            case 2 where fields[0] == "watch": watch = fields[1]
            case 2 where fields[0] == "rings": rings = UInt64(fields[1])
            case 4:
                guard let calls = UInt64(fields[1]), let errors = UInt64(fields[2]), let nanoseconds = UInt64(fields[3])
                else { return nil }
                requests.append(Request(opcode: fields[0], calls: calls, errors: errors, nanoseconds: nanoseconds))
            default: return nil
            }
        }
        guard let nodes, let watch, let rings else { return nil }
        self.init(requests: requests, nodes: nodes, watch: watch, ringRequests: rings)
    }
}
