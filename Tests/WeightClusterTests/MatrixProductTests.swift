import CKernels
import Compute
import Testing
import _TestSupport

/// `sgemm` against the definition for every transpose combination, including the single-row and single-column
/// products that run as matrix–vector products, with padded leading dimensions.
@Suite struct MatrixProductTests {
    struct Case: Sendable, CustomStringConvertible {
        var m, n, k: Int
        var description: String { "\(m)×\(k) · \(k)×\(n)" }
    }

    /// The small cases run `sgemm` on this thread; the last two, matrix–vector products of 64K values or more, run
    /// `parallelSgemm` split over the workers (by columns of the single row, by rows of the single column).
    @Test(arguments: [Case(m: 1, n: 7, k: 5), Case(m: 6, n: 1, k: 9), Case(m: 1, n: 1, k: 4), Case(m: 3, n: 5, k: 2),
                      Case(m: 1, n: 300, k: 256), Case(m: 300, n: 1, k: 256)])
    func productMatchesDefinition(_ size: Case) {
        let (m, n, k) = (size.m, size.n, size.k)
        for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
            // Stored shapes with one spare column each, so a wrong leading dimension or stride shows.
            let (aRows, aCols) = transA ? (k, m) : (m, k)
            let (bRows, bCols) = transB ? (n, k) : (k, n)
            let (lda, ldb, ldc) = (aCols + 1, bCols + 1, n + 1)
            let a = ConvolutionTests.random(aRows * lda, seed: 31), b = ConvolutionTests.random(bRows * ldb, seed: 32)
            let start = ConvolutionTests.random(m * ldc, seed: 33)
            for beta: Float in [0, 1] {
                // With beta 0, C's old values (NaN here) must not be read.
                var c = beta == 0 ? [Float](repeating: .nan, count: m * ldc) : start
                a.withUnsafeBufferPointer { pa in
                    b.withUnsafeBufferPointer { pb in
                        c.withUnsafeMutableBufferPointer { pc in
                            let product = m * n * k >= 1 << 16 ? parallelSgemm : sgemm
                            product(transA, transB, m, n, k, 0.5, pa.baseAddress!, lda, pb.baseAddress!, ldb, beta,
                                    pc.baseAddress!, ldc)
                        }
                    }
                }
                if m * n * k >= 1 << 16, transB, !transA, wc_dot_rows_runs() != 0 {
                    // Dot products of rows as stored (`wc_dot_rows`, AVX-512 and AVX2), split over the workers or not:
                    // each row's sum in one order, so the same bits. (Elsewhere OpenBLAS's sgemv, whose sums depend on
                    // the split.)
                    var alone = [Float](repeating: .nan, count: m * ldc)
                    if beta != 0 { alone = start }
                    a.withUnsafeBufferPointer { pa in
                        b.withUnsafeBufferPointer { pb in
                            alone.withUnsafeMutableBufferPointer { pc in
                                ComputeThreads.limited(to: 1) {
                                    parallelSgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: pa.baseAddress!,
                                                  lda: lda, b: pb.baseAddress!, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: ldc)
                                }
                            }
                        }
                    }
                    #expect(alone.map(\.bitPattern) == c.map(\.bitPattern), "\(size) transA \(transA) transB \(transB) beta \(beta): one worker")
                }
                for i in 0..<m {
                    for j in 0..<n {
                        var sum: Float = 0
                        for p in 0..<k {
                            sum += (transA ? a[p * lda + i] : a[i * lda + p]) * (transB ? b[j * ldb + p] : b[p * ldb + j])
                        }
                        let expected = 0.5 * sum + (beta == 0 ? 0 : start[i * ldc + j])
                        #expect(abs(c[i * ldc + j] - expected) < 1e-5 * Float(max(1, k / 16)), "\(size) transA \(transA) transB \(transB) beta \(beta) at \(i),\(j)")
                    }
                }
            }
        }
    }
}
