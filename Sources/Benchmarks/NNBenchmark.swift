import DroplineSupport
import Foundation
public import NeuralNetwork
import Explainability
import Randomness

/// `dropline bench nn`: inference and training throughput of the reference small CNN at 96x96, batch
/// 32, and inference of the pretrained MobileNetV2 backbone at 224x224, with PyTorch (eager, with and
/// without glibc's malloc tunables) and onnxruntime timed on the same networks in the same run.
public struct NNBenchmark {
    public struct Configuration: Sendable {
        public var batch = 32
        public var seconds = 2.0
        public var threads = ProcessInfo.processInfo.activeProcessorCount
        public var pythonExecutable = "python3"
        /// Extra networks to time for inference (name, network), e.g. an imported backbone.
        public var extraNetworks: [(String, Network)] = []
        public var log: @Sendable (String) -> Void = { _ in }
        public init() {}
    }

    public struct Case: Codable, Sendable {
        public var network: String
        public var work: String
        public var batch: Int
        public var multiplyAddsPerImage: Int
        public var droplineImagesPerSecond: Double
        public var droplineGFLOPS: Double
        public var torchImagesPerSecond: Double?
        public var torchTunedImagesPerSecond: Double?
        public var onnxruntimeImagesPerSecond: Double?
        public var ratioToTorch: Double?
        public var ratioToOnnxruntime: Double?
        enum CodingKeys: String, CodingKey {
            case network, work, batch
            case multiplyAddsPerImage = "multiply_adds_per_image"
            case droplineImagesPerSecond = "dropline_images_per_second"
            case droplineGFLOPS = "dropline_gflops"
            case torchImagesPerSecond = "torch_images_per_second"
            case torchTunedImagesPerSecond = "torch_malloc_tuned_images_per_second"
            case onnxruntimeImagesPerSecond = "onnxruntime_images_per_second"
            case ratioToTorch = "ratio_to_torch"
            case ratioToOnnxruntime = "ratio_to_onnxruntime"
        }
    }

    public struct Report: Codable, Sendable {
        public var threads: Int
        public var cases: [Case]
        public var notes: [String]
    }

    let configuration: Configuration
    public init(configuration: Configuration) { self.configuration = configuration }

    public func run() throws -> Report {
        let c = configuration
        var notes: [String] = []
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-bench-nn-\(getpid())").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let peer = TorchPeer.available(python: c.pythonExecutable)
        if !peer { notes.append("PyTorch is not importable by \(c.pythonExecutable): no peer ratios (pip install torch)") }

        var cases: [Case] = []
        // (name, network, time training, images for integrated gradients)
        var networks: [(String, Network, Bool, Int)] = [("small-cnn 96x96", Architectures.smallCNN(classes: 6, imageSize: 96), true, 16)]
        networks += c.extraNetworks.map { ($0.0, $0.1, false, 4) }
        for (name, network, train, igImages) in networks {
            let macs = try network.multiplyAdds()
            c.log("dropline: \(name) inference, batch \(c.batch)")
            let inference = try measureInference(network, batch: c.batch)
            var training: Double?
            if train {
                c.log("dropline: \(name) training, batch \(c.batch)")
                training = try measureTraining(network, batch: c.batch)
            }
            var plain: TorchPeer.Result?, tuned: TorchPeer.Result?
            if peer {
                c.log("pytorch + onnxruntime: \(name)")
                plain = try TorchPeer.measure(network, batch: c.batch, threads: c.threads, seconds: c.seconds, training: train,
                                              integratedGradientImages: igImages, python: c.pythonExecutable, scratch: scratch, tunables: false)
                c.log("pytorch with malloc tunables: \(name)")
                tuned = try TorchPeer.measure(network, batch: c.batch, threads: c.threads, seconds: c.seconds, training: train,
                                              python: c.pythonExecutable, scratch: scratch, tunables: true)
                if let error = plain?.onnxruntimeError { notes.append("onnxruntime unavailable for \(name): \(error)") }
            }
            func best(_ a: Double?, _ b: Double?) -> Double? { [a, b].compactMap { $0 }.max() }
            let torchInference = best(plain?.torchInference, tuned?.torchInference)
            cases.append(Case(network: name, work: "inference", batch: c.batch, multiplyAddsPerImage: macs,
                              droplineImagesPerSecond: inference, droplineGFLOPS: inference * Double(macs) * 2 / 1e9,
                              torchImagesPerSecond: plain?.torchInference, torchTunedImagesPerSecond: tuned?.torchInference,
                              onnxruntimeImagesPerSecond: plain?.onnxruntimeInference,
                              ratioToTorch: torchInference.map { inference / $0 },
                              ratioToOnnxruntime: plain?.onnxruntimeInference.map { inference / $0 }))
            if igImages > 0 {
                c.log("dropline: \(name) integrated gradients, 50 steps, \(igImages) images")
                let ig = try measureIntegratedGradients(network, images: igImages)
                let captum = [plain?.captumIG, plain?.captumIGChunked, plain?.captumIGChannelsLast].compactMap { $0 }.max()
                cases.append(Case(network: name, work: "integrated gradients (50 steps)", batch: igImages, multiplyAddsPerImage: macs,
                                  droplineImagesPerSecond: ig, droplineGFLOPS: ig * Double(macs) * 2 * 50 * 2 / 1e9,
                                  torchImagesPerSecond: plain?.captumIG, torchTunedImagesPerSecond: best(plain?.captumIGChunked, plain?.captumIGChannelsLast),
                                  onnxruntimeImagesPerSecond: nil, ratioToTorch: captum.map { ig / $0 }, ratioToOnnxruntime: nil))
            }
            if let training {
                let torchTraining = best(plain?.torchTraining, tuned?.torchTraining)
                cases.append(Case(network: name, work: "training (SGD step)", batch: c.batch, multiplyAddsPerImage: macs,
                                  droplineImagesPerSecond: training, droplineGFLOPS: training * Double(macs) * 6 / 1e9,
                                  torchImagesPerSecond: plain?.torchTraining, torchTunedImagesPerSecond: tuned?.torchTraining,
                                  onnxruntimeImagesPerSecond: nil, ratioToTorch: torchTraining.map { training / $0 },
                                  ratioToOnnxruntime: nil))
            }
        }
        notes.append("ratios use the better of PyTorch with and without the glibc malloc tunables of ../shared/PEERS.md")
        notes.append("integrated gradients: PyTorch column is Captum on all the images at once (16 for the small CNN: 800 path inputs; 4 for the other networks), the tuned column the better of Captum with internal_batch_size=100 and Captum channels-last one image at a time with internal_batch_size=10; the ratio uses the best")
        return Report(threads: c.threads, cases: cases, notes: notes)
    }

