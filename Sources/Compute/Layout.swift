/// Shape and layout operators: transpose, concat, gather, pad, slice.
public func transposed<T: Sendable>(_ x: Tensor<T>, permutation perm: [Int]) throws -> Tensor<T> {
    guard perm.count == x.rank, Set(perm) == Set(0..<x.rank) else {
        throw ComputeError.shapeMismatch("Transpose perm \(perm) is not a permutation of \(x.rank) axes")
    }
    let shape = perm.map { x.shape[$0] }
    let inStrides = strides(of: x.shape)
    let permutedStrides = perm.map { inStrides[$0] }
    let count = x.count
    if count == 0 { return Tensor(shape: shape, scalars: []) }
    let rank = shape.count
    let scalars = [T](unsafeUninitializedCapacity: count) { out, initialized in
        x.scalars.withUnsafeBufferPointer { src in
            var index = [Int](repeating: 0, count: rank)
            var offset = 0
            for i in 0..<count {
                (out.baseAddress! + i).initialize(to: src[offset])
                var axis = rank - 1
                while axis >= 0 {
                    index[axis] += 1
                    offset += permutedStrides[axis]
                    if index[axis] < shape[axis] { break }
                    offset -= permutedStrides[axis] * shape[axis]
                    index[axis] = 0
                    axis -= 1
                }
            }
        }
        initialized = count
    }
    return Tensor(shape: shape, scalars: scalars)
}

@inlinable
public func concatenated<T: Sendable>(_ parts: [Tensor<T>], axis: Int) throws -> Tensor<T> {
    guard let first = parts.first else { throw ComputeError.shapeMismatch("Concat needs at least one input") }
    for p in parts where p.rank != first.rank || (0..<first.rank).contains(where: { $0 != axis && p.shape[$0] != first.shape[$0] }) {
        throw ComputeError.shapeMismatch("Concat on axis \(axis): shapes \(parts.map(\.shape)) differ off that axis")
    }
    guard axis >= 0 && axis < max(1, first.rank) else { throw ComputeError.shapeMismatch("Concat axis \(axis) is out of range for \(first.shape)") }
    var shape = first.shape
    shape[axis] = parts.reduce(0) { $0 &+ $1.shape[axis] }
    let count = try elementCount(shape, "Concat output")
    let outer = first.shape[..<axis].reduce(1, *)
    // Each (outer index, part) pair is one contiguous block of the output; the blocks are split over the workers
    // once the copy is large (a fire module's Concat at batch 64 moves 7 MB).
    let blocks = parts.map { $0.shape[axis...].reduce(1, *) }
    let row = blocks.reduce(0, +)
    let starts = blocks.indices.map { blocks[..<$0].reduce(0, +) }
    let scalars = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
        if count > 0 {
            let base = Int(bitPattern: buffer.baseAddress!)
            let pairs = outer * parts.count
            parallelChunks(pairs, minimumChunk: max(1, pairs * (1 << 16) / count)) { range in
                let out = UnsafeMutablePointer<T>(bitPattern: base)!
                for pair in range {
                    let (o, p) = pair.quotientAndRemainder(dividingBy: parts.count)
                    guard blocks[p] > 0 else { continue }
                    parts[p].scalars.withUnsafeBufferPointer { src in
                        (out + o * row + starts[p]).initialize(from: src.baseAddress! + o * blocks[p], count: blocks[p])
                    }
                }
            }
        }
        initialized = count
    }
    return Tensor(shape: shape, scalars: scalars)
}

@inlinable
public func gathered<T: Sendable>(_ x: Tensor<T>, indices: Tensor<Int64>, axis: Int) throws -> Tensor<T> {
    let dim = x.shape[axis]
    let outer = x.shape[..<axis].reduce(1, *)
    let inner = x.shape[(axis + 1)...].reduce(1, *)
    let rows = try indices.scalars.map { raw -> Int in
        let i = raw < 0 ? Int(raw) + dim : Int(raw)
        guard i >= 0 && i < dim else {
            throw ComputeError.shapeMismatch("Gather index \(raw) is out of range for axis \(axis) of size \(dim)")
        }
        return i
    }
    let count = try elementCount([outer, rows.count, inner], "Gather output")
    let scalars = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
        x.scalars.withUnsafeBufferPointer { source in
            guard var destination = buffer.baseAddress, let base = source.baseAddress else { return }
            for o in 0..<outer {
                for i in rows {
                    destination.initialize(from: base + (o * dim + i) * inner, count: inner)
                    destination += inner
                }
            }
        }
        initialized = count
    }
    let shape = Array(x.shape[..<axis]) + indices.shape + Array(x.shape[(axis + 1)...])
    return Tensor(shape: shape, scalars: scalars)
}

public enum PadMode: String, Sendable { case constant, reflect, edge }

