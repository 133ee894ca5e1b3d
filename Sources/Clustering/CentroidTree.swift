/// A k-d tree over the centroids, rebuilt each iteration, answering nearest-centroid queries with box-distance
/// pruning. Used when rows are short (d ≤ 32, e.g. 3×3 kernels): a query opens a bounded number of leaves
/// instead of scanning all K centroids.
@usableFromInline
struct CentroidTree {
    @usableFromInline let dimension: Int
    /// Centroid coordinates in tree order (leaves are contiguous), and their original indices.
    @usableFromInline var points: [Float]
    @usableFromInline var ids: [Int32]
    /// Node arrays: for inner nodes split dimension ≥ 0, for leaves −1 with [start, end) in `points`.
    @usableFromInline var splitDimension: [Int32] = []
    @usableFromInline var splitValue: [Float] = []
    @usableFromInline var left: [Int32] = []
    @usableFromInline var right: [Int32] = []
    @usableFromInline var start: [Int32] = []
    @usableFromInline var end: [Int32] = []
    /// Per node, the bounding box of its centroids: d minima then d maxima.
    @usableFromInline var boxes: [Float] = []
    static let leafSize = 8

    init(centroids: [Float], count: Int, dimension: Int) {
        self.dimension = dimension
        var order = (0..<count).map { Int32($0) }
        var nodes = (dim: [Int32](), value: [Float](), left: [Int32](), right: [Int32](), start: [Int32](), end: [Int32]())
        centroids.withUnsafeBufferPointer { c in
            order.withUnsafeMutableBufferPointer { order in
                func build(_ lo: Int, _ hi: Int) -> Int32 {
                    let node = Int32(nodes.dim.count)
                    nodes.dim.append(-1); nodes.value.append(0); nodes.left.append(-1); nodes.right.append(-1)
                    nodes.start.append(Int32(lo)); nodes.end.append(Int32(hi))
                    if hi - lo <= CentroidTree.leafSize { return node }
                    // Split on the dimension of largest spread, at the median.
                    var best = 0
                    var bestSpread: Float = -1
                    for j in 0..<dimension {
                        var mn = Float.infinity, mx = -Float.infinity
                        for i in lo..<hi { let v = c[Int(order[i]) * dimension + j]; mn = min(mn, v); mx = max(mx, v) }
                        if mx - mn > bestSpread { bestSpread = mx - mn; best = j }
                    }
                    if bestSpread <= 0 { return node }  // all equal: keep as a (large) leaf
                    let mid = (lo + hi) / 2
                    CentroidTree.select(order, lo, hi, mid) { c[Int($0) * dimension + best] }
                    nodes.dim[Int(node)] = Int32(best)
                    nodes.value[Int(node)] = c[Int(order[mid]) * dimension + best]
                    let l = build(lo, mid)
                    let r = build(mid, hi)
                    nodes.left[Int(node)] = l
                    nodes.right[Int(node)] = r
                    return node
                }
                _ = build(0, count)
            }
        }
        var points = [Float](repeating: 0, count: count * dimension)
        for (i, id) in order.enumerated() {
            for j in 0..<dimension { points[i * dimension + j] = centroids[Int(id) * dimension + j] }
        }
        self.points = points
        ids = order
        var boxes = [Float](repeating: 0, count: nodes.dim.count * 2 * dimension)
        for node in 0..<nodes.dim.count {
            for j in 0..<dimension {
                var mn = Float.infinity, mx = -Float.infinity
                for i in Int(nodes.start[node])..<Int(nodes.end[node]) {
                    let v = points[i * dimension + j]
                    mn = min(mn, v)
                    mx = max(mx, v)
                }
                boxes[node * 2 * dimension + j] = mn
                boxes[node * 2 * dimension + dimension + j] = mx
            }
        }
        self.boxes = boxes
        splitDimension = nodes.dim
        splitValue = nodes.value
        left = nodes.left
        right = nodes.right
        start = nodes.start
        end = nodes.end
    }

    /// Quickselect: after it, order[k] holds the element of rank k by `key`, smaller keys before it.
    private static func select(_ order: UnsafeMutableBufferPointer<Int32>, _ lo: Int, _ hi: Int, _ k: Int, _ key: (Int32) -> Float) {
        var lo = lo, hi = hi - 1
        while lo < hi {
            let pivot = key(order[(lo + hi) / 2])
            var i = lo, j = hi
            while i <= j {
                while key(order[i]) < pivot { i += 1 }
                while key(order[j]) > pivot { j -= 1 }
                if i <= j { order.swapAt(i, j); i += 1; j -= 1 }
            }
            if k <= j { hi = j } else if k >= i { lo = i } else { return }
        }
    }

