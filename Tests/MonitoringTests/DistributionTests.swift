import DriftStatistics
import Monitoring
import Randomness
import Testing

@Suite("Distribution summaries for the reports")
struct DistributionTests {
    @Test("the marked gap is the KS statistic, at a value where the two ECDFs differ by exactly it; quantiles span each sample", arguments: [1 as UInt64, 2, 3])
    func summary(seed: UInt64) {
        var g = SeededGenerator(seed: seed)
        // ties included: rounded values, as the softmax detector's saturated probabilities have
        let batch = (0..<120).map { _ in (g.nextGaussian() * 4 + 1).rounded() / 4 }
        let reference = (0..<300).map { _ in (g.nextGaussian() * 4).rounded() / 4 }
        let s = FeatureDistribution.summarise(detector: "encoder", feature: 3, adjustedPValue: 0.01, batch: batch, reference: reference)
        let ks = KolmogorovSmirnov.test(batch, reference)
        #expect(abs(s.statistic - ks.statistic) < 1e-12, "\(s.statistic) against \(ks.statistic)")
        func ecdf(_ sample: [Double], _ x: Double) -> Double { Double(sample.filter { $0 <= x }.count) / Double(sample.count) }
        #expect(abs(ecdf(batch, s.at) - s.batchCdf) < 1e-12 && abs(ecdf(reference, s.at) - s.referenceCdf) < 1e-12)
        #expect(abs(abs(s.batchCdf - s.referenceCdf) - s.statistic) < 1e-12)
        #expect(s.batchQuantiles.count == 101 && s.batchQuantiles.first == batch.min() && s.batchQuantiles.last == batch.max())
        #expect(s.referenceQuantiles.first == reference.min() && s.referenceQuantiles.last == reference.max())
        #expect(zip(s.batchQuantiles, s.batchQuantiles.dropFirst()).allSatisfy { $0 <= $1 })
    }
}
