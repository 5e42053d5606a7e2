import Glibc
import Logging
import Synchronization

/// Where the daemon's warnings go: standard error while it has one (the foreground, or before it detaches),
/// syslog once it runs detached (libfuse points its standard error at /dev/null then).
public struct DaemonLog: LogHandler {
    private static let detached = Atomic<Bool>(false)
    private static let bootstrapped = Mutex(false)

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info

    /// Installs the handler once per process; every command's warnings read "strata: ...".
    public static func install() {
        let first = bootstrapped.withLock { done in
            defer { done = true }
            return !done
        }
        if first { LoggingSystem.bootstrap { _ in DaemonLog() } }
    }

    /// From now on, messages go to syslog.
    static func detach() {
        openlog("strata", LOG_PID, LOG_DAEMON)
        detached.store(true, ordering: .relaxed)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let text = "\(event.message)"
        if Self.detached.load(ordering: .relaxed) {
            let priority = event.level >= .error ? LOG_ERR : event.level >= .warning ? LOG_WARNING : LOG_INFO
            text.withCString { message in withVaList([message]) { vsyslog(priority, "%s", $0) } }
        } else {
            Self.complain(text)
        }
    }

    /// One line on standard error, as every message of `strata` and its daemon reads: "strata: ...".
    public static func complain(_ message: String) {
        var line = "strata: \(message)\n"
        _ = line.withUTF8 { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
