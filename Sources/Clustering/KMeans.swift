import Compute
import Foundation

/// Weighted k-means over the rows of an n×d matrix (Lloyd's iterations), Euclidean or spherical.
///
/// - Initialisation: k-means++ when n·K ≤ 2²⁸ and n·K·d ≤ 9·2²⁸ (its K sequential passes over the data are
///   memory-bound for long rows), else K distinct rows drawn with probability ∝ w‖x − μ‖²
///   (`spreadSample`, one D² round against the mean); uniform random rows (faiss's way) on request. All seeded.
/// - Assignment, d ≤ 32: a k-d tree over the centroids (rebuilt each iteration, box-distance pruning). Each row
///   starts from its current centroid and opens at most `leafBudget` leaves, so a row only ever moves to a
///   nearer centroid and the inertia never increases; `leafBudget = .max` makes the search exact.
///   d > 32: distances through BLAS, a block of rows against a block of centroids at a time (never n×K at once).
/// - Update: weighted means in Double, serial, so results do not depend on the thread count.
/// - Empty clusters move to the rows that are currently worst served.
/// Deterministic for a given seed.
public enum KMeans {
    public static func fit(_ data: [Float], rows n: Int, dimension d: Int, weights: [Float]? = nil,
                           configuration config: KMeansConfiguration) throws -> KMeansResult {
        let k = config.clusters
        guard d >= 1, data.count == n * d else { throw KMeansError.shape("data has \(data.count) values, expected \(n)×\(d)") }
        guard k >= 1 && k <= n else { throw KMeansError.invalidClusterCount(k: k, rows: n) }
        if let weights {
            guard weights.count == n else { throw KMeansError.shape("\(weights.count) weights for \(n) rows") }
            if let bad = weights.firstIndex(where: { !$0.isFinite || $0 < 0 }) {
                throw KMeansError.shape("weight \(bad) is negative or not finite")
            }
        }
        for i in 0..<n where !data[i * d..<(i + 1) * d].allSatisfy(\.isFinite) { throw KMeansError.nonFinite(row: i) }

        var x = data
        if config.metric == .spherical { normaliseRows(&x, rows: n, dimension: d) }
        let w = weights ?? [Float](repeating: 1, count: n)
        var generator = SeededGenerator(seed: config.seed)
        let method: KMeansConfiguration.Initialization = switch config.initialization {
        case .automatic: KMeansConfiguration.affordsKMeansPlusPlus(rows: n, clusters: k, dimension: d) ? .kMeansPlusPlus : .spreadSample
        case let other: other
        }
        var seededRows: [Int] = []
        var centroids = switch method {
        case .kMeansPlusPlus: kMeansPlusPlus(x, rows: n, dimension: d, weights: w, k: k, generator: &generator)
        case .spreadSample: spreadSample(x, rows: n, dimension: d, weights: w, k: k, generator: &generator, chosen: &seededRows)
        default: randomSample(x, rows: n, dimension: d, weights: w, k: k, generator: &generator, chosen: &seededRows)
        }
        if config.metric == .spherical { normaliseRows(&centroids, rows: k, dimension: d) }

        // Small problems search exactly: the neighbour graph pays off only when n·K is large.
        let exact = config.leafBudget == .max || n * k <= config.exactSearchBudget
        var state = Assignment(rows: n, dimension: d, useTree: d <= 32, leafBudget: exact ? .max : config.leafBudget,
                               neighbours: exact ? 0 : config.neighbours)
        // A row drawn as an initial centroid starts in its own cluster (so K = N reproduces every row exactly).
        for (slot, row) in seededRows.enumerated() { state.seed(row: row, cluster: slot) }
        var history: [Double] = []
        var inertia = state.assign(x, weights: w, centroids: centroids, clusters: k)
        history.append(inertia)
        var iterations = 0
        while iterations < config.maxIterations {
            iterations += 1
            update(&centroids, x, rows: n, dimension: d, weights: w, assignments: state.assignments, k: k,
                   spherical: config.metric == .spherical, bounds: state.upper)
            let before = state.assignments
            inertia = state.assign(x, weights: w, centroids: centroids, clusters: k)
            history.append(inertia)
            let changed = zip(before, state.assignments).contains { $0 != $1 }
            let gain = (history[history.count - 2] - inertia) / max(history[history.count - 2], .leastNonzeroMagnitude)
            if !changed || gain < config.tolerance { break }
        }
        return KMeansResult(centroids: centroids, dimension: d, assignments: state.assignments, inertia: inertia,
                            inertiaHistory: history, iterations: iterations, initialization: method,
                            assignmentMethod: d <= 32 ? (exact ? "kd-tree, exact"
                                : "kd-tree seed (\(config.leafBudget) leaves) + \(config.neighbours)-neighbour graph") : "blas")
    }

