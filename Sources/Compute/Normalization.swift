import Foundation

/// Softmax over `axis`, numerically stable (the maximum is subtracted first).
public func softmax(_ x: Tensor<Float>, axis: Int, log: Bool = false) -> Tensor<Float> {
    let n = x.shape[axis]
    let inner = x.shape[(axis + 1)...].reduce(1, *)
    let outer = x.shape[..<axis].reduce(1, *)
    var out = x
    out.scalars.withUnsafeMutableBufferPointer { p in
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * n * inner + i
                var m = -Float.infinity
                for j in 0..<n { m = max(m, p[base + j * inner]) }
                var sum: Float = 0
                for j in 0..<n { sum += Foundation.exp(p[base + j * inner] - m) }
                let logSum = Foundation.log(sum)
                for j in 0..<n {
                    let shifted = p[base + j * inner] - m
                    p[base + j * inner] = log ? shifted - logSum : Foundation.exp(shifted) / sum
                }
            }
        }
    }
    return out
}

/// Inference BatchNormalization over axis 1: y = scale·(x − mean)/√(var + ε) + bias.
public func batchNormalized(_ x: Tensor<Float>, scale: [Float], bias: [Float], mean: [Float], variance: [Float],
                            epsilon: Float) throws -> Tensor<Float> {
    guard x.rank >= 2 else { throw ComputeError.shapeMismatch("BatchNormalization expects N×C… input, got \(x.shape)") }
    let c = x.shape[1]
    guard [scale.count, bias.count, mean.count, variance.count].allSatisfy({ $0 == c }) else {
        throw ComputeError.shapeMismatch("BatchNormalization on \(c) channels got parameters of sizes \([scale.count, bias.count, mean.count, variance.count])")
    }
    let inner = x.shape[2...].reduce(1, *)
    let a = (0..<c).map { scale[$0] / (variance[$0] + epsilon).squareRoot() }
    let b = (0..<c).map { bias[$0] - mean[$0] * a[$0] }
    var out = x
    out.scalars.withUnsafeMutableBufferPointer { p in
        for plane in 0..<(x.shape[0] * c) {
            let ch = plane % c
            for i in 0..<inner { p[plane * inner + i] = p[plane * inner + i] * a[ch] + b[ch] }
        }
    }
    return out
}

/// Local response normalisation across channels (AlexNet).
public func localResponseNormalized(_ x: Tensor<Float>, size: Int, alpha: Float, beta: Float, bias: Float) throws -> Tensor<Float> {
    guard x.rank >= 3 else { throw ComputeError.shapeMismatch("LRN expects N×C×… input, got \(x.shape)") }
    guard size >= 1, size <= ShapeLimits.maxWindow else { throw ComputeError.shapeMismatch("LRN size must be ≥ 1, got \(size)") }
    let (n, c) = (x.shape[0], x.shape[1])
    let inner = x.shape[2...].reduce(1, *)
    let before = (size - 1) / 2, after = size - 1 - before
    var out = x
    x.scalars.withUnsafeBufferPointer { src in
        out.scalars.withUnsafeMutableBufferPointer { dst in
            for b in 0..<n {
                for ch in 0..<c {
                    let lo = max(0, ch - before), hi = min(c - 1, ch + after)
                    for i in 0..<inner {
                        var sum: Float = 0
                        for k in lo...hi { let v = src[(b * c + k) * inner + i]; sum += v * v }
                        let idx = (b * c + ch) * inner + i
                        dst[idx] = src[idx] / Foundation.pow(bias + alpha / Float(size) * sum, beta)
                    }
                }
            }
        }
    }
    return out
}

/// LayerNormalization over the axes from `axis` on: y = (x − mean)/√(var + ε)·scale + bias, where scale and bias
/// hold one value per normalised element or a single value. Mean and variance are accumulated in Double.
public func layerNormalized(_ x: Tensor<Float>, axis: Int, scale: [Float], bias: [Float]?, epsilon: Float) throws -> Tensor<Float> {
    guard axis >= 0 && axis < max(1, x.rank) else { throw ComputeError.shapeMismatch("LayerNormalization axis \(axis) is out of range for \(x.shape)") }
    let inner = x.shape[axis...].reduce(1, *)
    guard scale.count == inner || scale.count == 1, bias.map({ $0.count == inner || $0.count == 1 }) ?? true else {
        throw ComputeError.shapeMismatch("LayerNormalization over \(Array(x.shape[axis...])) got \(scale.count) scales and \(bias?.count ?? 0) biases")
    }
    let rows = inner == 0 ? 0 : x.count / inner
    var out = x
    out.scalars.withUnsafeMutableBufferPointer { p in
        for r in 0..<rows {
            let row = p.baseAddress! + r * inner
            var sum = 0.0
            for i in 0..<inner { sum += Double(row[i]) }
            let mean = sum / Double(inner)
            var squares = 0.0
            for i in 0..<inner { let d = Double(row[i]) - mean; squares += d * d }
            let inverse = 1 / (squares / Double(inner) + Double(epsilon)).squareRoot()
            for i in 0..<inner {
                let normalized = Float((Double(row[i]) - mean) * inverse)
                row[i] = normalized * scale[scale.count == 1 ? 0 : i] + (bias.map { $0[$0.count == 1 ? 0 : i] } ?? 0)
            }
        }
    }
    return out
}

/// Group normalisation of N×C×… input: the channels fall into `groups` groups, each normalised over its channels
/// and spatial positions; then y·scale + bias per channel (`scale`, `bias` of C values, or of `groups` values as
/// GroupNormalization before opset 21 has them). InstanceNormalization is the case groups = C.
public func groupNormalized(_ x: Tensor<Float>, groups: Int, scale: [Float], bias: [Float], epsilon: Float) throws -> Tensor<Float> {
    guard x.rank >= 2 else { throw ComputeError.shapeMismatch("group normalisation expects N×C×… input, got \(x.shape)") }
    let (n, c) = (x.shape[0], x.shape[1])
    guard groups >= 1, groups <= max(1, c), c % groups == 0, [c, groups].contains(scale.count), bias.count == scale.count else {
        throw ComputeError.shapeMismatch("\(groups) groups of \(c) channels with \(scale.count) scales and \(bias.count) biases")
    }
    let inner = x.shape[2...].reduce(1, *), perGroup = c / groups, span = perGroup * inner
    var out = x
    out.scalars.withUnsafeMutableBufferPointer { p in
        for g in 0..<(n * groups) {
            let block = p.baseAddress! + g * span
            var sum = 0.0
            for i in 0..<span { sum += Double(block[i]) }
            let mean = sum / Double(max(1, span))
            var squares = 0.0
            for i in 0..<span { let d = Double(block[i]) - mean; squares += d * d }
            let inverse = 1 / (squares / Double(max(1, span)) + Double(epsilon)).squareRoot()
            for ch in 0..<perGroup {
                let channel = (g % groups) * perGroup + ch
                let k = scale.count == c ? channel : g % groups
                let row = block + ch * inner
                for i in 0..<inner { row[i] = Float((Double(row[i]) - mean) * inverse) * scale[k] + bias[k] }
            }
        }
    }
    return out
}
