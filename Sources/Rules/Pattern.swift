/// A path pattern with named captures: `production/{stage}/{batch}` matches
/// `production/stage-2/batch-7` with stage = stage-2, batch = batch-7. `{name}` and `*` match one path
/// segment (`*` without capturing); a capture may sit between literal text in its segment
/// (`{stage}.json`, `batch-{n}`); `**` matches any number of segments; other segments match literally.
public struct MatchPattern: Sendable, Equatable, CustomStringConvertible {
    enum Segment: Sendable, Equatable {
        case literal(String)
        case capture(String, prefix: String, suffix: String)
        case any
        case anyDepth
    }

    let segments: [Segment]
    public let description: String

    /// The most segments a pattern may have.
    public static let maximumSegments = 64

    /// Parses a pattern; the error message says what is wrong and where (0-based character offset).
    public init(_ text: String) throws(PatternError) {
        description = text
        var segments: [Segment] = []
        var offset = 0
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts.count > Self.maximumSegments { throw PatternError(message: "more than \(Self.maximumSegments) path segments", offset: 0) }
        for part in parts {
            defer { offset += part.count + 1 }
            if part.isEmpty { throw PatternError(message: "empty path segment", offset: offset) }
            if part == "*" { segments.append(.any); continue }
            if part == "**" { segments.append(.anyDepth); continue }
            if let open = part.firstIndex(of: "{") {
                let column = offset + part.distance(from: part.startIndex, to: open)
                guard let close = part[open...].firstIndex(of: "}") else { throw PatternError(message: "'{' is not closed; a capture is written {name}", offset: column) }
                let name = String(part[part.index(after: open)..<close])
                guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                    throw PatternError(message: "capture name '\(name)' may use letters, digits and _ only", offset: column + 1)
                }
                let prefix = String(part[..<open]), suffix = String(part[part.index(after: close)...])
                if suffix.contains("{") || suffix.contains("}") || prefix.contains("}") {
                    throw PatternError(message: "one capture per path segment", offset: column)
                }
                if Self.captureNames(segments).contains(name) { throw PatternError(message: "capture '\(name)' appears twice", offset: column) }
                segments.append(.capture(name, prefix: prefix, suffix: suffix))
                continue
            }
            if part.contains("}") { throw PatternError(message: "'}' without '{'", offset: offset) }
            segments.append(.literal(part))
        }
        self.segments = segments
    }

    /// The captures when `path` matches, else nil.
    public func match(_ path: String) -> [String: String]? {
        var steps = 0
        return match(path, steps: &steps)
    }

    /// Matching by dynamic programming over (segment, path part) pairs: `matches[i][j]` says whether
    /// segments i... match parts j...; each cell is computed once, so the time is proportional to
    /// segments x parts whatever the number of `**` (a backtracking matcher is exponential in
    /// them). The captures are then read off the table from the left, each `**` taking as few parts
    /// as it can. `steps` counts the cells and moves, for the tests.
    public func match(_ path: String, steps: inout Int) -> [String: String]? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let s = segments.count, p = parts.count
        var matches = [[Bool]](repeating: [Bool](repeating: false, count: p + 1), count: s + 1)
        matches[s][p] = true
        for i in stride(from: s - 1, through: 0, by: -1) {
            for j in stride(from: p, through: 0, by: -1) {
                steps += 1
                switch segments[i] {
                case .anyDepth: matches[i][j] = matches[i + 1][j] || (j < p && matches[i][j + 1])
                default: matches[i][j] = j < p && Self.accepts(segments[i], parts[j]) && matches[i + 1][j + 1]
                }
            }
        }
        guard matches[0][0] else { return nil }
        var captures: [String: String] = [:]
        var j = 0
        for i in 0..<s {
            steps += 1
            switch segments[i] {
            case .anyDepth:
                while !matches[i + 1][j] { j += 1; steps += 1 }
            case .capture(let name, let prefix, let suffix):
                captures[name] = String(parts[j].dropFirst(prefix.count).dropLast(suffix.count))
                j += 1
            default:
                j += 1
            }
        }
        return captures
    }

    /// Whether one segment (not `**`) accepts one path part.
    static func accepts(_ segment: Segment, _ part: String) -> Bool {
        switch segment {
        case .anyDepth, .any: true
        case .literal(let text): part == text
        case .capture(_, let prefix, let suffix): part.count > prefix.count + suffix.count && part.hasPrefix(prefix) && part.hasSuffix(suffix)
        }
    }

    public var captureNames: [String] { Self.captureNames(segments) }

    static func captureNames(_ segments: [Segment]) -> [String] {
        segments.compactMap { if case .capture(let n, _, _) = $0 { return n } else { return nil } }
    }
}

public struct PatternError: Error, Sendable {
    public var message: String
    public var offset: Int
}