    /// Scales each nonzero row to unit length.
    public static func normaliseRows(_ x: inout [Float], rows: Int, dimension d: Int) {
        for i in 0..<rows {
            var s: Float = 0
            for j in 0..<d { s += x[i * d + j] * x[i * d + j] }
            if s > 0 {
                let r = 1 / s.squareRoot()
                for j in 0..<d { x[i * d + j] *= r }
            }
        }
    }

    static func randomSample(_ x: [Float], rows n: Int, dimension d: Int, weights: [Float], k: Int,
                             generator: inout SeededGenerator, chosen: inout [Int]) -> [Float] {
        var pool = (0..<n).filter { weights[$0] > 0 }
        if pool.count < k { pool = Array(0..<n) }
        // Partial Fisher–Yates: the first k entries become a uniform sample without replacement.
        for i in 0..<k {
            let j = i + Int(generator.next() % UInt64(pool.count - i))
            pool.swapAt(i, j)
        }
        var c = [Float](repeating: 0, count: k * d)
        chosen = Array(pool.prefix(k))
        for (slot, row) in pool.prefix(k).enumerated() {
            for j in 0..<d { c[slot * d + j] = x[row * d + j] }
        }
        return c
    }

    static func spreadSample(_ x: [Float], rows n: Int, dimension d: Int, weights: [Float], k: Int,
                             generator: inout SeededGenerator, chosen: inout [Int]) -> [Float] {
        var mean = [Double](repeating: 0, count: d)
        var mass = 0.0
        for i in 0..<n { mass += Double(weights[i]); for j in 0..<d { mean[j] += Double(weights[i]) * Double(x[i * d + j]) } }
        if mass > 0 { for j in 0..<d { mean[j] /= mass } }
        // Efraimidis–Spirakis: key = log(u) / pᵢ; the k largest keys are a weighted sample without replacement.
        var keyed: [(key: Double, row: Int)] = []
        keyed.reserveCapacity(n)
        for i in 0..<n {
            var s = 0.0
            for j in 0..<d { let t = Double(x[i * d + j]) - mean[j]; s += t * t }
            let p = Double(weights[i]) * s
            let u = max(generator.unit(), .leastNormalMagnitude)
            keyed.append((p > 0 ? Foundation.log(u) / p : -.infinity, i))
        }
        keyed.sort { $0.key != $1.key ? $0.key > $1.key : $0.row < $1.row }
        chosen = keyed.prefix(k).map(\.row)
        var c = [Float](repeating: 0, count: k * d)
        for (slot, row) in chosen.enumerated() { for j in 0..<d { c[slot * d + j] = x[row * d + j] } }
        return c
    }

    static func kMeansPlusPlus(_ x: [Float], rows n: Int, dimension d: Int, weights: [Float], k: Int,
                               generator: inout SeededGenerator) -> [Float] {
        var c = [Float](repeating: 0, count: k * d)
        var nearest = [Float](repeating: .infinity, count: n)
        var total = weights.reduce(0.0) { $0 + Double($1) }
        var chosen = total > 0 ? pick(weights.map(Double.init), total: total, generator: &generator) : 0
        for slot in 0..<k {
            for j in 0..<d { c[slot * d + j] = x[chosen * d + j] }
            if slot == k - 1 { break }
            total = 0
            x.withUnsafeBufferPointer { px in
                nearest.withUnsafeMutableBufferPointer { nb in
                    let cAddress = Int(bitPattern: nb.baseAddress!)
                    let centre = Array(c[slot * d..<(slot + 1) * d])
                    parallelChunks(n, minimumChunk: max(1, 4096 / d)) { range in
                        let nb = UnsafeMutablePointer<Float>(bitPattern: cAddress)!
                        for i in range {
                            var s: Float = 0
                            for j in 0..<d { let t = px[i * d + j] - centre[j]; s += t * t }
                            if s < nb[i] { nb[i] = s }
                        }
                    }
                }
            }
            let scores = (0..<n).map { Double(nearest[$0]) * Double(weights[$0]) }
            total = scores.reduce(0, +)
            // All rows already coincide with a centre: fall back to an unchosen row.
            chosen = total > 0 ? pick(scores, total: total, generator: &generator) : (slot + 1) % n
        }
        return c
    }

