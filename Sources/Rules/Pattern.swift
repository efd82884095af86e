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

    /// Parses a pattern; the error message says what is wrong and where (0-based character offset).
    public init(_ text: String) throws(PatternError) {
        description = text
        var segments: [Segment] = []
        var offset = 0
        for part in text.split(separator: "/", omittingEmptySubsequences: false).map(String.init) {
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
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        return Self.match(segments[...], parts[...], [:])
    }

    static func match(_ segments: ArraySlice<Segment>, _ parts: ArraySlice<String>, _ captures: [String: String]) -> [String: String]? {
        guard let first = segments.first else { return parts.isEmpty ? captures : nil }
        switch first {
        case .anyDepth:
            for skip in 0...parts.count {
                if let found = match(segments.dropFirst(), parts.dropFirst(skip), captures) { return found }
            }
            return nil
        case .literal(let text):
            guard parts.first == text else { return nil }
            return match(segments.dropFirst(), parts.dropFirst(), captures)
        case .any:
            guard !parts.isEmpty else { return nil }
            return match(segments.dropFirst(), parts.dropFirst(), captures)
        case .capture(let name, let prefix, let suffix):
            guard let part = parts.first, part.count > prefix.count + suffix.count, part.hasPrefix(prefix), part.hasSuffix(suffix) else { return nil }
            let value = String(part.dropFirst(prefix.count).dropLast(suffix.count))
            var next = captures
            next[name] = value
            return match(segments.dropFirst(), parts.dropFirst(), next)
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
