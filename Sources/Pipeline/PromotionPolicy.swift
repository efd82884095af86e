import Foundation

/// The promotion policy: a candidate becomes champion automatically when there is no champion, or
/// when its validation accuracy is at least the champion's minus `margin`, both measured on the
/// candidate's validation set (the champion was evaluated on it when the candidate was trained: a
/// model retrained on drifted data is compared with the champion on that drifted data, not with the
/// champion's score on its own, easier data); otherwise it waits for `dropline models promote`.
///
/// A pure function of three values, decided here and nowhere else: the index only records the
/// decision (`Pipelines.applyPolicy`).
public struct PromotionPolicy: Sendable, Equatable {
    public var margin: Double = 0.01
    /// Whether training applies the policy itself. The watch daemon turns this off and leaves
    /// promotion to the rules' `promote` action.
    public var automatic = true
    public init() {}

    /// The model being considered.
    public struct Candidate: Sendable, Equatable {
        public var version: Int
        /// Its accuracy on its own validation set.
        public var accuracy: Double
        /// The stage whose validation set that is.
        public var stage: String
        public init(version: Int, accuracy: Double, stage: String) {
            self.version = version
            self.accuracy = accuracy
            self.stage = stage
        }
    }

    /// A model version and an accuracy: the champion with its own validation accuracy, or the
    /// baseline, the champion evaluated on the candidate's validation set when the candidate was trained.
    public struct Score: Sendable, Equatable {
        public var version: Int
        public var accuracy: Double
        public init(version: Int, accuracy: Double) {
            self.version = version
            self.accuracy = accuracy
        }
    }

    public typealias Champion = Score
    public typealias Baseline = Score

    public enum Decision: Sendable, Equatable {
        case promote(reason: String)
        case keep(reason: String)

        public var promotes: Bool { if case .promote = self { true } else { false } }
        public var reason: String {
            switch self {
            case .promote(let reason), .keep(let reason): reason
            }
        }
    }

    /// Promote or keep, with the reason that goes into the audit history. The baseline counts only
    /// when it is the current champion's (a champion promoted since was never measured there).
    public func decide(candidate: Candidate, champion: Champion?, baseline: Baseline?) -> Decision {
        guard let champion else { return .promote(reason: "first model: no champion") }
        let comparison: String, championAccuracy: Double
        if let baseline, baseline.version == champion.version {
            championAccuracy = baseline.accuracy
            comparison = "on stage \(candidate.stage)'s validation set"
        } else {
            championAccuracy = champion.accuracy
            comparison = "each on its own validation set"
        }
        let margin = String(format: "%.2f", self.margin)
        if candidate.accuracy >= championAccuracy - self.margin {
            return .promote(reason: String(format: "accuracy %.4f >= champion v%d's %.4f - margin %@, %@",
                                           candidate.accuracy, champion.version, championAccuracy, margin, comparison))
        }
        return .keep(reason: String(format: "accuracy %.4f < champion v%d's %.4f - margin %@, %@",
                                    candidate.accuracy, champion.version, championAccuracy, margin, comparison))
    }
}
