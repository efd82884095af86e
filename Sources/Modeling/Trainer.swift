import DroplineSupport
import Foundation
import Imaging
public import NeuralNetwork
import Randomness
import Tensor
import SystemFiles
import Hashing

/// Every choice of a training run; stored in the model so it can be reproduced.
public struct TrainingConfiguration: Codable, Sendable, Equatable {
    /// "scratch" (Dropline's small ResNet), "small-cnn" (PEERS.md's reference) or "backbone".
    public var architecture: String
    /// For "backbone": the TensorFlow.js model.json and where to cut it (nil: at the global pool).
    public var backbonePath: String?
    public var backboneCut: String?
    public var imageSize: Int
    public var epochs: Int
    public var batchSize: Int
    /// "sgd" or "adamw".
    public var optimizer: String
    public var learningRate: Float
    public var weightDecay: Float
    public var momentum: Float
    public var warmupEpochs: Int
    public var labelSmoothing: Float
    /// Training images are rotated by a uniform angle in ±rotationDegrees (0: off).
    public var rotationDegrees: Double
    public var horizontalFlip: Bool
    /// Stop when validation accuracy has not improved for this many epochs (0: never).
    public var patience: Int
    /// Head for a backbone: one hidden layer of this many units (nil or 0: linear).
    public var hiddenUnits: Int?
    public var headDropout: Float
    /// Backbone: also train its last N convolutions (nil or 0: the base stays frozen). Optional so
    /// that model.json files written before the option existed still load.
    public var fineTuneConvolutions: Int?
    public var seed: UInt64
    /// Backbone, linear head: `logistic` (the default: multinomial logistic regression on the
    /// standardised features, fitted to convergence by L-BFGS, its L2 strength and the use of the
    /// flipped copies chosen on the validation split: `LinearProbe`) or `sgd` (the iterative loop with
    /// `optimizer`, `learningRate`, `epochs`, label smoothing and dropout). nil, in recipes written
    /// before the option: `sgd`, as those models were trained.
    public var head: String? = nil

    /// Whether the head is fitted as a linear probe (`head: logistic` on frozen features, no hidden layer).
    public var fitsLinearProbe: Bool { architecture == "backbone" && head == "logistic" && (hiddenUnits ?? 0) == 0 && (fineTuneConvolutions ?? 0) == 0 }

    /// The documented defaults for an architecture.
    public static func defaults(architecture: String) -> TrainingConfiguration {
        switch architecture {
        case "backbone":
            // A linear or small head on frozen features: AdamW converges in a few dozen epochs;
            // features are computed once, with a flipped copy of each training image.
            return TrainingConfiguration(architecture: "backbone", backbonePath: nil, backboneCut: nil, imageSize: 224, epochs: 60,
                                         batchSize: 64, optimizer: "adamw", learningRate: 1e-3, weightDecay: 1e-2, momentum: 0.9,
                                         warmupEpochs: 2, labelSmoothing: 0.1, rotationDegrees: 0, horizontalFlip: true,
                                         patience: 15, hiddenUnits: nil, headDropout: 0.2, seed: 1, head: "logistic")
        default:
            // SGD with momentum and a cosine schedule after a short warm-up, label smoothing,
            // random rotation (±15°) and horizontal flips: a standard recipe for small datasets.
            return TrainingConfiguration(architecture: architecture, backbonePath: nil, backboneCut: nil, imageSize: 96, epochs: 40,
                                         batchSize: 32, optimizer: "sgd", learningRate: 0.05, weightDecay: 5e-4, momentum: 0.9,
                                         warmupEpochs: 2, labelSmoothing: 0.1, rotationDegrees: 15, horizontalFlip: true,
                                         patience: 12, hiddenUnits: nil, headDropout: 0.2, seed: 1)
        }
    }

    /// The defaults for an architecture written as on the command line: `scratch`, `small-cnn`, or
    /// `backbone:<path to model.json>`.
    public static func defaults(forArch arch: String) throws -> TrainingConfiguration {
        if arch.hasPrefix("backbone:") {
            var c = defaults(architecture: "backbone")
            c.backbonePath = String(arch.dropFirst("backbone:".count))
            guard !(c.backbonePath ?? "").isEmpty else { throw NetworkError.invalidModel("backbone: needs the path of a model.json") }
            return c
        }
        guard arch == "scratch" || arch == "small-cnn" else {
            throw NetworkError.invalidNetwork("unknown architecture '\(arch)': use scratch, small-cnn or backbone:<model.json>")
        }
        return defaults(architecture: arch)
    }

