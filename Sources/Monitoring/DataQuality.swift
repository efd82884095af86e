import DroplineSupport
import Foundation
public import Imaging
public import Modeling
import SystemFiles
import Hashing
import JSONFiles

/// # Data quality
///
/// The cloud design's data-quality monitor, for images: before a model sees a batch, is it the kind
/// of data the model was trained on? Train mode learns, from the raw training images, the
/// distribution of each image's properties (`ImageFacts`: size, aspect ratio, file size, format,
/// colour model, channels, brightness, contrast, sharpness, saturation) and the rates of
/// duplicates and refused files, into a statistics file, and derives from it a constraints file.
/// Serve mode checks every batch against the constraints and lists each violation with the images
/// concerned. It is separate from drift: a batch of thumbnails or of blank frames violates the
/// constraints even when the model's features look familiar. docs/monitoring.md#data-quality
/// documents both files.

/// A numeric property of an image.
public enum QualityProperty: String, CaseIterable, Codable, Sendable {
    case width, height
    case aspectRatio = "aspect_ratio"
    case fileSize = "file_size"
    case brightness, contrast, sharpness, saturation

    public func value(_ facts: ImageFacts) -> Double {
        switch self {
        case .width: Double(facts.width)
        case .height: Double(facts.height)
        case .aspectRatio: Double(facts.width) / Double(max(facts.height, 1))
        case .fileSize: Double(facts.fileBytes)
        case .brightness: facts.measures.brightness
        case .contrast: facts.measures.contrast
        case .sharpness: facts.measures.sharpness
        case .saturation: facts.measures.saturation
        }
    }

    /// Ranges widen by factors (the training range's own ratio to a power, at least `minimumFactor`)
    /// for properties that vary by factors; saturation, whose training range often starts at 0
    /// (grey photos), widens by a share of its span.
    var multiplicative: Bool { self != .saturation }

    /// The unit, for messages.
    public var unit: String {
        switch self {
        case .width, .height: " px"
        case .fileSize: " bytes"
        default: ""
        }
    }
}

/// A categorical property of an image.
public enum QualityCategory: String, CaseIterable, Codable, Sendable {
    case format
    case colorModel = "color_model"
    case channels

    public func value(_ facts: ImageFacts) -> String {
        switch self {
        case .format: facts.format
        case .colorModel: facts.colorModel
        case .channels: "\(facts.channels)"
        }
    }
}

/// How far a batch may stray before it violates the constraints. Learned constraints carry the
/// limits they were fitted with; a root's dropline.yaml may set others (`data_quality:`).
public struct QualityLimits: Codable, Sendable, Equatable {
    /// A numeric property is violated when more than this share of the batch's images lie outside its range.
    public var outOfRangeShare = 0.05
    /// A value of a categorical property is violated when its share of the batch exceeds its share
    /// of the training images by more than this.
    public var categoryTolerance = 0.10
    /// Duplicates (the same file, or the same picture: equal difference hashes) may exceed the
    /// training rate by this share of the batch.
    public var duplicateTolerance = 0.05
    /// Refused files may exceed the training rate by this share of the batch's files.
    public var refusalTolerance = 0.05
    /// A share breaks its limit only beyond chance: when the one-sided binomial probability of at
    /// least as many images concerned, were the allowed share the true one, is below this (so one
    /// broken file in seven is not a violation, and 14 dark frames in 40 are). nil, in limits
    /// fitted before it existed: 0.01.
    public var significance: Double? = 0.01
    public init() {}

    var level: Double { significance ?? 0.01 }

    /// P(X >= k) for X ~ Binomial(n, p): scipy's `binom.sf(k - 1, n, p)`, summed in log space.
    public static func binomialTail(atLeast k: Int, of n: Int, p: Double) -> Double {
        guard k > 0 else { return 1 }
        guard k <= n else { return 0 }
        guard p > 0 else { return 0 }
        guard p < 1 else { return 1 }
        let logP = Foundation.log(p), logQ = Foundation.log1p(-p)
        // log C(n, k) as a sum of logs, then each next coefficient from the one before
        var logChoose = 0.0
        for i in 1...k { logChoose += Foundation.log(Double(n - k + i)) - Foundation.log(Double(i)) }
        var terms: [Double] = []
        terms.reserveCapacity(n - k + 1)
        for j in k...n {
            terms.append(logChoose + Double(j) * logP + Double(n - j) * logQ)
            if j < n { logChoose += Foundation.log(Double(n - j)) - Foundation.log(Double(j + 1)) }
        }
        let top = terms.max()!
        return min(1, Foundation.exp(top) * terms.reduce(0) { $0 + Foundation.exp($1 - top) })
    }

