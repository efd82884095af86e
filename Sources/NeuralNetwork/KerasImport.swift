import Foundation
import Tensor

/// A network imported from Keras' TensorFlow.js layers format, with its weights.
public struct ImportedModel: Sendable {
    public var network: Network
    public var parameters: Parameters
    /// The layer the network was cut at.
    public var cut: String
    /// Keras layer names in the imported part, in order.
    public var layerNames: [String]
}

/// Reads models in the TensorFlow.js layers format (model.json + weight shards), as Keras' converter
/// and Teachable Machine export them, into Dropline networks.
///
/// Keras is channels-last; Dropline is channels-first, so kernels are transposed (Conv2D HWIO to
/// OIHW, DepthwiseConv2D [kh, kw, C, M] to [C*M, 1, kh, kw], Dense [in, out] to [out, in], with a
/// Dense after Flatten reordered from HWC to CHW), and Keras' batch-norm momentum (0.99 keeps 99% of
/// the running value) becomes PyTorch's convention (0.01). Nested Sequential and functional Models
/// are flattened. Only the layers needed to compute the cut layer are converted, so an unsupported
/// layer in an unused head does not matter; one that is needed is an error naming it.
public enum KerasImport {
    public static let supportedLayers = [
        "InputLayer", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "Activation", "ZeroPadding2D",
        "Add", "GlobalAveragePooling2D", "AveragePooling2D", "MaxPooling2D", "Dense", "Dropout", "Flatten",
        "Reshape", "Sequential", "Model", "Functional",
    ]

    /// One Keras layer after flattening nested models.
    struct KLayer {
        var name: String
        var kind: String
        var config: [String: Any]
        var inputs: [String]
    }

