import DroplineSupport
import Foundation
public import Logging
import Synchronization

/// The daemon's log lines, through swift-log: one line per event, `time level message key=value...`
/// with the metadata sorted (job, rule, run, batch, path), written to `<root>/logs/watch.log` and
/// (unless turned off) standard error. Control characters in the message and the values are escaped
/// (`DisplayText`), so a file name cannot start a forged line.
public struct DaemonLogHandler: LogHandler {
    /// Where the lines go: the log file and standard error, shared by every logger made from it.
    public final class Sink: Sendable {
        let file: Mutex<FileHandle?>
        let echo: Bool

        /// `echo`: also to standard error (off when a caller such as `dropline simulate` prints its own progress).
        public init(file path: String?, echo: Bool = true) {
            self.echo = echo
            var handle: FileHandle?
            if let path {
                if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
                handle = FileHandle(forWritingAtPath: path)
                _ = try? handle?.seekToEnd()
            }
            file = Mutex(handle)
        }

        func write(_ line: String) {
            let data = Data(line.utf8)
            if echo { FileHandle.standardError.write(data) }
            file.withLock { $0?.write(data) }
        }
    }

    let sink: Sink
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info

    public init(sink: Sink) { self.sink = sink }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = all.sorted { $0.key < $1.key }.map { " \($0.key)=\(DisplayText.escaped("\($0.value)"))" }.joined()
        sink.write("\(Self.timestamp()) \(event.level.rawValue) \(DisplayText.escaped(event.message.description))\(fields)\n")
    }

    static func timestamp() -> String {
        ISOTime.now()
    }
}

extension Logger {
    /// A logger for the daemon writing through `sink`.
    public static func daemon(_ sink: DaemonLogHandler.Sink, label: String = "dropline.watch") -> Logger {
        Logger(label: label) { _ in DaemonLogHandler(sink: sink) }
    }
}
