import Foundation
import Overlay
import Strata

/// `strata stats`: what a live mount's daemon has answered since it was mounted, by opcode (calls, errors, time),
/// and how many nodes it holds. The daemon answers it as the `user.strata.stats` attribute of the mount's root
/// (`StatisticsText`); the command prints it as columns, tab-separated lines or JSON.
public struct StatisticsReport: Codable, Sendable {
    public struct Request: Codable, Sendable {
        public var opcode: String
        public var calls: UInt64
        public var errors: UInt64
        public var seconds: Double
    }

    public var requests: [Request]
    /// Nodes the kernel holds: the daemon's memory grows with them.
    public var nodes: Int
    /// How layer changes underneath are seen: "fanotify", "inotify" or "off" (`-o watch`).
    public var watch: String?
    /// Requests that came through FUSE over io_uring rather than the device.
    public var ringRequests: UInt64?

    init(_ text: StatisticsText) {
        requests = text.requests.map {
            Request(opcode: $0.opcode, calls: $0.calls, errors: $0.errors, seconds: Double($0.nanoseconds) / 1e9)
        }
        nodes = text.nodes
        watch = text.watch
        ringRequests = text.ringRequests
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Reads the report of the mount that `path` lies in, and prints it in `style`.
    public static func show(mount path: String, style: OutputStyle) throws(Failure) -> String {
        let root: String
        do { root = try Inspection.mountRoot(containing: path) } catch { throw Failure(description: error.description) }
        guard let value = ProvenanceXattr.read(ControlAttribute.statistics, at: root), let text = StatisticsText(value)
        else { throw Failure(description: "\(root): the mount gives no statistics (not a Strata mount of this version?)") }
        let report = Self(text)
        if style.json { return style.json(report) }
        let rows = report.requests.sorted { $0.seconds > $1.seconds }.map { request in
            [request.opcode, String(request.calls), String(request.errors), String(format: "%.3f", request.seconds),
             String(format: "%.1f", request.calls == 0 ? 0 : request.seconds * 1e6 / Double(request.calls))]
        }
        let total = report.requests.reduce(0) { $0 + $1.calls }
        return style.table(["OPCODE", "CALLS", "ERRORS", "SECONDS", "MEAN_US"], rows)
            + (style.aligned ? "\(total) requests, \(report.ringRequests ?? 0) of them through io_uring; \(report.nodes) nodes held; "
                + "layers watched: \(report.watch ?? "off")\n" : "")
    }
}
