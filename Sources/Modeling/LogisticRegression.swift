import Foundation
import NeuralNetwork

/// Multinomial logistic regression with an L2 penalty on the weights (not the intercepts), fitted to
/// convergence by L-BFGS: the linear probe on frozen backbone features, and the backbone's default
/// head. It minimises scikit-learn's objective, C times the summed cross-entropy plus half the squared
/// weights, divided by C n (the same minimiser): the mean cross-entropy plus ||W||^2 / (2 C n).
/// Checked against scikit-learn's `LogisticRegression(solver="lbfgs")` on fixtures
/// (scripts/make_logistic_fixtures.py). Written here because no maintained Swift package for Linux
/// offers L-BFGS; the matrix products go through oneDNN's sgemm (`MatrixMultiply`).
public struct LogisticRegression: Sendable, Equatable {
    public let featureCount: Int
    public let classes: Int
    /// [classes x features], row-major.
    public var weights: [Float]
    public var intercepts: [Float]
    /// L-BFGS iterations taken, and whether the gradient reached the tolerance.
    public var iterations = 0
    public var converged = false

    public init(featureCount: Int, classes: Int, weights: [Float], intercepts: [Float]) {
        precondition(weights.count == featureCount * classes && intercepts.count == classes, "weights \(weights.count), intercepts \(intercepts.count)")
        self.featureCount = featureCount
        self.classes = classes
        self.weights = weights
        self.intercepts = intercepts
    }

    /// Fits `x` ([n x d], row-major) to `labels` in 0..<classes with inverse penalty `c`, starting
    /// from `start` (a warm start: the previous value of C on a grid) or zero. Stops when the
    /// largest gradient component is below `tolerance`, or after `maximumIterations`.
    public static func fit(x: [Float], labels: [Int], featureCount d: Int, classes k: Int, c: Double, start: LogisticRegression? = nil,
                           tolerance: Double = 1e-4, maximumIterations: Int = 2000) -> LogisticRegression {
        let n = labels.count
        precondition(n > 0 && x.count == n * d && labels.allSatisfy { (0..<k).contains($0) }, "\(x.count) values for \(n) x \(d)")
        let lambda = 1 / (c * Double(n))
        let objective = Objective(x: x, labels: labels, n: n, d: d, k: k, lambda: lambda)
        var theta = [Double](repeating: 0, count: k * d + k)
        if let start, start.featureCount == d, start.classes == k {
            for i in 0..<(k * d) { theta[i] = Double(start.weights[i]) }
            for j in 0..<k { theta[k * d + j] = Double(start.intercepts[j]) }
        }
        let (solution, iterations, converged) = LBFGS.minimise(theta, tolerance: tolerance, maximumIterations: maximumIterations, objective.evaluate)
        var model = LogisticRegression(featureCount: d, classes: k, weights: solution[0..<(k * d)].map(Float.init), intercepts: solution[(k * d)...].map(Float.init))
        model.iterations = iterations
        model.converged = converged
        return model
    }

    /// The objective at this model on `x`, `labels` and `c`, with its gradient over the weights
    /// (row-major) and then the intercepts: what L-BFGS minimises (for gradient checks).
    public func objective(x: [Float], labels: [Int], c: Double) -> (value: Double, gradient: [Double]) {
        let theta = weights.map(Double.init) + intercepts.map(Double.init)
        return Objective(x: x, labels: labels, n: labels.count, d: featureCount, k: classes, lambda: 1 / (c * Double(labels.count))).evaluate(theta)
    }

    /// Logits [n x classes] of `x` ([n x features]).
    public func logits(_ x: [Float], count n: Int) -> [Float] {
        var z = [Float](repeating: 0, count: n * classes)
        guard n > 0 else { return z }
        for i in 0..<n { for j in 0..<classes { z[i * classes + j] = intercepts[j] } }
        x.withUnsafeBufferPointer { a in
            weights.withUnsafeBufferPointer { w in
                z.withUnsafeMutableBufferPointer { out in
                    MatrixMultiply.gemm(a.baseAddress!, w.baseAddress!, transposeB: true, into: out.baseAddress!, m: n, n: classes, k: featureCount, beta: 1)
                }
            }
        }
        return z
    }

    /// The same model on unstandardised features: `standardization` folded into the weights and intercepts.
    public func unstandardized(_ standardization: Standardization) -> LogisticRegression {
        var w = weights, b = intercepts
        for j in 0..<classes {
            var shift = 0.0
            for f in 0..<featureCount {
                let scaled = weights[j * featureCount + f] / standardization.scale[f]
                w[j * featureCount + f] = scaled
                shift += Double(scaled) * Double(standardization.mean[f])
            }
            b[j] = Float(Double(intercepts[j]) - shift)
        }
        var model = LogisticRegression(featureCount: featureCount, classes: classes, weights: w, intercepts: b)
        model.iterations = iterations
        model.converged = converged
        return model
    }

    /// The objective and its gradient over [W, b].
    struct Objective {
        let x: [Float], labels: [Int], n: Int, d: Int, k: Int, lambda: Double

