import Compute

/// GPTQ-style error compensation (Frantar et al., 2023) with fixed codebooks: the columns of a weight are assigned
/// one at a time (a whole vector at a time for vector codebooks), and each assignment's error is spread over the
/// columns not yet assigned through the inverse of the damped input Gram matrix H = XᵀX, so that the layer's
/// output ‖(W − Ŵ)Xᵀ‖² grows as little as it can — rather than each weight going to its nearest entry. Scalar
/// codebooks take the columns in descending order of H's diagonal (GPTQ's "act order": the inputs that carry the most
/// energy first, while the most columns remain to absorb their errors).
enum Compensation {
    /// Columns per block: the errors of a block reach the columns after it in one matrix product.
    static let block = 128

    /// Indices of every row of `values` (the canonical rows × columns weight, each run of `rows` using its own
    /// codebook) for input Gram matrix `gram` (columns × columns), written to `indices` (rows × columns/d). False
    /// when H is not positive definite even with 100× GPTQ's damping (the caller then keeps nearest assignment).
    static func assign(_ values: [Float], rows: Int, columns: Int, dimension d: Int, gram: [Float],
                       groups: [(rows: Range<Int>, codebook: FittedCodebook)], into indices: UnsafeMutablePointer<Int32>) -> Bool {
        let n = columns
        // Columns in the order they are assigned; vectors keep their consecutive columns.
        let order = d == 1 ? (0..<n).sorted { gram[$0 * n + $0] > gram[$1 * n + $1] } : Array(0..<n)
        var h = [Float](repeating: 0, count: n * n)
        var mean = 0.0
        for (i, a) in order.enumerated() {
            for (j, b) in order.enumerated() { h[i * n + j] = gram[a * n + b] }
            mean += Double(max(0, h[i * n + i]))
        }
        mean /= Double(max(1, n))
        // An input that is always zero: its weight never matters (GPTQ sets it to zero, its H entry to 1).
        let dead = (0..<n).map { h[$0 * n + $0] <= 0 }
        for i in 0..<n where dead[i] { h[i * n + i] = 1 }
        var u = h, damping = Float(max(mean, 1e-12)) * 0.01, factored = false
        for _ in 0..<3 {
            u = h
            for i in 0..<n { u[i * n + i] += damping }
            if inverseCholeskyFactor(&u, n: n) { factored = true; break }
            damping *= 10
        }
        guard factored else { return false }
        h = []
        // The weight with its columns in assignment order.
        var w = [Float](repeating: 0, count: rows * n)
        for r in 0..<rows { for (j, a) in order.enumerated() where !dead[j] { w[r * n + j] = values[r * n + a] } }
        let vectors = n / d
        let indexAddress = Int(bitPattern: indices)
        w.withUnsafeMutableBufferPointer { w in
            u.withUnsafeBufferPointer { u in
                let wAddress = Int(bitPattern: w.baseAddress!), uBase = u.baseAddress!
                parallelChunks(groups.count) { range in
                    let w = UnsafeMutablePointer<Float>(bitPattern: wAddress)!
                    let indices = UnsafeMutablePointer<Int32>(bitPattern: indexAddress)!
                    for group in groups[range] {
                        compensate(w + group.rows.lowerBound * n, rows: group.rows.count, columns: n, dimension: d,
                                   codebook: group.codebook, u: uBase) { r, v, entry in
                            // Back to the weight's own column order.
                            indices[(group.rows.lowerBound + r) * vectors + (d == 1 ? order[v] : v)] = entry
                        }
                    }
                }
            }
        }
        return true
    }

    /// GPTQ over `rows` rows sharing one codebook; `assigned(row, vector, entry)` receives every choice.
    private static func compensate(_ w: UnsafeMutablePointer<Float>, rows: Int, columns n: Int, dimension d: Int,
                                   codebook fit: FittedCodebook, u: UnsafePointer<Float>, assigned: (Int, Int, Int32) -> Void) {
        let width = max(d, block / d * d)
        let errors = UnsafeMutablePointer<Float>.allocate(capacity: rows * width)
        defer { errors.deallocate() }
        fit.codebook.withUnsafeBufferPointer { cb in
            for b0 in stride(from: 0, to: n, by: width) {
                let b1 = min(n, b0 + width)
                for r in 0..<rows {
                    let row = w + r * n, err = errors + r * width
                    for j in stride(from: b0, to: b1, by: d) {
                        var best = 0, bestDistance = Float.infinity
                        for k in 0..<fit.entries {
                            var s: Float = 0
                            for e in 0..<d { let t = row[j + e] - cb[k * d + e]; s += t * t }
                            if s < bestDistance { bestDistance = s; best = k }
                        }
                        assigned(r, j / d, Int32(best))
                        for e in 0..<d {
                            let c = j + e
                            let x = (row[c] - cb[best * d + e]) / u[c * n + c]
                            err[c - b0] = x
                            let uc = u + c * n
                            for t in (c + 1)..<b1 { row[t] -= x * uc[t] }
                        }
                    }
                }
                // The block's errors reach every later column at once.
                if b1 < n {
                    sgemm(m: rows, n: n - b1, k: b1 - b0, alpha: -1, a: errors, lda: width, b: u + b0 * n + b1, ldb: n,
                          beta: 1, c: w + b1, ldc: n)
                }
            }
        }
    }
}
