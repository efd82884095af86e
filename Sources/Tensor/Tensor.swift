/// # Tensor
///
/// A shaped array of float32 values in row-major order, the currency between Dropline's modules:
/// images become tensors, networks consume and produce them, parameters are stored as them.
/// Pure value type; numeric misuse (mismatched shapes) is a precondition naming the shapes.
public struct Tensor: Equatable, Sendable, CustomStringConvertible {
    public private(set) var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "tensor shape must be non-negative, got \(shape)")
        precondition(data.count == shape.reduce(1, *), "tensor of shape \(shape) needs \(shape.reduce(1, *)) values, got \(data.count)")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }

    /// The same values with another shape of equal size.
    public func reshaped(_ newShape: [Int]) -> Tensor { Tensor(shape: newShape, data: data) }

    /// The flat index of a multi-dimensional index.
    public func offset(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index \(index) does not match shape \(shape)")
        var offset = 0
        for (i, n) in zip(index, shape) {
            precondition(i >= 0 && i < n, "index \(index) out of range for shape \(shape)")
            offset = offset * n + i
        }
        return offset
    }

    public subscript(_ index: Int...) -> Float {
        get { data[offset(index)] }
        set { data[offset(index)] = newValue }
    }

    /// Dimensions permuted: result dimension i is source dimension `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "permutation \(order) does not fit rank \(rank)")
        let newShape = order.map { shape[$0] }
        var strides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * shape[i + 1] }
        let permutedStrides = order.map { strides[$0] }
        var out = [Float](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: rank)
        for o in 0..<count {
            var source = 0
            for d in 0..<rank { source += index[d] * permutedStrides[d] }
            out[o] = data[source]
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < newShape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return Tensor(shape: newShape, data: out)
    }

    /// Largest absolute difference to another tensor of the same shape.
    public func maxAbsoluteDifference(_ other: Tensor) -> Float {
        precondition(shape == other.shape, "shape mismatch: \(shape) vs \(other.shape)")
        var m: Float = 0
        for i in 0..<count { m = max(m, abs(data[i] - other.data[i])) }
        return m
    }

    /// max |a - b| / max(max |b|, floor): the error relative to the reference's scale. The floor keeps
    /// a reference that should be zero (and is float noise) from inflating the ratio.
    public func relativeError(to reference: Tensor, floor: Float = 1e-12) -> Float {
        let scale = reference.data.reduce(Float(0)) { max($0, abs($1)) }
        return maxAbsoluteDifference(reference) / max(scale, floor)
    }

    public var description: String {
        let preview = data.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor\(shape)[\(preview)\(count > 8 ? ", ..." : "")]"
    }
}