        func evaluate(_ theta: [Double]) -> (Double, [Double]) {
            // The weights as a single-precision pair (high part and remainder), so that the steps of
            // the last iterations, below a float's resolution of a weight, still move the logits:
            // two float products, summed with the intercepts in double precision.
            let high = theta[0..<(k * d)].map(Float.init)
            let low = (0..<(k * d)).map { Float(theta[$0] - Double(high[$0])) }
            let zero = [Float](repeating: 0, count: k)
            let a = LogisticRegression(featureCount: d, classes: k, weights: high, intercepts: zero).logits(x, count: n)
            let b = LogisticRegression(featureCount: d, classes: k, weights: low, intercepts: zero).logits(x, count: n)
            var z = [Float](repeating: 0, count: n * k)
            var loss = 0.0
            var row = [Double](repeating: 0, count: k)
            // z becomes (softmax - onehot) / n, the gradient of the mean loss with respect to the logits
            for i in 0..<n {
                var top = -Double.infinity
                for j in 0..<k {
                    row[j] = Double(a[i * k + j]) + Double(b[i * k + j]) + theta[k * d + j]
                    top = max(top, row[j])
                }
                var sum = 0.0
                for j in 0..<k { sum += Foundation.exp(row[j] - top) }
                let logSum = top + Foundation.log(sum)
                loss += logSum - row[labels[i]]
                for j in 0..<k {
                    let p = Foundation.exp(row[j] - logSum)
                    z[i * k + j] = Float((p - (j == labels[i] ? 1 : 0)) / Double(n))
                }
            }
            var gradientW = [Float](repeating: 0, count: k * d)
            z.withUnsafeBufferPointer { r in
                x.withUnsafeBufferPointer { a in
                    gradientW.withUnsafeMutableBufferPointer { g in
                        MatrixMultiply.gemm(r.baseAddress!, transposeA: true, a.baseAddress!, into: g.baseAddress!, m: k, n: d, k: n)
                    }
                }
            }
            var gradient = [Double](repeating: 0, count: k * d + k)
            var penalty = 0.0
            for i in 0..<(k * d) {
                penalty += theta[i] * theta[i]
                gradient[i] = Double(gradientW[i]) + lambda * theta[i]
            }
            for i in 0..<n { for j in 0..<k { gradient[k * d + j] += Double(z[i * k + j]) } }
            return (loss / Double(n) + lambda / 2 * penalty, gradient)
        }
    }
}

/// Per-feature standardisation (scikit-learn's StandardScaler: the mean and the population standard
/// deviation; a constant feature keeps scale 1).
public struct Standardization: Sendable, Equatable {
    public var mean: [Float]
    public var scale: [Float]

    public init(_ x: [Float], count n: Int, featureCount d: Int) {
        var mean = [Double](repeating: 0, count: d), squares = [Double](repeating: 0, count: d)
        for i in 0..<n { for f in 0..<d { mean[f] += Double(x[i * d + f]) } }
        for f in 0..<d { mean[f] /= Double(n) }
        for i in 0..<n { for f in 0..<d { let v = Double(x[i * d + f]) - mean[f]; squares[f] += v * v } }
        self.mean = mean.map(Float.init)
        scale = squares.map { s in let sd = (s / Double(n)).squareRoot(); return sd > 1e-12 ? Float(sd) : 1 }
    }

    public func apply(_ x: [Float], count n: Int) -> [Float] {
        let d = mean.count
        var out = x
        for i in 0..<n { for f in 0..<d { out[i * d + f] = (x[i * d + f] - mean[f]) / scale[f] } }
        return out
    }
}

/// Limited-memory BFGS (Nocedal and Wright, algorithm 7.4, ten pairs) with a backtracking line
/// search on the Armijo condition, for smooth convex objectives.
enum LBFGS {
    /// When the objective stops decreasing (its products are single precision), the gradient is as
    /// small as it will get: below this, the fit counts as converged (scikit-learn's default tolerance).
    static let floor = 1e-4

