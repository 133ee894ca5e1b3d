/// A k-d tree over the centroids, rebuilt each iteration, answering exact two-nearest-neighbour queries.
/// Used when rows are short (d ≤ 32, e.g. 3×3 kernels): a query visits a few leaves instead of all K centroids.
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

    /// Scratch space for one query: a stack of (node, lower bound) pairs, deep enough for any tree we build.
    @usableFromInline
    static func makeScratch() -> UnsafeMutableBufferPointer<(Int32, Float)> {
        .allocate(capacity: 256)
    }

    /// The nearest and second-nearest centroids of `x` (squared distances); `second` is +∞ when K = 1.
    @inlinable
    func twoNearest(_ x: UnsafePointer<Float>, scratch stack: UnsafeMutableBufferPointer<(Int32, Float)>)
        -> (best: Int32, bestDistance: Float, secondDistance: Float) {
        var best: Int32 = -1
        var d1 = Float.infinity, d2 = Float.infinity
        points.withUnsafeBufferPointer { p in
            var top = 0
            stack[0] = (0, 0)
            top = 1
            while top > 0 {
                top -= 1
                let (node, gap) = stack[top]
                if gap >= d2 { continue }
                let n = Int(node)
                let dim = splitDimension[n]
                if dim < 0 {
                    for i in Int(start[n])..<Int(end[n]) {
                        let c = p.baseAddress! + i * dimension
                        var s: Float = 0
                        for j in 0..<dimension { let t = x[j] - c[j]; s += t * t }
                        if s < d1 {
                            d2 = d1
                            d1 = s
                            best = ids[i]
                        } else if s < d2 {
                            d2 = s
                        }
                    }
                    continue
                }
                let diff = x[Int(dim)] - splitValue[n]
                let (near, far) = diff < 0 ? (left[n], right[n]) : (right[n], left[n])
                // Far side first on the stack, so the near side is searched first.
                stack[top] = (far, max(gap, diff * diff))
                stack[top + 1] = (near, gap)
                top += 2
            }
        }
        return (best, d1, d2)
    }
}
