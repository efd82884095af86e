/// A `when` condition over event fields: comparisons (`<`, `<=`, `>`, `>=`, `==`, `!=`) between dotted
/// field names, numbers, quoted strings and true/false, combined with `and`, `or`, `not` and
/// parentheses, e.g. `drift.p_value < 0.01 and not (batch.images < 20)`. A bare field is true when it
/// is true, non-zero or a non-empty string. A comparison with a missing field is false.
public indirect enum Condition: Sendable, Equatable {
    case comparison(Operand, String, Operand)
    case truthy(Operand)
    case and(Condition, Condition)
    case or(Condition, Condition)
    case not(Condition)

    public enum Operand: Sendable, Equatable {
        case field(String)
        case number(Double)
        case string(String)
        case bool(Bool)
    }

    /// Parses a condition; the error gives the 0-based character offset of the problem.
    public static func parse(_ text: String) throws(ConditionError) -> Condition {
        var parser = Parser(tokens: try tokenize(text))
        let condition = try parser.or()
        if let extra = parser.peek { throw ConditionError(message: "unexpected '\(extra.text)'", offset: extra.offset) }
        return condition
    }

    /// Evaluates against fields (captures are fields too); records why, for `rules explain`.
    public func evaluate(_ fields: [String: Value], why: inout [String]) -> Bool {
        switch self {
        case .and(let a, let b): return a.evaluate(fields, why: &why) && b.evaluate(fields, why: &why)
        case .or(let a, let b): return a.evaluate(fields, why: &why) || b.evaluate(fields, why: &why)
        case .not(let a): return !a.evaluate(fields, why: &why)
        case .truthy(let o):
            guard let v = Self.value(o, fields) else { why.append("\(Self.text(o)) is missing"); return false }
            return v.isTruthy
        case .comparison(let l, let op, let r):
            guard let a = Self.value(l, fields), let b = Self.value(r, fields) else {
                why.append("\(Self.text(l)) \(op) \(Self.text(r)): \(Self.value(l, fields) == nil ? Self.text(l) : Self.text(r)) is missing")
                return false
            }
            let result: Bool
            switch (a, b) {
            case (.number(let x), .number(let y)):
                switch op {
                case "<": result = x < y
                case "<=": result = x <= y
                case ">": result = x > y
                case ">=": result = x >= y
                case "==": result = x == y
                default: result = x != y
                }
            default:
                let (x, y) = (a.text, b.text)
                switch op {
                case "==": result = x == y
                case "!=": result = x != y
                case "<": result = x < y
                case "<=": result = x <= y
                case ">": result = x > y
                default: result = x >= y
                }
            }
            why.append("\(Self.text(l)) \(op) \(Self.text(r)): \(a.text) \(op) \(b.text) is \(result)")
            return result
        }
    }

    static func value(_ o: Operand, _ fields: [String: Value]) -> Value? {
        switch o {
        case .field(let name): return fields[name]
        case .number(let n): return .number(n)
        case .string(let s): return .string(s)
        case .bool(let b): return .bool(b)
        }
    }

    static func text(_ o: Operand) -> String {
        switch o {
        case .field(let n): return n
        case .number(let n): return Value.number(n).text
        case .string(let s): return "\"\(s)\""
        case .bool(let b): return b ? "true" : "false"
        }
    }

    struct Token {
        var text: String
        var offset: Int
        var isString = false
    }

    static func tokenize(_ text: String) throws(ConditionError) -> [Token] {
        var tokens: [Token] = []
        let chars = Array(text)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == " " || c == "\t" { i += 1; continue }
            if c == "(" || c == ")" { tokens.append(Token(text: String(c), offset: i)); i += 1; continue }
            if "<>=!".contains(c) {
                let two = i + 1 < chars.count ? String(chars[i...(i + 1)]) : String(c)
                if ["<=", ">=", "==", "!="].contains(two) { tokens.append(Token(text: two, offset: i)); i += 2; continue }
                if c == "<" || c == ">" { tokens.append(Token(text: String(c), offset: i)); i += 1; continue }
                throw ConditionError(message: "'\(c)' is not an operator (use ==, !=, <, <=, >, >=)", offset: i)
            }
            if c == "\"" || c == "'" {
                var j = i + 1
                var s = ""
                while j < chars.count && chars[j] != c { s.append(chars[j]); j += 1 }
                guard j < chars.count else { throw ConditionError(message: "unterminated string", offset: i) }
                tokens.append(Token(text: s, offset: i, isString: true))
                i = j + 1
                continue
            }
            var j = i
            while j < chars.count && (chars[j].isLetter || chars[j].isNumber || "._-+".contains(chars[j])) { j += 1 }
            guard j > i else { throw ConditionError(message: "unexpected '\(c)'", offset: i) }
            tokens.append(Token(text: String(chars[i..<j]), offset: i))
            i = j
        }
        return tokens
    }

    /// How deep parentheses and `not` may nest (the parser and the evaluator recurse that deep).
    public static let maximumDepth = 32

    struct Parser {
        var tokens: [Token]
        var position = 0
        var depth = 0

        mutating func deeper(at offset: Int) throws(ConditionError) {
            depth += 1
            if depth > Condition.maximumDepth {
                throw ConditionError(message: "parentheses and 'not' nested more than \(Condition.maximumDepth) deep", offset: offset)
            }
        }
        var peek: Token? { position < tokens.count ? tokens[position] : nil }

        mutating func take() -> Token? {
            defer { position += 1 }
            return peek
        }

        mutating func or() throws(ConditionError) -> Condition {
            var left = try and()
            while peek?.text == "or", peek?.isString == false { _ = take(); left = .or(left, try and()) }
            return left
        }

        mutating func and() throws(ConditionError) -> Condition {
            var left = try not()
            while peek?.text == "and", peek?.isString == false { _ = take(); left = .and(left, try not()) }
            return left
        }

        mutating func not() throws(ConditionError) -> Condition {
            if peek?.text == "not", peek?.isString == false {
                let token = take()!
                try deeper(at: token.offset)
                defer { depth -= 1 }
                return .not(try not())
            }
            return try comparison()
        }

        mutating func comparison() throws(ConditionError) -> Condition {
            if peek?.text == "(", peek?.isString == false {
                let open = take()!
                try deeper(at: open.offset)
                defer { depth -= 1 }
                let inner = try or()
                guard peek?.text == ")" else { throw ConditionError(message: "'(' is not closed", offset: open.offset) }
                _ = take()
                return inner
            }
            let left = try operand()
            if let op = peek, ["<", "<=", ">", ">=", "==", "!="].contains(op.text), !op.isString {
                _ = take()
                return .comparison(left, op.text, try operand())
            }
            return .truthy(left)
        }

        mutating func operand() throws(ConditionError) -> Operand {
            guard let t = take() else { throw ConditionError(message: "the condition ends too early", offset: tokens.last.map { $0.offset + $0.text.count } ?? 0) }
            if t.isString { return .string(t.text) }
            if t.text == "true" { return .bool(true) }
            if t.text == "false" { return .bool(false) }
            if let n = Double(t.text) { return .number(n) }
            guard t.text.first?.isLetter == true, !["and", "or", "not"].contains(t.text), !"()<>=!".contains(t.text) else {
                throw ConditionError(message: "expected a field, a number or a string, found '\(t.text)'", offset: t.offset)
            }
            return .field(t.text)
        }
    }
}

