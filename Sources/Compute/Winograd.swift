import CKernels

/// Winograd F(2×2, 3×3) convolution for 3×3, stride-1, undilated, ungrouped layers (Lavin & Gray 2015).
/// Each 2×2 output tile costs 16 multiplies instead of 36: the work becomes 16 GEMMs of
/// [OC × IC]·[IC × tiles], with input and output transforms around them. Errors stay at float32 rounding level.
public enum Winograd {
    public static func applies(weightShape: [Int], window: Window2D, group: Int) -> Bool {
        weightShape.count == 4 && weightShape[2] == 3 && weightShape[3] == 3 && group == 1
            && window.strides == (1, 1) && window.dilations == (1, 1)
    }

    /// Whether Winograd beats im2col + GEMM for a layer with this many input channels
    /// (measured on VGG-16: with one input channel the 16 tiny GEMMs lose; see docs/RESULTS.md).
    public static func isWorthwhile(inputChannels: Int) -> Bool { inputChannels >= 16 }

    /// Whether a call gains. With few output tiles (batch 1, the last layers' 2×2 or 4×4 maps) the 16 GEMMs are
    /// matrix–vector products bound by reading the transformed weights, 16/9 the bytes of the kernels, so im2col + one
    /// GEMM over the plain weights is faster. Under 64 input channels the 16 products are shallow: they repay the
    /// transforms from `shallowLeastTileChannels` tiles × input channels over the call's images (AVX2:
    /// `avx2ShallowLeast`).
    public static func pays(images: Int, outputHeight oh: Int, outputWidth ow: Int, inputChannels: Int) -> Bool {
        let tiles = ((oh + 1) / 2) * ((ow + 1) / 2)
        // On odd maps the last tiles compute outputs past the edge: on 3×3 maps 7 of 16 (64 → 256 channels, batch 64,
        // one thread: 2.3 ms through Winograd, 1.45 through im2col); 2×2 maps waste none (2.2 against 2.8 ms).
        guard images * tiles >= 16, Double(oh * ow) >= 0.6 * Double(4 * tiles) else { return false }
        guard inputChannels < 64 else { return true }
        if wc_kernels_isa() == Int32(WC_ISA_AVX2) { return tiles * inputChannels * inputChannels >= avx2ShallowLeast }
        return images * tiles * inputChannels >= shallowLeastTileChannels
    }

    /// With AVX2, under 64 input channels, the least tiles of one image (whatever the batch) times the input channels
    /// squared for which Winograd beats the weights-as-vectors kernel (about 83 GFLOP/s here): the products' depth is
    /// the channels, and the transforms' share falls with both. One-layer models (3×3 + Clip), one thread, µs an image,
    /// least of 1 s, Winograd / direct at batch 1 and 8 (session 47, AVX2 host): below, 16 → 64 on 11×11 (36 tiles,
    /// 9,216) 29.4 / 29.5 and 40.1 / 28.2, on 13×13 (12,544) 52 / 40 and 50 / 38, on 15×15 (SqueezeNet 1.1 64 px's
    /// fire 3 and 4, 16,384) 53.2 / 50.5 and 51.7 / 49.5, on 19×19 (25,600) 107 / 81 and 102 / 80, on 23×23 (36,864)
    /// 132 / 117 and 132 / 116; 32 → 128 on 7×7 (fire 6 and 7, 16,384) 45.4 / 45.1 and 47.3 / 44.4, on 9×9 (25,600)
    /// 77 / 69 and 73 / 68, on 11×11 (36,864) 117 / 104 and 103 / 101; above, 32 → 128 on 13×13 (50,176) 134 / 142 and
    /// 133 / 141, on 15×15 (65,536) 152 / 186 and 145 / 185, 16 → 64 on 31×31 (65,536) 192 / 209 and 191 / 213, 48 →
    /// 96 on 9×9 (57,600) 80 / 79 and 76 / 79, 48 → 192 on 13×13 250 / 317.
    static let avx2ShallowLeast = 40_000

