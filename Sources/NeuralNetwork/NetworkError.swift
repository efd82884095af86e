/// Why a network could not be built, loaded or run: a message that names the layer or file and what
/// to do about it.
public enum NetworkError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The network description is inconsistent (unknown input, shape mismatch, unsupported setting).
    case invalidNetwork(String)
    /// The compute backend refused a configuration.
    case backend(String)
    /// A model file is missing, malformed or does not match its description.
    case invalidModel(String)
    /// Training or evaluation data is unusable.
    case invalidData(String)

    public var description: String {
        switch self {
        case .invalidNetwork(let m): "invalid network: \(m)"
        case .backend(let m): m
        case .invalidModel(let m): "invalid model: \(m)"
        case .invalidData(let m): "invalid data: \(m)"
        }
    }
}
