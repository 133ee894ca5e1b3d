import Clustering
import Compute

/// The clustering core every form shares: a codebook fitted to values cut into vectors of `dimension` (d = 1: a
/// scalar LUT by exact 1-D k-means on sorted values; d > 1: k-means over the vectors), with the assignment the fit
/// found, at the stored precision. Vector palettization, the kernel seed's 2D kernels (d = kh·kw, unit shapes with
/// scales) and the column seed's FC columns (`fitVectors`) are all settings of it.
struct FittedCodebook {
    var codebook: [Float]
    var entries: Int
    var dimension: Int
    /// Unit shapes: vectors are compared by direction (their entries are unit length).
    var spherical = false
    /// Each vector's entry as the fit left it, while it is still exact (nil once the entries were rounded to their
    /// stored precision or truncated).
    var assignments: [Int32]? = nil
    /// The k-means objective (weighted squared error; spherical: 1 − cosine, weighted).
    var inertia = 0.0

    /// The first `k` entries (tiny groups may have fewer vectors than the others' entry count: a vector codebook of
    /// `k` entries then holds all of them).
    func truncated(to k: Int) -> FittedCodebook {
        k == entries ? self : FittedCodebook(codebook: Array(codebook.prefix(k * dimension)), entries: k, dimension: dimension,
                                             spherical: spherical, assignments: nil, inertia: inertia)
    }

    /// The nearest stored entry of every vector of `values`, in order.
    func assign(_ values: [Float]) -> [Int32] {
        [Int32](unsafeUninitializedCapacity: values.count / dimension) { out, count in
            values.withUnsafeBufferPointer { assign($0, to: out.baseAddress!) }
            count = values.count / dimension
        }
    }

    /// Writes the entry of every vector of `values` to `out`: the fit's own assignment when `values` are the vectors
    /// it was fitted to and its entries are stored exactly, else the nearest stored entry (exact search).
    func assign(_ values: UnsafeBufferPointer<Float>, to out: UnsafeMutablePointer<Int32>) {
        if let assignments, assignments.count == values.count / dimension {
            for (i, a) in assignments.enumerated() { out[i] = a }
            return
        }
        if dimension == 1 && !spherical {
            // Entries ascending with their original positions, then a branch-free search on the midpoints.
            let order = (0..<entries).sorted { codebook[$0] < codebook[$1] }
            ScalarKMeans.Assigner(ascending: order.map { codebook[$0] }).assign(values, to: out)
            if order != Array(0..<entries) { for i in 0..<values.count { out[i] = Int32(order[Int(out[i])]) } }
            return
        }
        let nearest = KMeans.nearest(Array(values), rows: values.count / dimension, dimension: dimension, centroids: codebook,
                                     clusters: entries, metric: spherical ? .spherical : .euclidean, leafBudget: .max)
        for (i, j) in nearest.enumerated() { out[i] = j }
    }
}

/// Fits one codebook of `settings.entries` entries to `values` (consecutive `clusterDimension`-vectors), each value's
/// squared error weighted by `weights` when given (a vector weighs the sum of its values'), at the stored precision.
/// Pruned zeros stay exact (`reserveZero`) in scalar LUTs only; callers keep vectors away from pruned weights.
/// With `vectorScaleBits` the vectors are unit shapes: spherical k-means on their directions, each weighted by its
/// squared norm (an error in a shape costs the scale squared).
/// Iterations and seeding come from the run's `configuration`.
func fitCodebook(_ values: UnsafeBufferPointer<Float>, weights: UnsafeBufferPointer<Float>? = nil, settings s: PalettizationSettings,
                 reserveZero: Bool, seed: UInt64, configuration config: PalettizationConfiguration,
                 workspace: ScalarKMeans.Workspace) throws -> FittedCodebook {
    let d = s.clusterDimension, k = s.entries
    // Scalar LUTs (up to 256 entries) by exact 1-D k-means on sorted values; wider or scaled ones as vectors of one.
    if d == 1 && k <= 256 && s.vectorScaleBits == nil {
        let (fitted, clusters) = (reserveZero && k > 1, reserveZero && k > 1 ? k - 1 : k)
        let fit = if let weights {
            ScalarKMeans.fit(values, weights: weights, clusters: clusters, maxIterations: config.maxIterations, excludingZeros: fitted, workspace: workspace)
        } else {
            ScalarKMeans.fit(values, clusters: clusters, maxIterations: config.maxIterations, excludingZeros: fitted, workspace: workspace)
        }
        let centroids = s.precision.quantised(fitted ? [0] + fit.centroids : fit.centroids, codebookSize: k).values
        return FittedCodebook(codebook: centroids, entries: k, dimension: 1)
    }
    let all = Array(values)
    let n = all.count / d
    var vectorWeights = weights.map { w in (0..<n).map { v in (0..<d).reduce(Float(0)) { $0 + w[v * d + $1] } } }
    if s.vectorScaleBits != nil {
        var scaled = vectorWeights ?? [Float](repeating: 1, count: n)
        for v in 0..<n {
            var norm: Float = 0
            for j in 0..<d { norm += all[v * d + j] * all[v * d + j] }
            scaled[v] *= norm
        }
        vectorWeights = scaled.contains { $0 > 0 } ? scaled : [Float](repeating: 1, count: n)
    }
    var fit = try fitVectors(all, dimension: d, entries: min(k, n), weights: vectorWeights, spherical: s.vectorScaleBits != nil,
                             configuration: KMeansConfiguration(clusters: 1, initialization: config.initialization,
                                                                 maxIterations: config.vectorMaxIterations, seed: seed))
    let stored = s.precision.quantised(fit.codebook, codebookSize: fit.codebook.count).values
    if stored != fit.codebook { fit.assignments = nil }
    fit.codebook = stored
    return fit
}

/// k-means over `n` vectors of `dimension` (spherical: by direction), weighted per vector — or, when every vector is
/// its own entry, the vectors themselves (exact, no iterations). The seed of every vector form.
func fitVectors(_ x: [Float], dimension d: Int, entries k: Int, weights: [Float]?, spherical: Bool,
                configuration: KMeansConfiguration) throws -> FittedCodebook {
    let n = x.count / d
    if k == n {
        var units = x
        if spherical { KMeans.normaliseRows(&units, rows: n, dimension: d) }
        return FittedCodebook(codebook: units, entries: k, dimension: d, spherical: spherical, assignments: (0..<n).map { Int32($0) })
    }
    var c = configuration
    c.clusters = k
    c.metric = spherical ? .spherical : .euclidean
    let fit = try KMeans.fit(x, rows: n, dimension: d, weights: weights, configuration: c)
    return FittedCodebook(codebook: fit.centroids, entries: k, dimension: d, spherical: spherical, assignments: fit.assignments,
                          inertia: fit.inertia)
}
