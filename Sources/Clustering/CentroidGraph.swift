import Compute

/// Lists of each centroid's nearest centroids (itself first), the candidates a row compares after the first
/// assignment. Each iteration asks the k-d tree (with a leaf budget) afresh and merges the answer with the
/// previous lists and a few neighbours of neighbours (NN-descent, Dong et al. 2011), so the lists improve
/// from one iteration to the next at the cost of a budgeted search.
enum CentroidGraph {
    static func build(tree: CentroidTree, centroids: [Float], k: Int, dimension d: Int, m: Int, leafBudget: Int) -> [Int32] {
        var graph = [Int32](repeating: 0, count: k * m)
        centroids.withUnsafeBufferPointer { pc in
            graph.withUnsafeMutableBufferPointer { pg in
                let address = Int(bitPattern: pg.baseAddress!)
                parallelChunks(k, minimumChunk: 64) { range in
                    let g = UnsafeMutablePointer<Int32>(bitPattern: address)!
                    let scratch = CentroidTree.makeScratch()
                    let distances = UnsafeMutablePointer<Float>.allocate(capacity: m)
                    defer { scratch.deallocate(); distances.deallocate() }
                    for c in range {
                        tree.kNearest(pc.baseAddress! + c * d, m: m, leafBudget: leafBudget, into: g + c * m,
                                      distances: distances, scratch: scratch)
                    }
                }
            }
        }
        return graph
    }

    /// Each list becomes the m nearest among its fresh entries (`fresh`, from the tree), its old entries and
    /// the old entries of its first `hops` neighbours.
    static func refine(_ old: [Int32], fresh: [Int32], centroids: [Float], k: Int, dimension d: Int, m: Int,
                       hops: Int = 2) -> [Int32] {
        var graph = old
        old.withUnsafeBufferPointer { po in
            centroids.withUnsafeBufferPointer { pc in
                graph.withUnsafeMutableBufferPointer { pg in
                    let address = Int(bitPattern: pg.baseAddress!)
                    parallelChunks(k, minimumChunk: 64) { range in
                        let g = UnsafeMutablePointer<Int32>(bitPattern: address)!
                        // Stamps mark candidates already seen for the current centroid.
                        var stamp = [Int32](repeating: -1, count: k)
                        var best = [(Float, Int32)]()
                        best.reserveCapacity(m * (hops + 1) + 1)
                        for c in range {
                            best.removeAll(keepingCapacity: true)
                            let x = pc.baseAddress! + c * d
                            func consider(_ candidate: Int32) {
                                if stamp[Int(candidate)] == Int32(c) { return }
                                stamp[Int(candidate)] = Int32(c)
                                let y = pc.baseAddress! + Int(candidate) * d
                                var s: Float = 0
                                for j in 0..<d { let t = x[j] - y[j]; s += t * t }
                                best.append((s, candidate))
                            }
                            consider(Int32(c))
                            for t in 0..<m { consider(fresh[c * m + t]) }
                            let list = po.baseAddress! + c * m
                            for t in 0..<m { consider(list[t]) }
                            for t in 1..<min(m, hops + 1) {
                                let next = po.baseAddress! + Int(list[t]) * m
                                for u in 0..<m { consider(next[u]) }
                            }
                            best.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
                            for t in 0..<m { g[c * m + t] = best[t].1 }
                        }
                    }
                }
            }
        }
        return graph
    }
}