    /// `defaults(forArch:)` with the command line's optional input size and epochs.
    public static func defaults(forArch arch: String, imageSize: Int?, epochs: Int?) throws -> TrainingConfiguration {
        var c = try defaults(forArch: arch)
        if let imageSize { c.imageSize = imageSize }
        if let epochs { c.epochs = epochs }
        return c
    }

    /// The preprocessing this configuration implies.
    public var preprocessing: Preprocessing {
        // MobileNet-style backbones (Keras Applications, Teachable Machine) take [-1, 1]; networks
        // trained here use ImageNet channel statistics.
        Preprocessing(imageSize: imageSize, normalization: architecture == "backbone" ? .symmetric : .imagenet)
    }
}

/// What the trainer reports as it goes.
public enum TrainingEvent: Sendable {
    case loading(String)
    case features(done: Int, total: Int)
    case batch(epoch: Int, done: Int, total: Int, loss: Double, imagesPerSecond: Double)
    case epoch(EpochRecord, best: Bool)
    case stopped(String)
    /// A logistic head: `done` of `total` penalties fitted.
    case fitting(done: Int, total: Int)
}

/// Trains a classifier on labelled image folders and returns a model ready to save.
public struct Trainer {
    public var configuration: TrainingConfiguration
    public var report: @Sendable (TrainingEvent) -> Void

    public init(configuration: TrainingConfiguration, report: @escaping @Sendable (TrainingEvent) -> Void = { _ in }) {
        self.configuration = configuration
        self.report = report
    }

    public struct Result {
        public var description: ModelDescription
        public var parameters: Parameters
    }

    /// Trains on `train`, selecting the epoch by accuracy on `validation` (same classes).
    public func train(train: ImageFolderDataset, validation: ImageFolderDataset) throws -> Result {
        guard train.classes == validation.classes else {
            throw DatasetError(path: validation.root, reason: "has classes \(validation.classes) but training has \(train.classes)",
                               remedy: "give both folders the same class sub-folders")
        }
        let c = configuration
        precondition(c.epochs > 0 && c.batchSize > 0, "epochs and batch size must be positive")
        let start = Stopwatch.now()
        var result: Result
        switch c.architecture {
        case "backbone": result = try trainHead(train: train, validation: validation)
        case "scratch", "small-cnn": result = try trainNetwork(train: train, validation: validation)
        default:
            throw NetworkError.invalidNetwork("unknown architecture '\(c.architecture)': use scratch, small-cnn or backbone")
        }
        result.description.trainingSeconds = Stopwatch.now() - start
        return result
    }

    static func summary(_ d: ImageFolderDataset) -> DataSummary {
        DataSummary(folder: d.root, images: d.items.count, perClass: d.classCounts, sha256: d.contentHash, rejected: d.rejected.count)
    }

    func makeOptimizer() -> any Optimizer {
        configuration.optimizer == "adamw"
            ? AdamW(weightDecay: configuration.weightDecay)
            : SGD(momentum: configuration.momentum, weightDecay: configuration.weightDecay)
    }

    // MARK: - Whole networks

    func trainNetwork(train: ImageFolderDataset, validation: ImageFolderDataset) throws -> Result {
        let c = configuration
        let classes = train.classes.count
        let network = c.architecture == "small-cnn"
            ? Architectures.smallCNN(classes: classes, imageSize: c.imageSize)
            : Architectures.residual(classes: classes, imageSize: c.imageSize)
        let parameters = try Parameters(for: network)
        parameters.initialize(seed: c.seed)
        let preprocessing = c.preprocessing
        let batch = min(c.batchSize, train.items.count)
        let executor = try Executor(network: network, parameters: parameters, batchSize: batch, mode: .training, seed: c.seed &+ 1)
        let predictor = try Predictor(network: network, parameters: parameters)
        let optimizer = makeOptimizer()
        let fitted = try fit(executor: executor, parameters: parameters, optimizer: optimizer, examples: train.items.count,
                             classes: classes, inputCount: preprocessing.inputCount) { index, slot, generator in
            var image = train.images[index]
            if c.rotationDegrees > 0 { image = image.randomlyRotated(upTo: c.rotationDegrees, using: &generator) }
            if c.horizontalFlip { image = image.randomlyFlippedHorizontally(using: &generator) }
            preprocessing.write(image, into: slot)
            return train.items[index].label
        } validate: {
            predictor.syncWeights()
            return try evaluate(predictor: predictor, dataset: validation, preprocessing: preprocessing)
        }
        let description = ModelDescription(
            architecture: c.architecture, backbone: nil, network: network, preprocessing: preprocessing, classes: train.classes,
            training: Self.summary(train), validation: Self.summary(validation), metrics: fitted.metrics, bestEpoch: fitted.epoch,
            history: fitted.history, configuration: c, seed: c.seed, trainingSeconds: 0, createdAt: Self.timestamp(),
            droplineVersion: DroplineVersion.current)
        return Result(description: description, parameters: fitted.parameters)
    }

