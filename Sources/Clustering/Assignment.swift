import Compute

/// The assignment step and the per-row state it keeps between iterations.
struct Assignment {
    let rows: Int
    let dimension: Int
    let useTree: Bool
    /// Leaves a tree search may open (`Int.max`: exact).
    let leafBudget: Int
    /// Later iterations search only the `neighbours` centroids nearest to a row's current centroid (0: the tree).
    let neighbours: Int
    var assignments: [Int32]
    /// Exact distance of each row to its centroid after `assign`.
    var upper: [Float]
    /// Whether `assignments` holds a previous answer to improve on.
    var hasAssignment = false
    /// Rows whose first search starts from a known centroid (−1: none).
    var seeds: [Int32] = []
    /// The neighbour lists of the previous iteration (m per centroid), refined instead of rebuilt.
    var graph: [Int32] = []

    init(rows: Int, dimension: Int, useTree: Bool, leafBudget: Int, neighbours: Int) {
        self.rows = rows
        self.dimension = dimension
        self.useTree = useTree
        self.leafBudget = leafBudget
        self.neighbours = neighbours
        assignments = [Int32](repeating: 0, count: rows)
        upper = [Float](repeating: 0, count: rows)
    }

    mutating func seed(row: Int, cluster: Int) {
        if seeds.isEmpty { seeds = [Int32](repeating: -1, count: rows) }
        seeds[row] = Int32(cluster)
    }

    /// Assigns every row to its nearest centroid (tree path: the nearest the search finds, never worse than the
    /// row's current centroid, so the inertia cannot increase); returns the weighted inertia.
    mutating func assign(_ x: [Float], weights: [Float], centroids: [Float], clusters k: Int) -> Double {
        var cost = [Double](repeating: 0, count: rows)
        if useTree {
            assignWithTree(x, centroids: centroids, clusters: k, cost: &cost)
        } else {
            assignWithBLAS(x, centroids: centroids, clusters: k, cost: &cost)
        }
        hasAssignment = true
        var total = 0.0
        for i in 0..<rows { total += cost[i] * Double(weights[i]) }
        return total
    }

