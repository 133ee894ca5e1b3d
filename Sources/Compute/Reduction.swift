/// Folds `x` over `axes` with `combine`, starting from `initial`, then maps each result with `finish(value, n)`
/// (n = how many elements were folded). Kept axes become size 1 when `keepDims`, and are dropped otherwise.
public func reduced(_ x: Tensor<Float>, axes: Set<Int>, keepDims: Bool, initial: Float,
                    _ combine: (Float, Float) -> Float, finish: (Float, Int) -> Float = { v, _ in v }) -> Tensor<Float> {
    let rank = x.rank
    let outShape = x.shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
    let outStrides = strides(of: outShape)
    var out = [Float](repeating: initial, count: outShape.reduce(1, *))
    var index = [Int](repeating: 0, count: rank)
    for v in x.scalars {
        var o = 0
        for a in 0..<rank where !axes.contains(a) { o += index[a] * outStrides[a] }
        out[o] = combine(out[o], v)
        var a = rank - 1
        while a >= 0 { index[a] += 1; if index[a] < x.shape[a] { break }; index[a] = 0; a -= 1 }
    }
    let n = out.isEmpty ? 0 : x.count / out.count
    for i in out.indices { out[i] = finish(out[i], n) }
    let shape = keepDims ? outShape : x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
    return Tensor(shape: shape, scalars: out)
}

/// The `k` largest (or smallest) values along `axis` and their indices, sorted (ties: the lower index first, as
/// onnxruntime orders them).
public func topK(_ x: Tensor<Float>, k: Int, axis: Int, largest: Bool) throws -> (values: Tensor<Float>, indices: Tensor<Int64>) {
    guard axis >= 0 && axis < x.rank, k >= 0, k <= x.shape[axis] else {
        throw ComputeError.shapeMismatch("TopK k = \(k) does not fit axis \(axis) of \(x.shape)")
    }
    let n = x.shape[axis], outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *)
    var shape = x.shape
    shape[axis] = k
    var values = [Float](repeating: 0, count: outer * k * inner), indices = [Int64](repeating: 0, count: values.count)
    var order = [Int](repeating: 0, count: n)
    for o in 0..<outer {
        for i in 0..<inner {
            let base = o * n * inner + i
            order = Array(0..<n)
            order.sort { a, b in
                let (va, vb) = (x.scalars[base + a * inner], x.scalars[base + b * inner])
                return va == vb ? a < b : (largest ? va > vb : va < vb)
            }
            for j in 0..<k {
                let to = (o * k + j) * inner + i
                values[to] = x.scalars[base + order[j] * inner]
                indices[to] = Int64(order[j])
            }
        }
    }
    return (Tensor(shape: shape, scalars: values), Tensor(shape: shape, scalars: indices))
}

/// The index of the largest (or smallest) value along `axis`; ties go to the first index, or the last when
/// `lastIndex`.
public func argExtremum(_ x: Tensor<Float>, axis: Int, largest: Bool, keepDims: Bool, lastIndex: Bool) throws -> Tensor<Int64> {
    guard axis >= 0 && axis < x.rank, x.shape[axis] > 0 else { throw ComputeError.shapeMismatch("ArgMax/ArgMin axis \(axis) of \(x.shape) is empty or out of range") }
    let n = x.shape[axis], outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *)
    var result = [Int64](repeating: 0, count: outer * inner)
    for o in 0..<outer {
        for i in 0..<inner {
            let base = o * n * inner + i
            var best = 0
            for j in 1..<max(1, n) {
                let (v, b) = (x.scalars[base + j * inner], x.scalars[base + best * inner])
                if largest ? (v > b || (lastIndex && v == b)) : (v < b || (lastIndex && v == b)) { best = j }
            }
            result[o * inner + i] = Int64(best)
        }
    }
    var shape = x.shape
    if keepDims { shape[axis] = 1 } else { shape.remove(at: axis) }
    return Tensor(shape: shape, scalars: result)
}