    static func minimise(_ start: [Double], tolerance: Double, maximumIterations: Int, memory: Int = 10,
                         _ f: ([Double]) -> (Double, [Double])) -> (solution: [Double], iterations: Int, converged: Bool) {
        func dot(_ a: [Double], _ b: [Double]) -> Double { var s = 0.0; for i in a.indices { s += a[i] * b[i] }; return s }
        var x = start
        var (value, gradient) = f(x)
        var pairs: [(s: [Double], y: [Double], rho: Double)] = []
        for iteration in 0..<maximumIterations {
            if gradient.map(abs).max() ?? 0 < tolerance { return (x, iteration, true) }
            // two-loop recursion: direction = -H gradient
            var q = gradient
            var alphas: [Double] = []
            for pair in pairs.reversed() {
                let a = pair.rho * dot(pair.s, q)
                alphas.append(a)
                for i in q.indices { q[i] -= a * pair.y[i] }
            }
            if let last = pairs.last {
                let gamma = dot(last.s, last.y) / dot(last.y, last.y)
                for i in q.indices { q[i] *= gamma }
            } else {
                let norm = dot(gradient, gradient).squareRoot()
                for i in q.indices { q[i] /= max(1, norm) }
            }
            for (pair, a) in zip(pairs, alphas.reversed()) {
                let b = pair.rho * dot(pair.y, q)
                for i in q.indices { q[i] += pair.s[i] * (a - b) }
            }
            let direction = q.map { -$0 }
            let slope = dot(gradient, direction)
            guard slope < 0 else { pairs.removeAll(); continue }  // not a descent direction: restart from the gradient
            var step = 1.0, accepted = false
            var next = x, nextValue = value, nextGradient = gradient
            for _ in 0..<40 {
                for i in x.indices { next[i] = x[i] + step * direction[i] }
                (nextValue, nextGradient) = f(next)
                if nextValue <= value + 1e-4 * step * slope { accepted = true; break }
                step /= 2
            }
            guard accepted else {
                return (x, iteration, gradient.map(abs).max() ?? 0 < max(tolerance, floor))
            }
            let s = zip(next, x).map { $0 - $1 }, y = zip(nextGradient, gradient).map { $0 - $1 }
            let sy = dot(s, y)
            if sy > 1e-12 {
                pairs.append((s, y, 1 / sy))
                if pairs.count > memory { pairs.removeFirst() }
            }
            let decrease = value - nextValue
            x = next
            value = nextValue
            gradient = nextGradient
            if decrease <= 1e-15 * max(1, abs(value)) {
                return (x, iteration + 1, gradient.map(abs).max() ?? 0 < max(tolerance, floor))
            }
        }
        return (x, maximumIterations, gradient.map(abs).max() ?? 0 < tolerance)
    }
}

/// The linear probe: logistic regression on standardised features, its C chosen on the validation
/// split (highest accuracy, then lowest log-loss), over a grid from 1e-4 to 100 in half decades, each
/// fit warm-started from the previous. With `augmented` (the flipped copies' features), each C is also
/// tried on the training features with them, and the validation split chooses that too.
public enum LinearProbe {
    public static let grid: [Double] = stride(from: -4.0, through: 2.0, by: 0.5).map { Foundation.pow(10, $0) }

    public struct Candidate: Codable, Sendable, Equatable {
        public var c: Double
        /// Trained with the flipped copies' features too.
        public var augmented: Bool
        public var validationAccuracy: Double
        public var validationLoss: Double
        public var iterations: Int
        public var converged: Bool
    }

    /// Chooses and fits the probe; the model works on unstandardised features.
    public static func select(train: [Float], labels: [Int], augmented: (x: [Float], labels: [Int])?, validation: [Float], validationLabels: [Int],
                              featureCount d: Int, classes k: Int, grid: [Double] = grid,
                              progress: ((Int, Int) -> Void)? = nil) -> (model: LogisticRegression, chosen: Candidate, candidates: [Candidate]) {
        var variants: [(x: [Float], labels: [Int], augmented: Bool)] = [(train, labels, false)]
        if let augmented { variants.append((train + augmented.x, labels + augmented.labels, true)) }
        var best: (model: LogisticRegression, candidate: Candidate)?
        var candidates: [Candidate] = []
        let total = variants.count * grid.count
        for variant in variants {
            let n = variant.labels.count
            let standardization = Standardization(variant.x, count: n, featureCount: d)
            let x = standardization.apply(variant.x, count: n)
            let v = standardization.apply(validation, count: validationLabels.count)
            var previous: LogisticRegression?
            for c in grid.sorted() {
                // converged tightly (to single precision's floor): a warm start from a stronger penalty
                // is already within scikit-learn's default tolerance of a weaker one's optimum
                let model = LogisticRegression.fit(x: x, labels: variant.labels, featureCount: d, classes: k, c: c, start: previous, tolerance: 1e-5,
                                                   maximumIterations: 500)
                previous = model
                let (accuracy, loss) = score(model.logits(v, count: validationLabels.count), validationLabels, classes: k)
                let candidate = Candidate(c: c, augmented: variant.augmented, validationAccuracy: accuracy, validationLoss: loss,
                                          iterations: model.iterations, converged: model.converged)
                candidates.append(candidate)
                progress?(candidates.count, total)
                if best == nil || accuracy > best!.candidate.validationAccuracy
                    || (accuracy == best!.candidate.validationAccuracy && loss < best!.candidate.validationLoss) {
                    best = (model.unstandardized(standardization), candidate)
                }
            }
        }
        return (best!.model, best!.candidate, candidates)
    }

    /// Accuracy and mean cross-entropy of logits [n x k] against labels (the trainer's own loss and arg max).
    public static func score(_ logits: [Float], _ labels: [Int], classes k: Int) -> (accuracy: Double, loss: Double) {
        guard !labels.isEmpty else { return (0, 0) }
        return logits.withUnsafeBufferPointer { z in
            let correct = labels.indices.filter { argmax(z, row: $0, classes: k) == labels[$0] }.count
            return (Double(correct) / Double(labels.count), Double(SoftmaxCrossEntropy.loss(logits: z, labels: labels, classes: k)))
        }
    }
}
