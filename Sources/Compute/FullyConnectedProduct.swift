import CKernels

/// Y = X·Wᵀ (+ bias) for a fully-connected layer whose weight W [N, K] is read as it stands (`wc_gemm_rows`): X [m, K]
/// is turned into Xᵀ, the product runs with the m rows of X as its columns, split over the workers by panels of eight
/// outputs, and is turned back into Y [m, N]. Taken where the packed product runs (AVX-512 or AVX2: `PackedWeights.isWorthwhile`) and
/// the batch fills a vector (`takes(rows:)`); OpenBLAS's Haswell kernels ran AlexNet's 4096×4096 layers at batch
/// 64 in 23 ms each here, this product in 15.
public enum FullyConnectedProduct {
    /// Whether a product of `rows` rows of X runs here rather than through BLAS.
    public static func takes(rows: Int) -> Bool { PackedWeights.isWorthwhile && rows >= 16 }

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