/// Pads (or crops, for negative amounts) every axis: `pads` holds all begins, then all ends.
public func padded(_ x: Tensor<Float>, pads: [Int], mode: PadMode, value: Float) throws -> Tensor<Float> {
    let rank = x.rank
    guard pads.count == 2 * rank else {
        throw ComputeError.shapeMismatch("Pad needs \(2 * rank) pad values for a rank-\(rank) input, got \(pads.count)")
    }
    guard pads.allSatisfy({ (-ShapeLimits.maxElements...ShapeLimits.maxElements).contains($0) }) else { throw ComputeError.shapeMismatch("Pad \(pads) is out of range") }
    let shape = (0..<rank).map { x.shape[$0] + pads[$0] + pads[rank + $0] }
    guard shape.allSatisfy({ $0 >= 0 }) else { throw ComputeError.shapeMismatch("Pad \(pads) crops \(x.shape) below zero") }
    _ = try elementCount(shape, "Pad output")
    if mode == .reflect, (0..<rank).contains(where: { (pads[$0] > 0 || pads[rank + $0] > 0) && (pads[$0] >= x.shape[$0] || pads[rank + $0] >= x.shape[$0]) }) {
        throw ComputeError.shapeMismatch("reflect Pad \(pads) is larger than the input \(x.shape)")
    }
    let count = shape.reduce(1, *)
    let inStrides = strides(of: x.shape)
    var out = [Float](repeating: value, count: count)
    if count == 0 { return Tensor(shape: shape, scalars: out) }
    var index = [Int](repeating: 0, count: rank)
    for i in 0..<count {
        var offset = 0
        var inside = true
        for axis in 0..<rank {
            var j = index[axis] - pads[axis]
            let n = x.shape[axis]
            if j < 0 || j >= n {
                switch mode {
                case .constant: inside = false
                case .edge: j = j < 0 ? 0 : n - 1
                case .reflect: j = j < 0 ? -j : 2 * (n - 1) - j
                }
            }
            if !inside { break }
            offset += j * inStrides[axis]
        }
        if inside { out[i] = x.scalars[offset] }
        var axis = rank - 1
        while axis >= 0 {
            index[axis] += 1
            if index[axis] < shape[axis] { break }
            index[axis] = 0
            axis -= 1
        }
    }
    return Tensor(shape: shape, scalars: out)
}

/// Slices with per-axis starts/ends/steps already clamped by the caller.
public func sliced<T: Sendable>(_ x: Tensor<T>, starts: [Int], ends: [Int], steps: [Int]) -> Tensor<T> {
    let rank = x.rank
    let shape = (0..<rank).map { a -> Int in
        let s = steps[a]
        return s > 0 ? max(0, (ends[a] - starts[a] + s - 1) / s) : max(0, (starts[a] - ends[a] - s - 1) / -s)
    }
    let count = shape.reduce(1, *)
    let inStrides = strides(of: x.shape)
    var out: [T] = []
    out.reserveCapacity(count)
    if count == 0 { return Tensor(shape: shape, scalars: out) }
    var index = [Int](repeating: 0, count: rank)
    for _ in 0..<count {
        var offset = 0
        for a in 0..<rank { offset += (starts[a] + index[a] * steps[a]) * inStrides[a] }
        out.append(x.scalars[offset])
        var axis = rank - 1
        while axis >= 0 {
            index[axis] += 1
            if index[axis] < shape[axis] { break }
            index[axis] = 0
            axis -= 1
        }
    }
    return Tensor(shape: shape, scalars: out)
}

/// `x` repeated `repeats[a]` times along each axis a (ONNX Tile).
public func tiled<T: Sendable>(_ x: Tensor<T>, repeats: [Int]) throws -> Tensor<T> {
    guard repeats.count == x.rank, repeats.allSatisfy({ $0 >= 0 }) else {
        throw ComputeError.shapeMismatch("Tile needs one repeat count ≥ 0 per axis of \(x.shape), got \(repeats)")
    }
    var shape: [Int] = []
    for (d, r) in zip(x.shape, repeats) {
        let (product, overflow) = d.multipliedReportingOverflow(by: r)
        guard !overflow else { throw ComputeError.shapeMismatch("Tile \(repeats) of \(x.shape) is too large") }
        shape.append(product)
    }
    let count = try elementCount(shape, "Tile output")
    let inStrides = strides(of: x.shape)
    var scalars: [T] = []
    scalars.reserveCapacity(count)
    var index = [Int](repeating: 0, count: shape.count)
    for _ in 0..<count {
        var offset = 0
        for a in 0..<shape.count { offset += (index[a] % x.shape[a]) * inStrides[a] }
        scalars.append(x.scalars[offset])
        var a = shape.count - 1
        while a >= 0 { index[a] += 1; if index[a] < shape[a] { break }; index[a] = 0; a -= 1 }
    }
    return Tensor(shape: shape, scalars: scalars)
}
