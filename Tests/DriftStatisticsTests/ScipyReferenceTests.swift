import DriftStatistics
import Foundation
import Testing

/// Agreement with scipy 1.17 (fixtures from scripts/make_ks_fixtures.py) within 1e-9 absolute.
@Suite("scipy reference")
struct ScipyReferenceTests {
    struct Fixture: Decodable {
        struct Sample: Decodable { var a: [String]; var b: [String] }
        struct Case: Decodable {
            var sample: Int
            var alternative: String
            var method: String
            var statistic: String
            var pvalue: String
            var sign: Int
            var location: String
        }
        struct Point: Decodable { var n: Int; var x: String; var sf: String; var cdf: String? }
        struct Adjusted: Decodable { var p: [String]; var adjusted: [String] }
        var samples: [Sample]
        var ks_2samp: [Case]
        var kstwo: [Point]
        var smirnov: [Point]
        var bh: [Adjusted]
    }

    static let fixture: Fixture = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/scipy.json")
        return try! JSONDecoder().decode(Fixture.self, from: Data(contentsOf: path))
    }()

    static func d(_ s: String) -> Double { Double(s)! }

    @Test("ks_2samp: statistic, p-value, location and sign for every alternative and method")
    func ks2samp() {
        var worst = 0.0
        var failures = 0
        for c in Self.fixture.ks_2samp {
            let sample = Self.fixture.samples[c.sample]
            let r = KolmogorovSmirnov.test(sample.a.map(Self.d), sample.b.map(Self.d),
                                           alternative: .init(rawValue: c.alternative)!, method: .init(rawValue: c.method)!)
            let error = abs(r.pValue - Self.d(c.pvalue))
            worst = max(worst, error)
            if error > 1e-9 || r.statistic != Self.d(c.statistic) || r.sign != c.sign || r.location != Self.d(c.location) {
                failures += 1
                if failures <= 5 {
                    Issue.record("n=\(sample.a.count),\(sample.b.count) \(c.alternative) \(c.method): p \(r.pValue) vs \(c.pvalue) (\(r.method)), D \(r.statistic) vs \(c.statistic), sign \(r.sign) vs \(c.sign), at \(r.location) vs \(c.location)")
                }
            }
        }
        #expect(failures == 0, "\(failures) of \(Self.fixture.ks_2samp.count) cases differ; worst p-value difference \(worst)")
        #expect(Self.fixture.ks_2samp.count >= 700)
    }

    @Test("the Kolmogorov distribution (kstwo) on every branch")
    func kolmogorov() {
        for point in Self.fixture.kstwo {
            let x = Self.d(point.x)
            let sf = KolmogorovDistribution.survival(n: point.n, x: x)
            let cdf = KolmogorovDistribution.cdf(n: point.n, x: x)
            #expect(abs(sf - Self.d(point.sf)) <= 1e-9, "sf n=\(point.n) x=\(x): \(sf) vs \(point.sf)")
            #expect(abs(cdf - Self.d(point.cdf!)) <= 1e-9, "cdf n=\(point.n) x=\(x): \(cdf) vs \(point.cdf!)")
        }
    }

    @Test("the one-sided Smirnov distribution")
    func smirnov() {
        for point in Self.fixture.smirnov {
            let x = Self.d(point.x)
            let sf = SmirnovDistribution.survival(n: point.n, x: x)
            #expect(abs(sf - Self.d(point.sf)) <= 1e-9, "n=\(point.n) x=\(x): \(sf) vs \(point.sf)")
        }
    }

    @Test("Benjamini-Hochberg adjusted p-values match scipy.stats.false_discovery_control")
    func benjaminiHochberg() {
        for set in Self.fixture.bh {
            let adjusted = MultipleTesting.adjust(set.p.map(Self.d), .benjaminiHochberg)
            for (a, b) in zip(adjusted, set.adjusted.map(Self.d)) { #expect(abs(a - b) <= 1e-12) }
        }
    }
}

@Suite("Corrections and PSI")
struct CorrectionTests {
    @Test("Bonferroni multiplies by the number of tests, capped at 1")
    func bonferroni() {
        #expect(MultipleTesting.adjust([0.01, 0.2, 0.5], .bonferroni) == [0.03, 0.6000000000000001, 1])
    }

    @Test("PSI is 0 for identical distributions, grows with shift, and tiers at 0.1 and 0.25")
    func psi() {
        let reference = (0..<1000).map { Double($0) / 1000 }
        let edges = PopulationStability.edges(reference: reference, bins: 10)
        #expect(edges.count == 9)
        let shares = PopulationStability.shares(reference, edges: edges)
        #expect(shares.allSatisfy { abs($0 - 0.1) < 0.002 })
        #expect(PopulationStability.index(batch: reference, referenceShares: shares, edges: edges) < 1e-3)
        let small = PopulationStability.index(batch: reference.map { $0 + 0.05 }, referenceShares: shares, edges: edges)
        let large = PopulationStability.index(batch: reference.map { $0 + 0.4 }, referenceShares: shares, edges: edges)
        #expect(small > 0 && large > small)
        #expect(PopulationStability.Tier(psi: 0.05) == .stable && PopulationStability.Tier(psi: 0.1) == .moderate && PopulationStability.Tier(psi: 0.3) == .major)
    }
}

@Suite("Many features")
struct FeatureTestsTests {
    @Test("the cached multi-feature test equals the test run feature by feature", arguments: [KolmogorovSmirnov.Alternative.twoSided, .less, .greater])
    func equivalence(alternative: KolmogorovSmirnov.Alternative) {
        var state: UInt64 = 99
        func uniform() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) * 0x1p-53
        }
        let features = 64
        let reference = (0..<features).map { _ in (0..<400).map { _ in uniform() } }
        let batch = (0..<features).map { f in (0..<40).map { _ in uniform() + (f % 3 == 0 ? 0.15 : 0) } }
        let tests = FeatureKSTests(reference: reference, alternative: alternative)
        let fast = tests.test(batch: batch)
        for f in 0..<features {
            let slow = KolmogorovSmirnov.test(reference[f], batch[f], alternative: alternative)
            #expect(fast[f] == slow, "feature \(f)")
        }
        #expect(tests.test(batch: batch) == fast, "a second call, fully cached, gives the same results")
    }
}

@Suite("Stored p-value tables")
struct StoredTableTests {
    @Test("a precomputed table gives the same results as computing on demand, and unexpected sizes still work")
    func table() {
        var state: UInt64 = 5
        func uniform() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) * 0x1p-53
        }
        let reference = (0..<16).map { _ in (0..<300).map { _ in uniform() } }
        let batch = (0..<16).map { f in (0..<40).map { _ in uniform() + (f % 4 == 0 ? 0.2 : 0) } }
        let onDemand = FeatureKSTests(reference: reference).test(batch: batch)
        let prepared = FeatureKSTests(reference: reference)
        let table = prepared.pValueTable(batchSize: 40)!
        #expect(table.count == (300 / 20) * 40 + 1 && table[0] == 1)
        let fresh = FeatureKSTests(reference: reference)
        fresh.install(table: table, batchSize: 40)
        #expect(fresh.test(batch: batch) == onDemand)
        let other = (0..<16).map { _ in (0..<25).map { _ in uniform() } }
        #expect(fresh.test(batch: other) == FeatureKSTests(reference: reference).test(batch: other))
    }
}