    /// Under 64 input channels, the fewest tiles (2×2 outputs, over every image of the call) times input channels for
    /// which Winograd beats the direct and weights-as-vectors kernels: the transforms cost per tile and channel, the
    /// products' gain grows with both. One-layer models (3×3 + ReLU), batch 1, one thread, µs, least of 2 s, direct →
    /// Winograd (session 42): 32 → 128 on 7×7 (16 tiles, 512) 16.8–17.5 → 18.9–19.4, at batch 2 (1,024) 37.2–37.5 →
    /// 28.4–28.6, batch 3 70–73 → 40–42; 16 → 64 on 11×11 (36 tiles, 576) 12.7 → 13.4–13.6; 32 → 128 on 9×9 (25
    /// tiles, 800) 26.3–26.6 → 25.6–25.7; 16 → 64 on 13×13 (49 tiles, 784) 16.3–16.4 → 14.5–14.8; 48 → 96 on 9×9
    /// (1,200) 30.1–31.0 → 25.9–26.6; 48 → 192 on 13×13 (2,352; SqueezeNet 1.1 224 px's fire 9 and 10) 123–125 →
    /// 79–80, two threads 66 → 51 (onnxruntime, one thread: 112). Until session 42 from 64 tiles whatever the
    /// channels (session 38: 16 → 64 on 55×55 245 → 175, 32 → 128 on 27×27 231 → 143, 16 → 64 on 15×15 20 → 17).
    static let shallowLeastTileChannels = 768

    /// Weights transformed once, U[ξ][oc][ic] = (G·g·Gᵀ)[ξ] for every kernel g = W[oc, ic];
    /// an executor prepares them at load time for constant weights.
    public final class PreparedWeights: @unchecked Sendable {
        public let outputChannels: Int
        public let inputChannels: Int
        /// U as [ξ][oc][ic], or after `packForProduct()` each U[ξ] in the packed form of `PackedWeights`.
        private(set) var u: [Float]
        /// Whether `u` holds the packed form.
        private(set) var isPacked = false
        /// Floats of `u` per ξ.
        var uStride: Int {
            isPacked ? wc_packed_count(Int32(outputChannels), Int32(inputChannels)) : outputChannels * inputChannels
        }

        /// Replaces each U[ξ] by its packed form (`wc_pack_rows`), so the 16 products read it as it stands instead of
        /// OpenBLAS copying it on every call; worth it where `PackedWeights.isWorthwhile`. Call before sharing.
        public func packForProduct() {
            guard !isPacked else { return }
            packRows()
        }

        /// These weights as the products will read them: packed (a copy) where `PackedWeights.isWorthwhile`, so that a
        /// layer gives the same outputs whether its weights were packed at load or not.
        func forProduct() -> PreparedWeights {
            guard PackedWeights.isWorthwhile && !isPacked else { return self }
            let copy = PreparedWeights(outputChannels: outputChannels, inputChannels: inputChannels, u: u)
            copy.packRows()
            return copy
        }

        private init(outputChannels: Int, inputChannels: Int, u: [Float]) {
            self.outputChannels = outputChannels
            self.inputChannels = inputChannels
            self.u = u
        }

        private func packRows() {
            let (oc, ic) = (outputChannels, inputChannels)
            let stride = wc_packed_count(Int32(oc), Int32(ic))
            var packed = [Float](repeating: 0, count: 16 * stride)
            u.withUnsafeBufferPointer { raw in
                packed.withUnsafeMutableBufferPointer { dst in
                    for xi in 0..<16 {
                        wc_pack_rows(Int32(oc), Int32(ic), raw.baseAddress! + xi * oc * ic, ic, dst.baseAddress! + xi * stride)
                    }
                }
            }
            u = packed
            isPacked = true
        }

