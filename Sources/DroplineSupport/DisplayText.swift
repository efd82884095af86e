/// Text from outside (file names, flag fields, command output) made safe to print: control
/// characters are written as escapes, so a name with a newline cannot forge a log line or a table
/// row, and an escape sequence cannot repaint a terminal.
public enum DisplayText {
    /// `text` with C0 controls, DEL, C1 controls and the Unicode line and paragraph separators
    /// written as `\n`, `\r`, `\t` or `\u{XX}`; a backslash stays a backslash. Everything else,
    /// spaces and non-ASCII letters included, is kept.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        out.unicodeScalars.reserveCapacity(text.unicodeScalars.count + 8)
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else { out.unicodeScalars.append(scalar); continue }
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out += "\\u{" + String(scalar.value, radix: 16) + "}"
            }
        }
        return out
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        return v < 0x20 || v == 0x7F || (0x80...0x9F).contains(v) || v == 0x2028 || v == 0x2029
    }
}

/// The names Dropline builds paths from when they come from outside (stage, batch and class folder
/// names, flag and labels fields): a documented character set, checked before any path is built.
///
/// A name is 1 to 128 characters of Unicode letters and digits, space, and `. _ - + @ , = ( ) [ ]`;
/// it does not start with `.`, `-` or a space, does not end with a space or `.`, and is not `.` or
/// `..`. So no `/`, no NUL or control character, no shell metacharacter (`$`, backtick, `;`, `|`,
/// `&`, `<`, `>`, quotes, `*`, `?`, `{}`), no leading option dash.
public enum SafeName {
    public static let maximumLength = 128
    static let punctuation: Set<Character> = [" ", ".", "_", "-", "+", "@", ",", "=", "(", ")", "[", "]"]

    /// Why `name` cannot be used as a `what` (e.g. "batch name"), or nil when it can.
    public static func problem(_ name: String, what: String) -> String? {
        let shown = "\(what) '\(DisplayText.escaped(name))'"
        if name.isEmpty { return "the \(what) is empty" }
        if name.count > maximumLength { return "\(shown) is longer than \(maximumLength) characters" }
        if name == "." || name == ".." { return "\(shown) is not a name" }
        if let bad = name.first(where: { !($0.isLetter || $0.isNumber || punctuation.contains($0)) }) {
            let c = bad.unicodeScalars.first!
            let described = c.value < 0x20 || c.value == 0x7F ? "a control character" : "'\(DisplayText.escaped(String(bad)))'"
            return "\(shown) contains \(described)"
        }
        if let first = name.first, first == "." || first == "-" || first == " " { return "\(shown) starts with '\(first)'" }
        if let last = name.last, last == " " || last == "." { return "\(shown) ends with '\(last)'" }
        return nil
    }

    /// What every refusal of a name tells the user to do.
    public static let remedy = "rename it using letters, digits, spaces and . _ - + @ , = ( ) [ ] (not starting with . or -, at most 128 characters)"

    /// Throws `UnsafeName` when `name` is not a valid `what`.
    public static func check(_ name: String, what: String) throws(UnsafeName) {
        if let problem = problem(name, what: what) { throw UnsafeName(reason: problem) }
    }
}

/// A name from outside that cannot build a path: why, and the remedy.
public struct UnsafeName: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public var description: String { "\(reason); \(SafeName.remedy)" }
}
