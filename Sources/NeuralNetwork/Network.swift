/// # NeuralNetwork
///
/// Dropline's CNN engine. A `Network` is a plain, Codable description: named layers in topological
/// order, each naming its inputs. `Parameters` holds the weights by name, in PyTorch's layouts
/// (conv [O, I/groups, KH, KW], dense [out, in]). An `Executor` compiles a network for one batch size
/// and one mode onto oneDNN primitives, allocates every activation once, and runs forward and backward
/// passes; training, evaluation, import and export are built on it.

/// How a convolution or pooling window is padded.
public enum Padding: Codable, Sendable, Equatable {
    /// Keras/TensorFlow "same": output = ceil(input / stride), extra padding at the bottom/right.
    case same
    /// No padding.
    case valid
    /// Explicit padding per side (PyTorch's symmetric padding p is explicit(p, p, p, p)).
    case explicit(top: Int, bottom: Int, left: Int, right: Int)

    public static func symmetric(_ p: Int) -> Padding { .explicit(top: p, bottom: p, left: p, right: p) }

    /// (before, after) padding along one axis.
    func amounts(input: Int, kernel: Int, stride: Int, axis: Int) -> (Int, Int) {
        switch self {
        case .valid: return (0, 0)
        case .explicit(let t, let b, let l, let r): return axis == 0 ? (t, b) : (l, r)
        case .same:
            let output = (input + stride - 1) / stride
            let total = max((output - 1) * stride + kernel - input, 0)
            return (total / 2, total - total / 2)
        }
    }
}

/// What a layer computes.
public enum Operation: Codable, Sendable, Equatable {
    /// The image input: channels x height x width.
    case input(channels: Int, height: Int, width: Int)
    /// A feature-vector input.
    case features(count: Int)
    case conv2d(filters: Int, kernel: [Int], stride: [Int], padding: Padding, groups: Int, bias: Bool)
    case batchNorm(epsilon: Float, momentum: Float)
    case relu
    case relu6
    case maxPool(kernel: [Int], stride: [Int], padding: Padding)
    case avgPool(kernel: [Int], stride: [Int], padding: Padding, countIncludePad: Bool)
    /// Mean over height and width; the result is a vector of the channels.
    case globalAvgPool
    case dense(units: Int, bias: Bool)
    case dropout(rate: Float)
    case add
    case flatten
    /// Zeros around the image; must feed a convolution, which absorbs it into its own padding.
    case zeroPad(top: Int, bottom: Int, left: Int, right: Int)

    var kind: String {
        switch self {
        case .input: "input"
        case .features: "features"
        case .conv2d: "conv2d"
        case .batchNorm: "batch_norm"
        case .relu: "relu"
        case .relu6: "relu6"
        case .maxPool: "max_pool"
        case .avgPool: "avg_pool"
        case .globalAvgPool: "global_avg_pool"
        case .dense: "dense"
        case .dropout: "dropout"
        case .add: "add"
        case .flatten: "flatten"
        case .zeroPad: "zero_pad"
        }
    }
}

/// One named layer and the names of the layers it reads.
public struct Layer: Codable, Sendable, Equatable {
    public var name: String
    public var operation: Operation
    public var inputs: [String]
    /// False for a frozen layer: no parameter updates, and batch norm uses its running statistics.
    public var trainable: Bool

    public init(_ name: String, _ operation: Operation, inputs: [String], trainable: Bool = true) {
        self.name = name
        self.operation = operation
        self.inputs = inputs
        self.trainable = trainable
    }
}

/// A network: layers in topological order; the first is the input, the last the output.
public struct Network: Codable, Sendable, Equatable {
    public var layers: [Layer]

    public init(layers: [Layer]) { self.layers = layers }

    public var input: Layer { layers[0] }
    public var output: Layer { layers[layers.count - 1] }

    public func layer(named name: String) -> Layer? { layers.first { $0.name == name } }