    // MARK: - Head on a frozen backbone

    func trainHead(train: ImageFolderDataset, validation: ImageFolderDataset) throws -> Result {
        let c = configuration
        guard let path = c.backbonePath else {
            throw NetworkError.invalidModel("a backbone architecture needs the path of its model.json (--arch backbone:<model.json>)")
        }
        report(.loading("importing \(path)"))
        let imported = try KerasImport.load(modelJSON: path, cut: c.backboneCut)
        guard case .input(_, let h, let w) = imported.network.input.operation, h == c.imageSize, w == c.imageSize else {
            throw NetworkError.invalidModel("the backbone takes \(imported.network.input.operation) but the image size is \(c.imageSize)")
        }
        // The frozen prefix computes features once; a fine-tuned tail trains with the head.
        var prefix = imported.network
        var tail: Network?
        if let n = c.fineTuneConvolutions, n > 0 {
            let index = try imported.network.splitIndex(trainingLastConvolutions: n)
            let parts = try imported.network.split(after: index, inputName: "tail.input")
            prefix = parts.prefix
            tail = parts.suffix
            report(.loading("fine-tuning the last \(n) convolutions: \(parts.suffix.layers.count - 1) layers after '\(prefix.output.name)'"))
        }
        let featureShape = try prefix.shapes()[prefix.output.name]!
        let preprocessing = c.preprocessing
        let classes = train.classes.count

        // Features of the frozen part, once per image (and once per flipped training image).
        let basePredictor = try Predictor(network: prefix, parameters: imported.parameters)
        let total = (c.horizontalFlip ? 2 : 1) * train.items.count + validation.items.count
        var done = 0
        func features(_ images: [RGBImage], flip: Bool) throws -> [Float] {
            let before = done
            return try basePredictor.predict(count: images.count, chunk: 16, fill: { i, slot in
                preprocessing.write(flip ? images[i].flippedHorizontally() : images[i], into: slot)
            }, done: { finished in
                done = before + finished
                report(.features(done: done, total: total))
            })
        }
        var trainFeatures = try features(train.images, flip: false)
        var trainLabels = train.items.map(\.label)
        if c.horizontalFlip {
            trainFeatures += try features(train.images, flip: true)
            trainLabels += trainLabels
        }
        let validationFeatures = try features(validation.images, flip: false)

        // The trainable network: [tail, with its batch norms frozen] -> [global pool if a map]
        // -> [dense + relu] -> dropout -> dense.
        var headLayers: [Layer]
        var last: String
        if let tail {
            headLayers = tail.layers.map { layer -> Layer in
                var l = layer
                if case .batchNorm = l.operation { l.trainable = false }
                return l
            }
            last = tail.output.name
        } else if featureShape.count == 3 {
            headLayers = [Layer("head.input", .input(channels: featureShape[0], height: featureShape[1], width: featureShape[2]), inputs: [])]
            last = "head.input"
        } else {
            headLayers = [Layer("head.input", .features(count: featureShape[0]), inputs: [])]
            last = "head.input"
        }
        if try Network(layers: headLayers).shapes()[last]!.count == 3 {
            headLayers.append(Layer("head.pool", .globalAvgPool, inputs: [last]))
            last = "head.pool"
        }
        if let hidden = c.hiddenUnits, hidden > 0 {
            headLayers += [Layer("head.hidden", .dense(units: hidden, bias: true), inputs: [last]),
                           Layer("head.hidden_relu", .relu, inputs: ["head.hidden"])]
            last = "head.hidden_relu"
        }
        if c.headDropout > 0 && !c.fitsLinearProbe {
            headLayers.append(Layer("head.dropout", .dropout(rate: c.headDropout), inputs: [last]))
            last = "head.dropout"
        }
        headLayers.append(Layer("head.classifier", .dense(units: classes, bias: true), inputs: [last]))
        let head = Network(layers: headLayers)
        let headParameters = try Parameters(for: head)
        headParameters.initialize(seed: c.seed)
        var pretrained: [String] = []
        for name in headParameters.names {
            if let value = imported.parameters[name] {
                try headParameters.set(name, value)
                pretrained.append(name)
            }
        }

        let featureCount = featureShape.reduce(1, *)
        let validationLabels = validation.items.map(\.label)
        if c.fitsLinearProbe {
            return try probeHead(prefix: prefix, imported: imported, head: head, headParameters: headParameters, featureShape: featureShape,
                                 train: (trainFeatures, trainLabels, train.items.count), validation: (validationFeatures, validationLabels),
                                 datasets: (train, validation), path: path)
        }
        let batch = min(c.batchSize, trainLabels.count)
        let executor = try Executor(network: head, parameters: headParameters, batchSize: batch, mode: .training, seed: c.seed &+ 1)
        let predictor = try Predictor(network: head, parameters: headParameters)
        let optimizer = makeOptimizer()
        // Pretrained weights move more slowly than the new head.
        for name in pretrained { optimizer.learningRateMultipliers[name] = 0.1 }
        let kept = try fit(executor: executor, parameters: headParameters, optimizer: optimizer, examples: trainLabels.count,
                           classes: classes, inputCount: featureCount) { index, slot, _ in
            trainFeatures.withUnsafeBufferPointer { f in
                _ = slot.update(fromContentsOf: UnsafeBufferPointer(rebasing: f[(index * featureCount)..<((index + 1) * featureCount)]))
            }
            return trainLabels[index]
        } validate: {
            predictor.syncWeights()
            let logits = try predictor.predict(validationFeatures, count: validationLabels.count)
            return Self.metrics(logits: logits, labels: validationLabels, classes: validation.classes)
        }

        return try servingModel(prefix: prefix, imported: imported, head: head, trained: kept.parameters, path: path, datasets: (train, validation),
                                metrics: kept.metrics, bestEpoch: kept.epoch, history: kept.history, selection: nil)
    }

