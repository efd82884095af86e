import Foundation

/// Fixed-width text tables for human output: columns two spaces apart, the last one not padded,
/// optionally a rule of dashes under the header.
public struct TextTable: Sendable {
    public var header: [String]
    public var rows: [[String]] = []
    /// A line of dashes under the header.
    public var rule = false

    public init(_ header: String...) { self.header = header }

    public init(header: [String], rows: [[String]], rule: Bool = false) {
        self.header = header
        self.rows = rows
        self.rule = rule
    }

    public mutating func add(_ row: [String]) { rows.append(row) }

    /// The table, lines joined by newlines (no newline after the last).
    /// Cells are printed with control characters escaped (`DisplayText`): a name from outside
    /// cannot break a row.
    public func render() -> String {
        let header = self.header.map(DisplayText.escaped)
        let rows = self.rows.map { $0.map(DisplayText.escaped) }
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        let ruleLines = rule ? [line(widths.map { String(repeating: "-", count: $0) })] : []
        return ([line(header)] + ruleLines + rows.map(line)).joined(separator: "\n")
    }
}