        public init(_ weight: Tensor<Float>) {
            precondition(weight.rank == 4 && weight.shape[2] == 3 && weight.shape[3] == 3)
            let (oc, ic) = (weight.shape[0], weight.shape[1])
            outputChannels = oc
            inputChannels = ic
            let plane = oc * ic
            u = [Float](unsafeUninitializedCapacity: 16 * plane) { buffer, initialized in
                let address = Int(bitPattern: buffer.baseAddress!)
                weight.scalars.withUnsafeBufferPointer { w in
                    // Kernels split over the workers (the weights of a training step are transformed every step).
                    parallelChunks(plane, minimumChunk: 4096) { kernels in
                    let u = UnsafeMutablePointer<Float>(bitPattern: address)!
                    PreparedWeights.transform(w.baseAddress! + kernels.lowerBound * 9, count: kernels.count, into: u, plane: plane,
                                              first: kernels.lowerBound)
                    }
                }
                initialized = 16 * plane
            }
        }

        /// The same, for a weight [oc, ic, 3, 3] that `rows(range, buffer)` writes a few output channels at a time
        /// (a compressed weight): each worker expands a handful of channels into a small buffer and transforms them,
        /// so the dense weight never exists as a whole.
        public init(outputChannels oc: Int, inputChannels ic: Int, rows: (Range<Int>, UnsafeMutableBufferPointer<Float>) -> Void) {
            outputChannels = oc
            inputChannels = ic
            let plane = oc * ic
            let block = max(1, 16_384 / max(1, ic * 9))
            u = [Float](unsafeUninitializedCapacity: 16 * plane) { buffer, initialized in
                let address = Int(bitPattern: buffer.baseAddress!)
                parallelChunks(oc, minimumChunk: block) { channels in
                    let u = UnsafeMutablePointer<Float>(bitPattern: address)!
                    let scratch = UnsafeMutableBufferPointer<Float>.allocate(capacity: block * ic * 9)
                    defer { scratch.deallocate() }
                    for start in stride(from: channels.lowerBound, to: channels.upperBound, by: block) {
                        let range = start..<min(channels.upperBound, start + block)
                        rows(range, UnsafeMutableBufferPointer(rebasing: scratch[0..<range.count * ic * 9]))
                        PreparedWeights.transform(scratch.baseAddress!, count: range.count * ic, into: u, plane: plane, first: start * ic)
                    }
                }
                initialized = 16 * plane
            }
        }