    func inputShape(_ network: Network) -> Int {
        switch network.input.operation {
        case .input(let c, let h, let w): return c * h * w
        case .features(let n): return n
        default: return 0
        }
    }

    /// Best of three timed windows of `seconds`, after a warm-up.
    func rate(batch: Int, _ body: () -> Void) -> Double {
        for _ in 0..<3 { body() }
        var best = 0.0
        for _ in 0..<3 {
            let start = Stopwatch.now()
            var n = 0
            while Stopwatch.now() - start < configuration.seconds {
                body()
                n += 1
            }
            best = max(best, Double(n * batch) / (Stopwatch.now() - start))
        }
        return best
    }

    func measureInference(_ network: Network, batch: Int) throws -> Double {
        let parameters = try Parameters(for: network)
        parameters.initialize(seed: 1)
        let predictor = try Predictor(network: network, parameters: parameters)
        var g = SeededGenerator(seed: 2)
        let input = (0..<(batch * inputShape(network))).map { _ in Float(g.nextGaussian()) }
        return input.withUnsafeBufferPointer { x in rate(batch: batch) { _ = try? predictor.predict(x, count: batch) } }
    }

    /// Images per second for integrated gradients of `count` images, 50 Gauss-Legendre steps each,
    /// zero baseline, as Captum's default; the images side by side, one per core, as the explain
    /// command and the pipelines attribute them (`ParallelAttribution`).
    func measureIntegratedGradients(_ network: Network, images count: Int) throws -> Double {
        let parameters = try Parameters(for: network)
        parameters.initialize(seed: 1)
        let ig = ParallelAttribution(network: network, parameters: parameters)
        var g = SeededGenerator(seed: 3)
        let size = inputShape(network)
        let zeros = [Float](repeating: 0, count: size)
        let jobs = (0..<count).map { _ in
            ParallelAttribution.Job(input: (0..<size).map { _ in Float(g.nextGaussian()) }, baseline: zeros, target: 0, steps: 50)
        }
        _ = try ig.attribute(jobs)
        var bestRate = 0.0
        for _ in 0..<2 {
            let start = Stopwatch.now()
            _ = try ig.attribute(jobs)
            bestRate = max(bestRate, Double(count) / (Stopwatch.now() - start))
        }
        return bestRate
    }

    func measureTraining(_ network: Network, batch: Int) throws -> Double {
        let parameters = try Parameters(for: network)
        parameters.initialize(seed: 1)
        let executor = try Executor(network: network, parameters: parameters, batchSize: batch, mode: .training)
        var g = SeededGenerator(seed: 2)
        let input = (0..<(batch * inputShape(network))).map { _ in Float(g.nextGaussian()) }
        guard case .dense(let classes, _) = network.output.operation else { return 0 }
        let labels = (0..<batch).map { _ in Int(g.next() % UInt64(classes)) }
        var gradient = [Float](repeating: 0, count: batch * classes)
        let optimizer = SGD(momentum: 0.9, weightDecay: 5e-4)
        return input.withUnsafeBufferPointer { x in
            rate(batch: batch) {
                executor.forward(x)
                _ = gradient.withUnsafeMutableBufferPointer { g in
                    SoftmaxCrossEntropy.loss(logits: executor.output, labels: labels, classes: classes, gradient: g)
                }
                executor.backward(gradient)
                optimizer.step(parameters: parameters, gradients: executor.gradients, learningRate: 0.01)
                executor.syncWeights()
            }
        }
    }
}