    /// Output shape per layer, without the batch: [C, H, W] for images, [F] for vectors. Checks that
    /// every input exists and comes earlier, and that shapes fit.
    public func shapes() throws(NetworkError) -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        guard !layers.isEmpty else { throw .invalidNetwork("the network has no layers") }
        for (index, layer) in layers.enumerated() {
            if shapes[layer.name] != nil { throw .invalidNetwork("two layers are named '\(layer.name)'") }
            var inputShapes: [[Int]] = []
            for input in layer.inputs {
                guard let s = shapes[input] else {
                    throw .invalidNetwork("layer '\(layer.name)' reads '\(input)', which is not an earlier layer")
                }
                inputShapes.append(s)
            }
            let isInput: Bool
            if case .input = layer.operation { isInput = true } else if case .features = layer.operation { isInput = true } else { isInput = false }
            if isInput != (index == 0) {
                throw .invalidNetwork(index == 0 ? "the first layer '\(layer.name)' must be an input" : "layer '\(layer.name)' is an input but not the first layer")
            }
            let expectedInputs: Int
            switch layer.operation {
            case .input, .features: expectedInputs = 0
            case .add: expectedInputs = 2
            default: expectedInputs = 1
            }
            guard inputShapes.count == expectedInputs else {
                throw .invalidNetwork("layer '\(layer.name)' (\(layer.operation.kind)) takes \(expectedInputs) inputs, has \(inputShapes.count)")
            }
            shapes[layer.name] = try Self.outputShape(layer, inputShapes)
        }
        return shapes
    }

    static func outputShape(_ layer: Layer, _ inputs: [[Int]]) throws(NetworkError) -> [Int] {
        func image(_ s: [Int]) throws(NetworkError) -> (Int, Int, Int) {
            guard s.count == 3 else { throw .invalidNetwork("layer '\(layer.name)' (\(layer.operation.kind)) needs an image input, got shape \(s)") }
            return (s[0], s[1], s[2])
        }
        func window(_ h: Int, _ w: Int, kernel: [Int], stride: [Int], padding: Padding) throws(NetworkError) -> (Int, Int) {
            guard kernel.count == 2, stride.count == 2, kernel.allSatisfy({ $0 > 0 }), stride.allSatisfy({ $0 > 0 }) else {
                throw .invalidNetwork("layer '\(layer.name)': kernel \(kernel) and stride \(stride) must be two positive numbers")
            }
            let (pt, pb) = padding.amounts(input: h, kernel: kernel[0], stride: stride[0], axis: 0)
            let (pl, pr) = padding.amounts(input: w, kernel: kernel[1], stride: stride[1], axis: 1)
            let oh = (h + pt + pb - kernel[0]) / stride[0] + 1
            let ow = (w + pl + pr - kernel[1]) / stride[1] + 1
            guard oh > 0, ow > 0, h + pt + pb >= kernel[0], w + pl + pr >= kernel[1] else {
                throw .invalidNetwork("layer '\(layer.name)': a \(kernel) window does not fit a \(h)x\(w) input")
            }
            return (oh, ow)
        }
        switch layer.operation {
        case .input(let c, let h, let w):
            guard c > 0, h > 0, w > 0 else { throw .invalidNetwork("input '\(layer.name)' has size \(c)x\(h)x\(w)") }
            return [c, h, w]
        case .features(let n):
            guard n > 0 else { throw .invalidNetwork("input '\(layer.name)' has \(n) features") }
            return [n]
        case .conv2d(let filters, let kernel, let stride, let padding, let groups, _):
            let (c, h, w) = try image(inputs[0])
            guard groups > 0, c % groups == 0, filters % groups == 0, filters > 0 else {
                throw .invalidNetwork("conv '\(layer.name)': \(c) input and \(filters) output channels are not divisible into \(groups) groups")
            }
            let (oh, ow) = try window(h, w, kernel: kernel, stride: stride, padding: padding)
            return [filters, oh, ow]
        case .batchNorm, .relu, .relu6, .dropout:
            return inputs[0]
        case .maxPool(let kernel, let stride, let padding), .avgPool(let kernel, let stride, let padding, _):
            let (c, h, w) = try image(inputs[0])
            let (oh, ow) = try window(h, w, kernel: kernel, stride: stride, padding: padding)
            return [c, oh, ow]
        case .globalAvgPool:
            return [try image(inputs[0]).0]
        case .dense(let units, _):
            guard inputs[0].count == 1 else { throw .invalidNetwork("dense '\(layer.name)' needs a vector input (flatten or pool first), got shape \(inputs[0])") }
            guard units > 0 else { throw .invalidNetwork("dense '\(layer.name)' has \(units) units") }
            return [units]
        case .add:
            guard inputs[0] == inputs[1] else { throw .invalidNetwork("add '\(layer.name)' adds shapes \(inputs[0]) and \(inputs[1])") }
            return inputs[0]
        case .flatten:
            return [inputs[0].reduce(1, *)]
        case .zeroPad(let t, let b, let l, let r):
            let (c, h, w) = try image(inputs[0])
            return [c, h + t + b, w + l + r]
        }
    }

    /// The names and shapes of every parameter, in layer order: weight, bias; gamma, beta,
    /// running_mean, running_var.
    public func parameterShapes() throws(NetworkError) -> [(name: String, shape: [Int])] {
        let shapes = try self.shapes()
        var result: [(String, [Int])] = []
        for layer in layers {
            switch layer.operation {
            case .conv2d(let filters, let kernel, _, _, let groups, let bias):
                let inChannels = shapes[layer.inputs[0]]![0]
                result.append(("\(layer.name).weight", [filters, inChannels / groups, kernel[0], kernel[1]]))
                if bias { result.append(("\(layer.name).bias", [filters])) }
            case .batchNorm:
                let c = shapes[layer.inputs[0]]![0]
                for p in ["gamma", "beta", "running_mean", "running_var"] { result.append(("\(layer.name).\(p)", [c])) }
            case .dense(let units, let bias):
                result.append(("\(layer.name).weight", [units, shapes[layer.inputs[0]]![0]]))
                if bias { result.append(("\(layer.name).bias", [units])) }
            default: break
            }
        }
        return result
    }

    /// Layers reading each layer's output.
    func consumers() -> [String: [String]] {
        var result: [String: [String]] = [:]
        for layer in layers { for input in layer.inputs { result[input, default: []].append(layer.name) } }
        return result
    }

    /// Multiply-adds per example for convolutions and dense layers (for throughput figures).
    public func multiplyAdds() throws(NetworkError) -> Int {
        let shapes = try self.shapes()
        var total = 0
        for layer in layers {
            switch layer.operation {
            case .conv2d(_, let kernel, _, _, let groups, _):
                let out = shapes[layer.name]!, inC = shapes[layer.inputs[0]]![0]
                total += out.reduce(1, *) * (inC / groups) * kernel[0] * kernel[1]
            case .dense(let units, _):
                total += units * shapes[layer.inputs[0]]![0]
            default: break
            }
        }
        return total
    }
}