    /// One network for serving: the frozen prefix, then the trained layers reading its output.
    func servingModel(prefix: Network, imported: ImportedModel, head: Network, trained: Parameters, path: String,
                      datasets: (train: ImageFolderDataset, validation: ImageFolderDataset), metrics: ClassificationMetrics, bestEpoch: Int,
                      history: [EpochRecord], selection: HeadSelection?) throws -> Result {
        let c = configuration
        var layers = prefix.layers.map { layer -> Layer in
            var l = layer
            l.trainable = false
            return l
        }
        let trainedInput = head.input.name
        for layer in head.layers.dropFirst() {
            var l = layer
            l.inputs = l.inputs.map { $0 == trainedInput ? prefix.output.name : $0 }
            layers.append(l)
        }
        let network = Network(layers: layers)
        let parameters = try Parameters(for: network)
        for name in parameters.names {
            try parameters.set(name, trained[name] ?? imported.parameters[name]!)
        }
        let hashes = try BackboneOrigin.fileHashes(modelJson: path)
        let origin = BackboneOrigin(modelJson: path, topologySha256: hashes.topology,
                                    weightsSha256: hashes.weights, cut: imported.cut, frozenLayers: prefix.layers.count,
                                    fineTunedConvolutions: c.fineTuneConvolutions ?? 0)
        var description = ModelDescription(
            architecture: "backbone", backbone: origin, network: network, preprocessing: c.preprocessing, classes: datasets.train.classes,
            training: Self.summary(datasets.train), validation: Self.summary(datasets.validation), metrics: metrics, bestEpoch: bestEpoch,
            history: history, configuration: c, seed: c.seed, trainingSeconds: 0, createdAt: Self.timestamp(),
            droplineVersion: DroplineVersion.current)
        description.headSelection = selection
        return Result(description: description, parameters: parameters)
    }

