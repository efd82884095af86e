import DroplineSupport
import Foundation
import SystemFiles
import Yams

/// A root's own configuration, `<root>/dropline.yaml` (docs/configuration.md): the training recipe
/// of a root (used over the champion's, and when there is none), the watch settings, and the
/// thresholds. Every key is optional; an absent file is the defaults. Checked as the rules file is:
/// a mistake is refused with `file:line:column` and what is allowed.
public struct RootConfiguration: Sendable, Equatable {
    public struct Training: Sendable, Equatable {
        /// `scratch`, `small-cnn` or `backbone:<model.json>` (a relative path is relative to the root).
        public var arch: String?
        public var imageSize: Int?
        public var epochs: Int?
        public init() {}
    }

    public struct Watch: Sendable, Equatable {
        public var marker: String?
        public var settleSeconds: Double?
        public var jobs: Int?
        public init() {}
    }

    public struct Thresholds: Sendable, Equatable {
        /// The corrected KS p-value below which a feature drifts (shared among the detectors).
        public var driftPValue: Double?
        /// The KS statistic a drifted feature must also reach.
        public var driftMinimumStatistic: Double?
        /// A new model is promoted when its validation accuracy is at least the champion's minus this.
        public var promotionMargin: Double?
        /// Ground truth below the model's validation accuracy minus this raises a quality flag.
        public var qualityTolerance: Double?
        public init() {}
    }

    /// The data-quality limits (Monitoring's `QualityLimits`), over the ones a model version's
    /// constraints were fitted with.
    public struct DataQuality: Sendable, Equatable {
        /// A property is violated when more than this share of a batch's images lie outside its range.
        public var outOfRangeShare: Double?
        /// A categorical value may exceed its training share by this much.
        public var categoryTolerance: Double?
        /// Duplicates may exceed the training rate by this share of the batch.
        public var duplicateTolerance: Double?
        /// Refused files may exceed the training rate by this share of the batch's files.
        public var refusalTolerance: Double?
        /// A share breaks its limit only when the binomial probability of it, at the limit, is below this.
        public var significance: Double?
        public init() {}
    }

    /// How `dropline watch --executor slurm` submits the pipelines (Slurm's words: partitions, GRES).
    public struct Slurm: Sendable, Equatable {
        /// The partition serve runs' shard arrays and merges go to (`--partition` overrides it; nil: the cluster's default).
        public var partition: String?
        /// The partition trainings go to (nil: `partition`).
        public var trainingPartition: String?
        /// The generic resources a training asks for (`--gres`, for example `gpu:1`).
        public var trainingGres: String?
        /// At most this many images per shard (one array task each).
        public var shardImages: Int?
        /// At most this many of a run's shard tasks at once (the array's `%` limit; nil: no limit).
        public var arrayWidth: Int?
        /// How many times the failed shards (a lost node, a preemption, a time limit) are submitted again.
        public var resubmissions: Int?
        /// CPUs per shard task (`--cpus-per-task`; also the task's thread count).
        public var cpusPerTask: Int?
        /// The time limit of each Slurm job (`--time`, Slurm's format).
        public var timeLimit: String?
        /// The dropline executable as the nodes see it (nil: this one's path, so it must be the same there).
        public var executable: String?
        public init() {}
    }

    public var training = Training()
    public var watch = Watch()
    public var slurm = Slurm()
    public var thresholds = Thresholds()
    public var dataQuality = DataQuality()
    /// The file it was read from (nil: no file, the defaults).
    public var file: String?

    public init() {}

    public static let fileName = "dropline.yaml"
    public static let knownVersion = 1
    public static let maximumBytes = 64 * 1024

    /// `<root>/dropline.yaml`, or the defaults when there is none.
    public static func load(root: String) throws(RulesError) -> RootConfiguration {
        let file = root + "/" + fileName
        guard FileSystem.entryType(file) != nil else { return RootConfiguration() }
        let bytes: [UInt8]
        do { bytes = try AtomicFile.read(file, limit: maximumBytes) } catch let error as SystemError where error.errno == EFBIG {
            throw RulesError(file: file, line: 1, column: 1, message: "the configuration file is larger than \(maximumBytes / 1024) KiB")
        } catch {
            throw RulesError(file: file, message: "cannot read the configuration file (\(error)); check that it is a regular, readable file")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw RulesError(file: file, message: "the configuration file is not UTF-8 text") }
        var c = try parse(yaml: text, file: file)
        c.file = file
        return c
    }