    /// Loads `model.json` (weights beside it) and cuts the network at `cut` (a Keras layer name), or
    /// by default at the first global average pooling layer.
    public static func load(modelJSON path: String, cut: String? = nil) throws(NetworkError) -> ImportedModel {
        let root: [String: Any]
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw NetworkError.invalidModel("\(path) is not a JSON object")
            }
            root = object
        } catch let error as NetworkError {
            throw error
        } catch {
            throw .invalidModel("cannot read \(path): \(error.localizedDescription)")
        }
        guard let topology = root["modelTopology"] as? [String: Any] else {
            throw .invalidModel("\(path) has no modelTopology: not a TensorFlow.js layers model (graph models are not supported)")
        }
        let modelConfig = (topology["model_config"] as? [String: Any]) ?? topology
        var layers: [KLayer] = []
        var counter = 0
        _ = try flatten(modelConfig, input: nil, into: &layers, counter: &counter, file: path)

        // Choose the cut and the layers it needs.
        let target: String
        if let cut {
            guard layers.contains(where: { $0.name == cut }) else {
                throw .invalidModel("\(path) has no layer named '\(cut)'; its layers include \(layers.prefix(5).map(\.name).joined(separator: ", ")) ... \(layers.suffix(3).map(\.name).joined(separator: ", "))")
            }
            target = cut
        } else {
            guard let pool = layers.first(where: { $0.kind == "GlobalAveragePooling2D" }) else {
                throw .invalidModel("\(path) has no GlobalAveragePooling2D layer; name the layer to cut at")
            }
            target = pool.name
        }
        var needed: Set<String> = []
        var stack = [target]
        let byName = Dictionary(layers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        while let name = stack.popLast() {
            guard needed.insert(name).inserted, let layer = byName[name] else { continue }
            stack += layer.inputs
        }
        let used = layers.filter { needed.contains($0.name) }
        for layer in used where !supportedLayers.contains(layer.kind) {
            throw .invalidModel("layer '\(layer.name)' in \(path) has type \(layer.kind), which Dropline cannot import (supported: \(supportedLayers.joined(separator: ", "))); cut the model before it")
        }

        // Convert to Dropline layers.
        var converted: [Layer] = []
        var flattenedFrom: [String: [Int]] = [:]  // flatten layer -> its HWC input shape, for a following Dense
        var alias: [String: String] = [:]          // layers that are no-ops map to their input
        func source(_ name: String) -> String { alias[name].map { source($0) } ?? name }
        var shapes: [String: [Int]] = [:]
        for k in used {
            let inputs = k.inputs.map(source)
            func add(_ op: Operation, name: String? = nil, inputs explicitInputs: [String]? = nil) throws(NetworkError) {
                let layer = Layer(name ?? k.name, op, inputs: explicitInputs ?? inputs)
                let inputShapes = layer.inputs.map { shapes[$0]! }
                shapes[layer.name] = try Network.outputShape(layer, inputShapes)
                converted.append(layer)
            }
            switch k.kind {
            case "InputLayer":
                guard let shape = (k.config["batch_input_shape"] ?? k.config["batchInputShape"]) as? [Any], shape.count == 4,
                      let h = shape[1] as? Int, let w = shape[2] as? Int, let c = shape[3] as? Int else {
                    throw .invalidModel("input '\(k.name)' needs a known [batch, height, width, channels] shape")
                }
                try add(.input(channels: c, height: h, width: w))
            case "Conv2D", "DepthwiseConv2D":
                try requireUnitDilation(k)
                let kernel = try ints(k, "kernel_size", count: 2)
                let strides = try ints(k, "strides", count: 2, default: [1, 1])
                let padding = try paddingMode(k)
                let inChannels = shapes[inputs[0]]![0]
                let depthwise = k.kind == "DepthwiseConv2D"
                let multiplier = (k.config["depth_multiplier"] as? Int) ?? 1
                let filters = depthwise ? inChannels * multiplier : (k.config["filters"] as? Int ?? 0)
                let groups = depthwise ? inChannels : (k.config["groups"] as? Int ?? 1)
                let bias = k.config["use_bias"] as? Bool ?? true
                try add(.conv2d(filters: filters, kernel: kernel, stride: strides, padding: padding, groups: groups, bias: bias))
                try activation(k, after: k.name, add: add)
            case "BatchNormalization":
                let axis = k.config["axis"] as? Int ?? -1
                guard axis == -1 || axis == 3 || (axis == 1 && shapes[inputs[0]]!.count == 1) else {
                    throw .invalidModel("batch norm '\(k.name)' normalises axis \(axis); only the channel axis (channels-last) is supported")
                }
                let epsilon = Float(k.config["epsilon"] as? Double ?? 1e-3)
                let momentum = Float(k.config["momentum"] as? Double ?? 0.99)
                try add(.batchNorm(epsilon: epsilon, momentum: 1 - momentum))
            case "ReLU":
                let maxValue = k.config["max_value"] as? Double
                let slope = k.config["negative_slope"] as? Double ?? 0
                let threshold = k.config["threshold"] as? Double ?? 0
                guard slope == 0, threshold == 0, maxValue == nil || maxValue == 6 else {
                    throw .invalidModel("ReLU '\(k.name)' has max_value \(maxValue.map { String($0) } ?? "none"), negative_slope \(slope), threshold \(threshold); only ReLU and ReLU6 are supported")
                }
                try add(maxValue == 6 ? .relu6 : .relu)
            case "Activation":
                switch k.config["activation"] as? String ?? "linear" {
                case "linear": alias[k.name] = k.inputs[0]
                case "relu": try add(.relu)
                case "relu6": try add(.relu6)
                case let other:
                    throw .invalidModel("activation '\(k.name)' is \(other); inside the imported part only linear, relu and relu6 are supported (cut before it)")
                }
            case "ZeroPadding2D":
                let (t, b, l, r) = try zeroPadding(k)
                try add(.zeroPad(top: t, bottom: b, left: l, right: r))
            case "Add":
                guard inputs.count >= 2 else { throw .invalidModel("add '\(k.name)' has \(inputs.count) input") }
                var running = inputs[0]
                for (i, next) in inputs.dropFirst().enumerated() {
                    let name = i == inputs.count - 2 ? k.name : "\(k.name)__\(i)"
                    try add(.add, name: name, inputs: [running, next])
                    running = name
                }
            case "GlobalAveragePooling2D":
                try add(.globalAvgPool)
            case "AveragePooling2D", "MaxPooling2D":
                let size = try ints(k, "pool_size", count: 2, default: [2, 2])
                let strides = (try? ints(k, "strides", count: 2)) ?? size
                let padding = try paddingMode(k)
                try add(k.kind == "MaxPooling2D" ? .maxPool(kernel: size, stride: strides, padding: padding)
                                                 : .avgPool(kernel: size, stride: strides, padding: padding, countIncludePad: false))
            case "Dense":
                guard let units = k.config["units"] as? Int else { throw .invalidModel("dense '\(k.name)' has no units") }
                try add(.dense(units: units, bias: k.config["use_bias"] as? Bool ?? true))
                try activation(k, after: k.name, add: add)
            case "Dropout":
                try add(.dropout(rate: Float(k.config["rate"] as? Double ?? 0)))
            case "Flatten":
                flattenedFrom[k.name] = shapes[inputs[0]]
                try add(.flatten)
            case "Reshape":
                guard let target = k.config["target_shape"] as? [Int] else { throw .invalidModel("reshape '\(k.name)' has no target_shape") }
                let input = shapes[inputs[0]]!
                let count = input.reduce(1, *)
                // Only reshapes that are the same in channels-last and channels-first order are safe:
                // to a vector from a vector or a 1x1 map, or from a vector to a 1x1 map.
                if target.reduce(1, *) == count, target.count == 1, input.count == 1 || (input.count == 3 && input[1] == 1 && input[2] == 1) {
                    try add(.flatten)
                } else if target.count == 1 && input.count == 1 {
                    alias[k.name] = k.inputs[0]
                } else {
                    throw .invalidModel("reshape '\(k.name)' from \(input) to \(target) reorders values between channels-last and channels-first; only reshapes to or from a vector are supported")
                }
            default:
                throw .invalidModel("layer '\(k.name)' has type \(k.kind), which Dropline cannot import")
            }
        }
        // Nested models' inner input layers and no-op layers were aliased; the cut may be one.
        var network = Network(layers: converted)
        let outputName = source(target)
        if network.output.name != outputName, let index = network.layers.firstIndex(where: { $0.name == outputName }) {
            network.layers = Array(network.layers[...index])
        }
        _ = try network.shapes()

        // Weights.
        let parameters = try Parameters(for: network)
        let weights = try loadWeights(root, modelPath: path)
        try assign(weights, to: parameters, network: network, keras: used, flattenedFrom: flattenedFrom, shapes: shapes, file: path)
        return ImportedModel(network: network, parameters: parameters, cut: target, layerNames: used.map(\.name))
    }

    // MARK: - Topology

    /// Flattens a Sequential or functional model into `layers`; returns the name of its output layer.
    /// `input` is the layer feeding a nested model (nil at the top).
    static func flatten(_ model: [String: Any], input: String?, into layers: inout [KLayer], counter: inout Int,
                        file: String) throws(NetworkError) -> String? {
        let kind = model["class_name"] as? String ?? "Model"
        let config: [String: Any]
        var list: [[String: Any]]
        if let c = model["config"] as? [String: Any] {
            config = c
            list = c["layers"] as? [[String: Any]] ?? []
        } else if let c = model["config"] as? [[String: Any]] {  // old Keras: Sequential config is the list
            config = [:]
            list = c
        } else {
            throw .invalidModel("\(file): model '\(model["name"] ?? kind)' has no layers")
        }
        func nameOf(_ layer: [String: Any]) -> String {
            if let n = layer["name"] as? String { return n }
            if let n = (layer["config"] as? [String: Any])?["name"] as? String { return n }
            counter += 1
            return "layer_\(counter)"
        }
        if kind == "Sequential" {
            var previous = input
            for item in list {
                let itemKind = item["class_name"] as? String ?? "?"
                if ["Sequential", "Model", "Functional"].contains(itemKind) {
                    previous = try flatten(item, input: previous, into: &layers, counter: &counter, file: file)
                    continue
                }
                let name = nameOf(item)
                let itemConfig = item["config"] as? [String: Any] ?? [:]
                if previous == nil, itemKind != "InputLayer" {
                    // A Sequential's first layer carries the input shape.
                    guard let shape = (itemConfig["batch_input_shape"] ?? itemConfig["batchInputShape"]) as? [Any] else {
                        throw .invalidModel("\(file): the first layer '\(name)' declares no input shape")
                    }
                    let inputName = name + "_input"
                    layers.append(KLayer(name: inputName, kind: "InputLayer", config: ["batch_input_shape": shape], inputs: []))
                    previous = inputName
                }
                if itemKind == "InputLayer", let previous {
                    layers.append(KLayer(name: name, kind: "Activation", config: ["activation": "linear"], inputs: [previous]))
                } else {
                    layers.append(KLayer(name: name, kind: itemKind, config: itemConfig, inputs: previous.map { [$0] } ?? []))
                }
                previous = name
            }
            return previous
        }
        // Functional model: inbound_nodes name the inputs; a nested model's InputLayer is fed by `input`.
        for item in list {
            let itemKind = item["class_name"] as? String ?? "?"
            let name = nameOf(item)
            var inbound: [String] = []
            if let nodes = item["inbound_nodes"] as? [[Any]], let first = nodes.first {
                for entry in first {
                    if let e = entry as? [Any], let n = e.first as? String { inbound.append(n) }
                }
            }
            if ["Sequential", "Model", "Functional"].contains(itemKind) {
                let output = try flatten(item, input: inbound.first, into: &layers, counter: &counter, file: file)
                if let output { layers.append(KLayer(name: name, kind: "Activation", config: ["activation": "linear"], inputs: [output])) }
                continue
            }
            if itemKind == "InputLayer", let input {
                layers.append(KLayer(name: name, kind: "Activation", config: ["activation": "linear"], inputs: [input]))
                continue
            }
            layers.append(KLayer(name: name, kind: itemKind, config: item["config"] as? [String: Any] ?? [:], inputs: inbound))
        }
        if let outputs = config["output_layers"] as? [[Any]], let first = outputs.first?.first as? String { return first }
        return layers.last?.name
    }

    // MARK: - Config helpers

    static func ints(_ k: KLayer, _ key: String, count: Int, default value: [Int]? = nil) throws(NetworkError) -> [Int] {
        if let list = k.config[key] as? [Int], list.count == count { return list }
        if let single = k.config[key] as? Int { return [Int](repeating: single, count: count) }
        if let value { return value }
        throw .invalidModel("layer '\(k.name)' has no valid \(key)")
    }

    static func paddingMode(_ k: KLayer) throws(NetworkError) -> Padding {
        switch k.config["padding"] as? String ?? "valid" {
        case "same": return .same
        case "valid": return .valid
        case let other: throw .invalidModel("layer '\(k.name)' has padding '\(other)'; only same and valid are supported")
        }
    }

    static func requireUnitDilation(_ k: KLayer) throws(NetworkError) {
        if let d = k.config["dilation_rate"] as? [Int], d.contains(where: { $0 != 1 }) {
            throw .invalidModel("convolution '\(k.name)' is dilated (\(d)); dilation is not supported")
        }
        if let format = k.config["data_format"] as? String, format != "channels_last" {
            throw .invalidModel("layer '\(k.name)' is \(format); only channels_last models are supported")
        }
    }

    static func zeroPadding(_ k: KLayer) throws(NetworkError) -> (Int, Int, Int, Int) {
        if let p = k.config["padding"] as? [[Int]], p.count == 2, p[0].count == 2, p[1].count == 2 { return (p[0][0], p[0][1], p[1][0], p[1][1]) }
        if let p = k.config["padding"] as? [Int], p.count == 2 { return (p[0], p[0], p[1], p[1]) }
        if let p = k.config["padding"] as? Int { return (p, p, p, p) }
        throw .invalidModel("zero padding '\(k.name)' has an unreadable padding")
    }

    /// Appends the layer's fused activation (Conv2D and Dense carry one).
    static func activation(_ k: KLayer, after name: String, add: (Operation, String?, [String]?) throws(NetworkError) -> Void) throws(NetworkError) {
        switch k.config["activation"] as? String ?? "linear" {
        case "linear": return
        case "relu": try add(.relu, "\(name)__relu", [name])
        case "relu6": try add(.relu6, "\(name)__relu6", [name])
        case let other:
            throw .invalidModel("layer '\(k.name)' ends in a \(other) activation, which is not supported inside the imported part; cut before it")
        }
    }

    // MARK: - Weights

    /// Every tensor of the weights manifest by name (float32, concatenated shards in manifest order).
    static func loadWeights(_ root: [String: Any], modelPath: String) throws(NetworkError) -> [String: Tensor] {
        guard let manifest = root["weightsManifest"] as? [[String: Any]] else { throw .invalidModel("\(modelPath) has no weightsManifest") }
        let folder = (modelPath as NSString).deletingLastPathComponent
        var tensors: [String: Tensor] = [:]
        for group in manifest {
            let paths = group["paths"] as? [String] ?? []
            var bytes = [UInt8]()
            for p in paths {
                let full = (folder as NSString).appendingPathComponent(p)
                guard let data = FileManager.default.contents(atPath: full) else {
                    throw .invalidModel("weight shard \(full), listed in \(modelPath), is missing or unreadable")
                }
                bytes += data
            }
            var offset = 0
            for entry in group["weights"] as? [[String: Any]] ?? [] {
                guard let name = entry["name"] as? String, let shape = entry["shape"] as? [Int] else { continue }
                let dtype = entry["dtype"] as? String ?? "float32"
                guard dtype == "float32", entry["quantization"] == nil else {
                    throw .invalidModel("weight '\(name)' is \(dtype)\(entry["quantization"] != nil ? " (quantized)" : ""); only float32 weights are supported")
                }
                let count = shape.reduce(1, *)
                guard offset + count * 4 <= bytes.count else {
                    throw .invalidModel("the weight shards of \(modelPath) end before weight '\(name)' (\(bytes.count) bytes)")
                }
                var values = [Float](repeating: 0, count: count)
                bytes.withUnsafeBytes { raw in
                    for i in 0..<count {
                        values[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4 * i, as: UInt32.self)))
                    }
                }
                offset += count * 4
                tensors[name] = Tensor(shape: shape, data: values)
            }
        }
        return tensors
    }

    /// Finds `<layer>/<param>` among the weight names (which may carry model-name prefixes).
    static func weight(_ weights: [String: Tensor], layer: String, _ param: String) -> Tensor? {
        if let t = weights["\(layer)/\(param)"] { return t }
        let suffix = "/\(layer)/\(param)"
        let matches = weights.keys.filter { $0.hasSuffix(suffix) }
        return matches.count == 1 ? weights[matches[0]] : nil
    }

    static func assign(_ weights: [String: Tensor], to parameters: Parameters, network: Network, keras: [KLayer],
                       flattenedFrom: [String: [Int]], shapes: [String: [Int]], file: String) throws(NetworkError) {
        let kinds = Dictionary(keras.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func require(_ layer: String, _ param: String) throws(NetworkError) -> Tensor {
            guard let t = weight(weights, layer: layer, param) else {
                throw .invalidModel("\(file) has no weight '\(layer)/\(param)'")
            }
            return t
        }
        for layer in network.layers {
            guard let k = kinds[layer.name] else { continue }
            switch layer.operation {
            case .conv2d(_, _, _, _, _, let bias):
                if k.kind == "DepthwiseConv2D" {
                    let kernel = try require(layer.name, "depthwise_kernel")  // [kh, kw, C, M]
                    let (kh, kw, c, m) = (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3])
                    try parameters.set("\(layer.name).weight", kernel.permuted([2, 3, 0, 1]).reshaped([c * m, 1, kh, kw]))
                } else {
                    try parameters.set("\(layer.name).weight", try require(layer.name, "kernel").permuted([3, 2, 0, 1]))
                }
                if bias { try parameters.set("\(layer.name).bias", try require(layer.name, "bias")) }
            case .batchNorm:
                let c = shapes[layer.name]![0]
                let scale = k.config["scale"] as? Bool ?? true, center = k.config["center"] as? Bool ?? true
                try parameters.set("\(layer.name).gamma", scale ? try require(layer.name, "gamma") : Tensor(repeating: 1, shape: [c]))
                try parameters.set("\(layer.name).beta", center ? try require(layer.name, "beta") : Tensor(zeros: [c]))
                try parameters.set("\(layer.name).running_mean", try require(layer.name, "moving_mean"))
                try parameters.set("\(layer.name).running_var", try require(layer.name, "moving_variance"))
            case .dense(_, let bias):
                var kernel = try require(layer.name, "kernel")  // [in, out]
                if let flatten = flattenedFrom[layer.inputs[0]], flatten.count == 3 {
                    // Keras flattened H, W, C; Dropline flattens C, H, W.
                    let (c, h, w) = (flatten[0], flatten[1], flatten[2])
                    let out = kernel.shape[1]
                    kernel = kernel.reshaped([h, w, c, out]).permuted([2, 0, 1, 3]).reshaped([c * h * w, out])
                }
                try parameters.set("\(layer.name).weight", kernel.permuted([1, 0]))
                if bias { try parameters.set("\(layer.name).bias", try require(layer.name, "bias")) }
            default:
                break
            }
        }
    }
}