    private static func pick(_ scores: [Double], total: Double, generator: inout SeededGenerator) -> Int {
        var target = generator.unit() * total
        for (i, s) in scores.enumerated() {
            target -= s
            if target < 0 && s > 0 { return i }
        }
        return scores.lastIndex { $0 > 0 } ?? 0
    }

    /// Weighted means (normalised sums in spherical mode); empty clusters take the worst-served rows.
    static func update(_ centroids: inout [Float], _ x: [Float], rows n: Int, dimension d: Int, weights: [Float],
                       assignments: [Int32], k: Int, spherical: Bool, bounds: [Float]) {
        var sums = [Double](repeating: 0, count: k * d)
        var mass = [Double](repeating: 0, count: k)
        x.withUnsafeBufferPointer { px in
            sums.withUnsafeMutableBufferPointer { s in
                for i in 0..<n {
                    let a = Int(assignments[i]), wi = Double(weights[i])
                    if wi == 0 { continue }
                    mass[a] += wi
                    for j in 0..<d { s[a * d + j] += wi * Double(px[i * d + j]) }
                }
            }
        }
        var empty: [Int] = []
        for c in 0..<k {
            if mass[c] == 0 { empty.append(c); continue }
            if spherical {
                var norm = 0.0
                for j in 0..<d { norm += sums[c * d + j] * sums[c * d + j] }
                if norm > 0 {
                    let r = 1 / norm.squareRoot()
                    for j in 0..<d { centroids[c * d + j] = Float(sums[c * d + j] * r) }
                }
            } else {
                for j in 0..<d { centroids[c * d + j] = Float(sums[c * d + j] / mass[c]) }
            }
        }
        guard !empty.isEmpty else { return }
        // Rows with the largest weighted distance to their centroid, one per empty cluster (a sorted top-E list;
        // ties to the lower row index, so the choice is deterministic).
        var worst: [(badness: Double, row: Int)] = []
        if empty.count > 64 {
            worst = (0..<n).filter { weights[$0] > 0 }.map { i in (Double(weights[i]) * Double(bounds[i]) * Double(bounds[i]), i) }
            worst.sort { $0.badness != $1.badness ? $0.badness > $1.badness : $0.row < $1.row }
            worst = Array(worst.prefix(empty.count))
        } else {
            worst.reserveCapacity(empty.count + 1)
            for i in 0..<n where weights[i] > 0 {
                let b = Double(weights[i]) * Double(bounds[i]) * Double(bounds[i])
                if worst.count == empty.count, let last = worst.last, b <= last.badness { continue }
                var slot = worst.count
                worst.append((b, i))
                while slot > 0 && worst[slot - 1].badness < b { worst[slot] = worst[slot - 1]; slot -= 1 }
                worst[slot] = (b, i)
                if worst.count > empty.count { worst.removeLast() }
            }
        }
        let worstRows = worst.map(\.row)
        for (c, row) in zip(empty, worstRows) {
            for j in 0..<d { centroids[c * d + j] = x[row * d + j] }
        }
    }
}

extension KMeans {
    /// Each row's nearest centroid, without moving the centroids (one assignment step). Spherical: rows and centroids
    /// are compared as unit vectors. `current` starts each row's search from its present centroid, so the
    /// approximate tree search (`leafBudget` leaves) only ever moves a row to a nearer centroid; exact when
    /// n·K ≤ `exactSearchBudget`.
    public static func nearest(_ data: [Float], rows n: Int, dimension d: Int, centroids: [Float], clusters k: Int,
                               metric: KMeansConfiguration.Metric, current: [Int32]? = nil, leafBudget: Int = 2,
                               exactSearchBudget: Int = 1 << 28) -> [Int32] {
        precondition(data.count == n * d && centroids.count == k * d && k >= 1 && (current?.count ?? n) == n)
        var x = data, c = centroids
        if metric == .spherical {
            normaliseRows(&x, rows: n, dimension: d)
            normaliseRows(&c, rows: k, dimension: d)
        }
        var state = Assignment(rows: n, dimension: d, useTree: d <= 32, leafBudget: n * k <= exactSearchBudget ? .max : leafBudget,
                               neighbours: 0)
        if let current { for (row, cluster) in current.enumerated() where cluster >= 0 && Int(cluster) < k { state.seed(row: row, cluster: Int(cluster)) } }
        _ = state.assign(x, weights: [Float](repeating: 1, count: n), centroids: c, clusters: k)
        return state.assignments
    }
}
