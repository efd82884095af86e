/// Network architectures Dropline builds itself.
public enum Architectures {
    /// The reference small CNN of ../shared/PEERS.md, for side-by-side timing: three blocks of
    /// conv3x3 (no bias) + batch norm + ReLU + 2x2 max pool (32, 64, 128 channels), global average
    /// pool, linear. 94,246 parameters with 6 classes.
    public static func smallCNN(classes: Int, imageSize: Int) -> Network {
        var layers = [Layer("input", .input(channels: 3, height: imageSize, width: imageSize), inputs: [])]
        var previous = "input"
        for (i, channels) in [32, 64, 128].enumerated() {
            layers += [
                Layer("conv\(i)", .conv2d(filters: channels, kernel: [3, 3], stride: [1, 1], padding: .symmetric(1), groups: 1, bias: false), inputs: [previous]),
                Layer("bn\(i)", .batchNorm(epsilon: 1e-5, momentum: 0.1), inputs: ["conv\(i)"]),
                Layer("relu\(i)", .relu, inputs: ["bn\(i)"]),
                Layer("pool\(i)", .maxPool(kernel: [2, 2], stride: [2, 2], padding: .valid), inputs: ["relu\(i)"]),
            ]
            previous = "pool\(i)"
        }
        layers += [
            Layer("gap", .globalAvgPool, inputs: [previous]),
            Layer("fc", .dense(units: classes, bias: true), inputs: ["gap"]),
        ]
        return Network(layers: layers)
    }

    /// Dropline's default network for training from scratch on small datasets at 64-128 px: a small
    /// ResNet. A stride-2 3x3 stem (32 channels), then four stages of one basic residual block each
    /// (32, 64, 128, 256 channels; stages 2-4 halve the resolution, with a 1x1 projection shortcut),
    /// global average pool, dropout 0.2, linear. About 1.2 M parameters and 140 M multiply-adds per
    /// 96x96 image: residual connections train reliably from few images, and four stages reach a
    /// 6x6 map at 96 px, enough context for whole objects.
    public static func residual(classes: Int, imageSize: Int, width: Int = 32) -> Network {
        var layers = [Layer("input", .input(channels: 3, height: imageSize, width: imageSize), inputs: [])]
        func convBN(_ name: String, _ input: String, filters: Int, kernel: Int, stride: Int, relu: Bool) -> String {
            layers.append(Layer("\(name).conv", .conv2d(filters: filters, kernel: [kernel, kernel], stride: [stride, stride],
                                                       padding: .symmetric(kernel / 2), groups: 1, bias: false), inputs: [input]))
            layers.append(Layer("\(name).bn", .batchNorm(epsilon: 1e-5, momentum: 0.1), inputs: ["\(name).conv"]))
            guard relu else { return "\(name).bn" }
            layers.append(Layer("\(name).relu", .relu, inputs: ["\(name).bn"]))
            return "\(name).relu"
        }
        var previous = convBN("stem", "input", filters: width, kernel: 3, stride: 2, relu: true)
        var channels = width
        for (stage, multiplier) in [1, 2, 4, 8].enumerated() {
            let filters = width * multiplier
            let stride = stage == 0 ? 1 : 2
            let name = "stage\(stage + 1)"
            let a = convBN("\(name).a", previous, filters: filters, kernel: 3, stride: stride, relu: true)
            let b = convBN("\(name).b", a, filters: filters, kernel: 3, stride: 1, relu: false)
            var shortcut = previous
            if stride != 1 || filters != channels {
                shortcut = convBN("\(name).shortcut", previous, filters: filters, kernel: 1, stride: stride, relu: false)
            }
            layers.append(Layer("\(name).add", .add, inputs: [b, shortcut]))
            layers.append(Layer("\(name).out", .relu, inputs: ["\(name).add"]))
            previous = "\(name).out"
            channels = filters
        }
        layers += [
            Layer("gap", .globalAvgPool, inputs: [previous]),
            Layer("dropout", .dropout(rate: 0.2), inputs: ["gap"]),
            Layer("fc", .dense(units: classes, bias: true), inputs: ["dropout"]),
        ]
        return Network(layers: layers)
    }
}
