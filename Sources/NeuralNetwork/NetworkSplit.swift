extension Network {
    /// Index of the layer after which the network can be cut so that the last `convolutions`
    /// convolutions (and everything after them) lie in the second part: the cut sits before the
    /// first of them, moved back until no connection crosses it (a residual connection would).
    public func splitIndex(trainingLastConvolutions convolutions: Int) throws(NetworkError) -> Int {
        let convolutionIndices = layers.indices.filter { if case .conv2d = layers[$0].operation { return true } else { return false } }
        guard convolutions > 0, convolutions <= convolutionIndices.count else {
            throw .invalidNetwork("cannot fine-tune \(convolutions) convolutions: the network has \(convolutionIndices.count)")
        }
        let index = Dictionary(uniqueKeysWithValues: layers.enumerated().map { ($1.name, $0) })
        var candidate = convolutionIndices[convolutionIndices.count - convolutions] - 1
        while candidate > 0 {
            // a valid cut: every later layer reads only the cut layer or layers after it
            let crossing = layers[(candidate + 1)...].contains { layer in layer.inputs.contains { index[$0]! < candidate } }
            if !crossing { return candidate }
            candidate -= 1
        }
        throw .invalidNetwork("no point before the last \(convolutions) convolutions cuts the network in two")
    }

    /// The layers up to and including `index`, and the rest as a network reading a new input named
    /// `inputName` that carries the first part's output.
    public func split(after index: Int, inputName: String) throws(NetworkError) -> (prefix: Network, suffix: Network) {
        precondition(index >= 0 && index < layers.count - 1, "split index \(index) out of range for \(layers.count) layers")
        let shapes = try self.shapes()
        let cut = layers[index].name
        let shape = shapes[cut]!
        let input = shape.count == 3
            ? Layer(inputName, .input(channels: shape[0], height: shape[1], width: shape[2]), inputs: [])
            : Layer(inputName, .features(count: shape[0]), inputs: [])
        let rest = layers[(index + 1)...].map { layer -> Layer in
            var l = layer
            l.inputs = l.inputs.map { $0 == cut ? inputName : $0 }
            return l
        }
        return (Network(layers: Array(layers[...index])), Network(layers: [input] + rest))
    }
}
