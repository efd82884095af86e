import Store
import DroplineSupport
import Foundation
import Rules

/// `run`: a program with arguments, bounded (`CommandRunner`), with the event in DROPLINE_*
/// environment variables. Not idempotent by nature: a job interrupted while its command ran runs it
/// again (commands should be safe to repeat, as notifications are).
struct RunAction: DaemonAction {
    let arguments: [String]
    let timeout: Double

    func perform(_ context: inout ActionContext) throws -> String {
        let result = context.commands.run(arguments, environment: Self.environment(for: context.event, root: context.root.path),
                                          timeout: timeout, stop: context.stop)
        let shown = PlannedAction.commandLine(arguments)
        let output = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.succeeded else {
            let timing = result.ending == .timedOut ? " after \(Int(timeout)) s (SIGTERM, then SIGKILL after \(Int(context.commands.grace)) s)" : ""
            throw DaemonError("`\(shown)` \(result.ending)\(timing)" + (output.isEmpty ? "" : ": \(DisplayText.escaped(output))"))
        }
        return "ran `\(shown)` in \(String(format: "%.1f", result.seconds)) s" + (output.isEmpty ? "" : ": \(DisplayText.escaped(output))")
    }

    /// DROPLINE_ROOT, DROPLINE_EVENT, DROPLINE_PATH, and each field upper-cased with `_` for anything
    /// but ASCII letters and digits (`flag.stage` -> DROPLINE_FLAG_STAGE). Fields never overwrite the
    /// three fixed names.
    static func environment(for event: Event, root: String) -> [String: String] {
        var environment: [String: String] = [:]
        for (key, value) in event.fields.sorted(by: { $0.key < $1.key }).prefix(200) {
            let name = "DROPLINE_" + String(key.prefix(100)).uppercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? String($0) : "_" }.joined()
            environment[name] = value.text
        }
        environment["DROPLINE_ROOT"] = root
        environment["DROPLINE_EVENT"] = event.kind.rawValue
        environment["DROPLINE_PATH"] = event.path
        return environment
    }
}
