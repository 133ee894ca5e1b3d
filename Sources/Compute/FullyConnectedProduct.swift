import CKernels

/// Y = X·Wᵀ (+ bias) for a fully-connected layer whose weight W [N, K] is read as it stands (`wc_gemm_rows`): X [m, K]
/// is turned into Xᵀ, the product runs with the m rows of X as its columns, split over the workers by panels of eight
/// outputs, and is turned back into Y [m, N]. Taken where the AVX-512 product runs and the batch fills a vector
/// (`takes(rows:)`); OpenBLAS's Haswell kernels ran AlexNet's 4096×4096 layers at batch 64 in 23 ms each there, this
/// product in 15. Not on AVX2: one thread, 4096×9216 · 9216×64 and 4096×4096 · 4096×64 ran at 47 and 43 GFLOP/s here
/// against OpenBLAS's 49 and 52 (AMD EPYC).
public enum FullyConnectedProduct {
    /// Whether a product of `rows` rows of X runs here rather than through BLAS.
    public static func takes(rows: Int) -> Bool { wc_kernels_isa() == Int32(WC_ISA_AVX512) && rows >= 16 }

    public static func multiply(_ x: UnsafePointer<Float>, rows m: Int, depth k: Int, weight: UnsafePointer<Float>, outputs n: Int,
                                bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>) {
        let xt = UnsafeMutablePointer<Float>.allocate(capacity: k * m), yt = UnsafeMutablePointer<Float>.allocate(capacity: n * m)
        defer { xt.deallocate(); yt.deallocate() }
        wc_transpose(Int32(m), Int32(k), x, k, xt, m)
        let (xtAddress, ytAddress, wAddress) = (Int(bitPattern: xt), Int(bitPattern: yt), Int(bitPattern: weight))
        let biasAddress = bias.map { Int(bitPattern: $0) }
        let panels = (n + 7) / 8
        parallelChunks(panels, minimumChunk: max(1, panels * PackedWeights.splitMultiplyAdds / max(1, n * m * k))) { range in
            let first = range.lowerBound * 8, count = min(n, range.upperBound * 8) - first
            // The epilogue adds the bias where there is one; the clamp to ±∞ leaves every value (a NaN too) as it is.
            var e = wc_epilogue(bias: biasAddress.map { UnsafePointer<Float>(bitPattern: $0)! + first }, low: -.infinity, high: .infinity)
            withUnsafePointer(to: &e) { e in
                wc_gemm_rows(Int32(count), Int32(m), Int32(k), UnsafePointer<Float>(bitPattern: wAddress)! + first * k, k,
                             UnsafePointer<Float>(bitPattern: xtAddress)!, m,
                             UnsafeMutablePointer<Float>(bitPattern: ytAddress)! + first * m, m, biasAddress == nil ? nil : e)
            }
        }
        wc_transpose(Int32(n), Int32(m), yt, m, y, n)
    }
}
