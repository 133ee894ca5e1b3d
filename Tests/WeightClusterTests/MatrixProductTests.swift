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

    @Test(arguments: [Case(m: 1, n: 7, k: 5), Case(m: 6, n: 1, k: 9), Case(m: 1, n: 1, k: 4), Case(m: 3, n: 5, k: 2)])
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
                            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: pa.baseAddress!, lda: lda,
                                  b: pb.baseAddress!, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: ldc)
                        }
                    }
                }
                for i in 0..<m {
                    for j in 0..<n {
                        var sum: Float = 0
                        for p in 0..<k {
                            sum += (transA ? a[p * lda + i] : a[i * lda + p]) * (transB ? b[j * ldb + p] : b[p * ldb + j])
                        }
                        let expected = 0.5 * sum + (beta == 0 ? 0 : start[i * ldc + j])
                        #expect(abs(c[i * ldc + j] - expected) < 1e-5, "\(size) transA \(transA) transB \(transB) beta \(beta) at \(i),\(j)")
                    }
                }
            }
        }
    }
}
