/// A cron schedule in the classic five fields: minute (0-59), hour (0-23), day of month (1-31), month
/// (1-12), day of week (0-7, 0 and 7 being Sunday). Each field is `*`, a number, a range `a-b`, a
/// step `*/s` or `a-b/s`, or a comma-separated list of those. As in cron, when both day fields are
/// restricted, a time matches when either does. Written here because it is 60 lines and the
/// packages available offer no cron parser.
public struct CronSchedule: Sendable, Equatable, CustomStringConvertible {
    public let description: String
    let minutes: Set<Int>, hours: Set<Int>, days: Set<Int>, months: Set<Int>, weekdays: Set<Int>
    let anyDay: Bool, anyWeekday: Bool

    public init(_ text: String) throws(PatternError) {
        description = text
        let fields = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard fields.count == 5 else {
            throw PatternError(message: "a schedule has five fields: minute hour day-of-month month day-of-week (e.g. \"0 3 * * *\")", offset: 0)
        }
        var offsets: [Int] = []
        var previous: Character = " "
        for (i, c) in text.enumerated() {
            if c != " " && previous == " " { offsets.append(i) }
            previous = c
        }
        minutes = try Self.field(fields[0], 0...59, "minute", offsets[0])
        hours = try Self.field(fields[1], 0...23, "hour", offsets[1])
        days = try Self.field(fields[2], 1...31, "day of month", offsets[2])
        months = try Self.field(fields[3], 1...12, "month", offsets[3])
        weekdays = Set(try Self.field(fields[4], 0...7, "day of week", offsets[4]).map { $0 % 7 })
        anyDay = fields[2] == "*"
        anyWeekday = fields[4] == "*"
        // Against the real calendar: with only the day of month restricted, some chosen day must
        // exist in some chosen month (29 February counts: it comes every leap year).
        if !anyDay && anyWeekday, !months.contains(where: { month in days.contains { $0 <= Self.longestMonth[month - 1] } }) {
            let monthNames = months.sorted().map { Self.monthNames[$0 - 1] }.joined(separator: ", ")
            throw PatternError(message: "this schedule never fires: day \(days.sorted().map(String.init).joined(separator: ",")) does not exist in \(monthNames)",
                               offset: offsets[2])
        }
    }

    /// The longest each month can be (February in a leap year).
    static let longestMonth = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    static let monthNames = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]

    static func field(_ text: String, _ range: ClosedRange<Int>, _ name: String, _ offset: Int) throws(PatternError) -> Set<Int> {
        var values = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard pieces.count <= 2 else { throw PatternError(message: "bad \(name) '\(part)'", offset: offset) }
            var step = 1
            if pieces.count == 2 {
                guard let s = Int(pieces[1]), s > 0 else { throw PatternError(message: "bad step in \(name) '\(part)'", offset: offset) }
                step = s
            }
            var low = range.lowerBound, high = range.upperBound
            if pieces[0] != "*" {
                let bounds = pieces[0].split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
                guard (1...2).contains(bounds.count), let a = bounds.first!, let b = bounds.last! else {
                    throw PatternError(message: "bad \(name) '\(part)' (use *, a number, a-b, */n or a list)", offset: offset)
                }
                low = a
                high = bounds.count == 2 ? b : (pieces.count == 2 ? range.upperBound : a)
            }
            guard range.contains(low), range.contains(high), low <= high else {
                throw PatternError(message: "\(name) '\(part)' is outside \(range.lowerBound)-\(range.upperBound)", offset: offset)
            }
            values.formUnion(stride(from: low, through: high, by: step))
        }
        return values
    }

    /// Whether the schedule fires in this minute (weekday 0 = Sunday).
    public func matches(minute: Int, hour: Int, day: Int, month: Int, weekday: Int) -> Bool {
        guard minutes.contains(minute), hours.contains(hour), months.contains(month) else { return false }
        let dayOK = days.contains(day), weekdayOK = weekdays.contains(weekday % 7)
        if anyDay && anyWeekday { return true }
        if anyDay { return weekdayOK }
        if anyWeekday { return dayOK }
        return dayOK || weekdayOK
    }
}