    /// Whether `count` of `n` is beyond the allowed share by more than chance; its tail probability.
    func exceeds(_ count: Int, of n: Int, allowed: Double) -> (Bool, Double) {
        guard n > 0, Double(count) / Double(n) > allowed else { return (false, 1) }
        let tail = Self.binomialTail(atLeast: count, of: n, p: allowed)
        return (tail < level, tail)
    }
}

/// What the training images looked like: `statistics.json`.
public struct QualityStatistics: Codable, Sendable, Equatable {
    public struct Numeric: Codable, Sendable, Equatable {
        public var count: Int
        public var mean: Double
        public var standardDeviation: Double
        public var minimum: Double
        public var maximum: Double
        /// Linear-interpolation quantiles (numpy's default), keyed by level: "0.005" ... "0.995".
        public var quantiles: [String: Double]
    }

    public var formatVersion = 1
    public var images: Int
    public var refused: Int
    public var numeric: [String: Numeric]
    /// Per categorical property, each value's share of the images.
    public var categorical: [String: [String: Double]]
    public var duplicateRate: Double
    public var refusalRate: Double
    public var trainingData: [String]
    public var trainingDataSha256: String
    public var createdAt: String
    public var droplineVersion: String

    public static let levels = [0.005, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.995]
    static func key(_ level: Double) -> String { String(format: "%g", level) }
}

/// What a served batch must satisfy: `constraints.json`, derived from the statistics.
public struct QualityConstraints: Codable, Sendable, Equatable {
    public struct Range: Codable, Sendable, Equatable {
        public var minimum: Double
        public var maximum: Double
        public func contains(_ value: Double) -> Bool { value >= minimum && value <= maximum }
    }

    public var formatVersion = 1
    /// Per numeric property, the range an image's value must lie in.
    public var ranges: [String: Range]
    /// Per categorical property, each training value's share (a value not listed has share 0).
    public var trainingShares: [String: [String: Double]]
    public var trainingDuplicateRate: Double
    public var trainingRefusalRate: Double
    /// How ranges were widened from the training 0.5% and 99.5% quantiles.
    public var rangeMargin: Double
    public var minimumFactor: Double
    /// The limits fitted with (a root's dropline.yaml may check with others).
    public var limits: QualityLimits
}

/// One broken constraint of a batch.
public struct QualityViolation: Codable, Sendable, Equatable {
    /// A numeric or categorical property, `duplicates` or `refusals`.
    public var property: String
    /// `range`, `share`, `duplicate_rate` or `refusal_rate`.
    public var check: String
    /// The batch's share (of images, or of files for refusals) that breaks it.
    public var observed: Double
    /// The largest share allowed.
    public var allowed: Double
    /// In words: what was found, against what the training images had.
    public var detail: String
    /// How many images (or files) are concerned, and their paths (the first `listed`).
    public var count: Int
    public var images: [String]
    /// The one-sided binomial probability of at least `count` concerned were the allowed share true
    /// (`QualityLimits.significance`).
    public var pValue: Double? = nil

    public static let listed = 100
}

/// One numeric property of a batch, summarised (for the run page and `status`).
public struct QualitySummary: Codable, Sendable, Equatable {
    public var property: String
    public var median: Double
    public var minimum: Double
    public var maximum: Double
    public var allowed: QualityConstraints.Range
    public var outOfRange: Int
}

/// A batch's data-quality result: `monitoring/quality.json` of a serve run.
public struct QualityReport: Codable, Sendable, Equatable {
    public var batch: String
    /// The content hash of the baseline checked against, nil when the model version has none
    /// (fitted before Dropline learned data quality): then nothing was checked.
    public var baseline: String?
    public var images: Int
    public var refused: Int
    public var limits: QualityLimits
    public var violations: [QualityViolation]
    public var properties: [QualitySummary]
    public var checkedAt: String

    public var passed: Bool { violations.isEmpty }

    /// The report of a batch served by a model version without a baseline: nothing checked.
    public static func unchecked(batch: String, images: Int, refused: Int) -> QualityReport {
        QualityReport(batch: batch, baseline: nil, images: images, refused: refused, limits: QualityLimits(), violations: [], properties: [],
                      checkedAt: ISOTime.now())
    }

