import Logging
import DroplineSupport
import Foundation
import Rules
import Store
import Hashing

/// The rules' cron schedules: each minute that came due since the last look (local time, as cron)
/// queues its rules once. A schedule that came due while the daemon was down is not caught up, as
/// with cron; at most the last hour is looked back on.
struct ScheduleSource: EventSource {
    /// The last minute (since the epoch) whose schedules were queued.
    var scheduledThrough: Int

    init(now: Double) { scheduledThrough = Int(now / 60) }

    mutating func collect(now: Double, rules: RuleSet, queue: EventQueue) throws {
        let current = Int(now / 60)
        guard current > scheduledThrough else { return }
        defer { scheduledThrough = current }
        let calendar = Calendar.current
        for minute in max(scheduledThrough + 1, current - 59)...current {
            let c = calendar.dateComponents([.minute, .hour, .day, .month, .weekday], from: Date(timeIntervalSince1970: Double(minute * 60)))
            for rule in rules.due(minute: c.minute!, hour: c.hour!, day: c.day!, month: c.month!, weekday: c.weekday! - 1) {
                let path = "schedule/" + rule.name
                try queue.offer(.schedule, path: path, contentSha256: SHA256.hash(Array("\(path)@\(minute)".utf8)),
                                what: "schedule of rule \(rule.name) (\(rule.cron!)) is due")
            }
        }
    }
}