/// An event field's value.
public enum Value: Sendable, Equatable {
    case number(Double)
    case string(String)
    case bool(Bool)

    var isTruthy: Bool {
        switch self {
        case .number(let n): n != 0
        case .string(let s): !s.isEmpty
        case .bool(let b): b
        }
    }

    public var text: String {
        switch self {
        case .number(let n): n == n.rounded() && abs(n) < 1e15 ? String(Int(n)) : String(n)
        case .string(let s): s
        case .bool(let b): b ? "true" : "false"
        }
    }
}

public struct ConditionError: Error, Sendable {
    public var message: String
    public var offset: Int
}

extension Condition: CustomStringConvertible {
    /// The condition written back out, fully parenthesised where precedence matters.
    public var description: String {
        switch self {
        case .comparison(let l, let op, let r): "\(Self.text(l)) \(op) \(Self.text(r))"
        case .truthy(let o): Self.text(o)
        case .and(let a, let b): "\(a.grouped(inside: .and)) and \(b.grouped(inside: .and))"
        case .or(let a, let b): "\(a) or \(b)"
        case .not(let a): "not \(a.grouped(inside: .not))"
        }
    }

    enum Context { case and, not }

    func grouped(inside context: Context) -> String {
        switch (self, context) {
        case (.or, _), (.and, .not): "(\(self))"
        default: description
        }
    }
}
