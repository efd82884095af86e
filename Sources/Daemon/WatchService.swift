public import Logging
import Foundation
public import ServiceLifecycle
import Synchronization
import UnixSignals
#if canImport(Glibc)
import Glibc
#endif

/// The daemon as a swift-service-lifecycle service: `ServiceGroup` traps SIGTERM and SIGINT and asks
/// for a graceful shutdown, which stops the loop after its current step (running commands get SIGTERM,
/// then SIGKILL: `CommandRunner`). A second SIGTERM or SIGINT during that shutdown kills the running
/// commands' groups and exits at once; the next start recovers the interrupted step. The synchronous loop runs on its own thread, so the
/// concurrency runtime's threads are never blocked by a pipeline.
public struct WatchService: Service {
    let log: Logger
    /// Makes the daemon once the service runs (nil: stopped before it could start, e.g. a standby).
    let launch: @Sendable (StopRequest) throws -> WatchDaemon?

    public init(daemon: WatchDaemon) {
        log = daemon.log
        launch = { _ in daemon }
    }

    /// A daemon made by `launch` (`WatchDaemon.launch`) under the service, so that a standby waiting
    /// for the lease stops on a signal like a running daemon.
    public init(log: Logger, launch: @escaping @Sendable (StopRequest) throws -> WatchDaemon?) {
        self.log = log
        self.launch = launch
    }

    public func run() async throws {
        let stop = StopRequest()
        let launch = self.launch
        // Counted from the start, beside the ServiceGroup's own trap (each gets every signal), so a
        // second signal is never missed however soon it follows the first.
        let escalation = Self.exitOnSecondSignal(log: log)
        defer { escalation.cancel() }
        let log = self.log
        try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let thread = Thread {
                    do {
                        try launch(stop)?.run(stop: stop)
                        continuation.resume()
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
                thread.name = "dropline-watch"
                thread.start()
            }
        } onGracefulShutdown: {
            log.info("stop requested; finishing the current step")
            stop.request()
        }
    }

    /// Runs the service in a `ServiceGroup` that turns SIGTERM and SIGINT into a graceful shutdown,
    /// until the daemon stops (by a signal, or by itself with `--once`).
    public func runUntilStopped() async throws {
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: self, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Logger(label: "dropline.lifecycle") { _ in SwiftLogNoOpLogHandler() }))
        try await group.run()
    }

    /// Counts stop signals: the first is the ServiceGroup's graceful shutdown; the second kills the
    /// running commands' groups and exits at once.
    static func exitOnSecondSignal(log: Logger) -> Task<Void, Never> {
        Task.detached {
            var seen = 0
            for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                seen += 1
                guard seen >= 2 else { continue }
                log.warning("second stop signal: exiting now (running commands are killed); the next start recovers the interrupted step")
                CommandRunner.killAll()
                _exit(130)
            }
        }
    }
}
