#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif
import CKernels

/// Row-major single-precision matrix product C = alpha·op(A)·op(B) + beta·C through the platform BLAS.
/// op(A) is m×k, op(B) is k×n, C is m×n. Runs on the calling thread (BLAS is pinned to one thread).
/// A product with a single row or column (a fully-connected layer at batch 1) is a matrix–vector product (`sgemv`),
/// which reads the matrix once where the general product first copies it into its packed layout: measured with
/// OpenBLAS (Haswell kernels) on a 4096×9216 weight, 14 ms against 31.
@inlinable
public func sgemm(
    transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    if m == 1 || n == 1 {
        matrixVectorProduct(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                            b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        return
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// `sgemm` when m or n is 1, as one `sgemv`: a single row of C is op(B)ᵀ·(the row of op(A)), a single column is
/// op(A)·(the column of op(B)). With beta 0 the output is zeroed first, so whatever C held (it may be uninitialised
/// memory, NaN included) is never read.
@inlinable
func matrixVectorProduct(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    // A dot product per row of a matrix stored by rows against a contiguous vector (a fully-connected layer at batch
    // 1): `wc_dot_rows` on AVX-512 and AVX2, four rows at a time, each row's sum in one order however the rows are
    // split (sgemv's is not). Batch 1, least of 3 alternated runs, sgemv → `wc_dot_rows`: on AVX-512, AlexNet (FMNIST,
    // two 4096 × 4096 layers from memory) one thread 225 → 245 images/s; MobileNetV2 224 px's 1280 → 1000 classifier,
    // node least over 4 rounds, 93.0 → 86.9 µs on one thread, 50.0 → 47.5 on two (C harness, 4096 × 4096 from memory,
    // one thread, µs: sgemv 1,953–1,994, four rows 1,693–1,738, one row 2,061–2,108 with rows 48 bytes past a 64-byte
    // boundary, as a Swift array's are, and 1,479–1,526 on aligned rows); on AVX2 (Zen 3), two threads, least batch,
    // AlexNet 4.67–4.85 → 4.28–4.40 ms, VGG-16 5.06–5.42 → 4.96–5.32.
    if m == 1, transB, !transA || lda == 1, wc_dot_rows_runs() != 0 {
        wc_dot_rows(Int32(n), Int32(k), b, ldb, a, alpha, beta, c, 1)
        return
    }
    if n == 1, m > 1, !transA, transB || ldb == 1, wc_dot_rows_runs() != 0 {
        wc_dot_rows(Int32(m), Int32(k), a, lda, b, alpha, beta, c, ldc)
        return
    }
    if m == 1 {
        // C[0, :] = op(B)ᵀ · op(A)[0, :]; B is stored k×n (transposed in the product) or n×k.
        if beta == 0 { c.update(repeating: 0, count: n) }
        cblas_sgemv(CblasRowMajor, transB ? CblasNoTrans : CblasTrans, Int32(transB ? n : k), Int32(transB ? k : n),
                    alpha, b, Int32(ldb), a, Int32(transA ? lda : 1), beta, c, 1)
    } else {
        // C[:, 0] = op(A) · op(B)[:, 0]; A is stored m×k or k×m (transposed in the product).
        if beta == 0 { for i in 0..<m { c[i * ldc] = 0 } }
        cblas_sgemv(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, Int32(transA ? k : m), Int32(transA ? m : k),
                    alpha, a, Int32(lda), b, Int32(transB ? 1 : ldb), beta, c, Int32(ldc))
    }
}

/// The same product split across all workers: by rows of C when m is large enough, else by columns.
@inlinable
public func parallelSgemm(
    transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    let workers = ComputeThreads.count
    // Below ~2 MFLOP a thread hop costs more than it saves; a matrix–vector product (a fully-connected layer at batch
    // 1) reads its whole matrix for two flops a value, so it splits from 64K values (batch 1, two threads, each node's
    // least over 4 alternated rounds, µs: ResNet-18's 512 → 1000 layer 49 → 34, VGG-16 FMNIST's two 512-wide ones
    // 29 → 18 and 30 → 20).
    let matrixVector = m == 1 || n == 1
    if workers == 1 || m * n * k < (matrixVector ? 1 << 16 : 1 << 20) {
        sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
              b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        return
    }
    let cAddress = Int(bitPattern: c)
    if m >= n {
        parallelChunks(m, minimumChunk: 16) { rows in
            let c = UnsafeMutablePointer<Float>(bitPattern: cAddress)!
            let aStart = transA ? a + rows.lowerBound : a + rows.lowerBound * lda
            sgemm(transA: transA, transB: transB, m: rows.count, n: n, k: k, alpha: alpha, a: aStart, lda: lda,
                  b: b, ldb: ldb, beta: beta, c: c + rows.lowerBound * ldc, ldc: ldc)
        }
    } else {
        parallelChunks(n, minimumChunk: 16) { cols in
            let c = UnsafeMutablePointer<Float>(bitPattern: cAddress)!
            let bStart = transB ? b + cols.lowerBound * ldb : b + cols.lowerBound
            sgemm(transA: transA, transB: transB, m: m, n: cols.count, k: k, alpha: alpha, a: a, lda: lda,
                  b: bStart, ldb: ldb, beta: beta, c: c + cols.lowerBound, ldc: ldc)
        }
    }
}
