#if canImport(Glibc)
import Glibc
#endif
import Randomness
public import Tensor

/// A float buffer at a fixed address, so oneDNN memories can borrow it for the life of an executor.
public final class FloatBuffer: @unchecked Sendable {
    public let shape: [Int]
    public let count: Int
    let pointer: UnsafeMutablePointer<Float>

    init(shape: [Int], fill: Float = 0) {
        self.shape = shape
        count = shape.reduce(1, *)
        var raw: UnsafeMutableRawPointer?
        precondition(posix_memalign(&raw, 64, max(count, 1) * 4) == 0, "out of memory for a \(shape) buffer")
        pointer = raw!.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: fill, count: max(count, 1))
    }

    deinit { free(pointer) }

    public var values: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    public var tensor: Tensor { Tensor(shape: shape, data: Array(values)) }

    func set(_ data: [Float]) {
        precondition(data.count == count, "buffer \(shape) needs \(count) values, got \(data.count)")
        data.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }
}

/// A network's parameters by name, in PyTorch layouts: conv weight [O, I/groups, KH, KW], dense weight
/// [out, in], batch norm gamma, beta, running_mean, running_var [C].
public final class Parameters: @unchecked Sendable {
    /// Names in the network's order.
    public private(set) var names: [String] = []
    private var buffers: [String: FloatBuffer] = [:]

    /// Parameters for `network`: batch norm gamma 1, running variance 1, everything else 0.
    public init(for network: Network) throws(NetworkError) {
        for (name, shape) in try network.parameterShapes() {
            let one = name.hasSuffix(".gamma") || name.hasSuffix(".running_var")
            add(name, FloatBuffer(shape: shape, fill: one ? 1 : 0))
        }
    }

    /// An empty store (for gradients).
    init() {}

    func add(_ name: String, _ buffer: FloatBuffer) {
        if buffers[name] == nil { names.append(name) }
        buffers[name] = buffer
    }

    public func buffer(_ name: String) -> FloatBuffer? { buffers[name] }

    public func contains(_ name: String) -> Bool { buffers[name] != nil }

    public subscript(name: String) -> Tensor? {
        buffers[name]?.tensor
    }

    /// Replaces a parameter's values; the shape must match.
    public func set(_ name: String, _ tensor: Tensor) throws(NetworkError) {
        guard let buffer = buffers[name] else { throw .invalidModel("no parameter named '\(name)'") }
        guard buffer.shape == tensor.shape else {
            throw .invalidModel("parameter '\(name)' has shape \(buffer.shape), the value has \(tensor.shape)")
        }
        buffer.set(tensor.data)
    }

    /// Total number of values (running statistics included).
    public var count: Int { buffers.values.reduce(0) { $0 + $1.count } }

    /// Number of learnable values (running statistics excluded).
    public var learnableCount: Int {
        names.filter { !$0.hasSuffix(".running_mean") && !$0.hasSuffix(".running_var") }.reduce(0) { $0 + buffers[$1]!.count }
    }

    /// Random initial weights, seeded: convolutions He-normal (fan out, as torchvision's ResNets),
    /// dense layers uniform in ±1/sqrt(fan in) (PyTorch's default), biases 0, batch norm identity.
    public func initialize(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        for name in names {
            let buffer = buffers[name]!
            let values = buffer.values
            if name.hasSuffix(".weight") && buffer.shape.count == 4 {
                let fanOut = buffer.shape[0] * buffer.shape[2] * buffer.shape[3]
                let std = (2.0 / Double(fanOut)).squareRoot()
                for i in 0..<values.count { values[i] = Float(generator.nextGaussian() * std) }
            } else if name.hasSuffix(".weight") && buffer.shape.count == 2 {
                let bound = 1 / Double(buffer.shape[1]).squareRoot()
                for i in 0..<values.count { values[i] = Float((generator.nextUnitDouble() * 2 - 1) * bound) }
            } else if name.hasSuffix(".gamma") || name.hasSuffix(".running_var") {
                for i in 0..<values.count { values[i] = 1 }
            } else {
                for i in 0..<values.count { values[i] = 0 }
            }
        }
    }

    /// A deep copy.
    public func copy() -> Parameters {
        let result = Parameters()
        for name in names {
            let b = buffers[name]!
            let c = FloatBuffer(shape: b.shape)
            c.pointer.update(from: b.pointer, count: b.count)
            result.add(name, c)
        }
        return result
    }

    /// Copies every value from `other`, which must have the same names and shapes.
    public func assign(from other: Parameters) {
        for name in names {
            let mine = buffers[name]!, theirs = other.buffers[name]!
            precondition(mine.shape == theirs.shape, "parameter '\(name)' shapes differ: \(mine.shape) vs \(theirs.shape)")
            mine.pointer.update(from: theirs.pointer, count: mine.count)
        }
    }
}
