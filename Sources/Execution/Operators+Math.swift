import Compute
import Foundation
import ModelGraph

/// Elementwise arithmetic and matrix products (reductions: Operators+Reduce.swift).
extension Operators {
    static func registerMathOperators(_ t: inout [String: Kernel]) {
        t["Add"] = binary({ $0 + $1 }, { $0 &+ $1 })
        t["Sub"] = binary({ $0 - $1 }, { $0 &- $1 })
        t["Mul"] = binary({ $0 * $1 }, { $0 &* $1 })
        // Integer division by 0 gives 0 and Int64.min / -1 wraps (no trap on any input).
        t["Div"] = binary({ $0 / $1 }, { $1 == 0 ? 0 : $1 == -1 ? 0 &- $0 : $0 / $1 })
        t["Pow"] = { _, args in
            [.float(try broadcastBinary(try args.float(0), try args.float(1)) { Foundation.pow($0, $1) })]
        }
        t["Sqrt"] = { _, args in [.float(try args.float(0).mapped { $0.squareRoot() })] }
        t["Exp"] = { _, args in [.float(try args.float(0).mapped { Foundation.exp($0) })] }
        t["Neg"] = { _, args in
            switch try args.any(0) {
            case .float(let x): [.float(x.mapped { -$0 })]
            case .int64(let x): [.int64(Tensor(shape: x.shape, scalars: x.scalars.map { 0 &- $0 }))]
            }
        }
        t["Erf"] = { _, args in [.float(try args.float(0).mapped(errorFunction))] }
        t["Reciprocal"] = { _, args in [.float(try args.float(0).mapped { 1 / $0 })] }
        t["Floor"] = { _, args in [.float(try args.float(0).mapped { $0.rounded(.down) })] }
        t["Ceil"] = { _, args in [.float(try args.float(0).mapped { $0.rounded(.up) })] }
        t["Abs"] = { _, args in
            switch try args.any(0) {
            case .float(let x): [.float(x.mapped { abs($0) })]
            case .int64(let x): [.int64(Tensor(shape: x.shape, scalars: x.scalars.map { $0 == .min ? .min : abs($0) }))]
            }
        }
        t["Min"] = variadic({ min($0, $1) }, { min($0, $1) })
        t["Max"] = variadic({ max($0, $1) }, { max($0, $1) })
        t["Gemm"] = { node, args in [.float(try gemmOp(node, args))] }
        t["MatMul"] = { _, args in [.float(try matMul(try args.float(0), try args.float(1), args))] }
    }

    static func binary(_ f: @escaping @Sendable (Float, Float) -> Float,
                       _ i: @escaping @Sendable (Int64, Int64) -> Int64) -> Kernel {
        return { _, args in
            let a = try args.any(0), b = try args.any(1)
            if case .int64(let x) = a, case .int64(let y) = b {
                return [.int64(try broadcastBinary(x, y, i))]
            }
            return [.float(try broadcastBinary(try args.float(0), try args.float(1), f))]
        }
    }

    /// Min, Max: a broadcasting fold over every input (NaN propagates, as in onnxruntime).
    static func variadic(_ f: @escaping @Sendable (Float, Float) -> Float, _ i: @escaping @Sendable (Int64, Int64) -> Int64) -> Kernel {
        return { _, args in
            let present = (0..<args.count).filter(args.has)
            guard let first = present.first else { throw args.invalid("needs at least one input") }
            if try present.allSatisfy({ try args.any($0).int64Tensor != nil }) {
                return [.int64(try present.dropFirst().reduce(try args.any(first).int64Tensor!) { try broadcastBinary($0, try args.any($1).int64Tensor!, i) })]
            }
            let propagating: @Sendable (Float, Float) -> Float = { $0.isNaN || $1.isNaN ? .nan : f($0, $1) }
            return [.float(try present.dropFirst().reduce(try args.float(first)) { try broadcastBinary($0, try args.float($1), propagating) })]
        }
    }

