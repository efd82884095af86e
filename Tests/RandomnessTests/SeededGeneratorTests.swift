import Randomness
import Testing

@Suite("Seeded generator")
struct SeededGeneratorTests {
    @Test("the same seed gives the same sequence; another seed another")
    func reproducible() {
        var a = SeededGenerator(seed: 42), b = SeededGenerator(seed: 42), c = SeededGenerator(seed: 43)
        let first = (0..<100).map { _ in a.next() }
        #expect(first == (0..<100).map { _ in b.next() })
        #expect(first != (0..<100).map { _ in c.next() })
    }

    @Test("unit floats lie in [0, 1) and cover it evenly")
    func unitFloats() {
        var g = SeededGenerator(seed: 7)
        var buckets = [Int](repeating: 0, count: 10)
        for _ in 0..<100_000 {
            let u = g.nextUnitDouble()
            #expect(u >= 0 && u < 1)
            buckets[Int(u * 10)] += 1
        }
        #expect(buckets.allSatisfy { abs($0 - 10_000) < 500 }, "buckets: \(buckets)")
    }

    @Test("gaussian samples have mean 0 and variance 1")
    func gaussian() {
        var g = SeededGenerator(seed: 1)
        let samples = (0..<200_000).map { _ in g.nextGaussian() }
        let mean = samples.reduce(0, +) / Double(samples.count)
        let variance = samples.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(samples.count)
        #expect(abs(mean) < 0.01)
        #expect(abs(variance - 1) < 0.01)
    }

    @Test("split streams are independent of each other and reproducible")
    func split() {
        var parent = SeededGenerator(seed: 9)
        var child1 = parent.split(), child2 = parent.split()
        #expect(child1.next() != child2.next())
        var again = SeededGenerator(seed: 9)
        var replay = again.split()
        var seed9 = SeededGenerator(seed: 9)
        var fresh = seed9.split()
        #expect(replay.next() == fresh.next())
    }
}
