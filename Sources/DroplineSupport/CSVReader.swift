/// CSV as spreadsheets and scripts write it, read the way Python's `csv` module reads it (the
/// "excel" dialect): fields separated by a delimiter, optionally quoted with `"` (a quote inside a
/// quoted field doubled), quoted fields holding delimiters and line breaks; lines ended by CRLF, LF or
/// CR; a UTF-8 byte-order mark at the start ignored. Every field keeps its line and column (1-based,
/// in characters), so an error can name where it is. The differences from Python are refusals: a
/// quoted field that is never closed is an error here (Python reads to the end of the file), and so
/// is a NUL character.
///
/// Written here rather than taken from a CSV package: the Swift CSV libraries in the mirror do not
/// report positions, and the behaviour is pinned to Python's by fixtures
/// (`scripts/make_csv_fixtures.py`, `Tests/SupportTests/CSVReaderTests.swift`).
public struct CSVReader: Sendable {
    public struct Field: Sendable, Equatable {
        public var value: String
        public var line: Int
        public var column: Int
    }

    public struct Row: Sendable, Equatable {
        public var fields: [Field]
        /// The line the row starts on.
        public var line: Int
        public var values: [String] { fields.map(\.value) }
    }

    public struct ParseError: Error, CustomStringConvertible, Sendable, Equatable {
        public var line: Int, column: Int, reason: String
        public init(line: Int, column: Int, reason: String) {
            self.line = line
            self.column = column
            self.reason = reason
        }
        public var description: String { "\(line):\(column): \(reason)" }
    }

    public var delimiter: Character

    public init(delimiter: Character = ",") { self.delimiter = delimiter }

    /// The delimiter of a header line: a comma, or else the first of `;` and tab the line holds
    /// (spreadsheets in locales whose decimal mark is a comma export with semicolons).
    public static func delimiter(ofHeader text: String) -> Character {
        let first = text.drop { $0 == "\u{FEFF}" }.prefix { $0 != "\n" && $0 != "\r" && $0 != "\r\n" }
        if first.contains(",") { return "," }
        for candidate: Character in [";", "\t"] where first.contains(candidate) { return candidate }
        return ","
    }

    /// The rows of `text`. Blank lines are skipped, as Python's reader returns them as empty rows.
    public func rows(_ text: String) throws(ParseError) -> [Row] {
        var rows: [Row] = []
        var fields: [Field] = [], value = ""
        var line = 1, column = 0, rowLine = 1
        var fieldStart = (line: 1, column: 1)
        var state = State.fieldStart
        var quoteAt = (line: 1, column: 1)
        var characters = Substring(text)
        if characters.first == "\u{FEFF}" { characters = characters.dropFirst() }

        func endField() { fields.append(Field(value: value, line: fieldStart.line, column: fieldStart.column)); value = "" }
        func endRow() {
            if !(fields.count == 1 && fields[0].value.isEmpty && state != .afterQuote) { rows.append(Row(fields: fields, line: rowLine)) }
            fields = []
        }

        for c in characters {
            column += 1
            if c == "\u{0}" { throw ParseError(line: line, column: column, reason: "a NUL character: this is not a text file (save it as CSV, UTF-8)") }
            let isBreak = c == "\n" || c == "\r" || c == "\r\n"
            if state == .quoted {
                if c == "\"" { state = .afterQuote } else { value.append(c) }
            } else if state == .afterQuote && c == "\"" {
                value.append("\"")
                state = .quoted
            } else {
                if state == .fieldStart { fieldStart = (line, column); if fields.isEmpty { rowLine = line } }
                if c == delimiter || isBreak {
                    endField()
                    if isBreak { endRow() }
                    state = .fieldStart
                } else if c == "\"" && state == .fieldStart {
                    state = .quoted
                    quoteAt = (line, column)
                } else {
                    // Python keeps a quote inside an unquoted field, and what follows a closing quote
                    value.append(c)
                    state = .unquoted
                }
            }
            if isBreak { line += 1; column = 0 }
        }
        switch state {
        case .quoted:
            throw ParseError(line: quoteAt.line, column: quoteAt.column, reason: "this quoted field is never closed (a missing \")")
        case .unquoted, .afterQuote:
            endField()
            endRow()
        case .fieldStart:
            if !fields.isEmpty { endField(); endRow() }
        }
        return rows
    }

    enum State { case fieldStart, unquoted, quoted, afterQuote }
}