        /// U[ξ][first + j] for ξ = 0…15 of the `count` kernels whose nine weights each follow one another from `g`.
        /// Blocks of 64 kernels: the nine weights are first gathered into nine rows of 64, so that each of the 16
        /// outputs is a sum of whole rows (vector code) written as one contiguous run per plane. Kernel by kernel,
        /// writing 16 streams whose addresses differ by a power of two, measured 3× slower.
        static func transform(_ g: UnsafePointer<Float>, count: Int, into u: UnsafeMutablePointer<Float>, plane: Int, first: Int) {
            let block = 64
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 9 * block + 3 * block) { local in
                let t = local.baseAddress!, row = t + 9 * block
                var j0 = 0
                while j0 < count {
                    let n = min(block, count - j0)
                    for j in 0..<n { for e in 0..<9 { t[e * block + j] = g[(j0 + j) * 9 + e] } }
                    for r in 0..<4 {
                        // Row r of G·g (three rows of n values: rows 0 and 3 are g's own), then that row times Gᵀ.
                        let (a, b, c): (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)
                        switch r {
                        case 0: (a, b, c) = (t, t + block, t + 2 * block)
                        case 3: (a, b, c) = (t + 6 * block, t + 7 * block, t + 8 * block)
                        default:
                            (a, b, c) = (row, row + block, row + 2 * block)
                            let sign: Float = r == 1 ? 1 : -1
                            for e in 0..<3 {
                                let top = t + e * block, middle = t + (3 + e) * block, bottom = t + (6 + e) * block
                                let out = row + e * block
                                for j in 0..<n { out[j] = 0.5 * (top[j] + sign * middle[j] + bottom[j]) }
                            }
                        }
                        let u0 = u + (r * 4) * plane + first + j0, u1 = u0 + plane, u2 = u1 + plane, u3 = u2 + plane
                        for j in 0..<n {
                            u0[j] = a[j]
                            u1[j] = 0.5 * (a[j] + b[j] + c[j])
                            u2[j] = 0.5 * (a[j] - b[j] + c[j])
                            u3[j] = c[j]
                        }
                    }
                    j0 += n
                }
            }
        }
    }

    /// `input` convolved into `output` (its channels from `firstChannel`); with `oneImagePaths` false, one image's call
    /// takes the three-step path too, not `convolveInRows` or `convolveOneImage` (for tests that compare their bits).
    static func convolve(_ input: Tensor<Float>, weights prepared: PreparedWeights, bias: [Float]?, window: Window2D,
                         activation: Activation, residual: Tensor<Float>? = nil, into output: inout Tensor<Float>,
                         firstChannel: Int = 0, oneImagePaths: Bool = true) {
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let oc = prepared.outputChannels
        let (oh, ow) = (output.shape[2], output.shape[3])
        let (th, tw) = ((oh + 1) / 2, (ow + 1) / 2)
        let tilesPerImage = th * tw
        // Images per chunk: enough tiles for efficient GEMMs, bounded transform buffers.
        // At least one chunk per worker, so the transforms run on every core.
        let workersWanted = ComputeThreads.count
        let perChunk = max(1, min((n + workersWanted - 1) / workersWanted,
                                  min((512 + tilesPerImage - 1) / tilesPerImage, (1 << 20) / max(1, c * tilesPerImage))))
        let chunks = (n + perChunk - 1) / perChunk
        let prepared = prepared.forProduct()
        if prepared.isPacked, oneImagePaths, runsInRows(images: n, inputChannels: c) {
            let split = oneImageSplit(images: n, inputChannels: c, outputChannels: oc, tileRows: th, tileColumns: tw,
                                      workers: workersWanted) ?? .tileRows
            convolveInRows(input, weights: prepared, bias: bias, window: window, activation: activation,
                           residual: residual, into: &output, firstChannel: firstChannel, split: split)
            return
        }
        if prepared.isPacked, oneImagePaths,
           let split = oneImageSplit(images: n, inputChannels: c, outputChannels: oc, tileRows: th, tileColumns: tw,
                                     workers: workersWanted) {
            convolveOneImage(input, weights: prepared, bias: bias, window: window, activation: activation,
                             residual: residual, into: &output, firstChannel: firstChannel, split: split)
            return
        }
        let u = prepared.u
        let (isPacked, uStride) = (prepared.isPacked, prepared.uStride)
        let (pt, pl) = (window.pads.top, window.pads.left)

        withResidual(residual) { residualAddress in
        input.scalars.withUnsafeBufferPointer { inBuf in
            u.withUnsafeBufferPointer { uBuf in
                output.scalars.withUnsafeMutableBufferPointer { outBuf in
                    let inBase = inBuf.baseAddress!, uBase = uBuf.baseAddress!
                    let outAddress = Int(bitPattern: outBuf.baseAddress!)
                    let runChunk = { (chunk: Int, v: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>, splitGemms: Bool) in
                        let out = UnsafeMutablePointer<Float>(bitPattern: outAddress)!
                        let first = chunk * perChunk
                        let images = min(perChunk, n - first)
                        let tiles = images * tilesPerImage
                        // A lone chunk (its GEMMs split over the workers) splits its transforms too: by input
                        // channels, then by output channels.
                        let smallest = { (count: Int) in splitGemms && tiles * count >= 1 << 14 ? 1 : count }
                        parallelChunks(c, minimumChunk: smallest(c)) { channels in
                            inputTransform(inBase, c: c, h: h, w: w, first: first, images: images, th: th, tw: tw,
                                           pt: pt, pl: pl, tiles: tiles, channels: channels, into: v)
                        }
                        let vStride = paddedStride(c * tiles), mStride = paddedStride(oc * tiles)
                        let gemm = { (xi: Int) in
                            if isPacked {
                                wc_gemm_packed_per_point(Int32(oc), Int32(tiles), Int32(c), uBase + xi * uStride, v + xi * vStride,
                                                         tiles, m + xi * mStride, tiles, nil)
                            } else {
                                sgemm(m: oc, n: tiles, k: c, a: uBase + xi * oc * c, lda: c, b: v + xi * vStride, ldb: tiles,
                                      c: m + xi * mStride, ldc: tiles)
                            }
                        }
                        if splitGemms {
                            parallelChunks(16) { range in for xi in range { gemm(xi) } }
                        } else {
                            for xi in 0..<16 { gemm(xi) }
                        }
                        parallelChunks(oc, minimumChunk: smallest(oc)) { outputs in
                            outputTransform(m, oc: oc, outputs: outputs, first: first, images: images, th: th, tw: tw,
                                            oh: oh, ow: ow, tiles: tiles, bias: bias, activation: activation,
                                            residual: UnsafePointer<Float>(bitPattern: residualAddress), into: out,
                                            channels: output.shape[1], firstChannel: firstChannel)
                        }
                    }
                    forEachChunk(chunks, scratch: (16 * paddedStride(c * perChunk * tilesPerImage),
                                                   16 * paddedStride(oc * perChunk * tilesPerImage)), runChunk)
                }
            }
        }
        }
    }

    /// The distance between the 16 transformed blocks, padded by one cache line so that the 16 streams the
    /// transforms read and write do not fall into the same cache set (a power-of-two stride would).
    @usableFromInline
    static func paddedStride(_ count: Int) -> Int { (count + 15) / 16 * 16 + 16 }

    /// V[ξ][ic][tile] = (Bᵀ·d·B)[ξ] for every 4×4 input patch d (zero outside the image), of `channels` (all by default),
    /// a plane at a time in C (`wc_winograd_input`).
    @usableFromInline
    static func inputTransform(_ input: UnsafePointer<Float>, c: Int, h: Int, w: Int, first: Int, images: Int,
                               th: Int, tw: Int, pt: Int, pl: Int, tiles: Int, channels: Range<Int>? = nil,
                               into v: UnsafeMutablePointer<Float>) {
        let stride = paddedStride(c * tiles)
        for img in 0..<images {
            for ch in channels ?? 0..<c {
                wc_winograd_input(input + ((first + img) * c + ch) * h * w, Int32(h), Int32(w), Int32(th), Int32(tw),
                                  Int32(pt), Int32(pl), v + ch * tiles + img * th * tw, stride)
            }
        }
    }

    /// Y = Aᵀ·m·A per tile, plus bias and activation, written into NCHW output, for the output channels `outputs`,
    /// a plane at a time in C (`wc_winograd_output`). A fused Add's residual goes in after the bias, before the clamp,
    /// as the separate nodes would.
    @usableFromInline
    static func outputTransform(_ m: UnsafePointer<Float>, oc: Int, outputs: Range<Int>, first: Int, images: Int,
                                th: Int, tw: Int, oh: Int, ow: Int, tiles: Int, bias: [Float]?, activation: Activation,
                                residual: UnsafePointer<Float>? = nil, into out: UnsafeMutablePointer<Float>,
                                channels: Int? = nil, firstChannel: Int = 0) {
        let st = paddedStride(oc * tiles)
        let (floor, ceiling) = activation.bounds
        for o in outputs {
            for img in 0..<images {
                // The residual has the output's shape; the output may be channels firstChannel… of `channels`.
                let offset = ((first + img) * oc + o) * oh * ow
                let target = ((first + img) * (channels ?? oc) + firstChannel + o) * oh * ow
                wc_winograd_output(m + o * tiles + img * th * tw, st, Int32(th), Int32(tw), bias?[o] ?? 0,
                                   residual.map { $0 + offset }, floor, ceiling, out + target, Int32(oh), Int32(ow))
            }
        }
    }
}

/// Runs `body` with the address of `residual`'s scalars (0 when there is none), for kernels that pass it into
/// their worker closures.
@inlinable
func withResidual<R>(_ residual: Tensor<Float>?, _ body: (Int) -> R) -> R {
    guard let residual else { return body(0) }
    return residual.scalars.withUnsafeBufferPointer { body(Int(bitPattern: $0.baseAddress)) }
}
