/// A fully-connected layer whose weight columns are shared: y = alpha·W'·S(x) + beta·c, where W' holds k columns
/// and S sums the (optionally scaled) inputs of each column group. Costs rows·in adds for S and rows·out·k
/// multiply-adds for the product, instead of rows·out·in.
public struct SharedColumnProduct: Sendable {
    /// k shared columns: out×k when `transposed` (Gemm transB = 1), else k×out.
    public let shared: Tensor<Float>
    /// Group of each input column (in entries, each in 0..<k).
    public let index: [Int32]
    /// Per-input factor applied before the sum (explicit scales), or nil.
    public let scale: [Float]?
    public let transposed: Bool

    public var inputs: Int { index.count }
    public var groups: Int { transposed ? shared.shape[1] : shared.shape[0] }
    public var outputs: Int { transposed ? shared.shape[0] : shared.shape[1] }

    public init(shared: Tensor<Float>, index: [Int32], scale: [Float]?, transposed: Bool) throws {
        guard shared.rank == 2 else { throw ComputeError.shapeMismatch("shared columns must be 2-D, got \(shared.shape)") }
        self.shared = shared
        self.index = index
        self.scale = scale
        self.transposed = transposed
        let k = transposed ? shared.shape[1] : shared.shape[0]
        guard index.allSatisfy({ $0 >= 0 && Int($0) < k }) else {
            throw ComputeError.shapeMismatch("a column index is outside 0..<\(k)")
        }
        guard scale == nil || scale!.count == index.count else {
            throw ComputeError.shapeMismatch("\(scale!.count) scales for \(index.count) columns")
        }
    }

    /// x is rows×in (any leading shape, last axis in); returns rows×out with the same leading shape.
    /// `bias` (already multiplied by beta) is added when given; it must hold `out` values or broadcast as one.
    public func apply(_ x: Tensor<Float>, alpha: Float = 1, bias: [Float]? = nil) throws -> Tensor<Float> {
        let n = inputs, k = groups, out = outputs
        guard x.rank >= 1, x.shape[x.rank - 1] == n else {
            throw ComputeError.shapeMismatch("input \(x.shape) does not end in \(n) columns")
        }
        let rows = x.count / max(1, n)
        var sums = [Float](repeating: 0, count: rows * k)
        x.scalars.withUnsafeBufferPointer { px in
            sums.withUnsafeMutableBufferPointer { ps in
                let address = Int(bitPattern: ps.baseAddress!)
                index.withUnsafeBufferPointer { pi in
                    parallelChunks(rows, minimumChunk: 4) { range in
                        let ps = UnsafeMutablePointer<Float>(bitPattern: address)!
                        for r in range {
                            let xr = px.baseAddress! + r * n, zr = ps + r * k
                            if let scale {
                                for i in 0..<n { zr[Int(pi[i])] += scale[i] * xr[i] }
                            } else {
                                for i in 0..<n { zr[Int(pi[i])] += xr[i] }
                            }
                        }
                    }
                }
            }
        }
        var y = [Float](repeating: 0, count: rows * out)
        var beta: Float = 0
        if let bias {
            guard bias.count == out || bias.count == 1 else {
                throw ComputeError.shapeMismatch("bias of \(bias.count) values for \(out) outputs")
            }
            for r in 0..<rows { for o in 0..<out { y[r * out + o] = bias.count == 1 ? bias[0] : bias[o] } }
            beta = 1
        }
        sums.withUnsafeBufferPointer { ps in
            shared.scalars.withUnsafeBufferPointer { pw in
                y.withUnsafeMutableBufferPointer { py in
                    parallelSgemm(transB: transposed, m: rows, n: out, k: k, alpha: alpha, a: ps.baseAddress!, lda: k,
                                  b: pw.baseAddress!, ldb: transposed ? k : out, beta: beta, c: py.baseAddress!, ldc: out)
                }
            }
        }
        return Tensor(shape: Array(x.shape.dropLast()) + [out], scalars: y)
    }
}