    public static func parse(yaml text: String, file: String) throws(RulesError) -> RootConfiguration {
        try RuleSet.checkFlowDepth(text, file: file)
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw RulesError(file: file, message: "not valid YAML: \(error)") }
        guard let root else { return RootConfiguration() }
        guard let top = root.mapping else { throw RulesError(file: file, node: root, message: "the file must be a mapping with `version: 1`") }
        var budget = RuleSet.Limits.values
        try RuleSet.checkDepth(root, file: file, depth: 1, budget: &budget)
        var c = RootConfiguration()
        var version: Int?
        func section(_ node: Node, _ name: String, _ keys: [String], _ each: (String, Node) throws(RulesError) -> Void) throws(RulesError) {
            guard let mapping = node.mapping else { throw RulesError(file: file, node: node, message: "`\(name):` must be a mapping of \(keys.joined(separator: ", "))") }
            for (key, value) in mapping {
                guard let k = key.string, keys.contains(k) else {
                    throw RulesError(file: file, node: key, message: "unknown key '\(key.string ?? "?")' in \(name) (expected \(keys.joined(separator: ", ")))")
                }
                try each(k, value)
            }
        }
        func integer(_ node: Node, _ key: String, _ range: ClosedRange<Int>) throws(RulesError) -> Int {
            guard let n = node.int, range.contains(n) else {
                throw RulesError(file: file, node: node, message: "\(key) is a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return n
        }
        func number(_ node: Node, _ key: String, _ range: ClosedRange<Double>, open lower: Bool = false) throws(RulesError) -> Double {
            guard let x = node.float, x.isFinite, range.contains(x), !(lower && x == range.lowerBound) else {
                throw RulesError(file: file, node: node, message: "\(key) is a number from \(lower ? "above " : "")\(range.lowerBound) to \(range.upperBound)")
            }
            return x
        }
        for (key, value) in top {
            switch key.string {
            case "version":
                guard let v = value.int, v == knownVersion else {
                    throw RulesError(file: file, node: value, message: "this Dropline reads configuration version \(knownVersion); found '\(value.string ?? "?")'")
                }
                version = v
            case "training":
                try section(value, "training", ["arch", "image_size", "epochs"]) { (k: String, v: Node) throws(RulesError) in
                    switch k {
                    case "arch":
                        guard let arch = v.string, arch == "scratch" || arch == "small-cnn" || (arch.hasPrefix("backbone:") && arch.count > "backbone:".count) else {
                            throw RulesError(file: file, node: v, message: "arch is scratch, small-cnn or backbone:<model.json> (relative to the root)")
                        }
                        c.training.arch = arch
                    case "image_size": c.training.imageSize = try integer(v, k, 16...1024)
                    default: c.training.epochs = try integer(v, k, 1...1000)
                    }
                }
            case "watch":
                try section(value, "watch", ["marker", "settle_seconds", "jobs"]) { (k: String, v: Node) throws(RulesError) in
                    switch k {
                    case "marker":
                        guard let marker = v.string, SafeName.problem(marker, what: "marker") == nil else {
                            throw RulesError(file: file, node: v, message: "marker is a file name: \(SafeName.remedy)")
                        }
                        c.watch.marker = marker
                    case "settle_seconds": c.watch.settleSeconds = try number(v, k, 0...86_400)
                    default: c.watch.jobs = try integer(v, k, 1...64)
                    }
                }
            case "thresholds":
                try section(value, "thresholds", ["drift_p_value", "drift_minimum_statistic", "promotion_margin", "quality_tolerance"]) { (k: String, v: Node) throws(RulesError) in
                    switch k {
                    case "drift_p_value": c.thresholds.driftPValue = try number(v, k, 0...0.5, open: true)
                    case "drift_minimum_statistic": c.thresholds.driftMinimumStatistic = try number(v, k, 0...1)
                    case "promotion_margin": c.thresholds.promotionMargin = try number(v, k, 0...1)
                    default: c.thresholds.qualityTolerance = try number(v, k, 0...1)
                    }
                }
            case "data_quality":
                try section(value, "data_quality", ["out_of_range_share", "category_tolerance", "duplicate_tolerance", "refusal_tolerance", "significance"]) { (k: String, v: Node) throws(RulesError) in
                    if k == "significance" {
                        c.dataQuality.significance = try number(v, k, 0...0.5, open: true)
                        return
                    }
                    let x = try number(v, k, 0...1)
                    switch k {
                    case "out_of_range_share": c.dataQuality.outOfRangeShare = x
                    case "category_tolerance": c.dataQuality.categoryTolerance = x
                    case "duplicate_tolerance": c.dataQuality.duplicateTolerance = x
                    default: c.dataQuality.refusalTolerance = x
                    }
                }
            case "slurm":
                let keys = ["partition", "training_partition", "training_gres", "shard_images", "array_width", "resubmissions", "cpus_per_task", "time_limit", "executable"]
                try section(value, "slurm", keys) { (k: String, v: Node) throws(RulesError) in
                    func word(_ pattern: String, _ what: String) throws(RulesError) -> String {
                        guard let text = v.string, text.range(of: pattern, options: .regularExpression) != nil else {
                            throw RulesError(file: file, node: v, message: "\(k) is \(what)")
                        }
                        return text
                    }
                    switch k {
                    case "partition": c.slurm.partition = try word(#"^[A-Za-z0-9_.-]{1,64}$"#, "a partition name (letters, digits, . _ -)")
                    case "training_partition": c.slurm.trainingPartition = try word(#"^[A-Za-z0-9_.-]{1,64}$"#, "a partition name (letters, digits, . _ -)")
                    case "training_gres": c.slurm.trainingGres = try word(#"^[A-Za-z0-9_]+(:[A-Za-z0-9_]+)?(:[0-9]+)?(,[A-Za-z0-9_]+(:[A-Za-z0-9_]+)?(:[0-9]+)?)*$"#, "a GRES request such as gpu:1 or gpu:a100:2")
                    case "shard_images": c.slurm.shardImages = try integer(v, k, 1...1_000_000)
                    case "array_width": c.slurm.arrayWidth = try integer(v, k, 1...100_000)
                    case "resubmissions": c.slurm.resubmissions = try integer(v, k, 0...10)
                    case "cpus_per_task": c.slurm.cpusPerTask = try integer(v, k, 1...1024)
                    case "time_limit": c.slurm.timeLimit = try word(#"^[0-9]+(-[0-9]{1,2})?(:[0-9]{1,2}){0,2}$"#, "a Slurm time limit such as 30, 2:00:00 or 1-12")
                    default: c.slurm.executable = try word(#"^/[^\n]*$"#, "an absolute path")
                    }
                }
            default:
                throw RulesError(file: file, node: key, message: "unknown key '\(key.string ?? "?")' (expected version, training, watch, thresholds, data_quality, slurm)")
            }
        }
        guard version != nil else { throw RulesError(file: file, line: 1, column: 1, message: "missing `version: 1`") }
        return c
    }

    /// The training arch with a relative backbone path made absolute against `root`.
    public func arch(root: String) -> String? {
        guard let arch = training.arch, arch.hasPrefix("backbone:") else { return training.arch }
        let path = String(arch.dropFirst("backbone:".count))
        return path.hasPrefix("/") ? arch : "backbone:" + root + "/" + path
    }

    /// The file as it is in force: every key, with its value and where it came from.
    public func lines(defaults: [String: String]) -> [(key: String, value: String, source: String)] {
        let source = file == nil ? "default" : "dropline.yaml"
        func row(_ key: String, _ value: (some CustomStringConvertible)?) -> (String, String, String) {
            value.map { (key, "\($0)", source) } ?? (key, defaults[key] ?? "-", "default")
        }
        return [
            row("training.arch", training.arch), row("training.image_size", training.imageSize), row("training.epochs", training.epochs),
            row("watch.marker", watch.marker), row("watch.settle_seconds", watch.settleSeconds), row("watch.jobs", watch.jobs),
            row("thresholds.drift_p_value", thresholds.driftPValue), row("thresholds.drift_minimum_statistic", thresholds.driftMinimumStatistic),
            row("thresholds.promotion_margin", thresholds.promotionMargin), row("thresholds.quality_tolerance", thresholds.qualityTolerance),
            row("data_quality.out_of_range_share", dataQuality.outOfRangeShare), row("data_quality.category_tolerance", dataQuality.categoryTolerance),
            row("data_quality.duplicate_tolerance", dataQuality.duplicateTolerance), row("data_quality.refusal_tolerance", dataQuality.refusalTolerance),
            row("data_quality.significance", dataQuality.significance),
            row("slurm.partition", slurm.partition), row("slurm.training_partition", slurm.trainingPartition), row("slurm.training_gres", slurm.trainingGres),
            row("slurm.shard_images", slurm.shardImages), row("slurm.array_width", slurm.arrayWidth), row("slurm.resubmissions", slurm.resubmissions),
            row("slurm.cpus_per_task", slurm.cpusPerTask), row("slurm.time_limit", slurm.timeLimit), row("slurm.executable", slurm.executable),
        ].map { (key: $0.0, value: $0.1, source: $0.2) }
    }
}
