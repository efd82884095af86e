import DriftStatistics
import DroplineSupport
import Explainability
import Foundation
import Imaging
import Modeling
import Monitoring
import Rules
import Store

/// Promotion through the registry: the policy's answer, and the rules' `promote` action.
extension Pipelines {
    /// The promotion policy's answer for the registry (`PromotionPolicy.decide` on the index's values).
    func answer(_ question: PromotionQuestion) -> PromotionAnswer {
        let c = question.candidate
        let baseline = c.baselineVersion.flatMap { v in c.baselineAccuracy.map { PromotionPolicy.Baseline(version: v, accuracy: $0) } }
        var policy = self.policy
        if let margin = configuration.thresholds.promotionMargin { policy.margin = margin }
        let decision = policy.decide(candidate: PromotionPolicy.Candidate(version: c.version, accuracy: c.validationAccuracy, stage: c.stage),
                                     champion: question.champion.map { PromotionPolicy.Champion(version: $0.version, accuracy: $0.validationAccuracy) },
                                     baseline: baseline)
        return PromotionAnswer(promote: decision.promotes, reason: decision.reason)
    }

    /// The `promote` action of the rules: `default` applies the promotion policy to `version`,
    /// `always` promotes it, `never` leaves it a candidate. Returns what was decided.
    public func promote(version: Int, policy name: String, actor: String) throws -> String {
        let answer = try index.promote(version: version, actor: actor) { question in
            switch name {
            case "always": PromotionAnswer(promote: true, reason: "rules: policy always")
            case "never": PromotionAnswer(promote: false, reason: "policy never")
            default: self.answer(question)
            }
        }
        guard let answer else { return "version \(version) is already the champion" }
        switch name {
        case "always": return "promoted version \(version) (policy always)"
        case "never": return "kept version \(version) as candidate (policy never)"
        default: return answer.promote ? "promoted version \(version): \(answer.reason)" : "kept version \(version) as candidate: \(answer.reason)"
        }
    }
}
