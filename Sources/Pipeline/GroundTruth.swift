import DroplineSupport
import Foundation
public import Modeling
public import Rules
public import Store
import SystemFiles
import JSONFiles

/// Ground truth for a batch: merged with the batch's latest predictions, recorded as quality, and a
/// quality flag when accuracy falls below the model's constraint (its validation accuracy minus
/// `tolerance`).
public struct GroundTruth {
    public let root: DroplineRoot
    public let index: any DroplineIndex
    /// How far below its validation accuracy a model may fall on labelled production data.
    public var tolerance = 0.05
    /// False: accuracy is recorded but no quality flag is written (the drift study records the
    /// ground truth it knows so that the dashboard shows accuracy, while its retraining stays
    /// driven by drift alone, as in the cloud design's simulation).
    public var raisesFlags = true

    /// With the quality tolerance of the root's dropline.yaml, when it sets one.
    public init(_ pipelines: Pipelines) {
        self.init(root: pipelines.root, index: pipelines.index, configuration: pipelines.configuration)
    }

    public init(root: DroplineRoot, index: any DroplineIndex, configuration: RootConfiguration) {
        self.init(root: root, index: index)
        if let t = configuration.thresholds.qualityTolerance { tolerance = t }
    }

    public init(root: DroplineRoot, index: any DroplineIndex) {
        self.root = root
        self.index = index
    }

    public struct Result: Codable, Sendable {
        public var batch: String
        public var run: String
        public var labelled: Int
        public var unmatched: [String]
        public var accuracy: Double
        public var constraintAccuracy: Double
        public var belowConstraint: Bool
        public var metrics: ClassificationMetrics
    }

    /// Reads `<batch>.csv` (header `image,class`; image = path relative to the batch folder, or SHA-256).
    public func merge(labels file: String) throws -> Result {
        // `<batch>.csv`, or `<stage>~<batch>.csv` for the batch at inbox/production/<stage>/<batch>
        let stem = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        let namedPath = FlagFiles.batchPath(fromName: stem)
        let batch = namedPath.map { String($0.split(separator: "/").last!) } ?? stem
        for part in stem.split(separator: FlagFiles.pathSeparator, omittingEmptySubsequences: false) {
            do { try SafeName.check(String(part), what: "batch name of the labels file") } catch { throw StoreError("'\(DisplayText.escaped(file))': \(error)") }
        }
        let labels = try Self.read(file)
        let served: ServedRun
        if let namedPath {
            guard let run = try index.latestServedRun(batchPath: "inbox/" + namedPath) else {
                throw StoreError("no served batch at inbox/\(namedPath) (a labels file `<stage>~<batch>.csv` names the batch at inbox/production/<stage>/<batch>)")
            }
            served = run
        } else {
            // a batch's name alone must name one batch: the same name in two stages is ambiguous
            let paths = Set(try index.servedBatchPaths(subject: batch))
            guard paths.count <= 1 else {
                let choices = paths.sorted().map { path in FlagFiles.name(batch: batch, batchPath: String(path.dropFirst("inbox/".count))) + ".csv" }
                throw StoreError("'\(DisplayText.escaped(file))': \(paths.count) served batches are named '\(batch)' (\(paths.sorted().joined(separator: ", "))); name the labels file after the one it is for: \(choices.joined(separator: " or "))")
            }
            guard let run = try index.latestServedRun(subject: batch) else {
                throw StoreError("no served batch named '\(batch)' (the labels file's name must be the batch's name, or <stage>~<batch>)")
            }
            served = run
        }
        guard let batchID = served.batchId, let folder = served.batchFolder else { throw StoreError("the serve run \(served.run) of '\(batch)' has no batch row") }
        var byPath: [String: (String, String)] = [:], byHash: [String: (String, String)] = [:]
        for p in try index.predictions(run: served.run) {
            let relative = p.path.hasPrefix(folder + "/") ? String(p.path.dropFirst(folder.count + 1)) : p.path
            byPath[relative] = (p.imageSha256, p.predicted)
            byHash[p.imageSha256] = (p.imageSha256, p.predicted)
        }
        guard let model = try index.model(version: served.modelVersion) else { throw StoreError("model version \(served.modelVersion) is not in the registry") }
        let classes = try ModelArtifact.load(root.path + "/" + model.folder + "/model").description.classes
        var trueLabels: [Int] = [], predicted: [Int] = [], unmatched: [String] = [], truth: [(sha256: String, trueClass: String)] = []
        for label in labels {
            guard let (hash, guess) = byPath[label.image] ?? byHash[label.image.lowercased()] else {
                unmatched.append(label.image)
                continue
            }
            guard let t = classes.firstIndex(of: label.trueClass), let p = classes.firstIndex(of: guess) else {
                throw StoreError("\(file):\(label.line):\(label.classColumn): class '\(DisplayText.escaped(label.trueClass))' of \(DisplayText.escaped(label.image)) is not one of the model's classes (\(classes.joined(separator: ", ")))")
            }
            truth.append((hash, label.trueClass))
            trueLabels.append(t)
            predicted.append(p)
        }
        guard !trueLabels.isEmpty else { throw StoreError("'\(file)' labels none of the batch's images") }
        let metrics = ClassificationMetrics(classes: classes, labels: trueLabels, predictions: predicted, loss: .nan)
        let constraint = model.validationAccuracy - tolerance
        let below = metrics.accuracy < constraint
        var recorded = metrics
        recorded.loss = 0
        let rowsToRecord = QualityRows(run: served.run, batchId: batchID, labels: truth, accuracy: metrics.accuracy, constraintAccuracy: constraint,
                                       belowConstraint: below, metrics: String(decoding: try SnakeCaseJSON.encoder().encode(recorded), as: UTF8.self),
                                       batch: batch, summary: String(format: "%d labelled, accuracy %.4f", labels.count, metrics.accuracy))
        var flag: QualityFlag?
        if below && raisesFlags {
            flag = QualityFlag(batch: batch, run: served.run, modelVersion: served.modelVersion, accuracy: metrics.accuracy,
                               constraintAccuracy: constraint, createdAt: Index.now())
            // The stage of a batch served from inbox/production/<stage>/<batch>: what a rule retrains on.
            if let input = served.batchPath, let located = Pipelines.productionStage(input) {
                flag?.stage = located.stage
                flag?.batchPath = located.batchPath
            }
        }
        let flagName = FlagFiles.name(batch: batch, batchPath: served.batchPath.flatMap { Pipelines.productionStage($0)?.batchPath } ?? namedPath)
        let flagPath = FlagFiles.path(root, kind: "quality", name: flagName)
        try index.recordQuality(rowsToRecord, flag: flag.map { _ in (root.relative(flagPath), batch) }) {
            // the file inside the transaction: if it cannot be written, nothing is recorded
            if let flag { try FlagFiles.write(flag, kind: "quality", name: flagName, in: root) }
        }
        return Result(batch: batch, run: served.run, labelled: trueLabels.count, unmatched: unmatched, accuracy: metrics.accuracy,
                      constraintAccuracy: constraint, belowConstraint: below, metrics: recorded)
    }