    /// Y = alpha·op(A)·op(B) + beta·C, C broadcast to [M, N].
    static func gemmOp(_ node: Node, _ args: Arguments) throws -> Tensor<Float> {
        let a = try args.float(0), b = try args.float(1)
        guard a.rank == 2, b.rank == 2 else { throw args.mismatch("Gemm needs 2-D A and B, got \(a.shape) and \(b.shape)") }
        let transA = node.int("transA", default: 0) != 0, transB = node.int("transB", default: 0) != 0
        let alpha = node.float("alpha", default: 1), beta = node.float("beta", default: 1)
        let (m, k) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == kb else {
            throw args.mismatch("A \(a.shape)\(transA ? "ᵀ" : "") and B \(b.shape)\(transB ? "ᵀ" : "") do not multiply (inner sizes \(k) and \(kb))")
        }
        try args.checkShape([m, n])
        // A batch times a [N, K] weight (transB, as PyTorch exports Linear) with no bias or one value per output:
        // the AVX-512 product on the weight as it stands (`FullyConnectedProduct`).
        if !transA, transB, alpha == 1, k > 0, n > 0, FullyConnectedProduct.takes(rows: m) {
            let c = args.has(2) && beta != 0 ? try args.float(2) : nil
            let perOutput = c.map { $0.count == n && ($0.rank == 1 || ($0.rank == 2 && $0.shape[0] == 1)) } ?? true
            if perOutput {
                let bias = c.map { $0.scalars.map { beta * $0 } }
                var y = Tensor<Float>(shape: [m, n], unsafeUninitialized: { _ in })
                a.scalars.withUnsafeBufferPointer { pa in
                    b.scalars.withUnsafeBufferPointer { pb in
                        (bias ?? []).withUnsafeBufferPointer { pbias in
                            y.scalars.withUnsafeMutableBufferPointer { py in
                                FullyConnectedProduct.multiply(pa.baseAddress!, rows: m, depth: k, weight: pb.baseAddress!, outputs: n,
                                                               bias: bias == nil ? nil : pbias.baseAddress, into: py.baseAddress!)
                            }
                        }
                    }
                }
                return y
            }
        }
        var y = Tensor<Float>(zeros: [m, n])
        var accumulate: Float = 0
        if args.has(2) && beta != 0 {
            let c = try args.float(2)
            guard let shape = broadcastShape([m, n], c.shape), shape == [m, n] else {
                throw args.mismatch("C \(c.shape) does not broadcast to [\(m), \(n)]")
            }
            y = try broadcastBinary(y, c) { _, cv in beta * cv }
            accumulate = 1
        }
        a.scalars.withUnsafeBufferPointer { pa in
            b.scalars.withUnsafeBufferPointer { pb in
                y.scalars.withUnsafeMutableBufferPointer { py in
                    parallelSgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                  a: pa.baseAddress!, lda: a.shape[1], b: pb.baseAddress!, ldb: b.shape[1],
                                  beta: accumulate, c: py.baseAddress!, ldc: n)
                }
            }
        }
        return y
    }

    /// numpy.matmul: 1-D operands are promoted, leading (batch) dimensions broadcast.
    static func matMul(_ a0: Tensor<Float>, _ b0: Tensor<Float>, _ args: Arguments) throws -> Tensor<Float> {
        guard a0.rank >= 1, b0.rank >= 1 else { throw args.mismatch("MatMul needs tensors of rank ≥ 1") }
        let a = a0.rank == 1 ? a0.reshaped([1, a0.count]) : a0
        let b = b0.rank == 1 ? b0.reshaped([b0.count, 1]) : b0
        let (m, k) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (kb, n) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        guard k == kb else { throw args.mismatch("MatMul shapes \(a0.shape) and \(b0.shape) do not multiply") }
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        guard let batch = broadcastShape(batchA, batchB) else {
            throw args.mismatch("MatMul batch dimensions \(batchA) and \(batchB) do not broadcast")
        }
        var shape = batch + [m, n]
        try args.checkShape(shape)
        // A stack of rows times one matrix is a single GEMM.
        let flatten = batchB.allSatisfy { $0 == 1 } && batchA == batch
        let count = batch.reduce(1, *)
        var y = Tensor<Float>(zeros: shape)
        a.scalars.withUnsafeBufferPointer { pa in
            b.scalars.withUnsafeBufferPointer { pb in
                y.scalars.withUnsafeMutableBufferPointer { py in
                    if flatten {
                        parallelSgemm(m: count * m, n: n, k: k, a: pa.baseAddress!, lda: k, b: pb.baseAddress!, ldb: n,
                                      c: py.baseAddress!, ldc: n)
                        return
                    }
                    let batchStrides = strides(of: batch)
                    for i in 0..<count {
                        var offA = 0, offB = 0, rem = i
                        for (axis, s) in batchStrides.enumerated() {
                            let idx = rem / s
                            rem %= s
                            let ai = axis - (batch.count - batchA.count), bi = axis - (batch.count - batchB.count)
                            if ai >= 0 && batchA[ai] != 1 { offA = offA * batchA[ai] + idx } else if ai >= 0 { offA *= batchA[ai] }
                            if bi >= 0 && batchB[bi] != 1 { offB = offB * batchB[bi] + idx } else if bi >= 0 { offB *= batchB[bi] }
                        }
                        sgemm(m: m, n: n, k: k, a: pa.baseAddress! + offA * m * k, lda: k, b: pb.baseAddress! + offB * k * n,
                              ldb: n, c: py.baseAddress! + i * m * n, ldc: n)
                    }
                }
            }
        }
        if a0.rank == 1 { shape.remove(at: shape.count - 2) }
        if b0.rank == 1 { shape.removeLast() }
        return y.reshaped(shape)
    }
}