    /// Squared distance from x to a node's box (d minima, then d maxima): a lower bound for every centroid inside.
    @inlinable
    func boxDistance(_ x: UnsafePointer<Float>, _ lo: UnsafePointer<Float>) -> Float {
        let hi = lo + dimension
        var gap: Float = 0
        for j in 0..<dimension {
            let v = x[j]
            let t = v < lo[j] ? lo[j] - v : (v > hi[j] ? v - hi[j] : 0)
            gap += t * t
        }
        return gap
    }

    /// Scratch space for one query: a stack of (node, lower bound) pairs, deep enough for any tree we build.
    @usableFromInline
    static func makeScratch() -> UnsafeMutableBufferPointer<(Int32, Float)> {
        .allocate(capacity: 256)
    }

    /// Depth-first search from the root, near side first. Skips every node whose box lies at least `bound()` away,
    /// hands each centroid of an opened leaf to `visit(id, squaredDistance)`, and stops when `leafOpened()`,
    /// called after each leaf, returns true.
    @inlinable
    func search(_ x: UnsafePointer<Float>, scratch stack: UnsafeMutableBufferPointer<(Int32, Float)>,
                bound: () -> Float, visit: (Int32, Float) -> Void, leafOpened: () -> Bool) {
        points.withUnsafeBufferPointer { p in
            boxes.withUnsafeBufferPointer { box in
                stack[0] = (0, 0)
                var top = 1
                while top > 0 {
                    top -= 1
                    let n = Int(stack[top].0)
                    if boxDistance(x, box.baseAddress! + n * 2 * dimension) >= bound() { continue }
                    let dim = splitDimension[n]
                    if dim < 0 {
                        for i in Int(self.start[n])..<Int(end[n]) {
                            let c = p.baseAddress! + i * dimension
                            var s: Float = 0
                            for j in 0..<dimension { let t = x[j] - c[j]; s += t * t }
                            visit(ids[i], s)
                        }
                        if leafOpened() { return }
                        continue
                    }
                    let diff = x[Int(dim)] - splitValue[n]
                    let (near, far) = diff < 0 ? (left[n], right[n]) : (right[n], left[n])
                    // Far side first on the stack, so the near side is searched first.
                    stack[top] = (far, 0)
                    stack[top + 1] = (near, 0)
                    top += 2
                }
            }
        }
    }

    /// The nearest centroid of `x` found by a search that opens at most `leafBudget` leaves, starting from the
    /// candidate `start` at squared distance `startDistance`. With an unlimited budget the answer is exact.
    @inlinable
    func nearest(_ x: UnsafePointer<Float>, start: Int32, startDistance: Float, leafBudget: Int,
                 scratch stack: UnsafeMutableBufferPointer<(Int32, Float)>) -> (best: Int32, distance: Float) {
        var best = start
        var d1 = startDistance
        var leaves = 0
        search(x, scratch: stack, bound: { d1 }, visit: { id, s in
            if s < d1 { d1 = s; best = id }
        }, leafOpened: {
            leaves += 1
            return leaves >= leafBudget
        })
        return (best, d1)
    }

    /// The `m` nearest centroids of `x` among the leaves a search opens (at most `leafBudget` once m are found;
    /// `.max`: exact), nearest first, written to `result`; `distances` is scratch space for m values.
    func kNearest(_ x: UnsafePointer<Float>, m: Int, leafBudget: Int, into result: UnsafeMutablePointer<Int32>,
                  distances: UnsafeMutablePointer<Float>, scratch stack: UnsafeMutableBufferPointer<(Int32, Float)>) {
        var found = 0
        var leaves = 0
        search(x, scratch: stack, bound: { found < m ? .infinity : distances[m - 1] }, visit: { id, s in
            guard found < m || s < distances[m - 1] else { return }
            // Insertion into the sorted list of the m best.
            var slot = min(found, m - 1)
            while slot > 0 && distances[slot - 1] > s {
                distances[slot] = distances[slot - 1]
                result[slot] = result[slot - 1]
                slot -= 1
            }
            distances[slot] = s
            result[slot] = id
            found = min(found + 1, m)
        }, leafOpened: {
            leaves += 1
            return leaves >= leafBudget && found == m
        })
    }
}
