/// Numpy-style broadcast of two shapes; nil when they do not broadcast.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = max(a.count, b.count)
    var result = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
        let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        if da == db || db == 1 { result[i] = da } else if da == 1 { result[i] = db } else { return nil }
    }
    return result
}

/// Strides of `shape` aligned to `outShape` (right-aligned), zero where the dimension is broadcast.
@usableFromInline
func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
    let s = strides(of: shape)
    let offset = outShape.count - shape.count
    return (0..<outShape.count).map { i in
        i < offset || shape[i - offset] == 1 ? 0 : s[i - offset]
    }
}

/// z = op(a, b) with numpy broadcasting. The last output axis is the inner loop; the rest is walked by a counter.
@inlinable
public func broadcastBinary<T: Sendable, U: Sendable>(_ a: Tensor<T>, _ b: Tensor<T>, _ op: (T, T) -> U) throws -> Tensor<U> {
    if a.shape == b.shape {
        return Tensor(shape: a.shape, scalars: zip(a.scalars, b.scalars).map(op))
    }
    guard let shape = broadcastShape(a.shape, b.shape) else {
        throw ComputeError.shapeMismatch("shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    let count = try elementCount(shape, "broadcast result")
    if count == 0 { return Tensor(shape: shape, scalars: []) }
    if b.count == 1 { let s = b.scalars[0]; return Tensor(shape: shape, scalars: a.scalars.map { op($0, s) }) }
    if a.count == 1 { let s = a.scalars[0]; return Tensor(shape: shape, scalars: b.scalars.map { op(s, $0) }) }
    let sa = broadcastStrides(a.shape, to: shape), sb = broadcastStrides(b.shape, to: shape)
    let rank = shape.count
    let inner = shape[rank - 1]
    let ia = sa[rank - 1], ib = sb[rank - 1]
    let outer = count / inner
    let scalars = [U](unsafeUninitializedCapacity: count) { out, initialized in
        a.scalars.withUnsafeBufferPointer { pa in
            b.scalars.withUnsafeBufferPointer { pb in
                var index = [Int](repeating: 0, count: rank)
                var offA = 0, offB = 0
                for row in 0..<outer {
                    let dst = out.baseAddress! + row * inner
                    if ia == 1 && ib == 0 {
                        let s = pb[offB]
                        for j in 0..<inner { (dst + j).initialize(to: op(pa[offA + j], s)) }
                    } else if ia == 0 && ib == 1 {
                        let s = pa[offA]
                        for j in 0..<inner { (dst + j).initialize(to: op(s, pb[offB + j])) }
                    } else {
                        for j in 0..<inner { (dst + j).initialize(to: op(pa[offA + j * ia], pb[offB + j * ib])) }
                    }
                    // Advance the outer counter.
                    var axis = rank - 2
                    while axis >= 0 {
                        index[axis] += 1
                        offA += sa[axis]
                        offB += sb[axis]
                        if index[axis] < shape[axis] { break }
                        offA -= sa[axis] * shape[axis]
                        offB -= sb[axis] * shape[axis]
                        index[axis] = 0
                        axis -= 1
                    }
                }
            }
        }
        initialized = count
    }
    return Tensor(shape: shape, scalars: scalars)
}

extension Tensor where Scalar == Float {
    /// Applies `f` to every scalar, splitting large tensors across cores.
    @inlinable
    public func mapped(_ f: @Sendable (Float) -> Float) -> Tensor<Float> {
        var out = self
        let count = self.count
        out.scalars.withUnsafeMutableBufferPointer { buf in
            let address = Int(bitPattern: buf.baseAddress)
            parallelChunks(count, minimumChunk: 1 << 16) { range in
                let p = UnsafeMutablePointer<Float>(bitPattern: address)!
                for i in range { p[i] = f(p[i]) }
            }
        }
        return out
    }
}

/// `x` broadcast (numpy rules) to the broadcast of its shape and `shape`: ONNX Expand.
public func broadcasted<T: Sendable>(_ x: Tensor<T>, to shape: [Int]) throws -> Tensor<T> {
    guard let target = broadcastShape(x.shape, shape) else {
        throw ComputeError.shapeMismatch("shape \(x.shape) does not broadcast to \(shape)")
    }
    if target == x.shape { return x }
    let count = try elementCount(target, "broadcast result")
    if count == 0 { return Tensor(shape: target, scalars: []) }
    let source = broadcastStrides(x.shape, to: target)
    let rank = target.count
    var index = [Int](repeating: 0, count: rank)
    var offset = 0
    var scalars: [T] = []
    scalars.reserveCapacity(count)
    for _ in 0..<count {
        scalars.append(x.scalars[offset])
        var axis = rank - 1
        while axis >= 0 {
            index[axis] += 1
            offset += source[axis]
            if index[axis] < target[axis] { break }
            offset -= source[axis] * target[axis]
            index[axis] = 0
            axis -= 1
        }
    }
    return Tensor(shape: target, scalars: scalars)
}

/// Splits `x` along `axis` into consecutive parts of the given sizes (which must add up to the axis).
public func split<T: Sendable>(_ x: Tensor<T>, axis: Int, sizes: [Int]) throws -> [Tensor<T>] {
    guard axis >= 0 && axis < x.rank, sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == x.shape[axis] else {
        throw ComputeError.shapeMismatch("Split sizes \(sizes) do not add up to axis \(axis) of \(x.shape)")
    }
    let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *)
    var start = 0
    return sizes.map { size in
        var shape = x.shape
        shape[axis] = size
        var scalars: [T] = []
        scalars.reserveCapacity(outer * size * inner)
        for o in 0..<outer {
            let base = (o * x.shape[axis] + start) * inner
            scalars.append(contentsOf: x.scalars[base..<base + size * inner])
        }
        start += size
        return Tensor(shape: shape, scalars: scalars)
    }
}
