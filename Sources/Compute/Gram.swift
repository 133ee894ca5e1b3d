/// Second moments of what a weight multiplies (the Hessian of a layer's squared output error, up to a factor 2),
/// accumulated batch by batch: G += XᵀX, where each row of X is one input vector in the order of a weight row.
public enum Gram {
    /// `count` rows of `width` values (row-major) into the `width`×`width` matrix `g`.
    public static func accumulate(rows x: UnsafePointer<Float>, count: Int, width: Int, into g: UnsafeMutablePointer<Float>) {
        guard count > 0 else { return }
        parallelSgemm(transA: true, m: width, n: width, k: count, a: x, lda: width, b: x, ldb: width, beta: 1, c: g, ldc: width)
    }

    /// The receptive fields of a convolution over `input` [N, C, H, W] (rows of C·kh·kw, a Conv weight row's order)
    /// into the (C·kh·kw)² matrix `g`; a few images at a time, so the unfolded buffer stays small.
    public static func accumulate(convolutionInput input: Tensor<Float>, window: Window2D, into g: UnsafeMutablePointer<Float>) throws {
        guard input.rank == 4 else { throw ComputeError.shapeMismatch("a convolution input is N×C×H×W, got \(input.shape)") }
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        guard let (oh, ow) = window.outputSize(h: h, w: w) else {
            throw ComputeError.shapeMismatch("the window does not fit the \(h)×\(w) input")
        }
        let kdim = c * window.kernel.h * window.kernel.w, ohw = oh * ow
        let perChunk = max(1, min(n, (1 << 22) / max(1, kdim * ohw)))
        let col = UnsafeMutablePointer<Float>.allocate(capacity: kdim * perChunk * ohw)
        defer { col.deallocate() }
        input.scalars.withUnsafeBufferPointer { x in
            for first in stride(from: 0, to: n, by: perChunk) {
                let images = min(perChunk, n - first), columns = images * ohw
                im2col(x.baseAddress!, c: c, h: h, w: w, firstImage: first, images: images, channels: 0..<c,
                       window: window, oh: oh, ow: ow, into: col)
                // col is [kdim, columns]: G += col · colᵀ.
                parallelSgemm(transB: true, m: kdim, n: kdim, k: columns, a: col, lda: columns, b: col, ldb: columns,
                              beta: 1, c: g, ldc: kdim)
            }
        }
    }
}
