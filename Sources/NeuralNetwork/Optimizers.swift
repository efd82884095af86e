#if canImport(Glibc)
import Glibc
#endif

/// Updates parameters from gradients. Weight decay applies to convolution and dense weights only, not
/// to biases or batch-norm parameters (decaying those only fights the normalisation).
public protocol Optimizer: AnyObject {
    /// One update of every parameter that has a gradient, at learning rate `learningRate` (times the
    /// parameter's multiplier).
    func step(parameters: Parameters, gradients: Parameters, learningRate: Float)
    /// Per-parameter learning-rate multipliers (missing: 1), e.g. lower rates for pretrained layers.
    var learningRateMultipliers: [String: Float] { get set }
}

func decays(_ name: String) -> Bool { name.hasSuffix(".weight") }

/// Stochastic gradient descent with momentum and (coupled) weight decay, as PyTorch's `SGD`:
/// g = grad + wd * w; v = momentum * v + g; w -= lr * v (Nesterov: w -= lr * (g + momentum * v)).
public final class SGD: Optimizer {
    public let momentum: Float
    public let weightDecay: Float
    public let nesterov: Bool
    public var learningRateMultipliers: [String: Float] = [:]
    private var velocity: [String: [Float]] = [:]

    public init(momentum: Float = 0.9, weightDecay: Float = 5e-4, nesterov: Bool = false) {
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
    }

    public func step(parameters: Parameters, gradients: Parameters, learningRate: Float) {
        for name in gradients.names {
            guard let w = parameters.buffer(name)?.values, let g = gradients.buffer(name)?.values else { continue }
            let learningRate = learningRate * (learningRateMultipliers[name] ?? 1)
            let wd = decays(name) ? weightDecay : 0
            var v = velocity[name] ?? [Float](repeating: 0, count: w.count)
            let first = velocity[name] == nil
            for i in 0..<w.count {
                let gi = g[i] + wd * w[i]
                v[i] = first ? gi : momentum * v[i] + gi
                w[i] -= learningRate * (nesterov ? gi + momentum * v[i] : v[i])
            }
            velocity[name] = v
        }
    }
}

/// Adam with decoupled weight decay, as PyTorch's `AdamW`: w -= lr * wd * w, then the Adam step with
/// bias-corrected moments.
public final class AdamW: Optimizer {
    public let beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float
    public var learningRateMultipliers: [String: Float] = [:]
    private var m: [String: [Float]] = [:], v: [String: [Float]] = [:]
    private var t: [String: Int] = [:]

    public init(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0.01) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    public func step(parameters: Parameters, gradients: Parameters, learningRate: Float) {
        for name in gradients.names {
            guard let w = parameters.buffer(name)?.values, let g = gradients.buffer(name)?.values else { continue }
            let learningRate = learningRate * (learningRateMultipliers[name] ?? 1)
            var mi = m[name] ?? [Float](repeating: 0, count: w.count)
            var vi = v[name] ?? [Float](repeating: 0, count: w.count)
            let step = (t[name] ?? 0) + 1
            t[name] = step
            let c1 = 1 - powf(beta1, Float(step)), c2 = 1 - powf(beta2, Float(step))
            let decay = decays(name) ? 1 - learningRate * weightDecay : 1
            for i in 0..<w.count {
                w[i] *= decay
                mi[i] = beta1 * mi[i] + (1 - beta1) * g[i]
                vi[i] = beta2 * vi[i] + (1 - beta2) * g[i] * g[i]
                w[i] -= learningRate * (mi[i] / c1) / ((vi[i] / c2).squareRoot() + epsilon)
            }
            m[name] = mi
            v[name] = vi
        }
    }
}

/// Learning rate: linear warm-up from 0 over `warmupSteps`, then cosine decay to `minimum`.
public struct CosineSchedule: Sendable {
    public var base: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var minimum: Float

    public init(base: Float, warmupSteps: Int, totalSteps: Int, minimum: Float = 0) {
        precondition(totalSteps > 0 && warmupSteps >= 0, "schedule needs positive total steps, got \(totalSteps) and \(warmupSteps) warm-up")
        self.base = base
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.minimum = minimum
    }

    /// The rate for step `step` (0-based).
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return base * Float(step + 1) / Float(warmupSteps) }
        let span = max(totalSteps - warmupSteps, 1)
        let progress = min(Float(step - warmupSteps) / Float(span), 1)
        return minimum + (base - minimum) * 0.5 * (1 + cosf(Float.pi * progress))
    }
}