    /// One labelled image of a labels file, with where its class is written.
    public struct Label: Sendable, Equatable {
        public var image: String, trueClass: String, line: Int, classColumn: Int
    }

    /// The header names the two columns may have (any case, any position; other columns are ignored).
    public static let imageColumns = ["image", "file", "filename", "path"], classColumns = ["class", "label"]

    /// A labels file as spreadsheets save it (`CSVReader`: a byte-order mark, CRLF, quoted fields,
    /// `;` or tab separators), its columns found by their header names; values trimmed of spaces;
    /// rows with no value skipped. Errors name the file, the line and the column.
    public static func read(_ file: String) throws -> [Label] {
        let bytes = try AtomicFile.read(file, limit: 64 << 20, links: .refuse)
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw StoreError("'\(DisplayText.escaped(file))' is not UTF-8 text; save it from the spreadsheet as \"CSV UTF-8\"")
        }
        let rows: [CSVReader.Row]
        do { rows = try CSVReader(delimiter: CSVReader.delimiter(ofHeader: text)).rows(text) } catch {
            throw StoreError("\(file):\(error)")
        }
        guard let header = rows.first else { throw StoreError("'\(DisplayText.escaped(file))' is empty; it needs a header line image,class and a line per image") }
        let names = header.values.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard let imageColumn = names.firstIndex(where: imageColumns.contains), let classColumn = names.firstIndex(where: classColumns.contains) else {
            throw StoreError("\(file):\(header.line):1: the header line must name an image column (\(imageColumns.joined(separator: ", "))) and a class column (\(classColumns.joined(separator: ", "))); it has \(header.values.map { "'\(DisplayText.escaped($0))'" }.joined(separator: ", "))")
        }
        var labels: [Label] = []
        for row in rows.dropFirst() {
            let values = row.fields.map { $0.value.trimmingCharacters(in: .whitespaces) }
            if values.allSatisfy(\.isEmpty) { continue }
            guard values.count > max(imageColumn, classColumn) else {
                let last = row.fields.last!
                throw StoreError("\(file):\(row.line):\(last.column): this line has \(values.count) field\(values.count == 1 ? "" : "s"); the image is in column \(imageColumn + 1) and the class in column \(classColumn + 1)")
            }
            let image = values[imageColumn], trueClass = values[classColumn]
            guard !image.isEmpty else { throw StoreError("\(file):\(row.line):\(row.fields[imageColumn].column): no image on this line (its class is '\(DisplayText.escaped(trueClass))')") }
            guard !trueClass.isEmpty else { throw StoreError("\(file):\(row.line):\(row.fields[classColumn].column): no class for \(DisplayText.escaped(image))") }
            labels.append(Label(image: image, trueClass: trueClass, line: row.line, classColumn: row.fields[classColumn].column))
        }
        return labels
    }
}
