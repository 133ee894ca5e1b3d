import Compute

/// The assignment step and the per-row state it keeps between iterations.
struct Assignment {
    let rows: Int
    let dimension: Int
    let useTree: Bool
    var assignments: [Int32]
    /// Exact distance of each row to its centroid after `assign`.
    var upper: [Float]
    /// A lower bound on each row's distance to every other centroid (tree path only).
    var lower: [Float]

    init(rows: Int, dimension: Int, useTree: Bool) {
        self.rows = rows
        self.dimension = dimension
        self.useTree = useTree
        assignments = [Int32](repeating: 0, count: rows)
        upper = [Float](repeating: 0, count: rows)
        lower = [Float](repeating: 0, count: rows)
    }

    /// Assigns every row to its nearest centroid; returns the weighted inertia.
    /// `movement[c]` is how far centroid c moved since the last call (nil on the first call: search everything).
    mutating func assign(_ x: [Float], weights: [Float], centroids: [Float], clusters k: Int, movement: [Float]?) -> Double {
        var cost = [Double](repeating: 0, count: rows)
        if useTree {
            assignWithTree(x, centroids: centroids, clusters: k, movement: movement, cost: &cost)
        } else {
            assignWithBLAS(x, centroids: centroids, clusters: k, cost: &cost)
        }
        var total = 0.0
        for i in 0..<rows { total += cost[i] * Double(weights[i]) }
        return total
    }

    private mutating func assignWithTree(_ x: [Float], centroids: [Float], clusters k: Int, movement: [Float]?,
                                         cost: inout [Double]) {
        let d = dimension
        let tree = CentroidTree(centroids: centroids, count: k, dimension: d)
        let maxMove = movement?.max() ?? 0
        let first = movement == nil
        x.withUnsafeBufferPointer { px in
            centroids.withUnsafeBufferPointer { pc in
                assignments.withUnsafeMutableBufferPointer { pa in
                    upper.withUnsafeMutableBufferPointer { pu in
                        lower.withUnsafeMutableBufferPointer { pl in
                            cost.withUnsafeMutableBufferPointer { pcost in
                                let addresses = (Int(bitPattern: pa.baseAddress!), Int(bitPattern: pu.baseAddress!),
                                                 Int(bitPattern: pl.baseAddress!), Int(bitPattern: pcost.baseAddress!))
                                parallelChunks(rows, minimumChunk: 1024) { range in
                                    let a = UnsafeMutablePointer<Int32>(bitPattern: addresses.0)!
                                    let u = UnsafeMutablePointer<Float>(bitPattern: addresses.1)!
                                    let l = UnsafeMutablePointer<Float>(bitPattern: addresses.2)!
                                    let out = UnsafeMutablePointer<Double>(bitPattern: addresses.3)!
                                    let scratch = CentroidTree.makeScratch()
                                    defer { scratch.deallocate() }
                                    for i in range {
                                        let row = px.baseAddress! + i * d
                                        if !first {
                                            // Hamerly: the exact distance to the current centroid against a lower
                                            // bound on the distance to any other one.
                                            let c = pc.baseAddress! + Int(a[i]) * d
                                            var s: Float = 0
                                            for j in 0..<d { let t = row[j] - c[j]; s += t * t }
                                            let bound = l[i] - maxMove
                                            if s.squareRoot() <= bound {
                                                u[i] = s.squareRoot()
                                                l[i] = bound
                                                out[i] = Double(s)
                                                continue
                                            }
                                        }
                                        let (best, d1, d2) = tree.twoNearest(row, scratch: scratch)
                                        a[i] = best
                                        u[i] = d1.squareRoot()
                                        l[i] = d2.squareRoot()
                                        out[i] = Double(d1)
                                    }
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