    /// The linear head as a probe: logistic regression on the standardised (pooled) features, its C
    /// and the flipped copies' use chosen on the validation split (`LinearProbe`), folded back into
    /// the head's one dense layer.
    func probeHead(prefix: Network, imported: ImportedModel, head: Network, headParameters: Parameters, featureShape: [Int],
                   train: (features: [Float], labels: [Int], unflipped: Int), validation: (features: [Float], labels: [Int]),
                   datasets: (train: ImageFolderDataset, validation: ImageFolderDataset), path: String) throws -> Result {
        let classes = datasets.train.classes.count
        // a feature map is averaged over its positions, as the head's pool does
        let channels = featureShape[0], positions = featureShape.dropFirst().reduce(1, *)
        func pooled(_ f: [Float], count: Int) -> [Float] {
            guard positions > 1 else { return f }
            var out = [Float](repeating: 0, count: count * channels)
            for i in 0..<count { for ch in 0..<channels {
                var sum: Float = 0
                for p in 0..<positions { sum += f[(i * channels + ch) * positions + p] }
                out[i * channels + ch] = sum / Float(positions)
            } }
            return out
        }
        let all = pooled(train.features, count: train.labels.count)
        let plain = Array(all[0..<(train.unflipped * channels)]), plainLabels = Array(train.labels[0..<train.unflipped])
        let flipped = train.labels.count > train.unflipped
            ? (x: Array(all[(train.unflipped * channels)...]), labels: Array(train.labels[train.unflipped...])) : nil
        let v = pooled(validation.features, count: validation.labels.count)
        report(.loading("fitting the linear head: logistic regression over \(LinearProbe.grid.count) penalties\(flipped == nil ? "" : ", without and with flipped copies"), chosen on the validation split"))
        let started = Date()
        let (model, chosen, candidates) = LinearProbe.select(train: plain, labels: plainLabels, augmented: flipped, validation: v,
                                                             validationLabels: validation.labels, featureCount: channels, classes: classes,
                                                             progress: { report(.fitting(done: $0, total: $1)) })
        try headParameters.set("head.classifier.weight", Tensor(shape: [classes, channels], data: model.weights))
        try headParameters.set("head.classifier.bias", Tensor(shape: [classes], data: model.intercepts))
        let logits = model.logits(v, count: validation.labels.count)
        let metrics = Self.metrics(logits: logits, labels: validation.labels, classes: datasets.validation.classes)
        let (trainAccuracy, trainLoss) = LinearProbe.score(model.logits(chosen.augmented ? all : plain, count: chosen.augmented ? train.labels.count : train.unflipped),
                                                           chosen.augmented ? train.labels : plainLabels, classes: classes)
        let seconds = Date().timeIntervalSince(started)
        let record = EpochRecord(epoch: 1, trainLoss: trainLoss, trainAccuracy: trainAccuracy, validationLoss: chosen.validationLoss,
                                 validationAccuracy: chosen.validationAccuracy, learningRate: 0, imagesPerSecond: 0, seconds: seconds)
        report(.loading(String(format: "logistic head: C %.3g%@ chosen on the validation split (accuracy %.4f, loss %.4f; training accuracy %.4f), %d L-BFGS iterations, %.1f s",
                               chosen.c, chosen.augmented ? " with flipped copies" : "", chosen.validationAccuracy, chosen.validationLoss, trainAccuracy,
                               chosen.iterations, seconds)))
        return try servingModel(prefix: prefix, imported: imported, head: head, trained: headParameters, path: path, datasets: datasets,
                                metrics: metrics, bestEpoch: 1, history: [record], selection: HeadSelection(chosen: chosen, candidates: candidates))
    }

    // MARK: - The training loop

    struct Fitted {
        var epoch: Int
        var metrics: ClassificationMetrics
        var parameters: Parameters
        var history: [EpochRecord]
    }