    /// One line for logs and flags.
    public var reason: String {
        guard baseline != nil else { return "no data-quality baseline for this model version (fitted before data quality was learned); not checked" }
        guard !violations.isEmpty else { return "within the data-quality constraints (\(properties.count) properties, duplicates, refusals)" }
        return "\(violations.count) data-quality violation(s): " + violations.prefix(3).map(\.detail).joined(separator: "; ") + (violations.count > 3 ? "; ..." : "")
    }
}

/// A model version's data-quality baseline: the statistics and constraints files, verified by
/// their content hash.
public struct DataQualityBaseline: Sendable {
    public let statistics: QualityStatistics
    public let constraints: QualityConstraints
    public let contentHash: String

    public static let statisticsFile = "statistics.json"
    public static let constraintsFile = "constraints.json"
    public static let hashFile = "content.sha256"
    /// Ranges start from the training 0.5% and 99.5% quantiles, widened by this much of their span
    /// (a factor, for multiplicative properties) and at least by `minimumFactor`.
    public static let rangeMargin = 0.25
    public static let minimumFactor = 2.0

    /// Learns the baseline from raw training images' facts (`refused` files could not be used) and
    /// writes `folder` (statistics.json, constraints.json, content.sha256), which must not exist.
    @discardableResult
    public static func fit(facts: [ImageFacts], sha256s: [String], refused: Int, trainingData: [String], trainingDataSha256: String,
                           limits: QualityLimits = QualityLimits(), to folder: String) throws -> DataQualityBaseline {
        precondition(facts.count == sha256s.count, "\(facts.count) facts for \(sha256s.count) images: read the training images with their facts")
        guard facts.count >= 20 else {
            throw MonitoringError(reason: "\(trainingData.joined(separator: ", ")) has \(facts.count) usable images; the data-quality baseline needs at least 20")
        }
        var numeric: [String: QualityStatistics.Numeric] = [:], ranges: [String: QualityConstraints.Range] = [:]
        for property in QualityProperty.allCases {
            let values = facts.map(property.value).sorted()
            let mean = values.reduce(0, +) / Double(values.count)
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(values.count - 1, 1))
            var quantiles: [String: Double] = [:]
            for level in QualityStatistics.levels { quantiles[QualityStatistics.key(level)] = quantile(values, level) }
            numeric[property.rawValue] = .init(count: values.count, mean: mean, standardDeviation: variance.squareRoot(), minimum: values.first!,
                                               maximum: values.last!, quantiles: quantiles)
            ranges[property.rawValue] = range(property, low: quantile(values, 0.005), high: quantile(values, 0.995))
        }
        var shares: [String: [String: Double]] = [:]
        for category in QualityCategory.allCases {
            var counts: [String: Int] = [:]
            for f in facts { counts[category.value(f), default: 0] += 1 }
            shares[category.rawValue] = counts.mapValues { Double($0) / Double(facts.count) }
        }
        let duplicateRate = Double(duplicates(facts: facts, sha256s: sha256s).extra) / Double(facts.count)
        let refusalRate = Double(refused) / Double(facts.count + refused)
        let statistics = QualityStatistics(images: facts.count, refused: refused, numeric: numeric, categorical: shares, duplicateRate: duplicateRate,
                                           refusalRate: refusalRate, trainingData: trainingData, trainingDataSha256: trainingDataSha256,
                                           createdAt: ISOTime.now(), droplineVersion: DroplineVersion.current)
        let constraints = QualityConstraints(ranges: ranges, trainingShares: shares, trainingDuplicateRate: duplicateRate, trainingRefusalRate: refusalRate,
                                             rangeMargin: rangeMargin, minimumFactor: minimumFactor, limits: limits)
        let fm = FileManager.default
        guard !fm.fileExists(atPath: folder) else {
            throw MonitoringError(reason: "'\(folder)' already exists; choose another output folder or remove it")
        }
        let staging = folder + ".partial-\(getpid())"
        try? fm.removeItem(atPath: staging)
        try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
        do {
            let s = Array(try SnakeCaseJSON.encoder().encode(statistics)), c = Array(try SnakeCaseJSON.encoder().encode(constraints))
            try AtomicFile.write(s, to: staging + "/" + statisticsFile)
            try AtomicFile.write(c, to: staging + "/" + constraintsFile)
            let hash = contentHash(statistics: s, constraints: c)
            try AtomicFile.write(Array((hash + "\n").utf8), to: staging + "/" + hashFile)
            try Syscall.retrying("rename", path: folder) { rename(staging, folder) }
            return DataQualityBaseline(statistics: statistics, constraints: constraints, contentHash: hash)
        } catch {
            try? fm.removeItem(atPath: staging)
            throw error
        }
    }

    private init(statistics: QualityStatistics, constraints: QualityConstraints, contentHash: String) {
        self.statistics = statistics
        self.constraints = constraints
        self.contentHash = contentHash
    }

    /// Loads a baseline folder, checking its content hash; nil when the folder does not exist (a
    /// model version fitted before data quality was learned).
    public static func load(_ folder: String) throws -> DataQualityBaseline? {
        guard FileSystem.entryType(folder) != nil else { return nil }
        func read(_ name: String) throws -> [UInt8] {
            do { return try AtomicFile.read(folder + "/" + name, limit: 16 << 20, links: .refuse) } catch {
                throw MonitoringError(reason: "the data-quality baseline '\(folder)' has no readable \(name) (\(error)); train the model version again")
            }
        }
        let s = try read(statisticsFile), c = try read(constraintsFile)
        let recorded = String(decoding: try read(hashFile), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let hash = contentHash(statistics: s, constraints: c)
        guard hash == recorded else {
            throw MonitoringError(reason: "the data-quality baseline '\(folder)' does not match its content.sha256 (changed after fitting); train the model version again")
        }
        do {
            return DataQualityBaseline(statistics: try SnakeCaseJSON.decoder().decode(QualityStatistics.self, from: Data(s)),
                                       constraints: try SnakeCaseJSON.decoder().decode(QualityConstraints.self, from: Data(c)), contentHash: hash)
        } catch {
            throw MonitoringError(reason: "the data-quality baseline '\(folder)' cannot be read by this Dropline (\(error))")
        }
    }

    static func contentHash(statistics: [UInt8], constraints: [UInt8]) -> String {
        var h = SHA256()
        h.update(Array(SHA256.hash(statistics).utf8))
        h.update(Array(SHA256.hash(constraints).utf8))
        return h.finalize()
    }

    /// The allowed range of `property` from the training quantiles `low` and `high`, within the
    /// property's own bounds (brightness, contrast and saturation lie in 0...1).
    static func range(_ property: QualityProperty, low: Double, high: Double) -> QualityConstraints.Range {
        let range: QualityConstraints.Range
        if property.multiplicative {
            let factor = low > 0 ? max(minimumFactor, pow(high / low, rangeMargin)) : minimumFactor
            range = .init(minimum: low / factor, maximum: high * factor)
        } else {
            let widen = max(rangeMargin * (high - low), 0.05)
            range = .init(minimum: low - widen, maximum: high + widen)
        }
        let bounded: Set<QualityProperty> = [.brightness, .contrast, .saturation]
        return bounded.contains(property) ? .init(minimum: max(0, range.minimum), maximum: min(1, range.maximum)) : range
    }

    /// Linear interpolation between the closest ranks (numpy's default), of sorted `values`.
    static func quantile(_ values: [Double], _ level: Double) -> Double {
        let position = level * Double(values.count - 1)
        let below = Int(position.rounded(.down)), above = min(below + 1, values.count - 1)
        return values[below] + (values[above] - values[below]) * (position - Double(below))
    }

    /// The images that repeat an earlier one (the same file content, or the same picture by
    /// difference hash): how many extra copies, and every index in a group of two or more.
    static func duplicates(facts: [ImageFacts], sha256s: [String]) -> (extra: Int, members: [Int]) {
        var groups: [String: [Int]] = [:], byHash: [UInt64: String] = [:]
        for (n, (f, sha)) in zip(facts, sha256s).enumerated() {
            // a picture already seen under another file joins that file's group
            let key = byHash[f.differenceHash] ?? sha
            byHash[f.differenceHash] = key
            groups[key, default: []].append(n)
        }
        let repeated = groups.values.filter { $0.count > 1 }
        return (repeated.reduce(0) { $0 + $1.count - 1 }, repeated.flatMap { $0 }.sorted())
    }

    /// Checks a batch (its usable images' facts and paths, and its refused files) against the
    /// constraints, with `limits` (the constraints' own unless given).
    public func check(batch: String, facts: [ImageFacts], paths: [String], sha256s: [String], refused: [String],
                      limits given: QualityLimits? = nil) -> QualityReport {
        let limits = given ?? constraints.limits
        let n = facts.count, files = n + refused.count
        var violations: [QualityViolation] = [], summaries: [QualitySummary] = []
        func percent(_ x: Double) -> String { String(format: "%.1f%%", 100 * x) }
        func number(_ x: Double) -> String { abs(x) >= 100 ? String(format: "%.0f", x) : abs(x) < 1e-9 ? "0" : String(format: "%.3g", x) }
        func listed(_ indices: [Int]) -> [String] { indices.prefix(QualityViolation.listed).map { paths[$0] } }
        if n > 0 {
            for property in QualityProperty.allCases {
                guard let range = constraints.ranges[property.rawValue] else { continue }
                let values = facts.map(property.value)
                let outside = values.indices.filter { !range.contains(values[$0]) }
                let sorted = values.sorted()
                summaries.append(QualitySummary(property: property.rawValue, median: Self.quantile(sorted, 0.5), minimum: sorted.first!, maximum: sorted.last!,
                                                allowed: range, outOfRange: outside.count))
                let share = Double(outside.count) / Double(n)
                let (broken, tail) = limits.exceeds(outside.count, of: n, allowed: limits.outOfRangeShare)
                guard broken else { continue }
                let below = outside.filter { values[$0] < range.minimum }.count
                let direction = below == outside.count ? "below" : below == 0 ? "above" : "outside"
                violations.append(QualityViolation(
                    property: property.rawValue, check: "range", observed: share, allowed: limits.outOfRangeShare,
                    detail: "\(property.rawValue): \(outside.count) of \(n) images (\(percent(share))) \(direction) the training images' range "
                        + "\(number(range.minimum))-\(number(range.maximum))\(property.unit) (batch median \(number(Self.quantile(sorted, 0.5)))\(property.unit))",
                    count: outside.count, images: listed(outside), pValue: tail))
            }
            for category in QualityCategory.allCases {
                let trained = constraints.trainingShares[category.rawValue] ?? [:]
                var members: [String: [Int]] = [:]
                for (i, f) in facts.enumerated() { members[category.value(f), default: []].append(i) }
                for (value, indices) in members.sorted(by: { $0.key < $1.key }) {
                    let share = Double(indices.count) / Double(n), allowed = min(1, (trained[value] ?? 0) + limits.categoryTolerance)
                    let (broken, tail) = limits.exceeds(indices.count, of: n, allowed: allowed)
                    guard broken else { continue }
                    violations.append(QualityViolation(
                        property: category.rawValue, check: "share", observed: share, allowed: allowed,
                        detail: "\(category.rawValue) \(value): \(indices.count) of \(n) images (\(percent(share))), "
                            + (trained[value].map { "\(percent($0)) of the training images" } ?? "never seen in the training images"),
                        count: indices.count, images: listed(indices), pValue: tail))
                }
            }
            let (extra, members) = Self.duplicates(facts: facts, sha256s: sha256s)
            let rate = Double(extra) / Double(n), allowed = min(1, constraints.trainingDuplicateRate + limits.duplicateTolerance)
            let (broken, tail) = limits.exceeds(extra, of: n, allowed: allowed)
            if broken {
                violations.append(QualityViolation(
                    property: "duplicates", check: "duplicate_rate", observed: rate, allowed: allowed,
                    detail: "duplicates: \(extra) of \(n) images (\(percent(rate))) repeat another image of the batch (same file or same picture), "
                        + "\(percent(constraints.trainingDuplicateRate)) in training",
                    count: members.count, images: listed(members), pValue: tail))
            }
        }
        if files > 0 {
            let rate = Double(refused.count) / Double(files), allowed = min(1, constraints.trainingRefusalRate + limits.refusalTolerance)
            let (broken, tail) = limits.exceeds(refused.count, of: files, allowed: allowed)
            if broken {
                violations.append(QualityViolation(
                    property: "refusals", check: "refusal_rate", observed: rate, allowed: allowed,
                    detail: "refusals: \(refused.count) of \(files) files (\(percent(rate))) could not be used, \(percent(constraints.trainingRefusalRate)) in training",
                    count: refused.count, images: Array(refused.prefix(QualityViolation.listed)), pValue: tail))
            }
        }
        return QualityReport(batch: batch, baseline: contentHash, images: n, refused: refused.count, limits: limits, violations: violations,
                             properties: summaries, checkedAt: ISOTime.now())
    }
}
