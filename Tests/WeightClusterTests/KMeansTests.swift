import Clustering
import Testing

@Suite struct KMeansTests {
    /// Gaussian-ish blobs, deterministic.
    static func data(rows n: Int, dimension d: Int, seed: UInt64) -> [Float] {
        var g = SeededGenerator(seed: seed)
        return (0..<(n * d)).map { i in Float((i / d) % 7) + Float(g.unit() - 0.5) }
    }

    @Test(arguments: [KMeansConfiguration.Initialization.randomSample, .kMeansPlusPlus, .spreadSample])
    func kEqualsNReproducesEveryRow(_ initialization: KMeansConfiguration.Initialization) throws {
        let x = Self.data(rows: 300, dimension: 9, seed: 1)
        let r = try KMeans.fit(x, rows: 300, dimension: 9, configuration: .init(clusters: 300, initialization: initialization))
        for i in 0..<300 {
            let c = Int(r.assignments[i])
            #expect(Array(r.centroids[c * 9..<(c + 1) * 9]) == Array(x[i * 9..<(i + 1) * 9]))
        }
        #expect(r.inertia == 0)
    }

    @Test(arguments: [KMeansConfiguration.Initialization.randomSample, .spreadSample])
    func kEqualsNIsExactOnTheApproximatePathToo(_ initialization: KMeansConfiguration.Initialization) throws {
        let x = Self.data(rows: 300, dimension: 9, seed: 2)
        var config = KMeansConfiguration(clusters: 300, initialization: initialization)
        config.exactSearchBudget = 0
        let r = try KMeans.fit(x, rows: 300, dimension: 9, configuration: config)
        #expect(r.inertia == 0)
    }

    @Test func oneClusterIsTheWeightedMean() throws {
        let x: [Float] = [0, 0, 2, 2, 4, 10]
        let r = try KMeans.fit(x, rows: 3, dimension: 2, weights: [1, 1, 2], configuration: .init(clusters: 1))
        #expect(abs(r.centroids[0] - 2.5) < 1e-6 && abs(r.centroids[1] - 5.5) < 1e-6)
    }

    @Test(arguments: [(9, 2000, 64), (9, 3000, 500), (40, 500, 20)])
    func inertiaNeverIncreases(_ shape: (Int, Int, Int)) throws {
        let (d, n, k) = shape
        let x = Self.data(rows: n, dimension: d, seed: 7)
        for metric in KMeansConfiguration.Metric.allCases {
            var config = KMeansConfiguration(clusters: k, metric: metric, initialization: .randomSample, maxIterations: 40, tolerance: 0)
            config.exactSearchBudget = 0  // the approximate (tree seed + neighbour graph) path
            let r = try KMeans.fit(x, rows: n, dimension: d, configuration: config)
            for (a, b) in zip(r.inertiaHistory, r.inertiaHistory.dropFirst()) {
                #expect(b <= a * (1 + 1e-9), "\(metric) d=\(d): \(a) -> \(b)")
            }
        }
    }

    @Test func sameSeedSameResult() throws {
        let x = Self.data(rows: 2000, dimension: 9, seed: 3)
        var config = KMeansConfiguration(clusters: 50, seed: 42)
        config.exactSearchBudget = 0
        let a = try KMeans.fit(x, rows: 2000, dimension: 9, configuration: config)
        let b = try KMeans.fit(x, rows: 2000, dimension: 9, configuration: config)
        #expect(a.centroids == b.centroids && a.assignments == b.assignments)
    }

    @Test func exactSearchMatchesBruteForce() throws {
        let x = Self.data(rows: 1500, dimension: 9, seed: 5)
        var config = KMeansConfiguration(clusters: 40, initialization: .randomSample, maxIterations: 5, tolerance: 0)
        config.leafBudget = .max
        let r = try KMeans.fit(x, rows: 1500, dimension: 9, configuration: config)
        // Every row is at its nearest centroid.
        for i in 0..<1500 {
            func dist(_ c: Int) -> Float { (0..<9).reduce(0) { $0 + (x[i * 9 + $1] - r.centroids[c * 9 + $1]) * (x[i * 9 + $1] - r.centroids[c * 9 + $1]) } }
            let best = (0..<40).min { dist($0) < dist($1) }!
            #expect(dist(Int(r.assignments[i])) <= dist(best) * (1 + 1e-5))
        }
    }

    @Test func sphericalCentroidsHaveUnitNorm() throws {
        let x = Self.data(rows: 800, dimension: 16, seed: 9)
        let r = try KMeans.fit(x, rows: 800, dimension: 16, configuration: .init(clusters: 12, metric: .spherical))
        for c in 0..<12 {
            let norm = (0..<16).reduce(Float(0)) { $0 + r.centroids[c * 16 + $1] * r.centroids[c * 16 + $1] }.squareRoot()
            #expect(abs(norm - 1) < 1e-5)
        }
    }

    @Test func badInput() {
        #expect(throws: KMeansError.invalidClusterCount(k: 0, rows: 2)) { try KMeans.fit([1, 2], rows: 2, dimension: 1, configuration: .init(clusters: 0)) }
        #expect(throws: KMeansError.invalidClusterCount(k: 3, rows: 2)) { try KMeans.fit([1, 2], rows: 2, dimension: 1, configuration: .init(clusters: 3)) }
        #expect(throws: KMeansError.nonFinite(row: 1)) { try KMeans.fit([1, .nan], rows: 2, dimension: 1, configuration: .init(clusters: 1)) }
    }
}