    /// The loop every training run shares: seeded shuffles into full batches (the last partial batch
    /// of each epoch is dropped; the shuffles vary it), softmax cross-entropy, backward, an optimizer
    /// step on the cosine schedule, validation after each epoch, keeping the best epoch (accuracy,
    /// then lower loss), early stopping. `fill` writes example `index` into a batch slot and returns
    /// its label.
    func fit(executor: Executor, parameters: Parameters, optimizer: any Optimizer, examples: Int, classes: Int, inputCount: Int,
             fill: (_ index: Int, _ slot: UnsafeMutableBufferPointer<Float>, _ generator: inout SeededGenerator) -> Int,
             validate: () throws -> ClassificationMetrics) throws -> Fitted {
        let c = configuration
        let batch = executor.batchSize
        let stepsPerEpoch = examples / batch
        let schedule = CosineSchedule(base: c.learningRate, warmupSteps: c.warmupEpochs * stepsPerEpoch, totalSteps: c.epochs * stepsPerEpoch)
        var generator = SeededGenerator(seed: c.seed &+ 2)
        var input = [Float](repeating: 0, count: batch * inputCount)
        var gradient = [Float](repeating: 0, count: batch * classes)
        var labels = [Int](repeating: 0, count: batch)
        var order = Array(0..<examples)
        var history: [EpochRecord] = []
        var best: Fitted?
        var step = 0
        for epoch in 1...c.epochs {
            let epochStart = Stopwatch.now()
            order.shuffle(using: &generator)
            var lossSum = 0.0, correct = 0, seen = 0
            var rate: Float = 0
            for b in 0..<stepsPerEpoch {
                input.withUnsafeMutableBufferPointer { buffer in
                    for i in 0..<batch {
                        let slot = UnsafeMutableBufferPointer(rebasing: buffer[(i * inputCount)..<((i + 1) * inputCount)])
                        labels[i] = fill(order[b * batch + i], slot, &generator)
                    }
                }
                executor.forward(input)
                let loss = gradient.withUnsafeMutableBufferPointer { g in
                    SoftmaxCrossEntropy.loss(logits: executor.output, labels: labels, classes: classes, smoothing: c.labelSmoothing, gradient: g)
                }
                guard loss.isFinite else {
                    throw NetworkError.invalidData("training diverged at epoch \(epoch) (loss \(loss)); lower the learning rate (--learning-rate)")
                }
                let logits = executor.output
                for i in 0..<batch where argmax(logits, row: i, classes: classes) == labels[i] { correct += 1 }
                lossSum += Double(loss) * Double(batch)
                seen += batch
                executor.backward(gradient)
                rate = schedule.rate(at: step)
                optimizer.step(parameters: parameters, gradients: executor.gradients, learningRate: rate)
                executor.syncWeights()
                step += 1
                report(.batch(epoch: epoch, done: b + 1, total: stepsPerEpoch, loss: lossSum / Double(seen),
                              imagesPerSecond: Double(seen) / (Stopwatch.now() - epochStart)))
            }
            let trainSeconds = Stopwatch.now() - epochStart
            let metrics = try validate()
            let record = EpochRecord(epoch: epoch, trainLoss: lossSum / Double(max(seen, 1)), trainAccuracy: Double(correct) / Double(max(seen, 1)),
                                     validationLoss: metrics.loss, validationAccuracy: metrics.accuracy, learningRate: Double(rate),
                                     imagesPerSecond: Double(seen) / trainSeconds, seconds: Stopwatch.now() - epochStart)
            history.append(record)
            let improved = best.map { metrics.accuracy > $0.metrics.accuracy || (metrics.accuracy == $0.metrics.accuracy && metrics.loss < $0.metrics.loss) } ?? true
            if improved { best = Fitted(epoch: epoch, metrics: metrics, parameters: parameters.copy(), history: []) }
            report(.epoch(record, best: improved))
            if c.patience > 0, let b = best, epoch - b.epoch >= c.patience {
                report(.stopped("no validation improvement for \(c.patience) epochs; keeping epoch \(b.epoch)"))
                break
            }
        }
        var kept = best!
        kept.history = history
        return kept
    }

    // MARK: - Evaluation

    func evaluate(predictor: Predictor, dataset: ImageFolderDataset, preprocessing: Preprocessing) throws -> ClassificationMetrics {
        let logits = try Classifier.logits(predictor: predictor, images: dataset.images, preprocessing: preprocessing)
        return Self.metrics(logits: logits, labels: dataset.items.map(\.label), classes: dataset.classes)
    }

    static func metrics(logits: [Float], labels: [Int], classes: [String]) -> ClassificationMetrics {
        let k = classes.count
        let loss = logits.withUnsafeBufferPointer { SoftmaxCrossEntropy.loss(logits: $0, labels: labels, classes: k) }
        let predictions = (0..<labels.count).map { row in logits.withUnsafeBufferPointer { argmax($0, row: row, classes: k) } }
        return ClassificationMetrics(classes: classes, labels: labels, predictions: predictions, loss: Double(loss))
    }

    static func timestamp() -> String {
        ISOTime.now()
    }
}

func argmax(_ values: UnsafeBufferPointer<Float>, row: Int, classes: Int) -> Int {
    var best = 0
    for k in 1..<classes where values[row * classes + k] > values[row * classes + best] { best = k }
    return best
}
