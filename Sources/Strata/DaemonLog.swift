import Glibc
import Logging
import Synchronization

/// Where the daemon's warnings go: standard error while it has one (the foreground, or before it detaches),
/// syslog once it runs detached (libfuse points its standard error at /dev/null then).
struct DaemonLog: LogHandler {
    private static let detached = Atomic<Bool>(false)
    private static let bootstrapped = Mutex(false)

    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    /// Installs the handler once per process.
    static func install() {
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

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
             file: String, function: String, line: UInt) {
        let text = "\(message)"
        if Self.detached.load(ordering: .relaxed) {
            let priority = level >= .error ? LOG_ERR : level >= .warning ? LOG_WARNING : LOG_INFO
            text.withCString { message in withVaList([message]) { vsyslog(priority, "%s", $0) } }
        } else {
            var line = "strata: \(text)\n"
            _ = line.withUTF8 { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        }
    }
}
