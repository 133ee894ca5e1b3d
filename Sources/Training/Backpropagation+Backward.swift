import Compute
import Dispatch
import Execution
import ModelGraph

/// The backward rule of each operator: given the gradient of a node's output, the gradients of its inputs.
extension Backpropagation {
    /// Gradients of every parameter (and of the inputs when asked at init) given the gradient of the logits.
    public func backward(_ tape: Tape, logitsGradient: Tensor<Float>) throws -> [String: Tensor<Float>] {
        var grads: [String: Tensor<Float>] = [logitsName: logitsGradient]
        func accumulate(_ name: String, _ g: Tensor<Float>) {
            guard differentiable.contains(name) else { return }
            if let existing = grads[name] {
                grads[name] = Tensor(shape: existing.shape, scalars: zip(existing.scalars, g.scalars).map { $0 + $1 })
            } else {
                grads[name] = g
            }
        }
        let values = tape.values
        func value(_ name: String, _ node: Node) throws -> Tensor<Float> { try float(values[name], node) }
        for node in plan.reversed() {
            guard let out = node.outputs.first, var dy = grads[out] else { continue }
            if out != logitsName && !retainedGradients.contains(out) { grads[out] = nil }  // consumed: `dy` is now its only owner and may be changed in place
            let wants = node.inputs.map { !$0.isEmpty && differentiable.contains($0) }
            guard wants.contains(true) else { continue }
            let started = profiling ? DispatchTime.now().uptimeNanoseconds : 0
            defer { if profiling { profile["backward/" + node.opType, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 } }
            switch node.opType {
            case "Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Cast":
                if node.opType == "Cast", node.int("to", default: 1) != 1 { break }
                accumulate(node.inputs[0], dy.reshaped(try value(node.inputs[0], node).shape))
            case "Softmax", "LogSoftmax":
                // Only the final one (training skips it; the loss differentiates the logits).
                accumulate(node.inputs[0], dy)
            case "Relu":
                let y = try value(out, node)
                reluBackward(&dy, output: y)
                accumulate(node.inputs[0], dy)
            case "LeakyRelu":
                let x = try value(node.inputs[0], node), alpha = node.float("alpha", default: 0.01)
                accumulate(node.inputs[0], Tensor(shape: dy.shape, scalars: zip(dy.scalars, x.scalars).map { $1 >= 0 ? $0 : alpha * $0 }))
            case "Clip":
                let x = try value(node.inputs[0], node), y = try value(out, node)
                accumulate(node.inputs[0], Tensor(shape: dy.shape, scalars: (0..<dy.count).map { x.scalars[$0] == y.scalars[$0] ? dy.scalars[$0] : 0 }))
            case "Sigmoid":
                let y = try value(out, node)
                accumulate(node.inputs[0], Tensor(shape: dy.shape, scalars: zip(dy.scalars, y.scalars).map { $0 * $1 * (1 - $1) }))
            case "Tanh":
                let y = try value(out, node)
                accumulate(node.inputs[0], Tensor(shape: dy.shape, scalars: zip(dy.scalars, y.scalars).map { $0 * (1 - $1 * $1) }))
            case "Dropout":
                let mask = tape.dropoutMasks[out]
                accumulate(node.inputs[0], mask.map { Tensor(shape: dy.shape, scalars: zip(dy.scalars, $0).map { $0 * $1 }) } ?? dy)
            case "Add", "Sub", "Mul", "Div":
                let a = try value(node.inputs[0], node), b = try value(node.inputs[1], node)
                var da = dy, db = dy
                switch node.opType {
                case "Sub": db = dy.mapped { -$0 }
                case "Mul":
                    da = try broadcastBinary(dy, b) { $0 * $1 }
                    db = try broadcastBinary(dy, a) { $0 * $1 }
                case "Div":
                    da = try broadcastBinary(dy, b) { $0 / $1 }
                    let quotient = try broadcastBinary(a, b) { $0 / ($1 * $1) }
                    db = try broadcastBinary(dy, quotient) { -$0 * $1 }
                default: break
                }
                if wants[0] { accumulate(node.inputs[0], reduced(da, to: a.shape)) }
                if wants[1] { accumulate(node.inputs[1], reduced(db, to: b.shape)) }
            case "Gemm":
                try gemmBackward(node, dy: dy, values: values, wants: wants, accumulate: accumulate)
            case "MatMul":
                let a = try value(node.inputs[0], node), b = try value(node.inputs[1], node)
                guard b.rank == 2, a.rank >= 2 else { throw TrainingError.unsupported(op: "MatMul (batched weight)", node: node.displayName) }
                let (rows, k, n) = (a.count / a.shape[a.rank - 1], b.shape[0], b.shape[1])
                if wants[0] {
                    var da = Tensor<Float>(zeros: a.shape)
                    matmul(dy.scalars, b.scalars, into: &da.scalars, m: rows, n: k, k: n, transA: false, transB: true)
                    accumulate(node.inputs[0], da)
                }
                if wants[1] {
                    var db = Tensor<Float>(zeros: b.shape)
                    matmul(a.scalars, dy.scalars, into: &db.scalars, m: k, n: n, k: rows, transA: true, transB: false)
                    accumulate(node.inputs[1], db)
                }
            case "Conv":
                // A fused Relu/Clip passes the gradient where the output was not clamped; a fused Add's other operand
                // gets it as the Add would; the product gets the rest.
                let (activation, residualSlot) = Executor.fusedEpilogue(of: node)
                if activation != .none { clampedBackward(&dy, output: try value(out, node), low: activation.bounds.low, high: activation.bounds.high) }
                if let slot = residualSlot, wants[slot] {
                    accumulate(node.inputs[slot], reduced(dy, to: try value(node.inputs[slot], node).shape))
                }
                guard wants[0] || wants[1] || (wants.count > 2 && wants[2]) else { break }
                let x = try value(node.inputs[0], node), w = try value(node.inputs[1], node)
                let window = try Executor.window(of: node, input: x.shape, kernel: Array(w.shape.suffix(2)), opset: graph.opsetVersion)
                let g = try conv2dBackward(x, weight: w, window: window, group: node.int("group", default: 1), gradOutput: dy,
                                           inputGradient: wants[0])
                if let dx = g.input { accumulate(node.inputs[0], dx) }
                if wants[1] { accumulate(node.inputs[1], g.weight) }
                if wants.count > 2 && wants[2] { accumulate(node.inputs[2], Tensor(shape: [g.bias.count], scalars: g.bias)) }
            case "MaxPool", "AveragePool":
                let x = try value(node.inputs[0], node)
                guard let k = node.ints("kernel_shape") else { throw TrainingError.unsupported(op: node.opType, node: node.displayName) }
                let window = try Executor.window(of: node, input: x.shape, kernel: k, opset: graph.opsetVersion)
                let kind: PoolKind = node.opType == "MaxPool" ? .max : .average(countIncludePad: node.int("count_include_pad", default: 0) != 0)
                accumulate(node.inputs[0], try pool2dBackward(x, kind: kind, window: window, gradOutput: dy))
            case "GlobalAveragePool":
                let x = try value(node.inputs[0], node)
                let inner = x.count / max(1, x.shape[0] * x.shape[1])
                accumulate(node.inputs[0], Tensor(shape: x.shape, scalars: (0..<x.count).map { dy.scalars[$0 / inner] / Float(inner) }))
            case "Concat":
                let shapes = try node.inputs.map { try value($0, node).shape }
                let axis = node.int("axis", default: 0) < 0 ? node.int("axis", default: 0) + dy.rank : node.int("axis", default: 0)
                let outer = dy.shape[..<axis].reduce(1, *), inner = dy.shape[(axis + 1)...].reduce(1, *)
                var offset = 0
                for (i, shape) in shapes.enumerated() {
                    let width = shape[axis] * inner
                    if wants[i] {
                        var part = [Float](repeating: 0, count: outer * width)
                        for o in 0..<outer { for j in 0..<width { part[o * width + j] = dy.scalars[o * dy.shape[axis] * inner + offset + j] } }
                        accumulate(node.inputs[i], Tensor(shape: shape, scalars: part))
                    }
                    offset += width
                }
            case "Pad":
                guard node.string("mode", default: "constant") == "constant" else {
                    throw TrainingError.unsupported(op: "Pad (\(node.string("mode", default: "")) mode)", node: node.displayName)
                }
                let x = try value(node.inputs[0], node)
                let pads = graph.opsetVersion >= 11 ? values[node.inputs[1]]!.int64Values.map { Int($0) } : (node.ints("pads") ?? [])
                let rank = x.rank, outStrides = strides(of: dy.shape)
                var dx = [Float](repeating: 0, count: x.count)
                var index = [Int](repeating: 0, count: rank)
                for i in 0..<x.count {
                    var o = 0, inside = true
                    for a in 0..<rank {
                        let p = index[a] + (a < pads.count / 2 ? pads[a] : 0)
                        if p < 0 || p >= dy.shape[a] { inside = false; break }
                        o += p * outStrides[a]
                    }
                    if inside { dx[i] = dy.scalars[o] }
                    var a = rank - 1
                    while a >= 0 { index[a] += 1; if index[a] < x.shape[a] { break }; index[a] = 0; a -= 1 }
                }
                accumulate(node.inputs[0], Tensor(shape: x.shape, scalars: dx))
            case "BatchNormalization":
                try batchNormalizationBackward(node, dy: dy, tape: tape, wants: wants, accumulate: accumulate)
            case "Gather":
                guard wants[0] else { break }
                let data = try value(node.inputs[0], node)
                let index = values[node.inputs[1]]!.int64Values.map { Int($0) }
                let axis = node.int("axis", default: 0) < 0 ? node.int("axis", default: 0) + data.rank : node.int("axis", default: 0)
                let outer = data.shape[..<axis].reduce(1, *), inner = data.shape[(axis + 1)...].reduce(1, *), size = data.shape[axis]
                var dd = [Float](repeating: 0, count: data.count)
                for o in 0..<outer {
                    for (j, raw) in index.enumerated() {
                        let i = raw < 0 ? raw + size : raw
                        let src = (o * index.count + j) * inner, dst = (o * size + i) * inner
                        for t in 0..<inner { dd[dst + t] += dy.scalars[src + t] }
                    }
                }
                accumulate(node.inputs[0], Tensor(shape: data.shape, scalars: dd))
            default:
                throw TrainingError.unsupported(op: node.opType, node: node.displayName)
            }
        }
        let wanted = Set(parameters).union(graph.inputs.map(\.name)).union(retainedGradients)
        return grads.filter { wanted.contains($0.key) }
    }

    func gemmBackward(_ node: Node, dy: Tensor<Float>, values: [String: AnyTensor], wants: [Bool],
                              accumulate: (String, Tensor<Float>) -> Void) throws {
        let a = try float(values[node.inputs[0]], node), b = try float(values[node.inputs[1]], node)
        let transA = node.int("transA", default: 0) != 0, transB = node.int("transB", default: 0) != 0
        let alpha = node.float("alpha", default: 1), beta = node.float("beta", default: 1)
        let (m, n) = (dy.shape[0], dy.shape[1]), k = transA ? a.shape[0] : a.shape[1]
        if wants[0] {
            // dA = alpha·dY·op(B)ᵀ, stored as A is (transposed back when transA).
            var da = Tensor<Float>(zeros: a.shape)
            if transA { matmul(b.scalars, dy.scalars, into: &da.scalars, m: k, n: m, k: n, transA: transB, transB: true, bRows: n, aCols: b.shape[1]) }
            else { matmul(dy.scalars, b.scalars, into: &da.scalars, m: m, n: k, k: n, transA: false, transB: !transB, bCols: b.shape[1]) }
            accumulate(node.inputs[0], alpha == 1 ? da : da.mapped { $0 * alpha })
        }
        if wants[1] {
            var db = Tensor<Float>(zeros: b.shape)
            if transB { matmul(dy.scalars, a.scalars, into: &db.scalars, m: n, n: k, k: m, transA: true, transB: transA, aCols: n, bCols: a.shape[1]) }
            else { matmul(a.scalars, dy.scalars, into: &db.scalars, m: k, n: n, k: m, transA: !transA, transB: false, aCols: a.shape[1]) }
            accumulate(node.inputs[1], alpha == 1 ? db : db.mapped { $0 * alpha })
        }
        if wants.count > 2 && wants[2] {
            let c = try float(values[node.inputs[2]], node)
            accumulate(node.inputs[2], reduced(beta == 1 ? dy : dy.mapped { $0 * beta }, to: c.shape))
        }
    }

    func batchNormalizationBackward(_ node: Node, dy: Tensor<Float>, tape: Tape, wants: [Bool],
                                            accumulate: (String, Tensor<Float>) -> Void) throws {
        let x = try float(tape.values[node.inputs[0]], node), gamma = try float(tape.values[node.inputs[1]], node).scalars
        let (n, c) = (x.shape[0], x.shape[1]), inner = x.count / max(1, n * c), count = Float(n * inner)
        let xhat: Tensor<Float>, inverseStd: [Float]
        let training = tape.normalized[node.outputs[0]] != nil
        if let saved = tape.normalized[node.outputs[0]] {
            (xhat, inverseStd) = saved
        } else {
            let mean = try float(tape.values[node.inputs[3]], node).scalars, variance = try float(tape.values[node.inputs[4]], node).scalars
            let epsilon = node.float("epsilon", default: 1e-5)
            inverseStd = variance.map { 1 / ($0 + epsilon).squareRoot() }
            var h = x
            for i in 0..<x.count { let ch = (i / inner) % c; h.scalars[i] = (x.scalars[i] - mean[ch]) * inverseStd[ch] }
            xhat = h
        }
        var sumDy = [Float](repeating: 0, count: c), sumDyXhat = [Float](repeating: 0, count: c)
        for i in 0..<x.count { let ch = (i / inner) % c; sumDy[ch] += dy.scalars[i]; sumDyXhat[ch] += dy.scalars[i] * xhat.scalars[i] }
        if wants[0] {
            var dx = x
            for i in 0..<x.count {
                let ch = (i / inner) % c
                dx.scalars[i] = training
                    ? gamma[ch] * inverseStd[ch] * (dy.scalars[i] - sumDy[ch] / count - xhat.scalars[i] * sumDyXhat[ch] / count)
                    : gamma[ch] * inverseStd[ch] * dy.scalars[i]
            }
            accumulate(node.inputs[0], dx)
        }
        if wants[1] { accumulate(node.inputs[1], Tensor(shape: [c], scalars: sumDyXhat)) }
        if wants[2] { accumulate(node.inputs[2], Tensor(shape: [c], scalars: sumDy)) }
    }
}

/// Sums a broadcast gradient back to `shape` (numpy broadcasting, trailing alignment).
func reduced(_ g: Tensor<Float>, to shape: [Int]) -> Tensor<Float> {
    if g.shape == shape { return g }
    let rank = g.rank
    let aligned = [Int](repeating: 1, count: rank - shape.count) + shape
    let outStrides = strides(of: aligned)
    var out = [Float](repeating: 0, count: max(1, shape.reduce(1, *)))
    var index = [Int](repeating: 0, count: rank)
    for v in g.scalars {
        var o = 0
        for a in 0..<rank where aligned[a] != 1 { o += index[a] * outStrides[a] }
        out[o] += v
        var a = rank - 1
        while a >= 0 { index[a] += 1; if index[a] < g.shape[a] { break }; index[a] = 0; a -= 1 }
    }
    return Tensor(shape: shape, scalars: out)
}

/// C (m×n) = op(A)·op(B) with op(A) m×k and op(B) k×n, through BLAS. `aCols`/`bCols` are the stored row lengths.
func matmul(_ a: [Float], _ b: [Float], into c: inout [Float], m: Int, n: Int, k: Int, transA: Bool, transB: Bool,
            bRows: Int? = nil, aCols: Int? = nil, bCols: Int? = nil) {
    let lda = aCols ?? (transA ? m : k), ldb = bCols ?? (transB ? k : n)
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            c.withUnsafeMutableBufferPointer { pc in
                parallelSgemm(transA: transA, transB: transB, m: m, n: n, k: k, a: pa.baseAddress!, lda: lda,
                              b: pb.baseAddress!, ldb: ldb, c: pc.baseAddress!, ldc: n)
            }
        }
    }
}
