#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif

/// The upper-triangular U with H⁻¹ = UᵀU of a symmetric positive-definite `n`×`n` matrix `h` (row-major), written
/// over it (strict lower part zero): the factor GPTQ's error compensation walks along. Returns false, `h` then
/// unspecified, when `h` is not positive definite.
public func inverseCholeskyFactor(_ h: inout [Float], n: Int) -> Bool {
    precondition(h.count == n * n)
    guard n > 0 else { return true }
    // A symmetric matrix reads the same row- or column-major, so LAPACK's column-major 'L' calls serve.
    var size = Int32(n), info: Int32 = 0
    var lower = CChar(UInt8(ascii: "L"))
    h.withUnsafeMutableBufferPointer { a in
        lapack(potrf: true, &lower, &size, a.baseAddress!, &info)             // H = L Lᵀ
        guard info == 0 else { return }
        lapack(potrf: false, &lower, &size, a.baseAddress!, &info)            // H⁻¹, in the lower triangle
        guard info == 0 else { return }
        // H⁻¹ = L Lᵀ (potrf reads the lower triangle only); column-major L is row-major Lᵀ = U.
        lapack(potrf: true, &lower, &size, a.baseAddress!, &info)
    }
    guard info == 0 else { return false }
    // Column-major strict upper = row-major strict lower: what is left of H there is cleared.
    for i in 0..<n { for j in 0..<i { h[i * n + j] = 0 } }
    return true
}

@inline(__always)
private func lapack(potrf: Bool, _ uplo: inout CChar, _ n: inout Int32, _ a: UnsafeMutablePointer<Float>, _ info: inout Int32) {
    var lda = n
    #if canImport(Accelerate)
    var n_ = __CLPK_integer(n), lda_ = __CLPK_integer(lda), info_ = __CLPK_integer(0)
    if potrf { spotrf_(&uplo, &n_, a, &lda_, &info_) } else { spotri_(&uplo, &n_, a, &lda_, &info_) }
    info = Int32(info_)
    #else
    if potrf { spotrf_(&uplo, &n, a, &lda, &info) } else { spotri_(&uplo, &n, a, &lda, &info) }
    #endif
}