    private mutating func assignWithTree(_ x: [Float], centroids: [Float], clusters k: Int, cost: inout [Double]) {
        let d = dimension
        let tree = CentroidTree(centroids: centroids, count: k, dimension: d)
        let improve = hasAssignment
        let budget = leafBudget
        // The neighbour lists: for each centroid, its m nearest centroids (itself first).
        let m = min(k, neighbours + 1)
        // Leaves each neighbour-list query opens: a few times the list length, in centroids.
        let graphLeafFactor = 4
        let useGraph = improve && neighbours > 0
        if useGraph {
            let fresh = CentroidGraph.build(tree: tree, centroids: centroids, k: k, dimension: d, m: m,
                                            leafBudget: max(4, graphLeafFactor * m / CentroidTree.leafSize))
            graph = graph.count == k * m
                ? CentroidGraph.refine(graph, fresh: fresh, centroids: centroids, k: k, dimension: d, m: m) : fresh
        }
        let pg = graph
        let initial = improve ? [] : seeds
        x.withUnsafeBufferPointer { px in
            centroids.withUnsafeBufferPointer { pc in
                assignments.withUnsafeMutableBufferPointer { pa in
                    upper.withUnsafeMutableBufferPointer { pu in
                        cost.withUnsafeMutableBufferPointer { pcost in
                            let addresses = (Int(bitPattern: pa.baseAddress!), Int(bitPattern: pu.baseAddress!),
                                             Int(bitPattern: pcost.baseAddress!))
                            parallelChunks(rows, minimumChunk: 1024) { range in
                                let a = UnsafeMutablePointer<Int32>(bitPattern: addresses.0)!
                                let u = UnsafeMutablePointer<Float>(bitPattern: addresses.1)!
                                let out = UnsafeMutablePointer<Double>(bitPattern: addresses.2)!
                                let scratch = CentroidTree.makeScratch()
                                defer { scratch.deallocate() }
                                for i in range {
                                    let row = px.baseAddress! + i * d
                                    var start: Int32 = -1
                                    var startDistance = Float.infinity
                                    let known = improve ? a[i] : (initial.isEmpty ? -1 : initial[i])
                                    if known >= 0 {
                                        let c = pc.baseAddress! + Int(known) * d
                                        var s: Float = 0
                                        for j in 0..<d { let t = row[j] - c[j]; s += t * t }
                                        start = known
                                        startDistance = s
                                    }
                                    var (best, distance) = (start, startDistance)
                                    if useGraph {
                                        pg.withUnsafeBufferPointer { g in
                                            let list = g.baseAddress! + Int(start) * m
                                            for t in 0..<m {
                                                let c = pc.baseAddress! + Int(list[t]) * d
                                                var s: Float = 0
                                                for j in 0..<d { let q = row[j] - c[j]; s += q * q }
                                                if s < distance { distance = s; best = list[t] }
                                            }
                                        }
                                    } else {
                                        (best, distance) = tree.nearest(row, start: start, startDistance: startDistance,
                                                                        leafBudget: budget, scratch: scratch)
                                    }
                                    a[i] = best
                                    u[i] = distance.squareRoot()
                                    out[i] = Double(distance)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// ‖x‖² + ‖c‖² − 2·x·c through sgemm, over blocks of rows and centroids.
    private mutating func assignWithBLAS(_ x: [Float], centroids: [Float], clusters k: Int, cost: inout [Double]) {
        let d = dimension, n = rows
        let rowBlock = 256, centroidBlock = 1024
        let cc = (0..<k).map { c -> Float in
            var s: Float = 0
            for j in 0..<d { s += centroids[c * d + j] * centroids[c * d + j] }
            return s
        }
        let blocks = (n + rowBlock - 1) / rowBlock
        x.withUnsafeBufferPointer { px in
            centroids.withUnsafeBufferPointer { pc in
                assignments.withUnsafeMutableBufferPointer { pa in
                    upper.withUnsafeMutableBufferPointer { pu in
                        cost.withUnsafeMutableBufferPointer { pcost in
                            let addresses = (Int(bitPattern: pa.baseAddress!), Int(bitPattern: pu.baseAddress!),
                                             Int(bitPattern: pcost.baseAddress!))
                            parallelChunks(blocks) { range in
                                let a = UnsafeMutablePointer<Int32>(bitPattern: addresses.0)!
                                let u = UnsafeMutablePointer<Float>(bitPattern: addresses.1)!
                                let out = UnsafeMutablePointer<Double>(bitPattern: addresses.2)!
                                let dots = UnsafeMutablePointer<Float>.allocate(capacity: rowBlock * centroidBlock)
                                defer { dots.deallocate() }
                                for block in range {
                                    let r0 = block * rowBlock, rn = min(rowBlock, n - r0)
                                    var best = [Float](repeating: .infinity, count: rn)
                                    var bestIndex = [Int32](repeating: 0, count: rn)
                                    var c0 = 0
                                    while c0 < k {
                                        let cn = min(centroidBlock, k - c0)
                                        sgemm(transB: true, m: rn, n: cn, k: d, a: px.baseAddress! + r0 * d, lda: d,
                                              b: pc.baseAddress! + c0 * d, ldb: d, c: dots, ldc: cn)
                                        for r in 0..<rn {
                                            let g = dots + r * cn
                                            for c in 0..<cn {
                                                let s = cc[c0 + c] - 2 * g[c]
                                                if s < best[r] { best[r] = s; bestIndex[r] = Int32(c0 + c) }
                                            }
                                        }
                                        c0 += cn
                                    }
                                    for r in 0..<rn {
                                        let i = r0 + r
                                        let row = px.baseAddress! + i * d
                                        let c = pc.baseAddress! + Int(bestIndex[r]) * d
                                        // Exact distance for the inertia (the expansion above loses precision).
                                        var s: Float = 0
                                        for j in 0..<d { let t = row[j] - c[j]; s += t * t }
                                        a[i] = bestIndex[r]
                                        u[i] = s.squareRoot()
                                        out[i] = Double(s)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
