import CKernels

// im2col + matrix product: the path of every ungrouped convolution that neither Winograd nor the direct
// convolution takes, over a chunk of images or, for large maps, a block of output rows at a time.

/// The output plane size from which a 1×1 convolution runs one GEMM per image on the NCHW buffer instead of
/// gathering several images' columns first: through BLAS, which packs the weights again on every call (measured on
/// MobileNetV2 at 64 px, batch 64: 26% faster overall); on packed weights, from one vector of columns (no copy in, no
/// scatter out: the 1×1 layers of MobileNetV2 at 64 px, batch 64, 6–8% faster over five alternating rounds); and from
/// 9 where the product takes the weights as vectors (AVX-512, `wc_gemm_vectors`: a 3×3 map's nine outputs one block).
/// SqueezeNet 1.1 64 px's 1×1 layers on 3×3 maps, batch 16, one thread: 512 → 64 as a one-layer model 54.4–54.9 →
/// 38.7–38.8 µs (least of 2 s, 2 alternated rounds); in the model, nodes' least over 3 rounds, its four squeeze layers
/// 24–55 → 16–39, expand layers 19–30 → 17–26; the model at batch 64, two threads, 7,002–7,196 → 6,818–6,944 µs.
/// (With blocks of five outputs, two a 3×3 map, the model had been even to 4% slower.) On 2×2 maps, where the weights
/// are larger, each image reading them again lost (MobileNetV2 64 px at batch 64, 3–9%).
@usableFromInline let pointwiseInPlaceColumns = (blas: 1024, packed: 16, vectors: 9)

/// The output plane size from which a convolution on packed weights (no residual) multiplies one image at a time
/// rather than several images' columns gathered: the product then stores each value in place with its bias and clamp,
/// with no pass that scatters a product buffer into the output. SqueezeNet 1.1 at 64 px, batch 64, two threads, each
/// node's least time over 5 alternated rounds: its 3 → 64 stem on 31×31 outputs (961 columns) 2,562 → 2,134 µs; on
/// 15×15 outputs (225 columns) one image at a time was slower (1,980 → 2,203 µs for a 16 → 64 3×3 layer).
@usableFromInline let im2colOneImageColumns = 512

@usableFromInline
func im2colConv2d(_ input: Tensor<Float>, weight: Tensor<Float>, bias: [Float]?, window: Window2D, group: Int,
                  activation: Activation, residual: Tensor<Float>? = nil, packed: PackedWeights? = nil,
                  into output: inout Tensor<Float>, firstChannel: Int = 0) {
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (oc, icg, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
    let (oh, ow) = (output.shape[2], output.shape[3])
    let ocg = oc / group
    let kdim = icg * kh * kw
    let ohw = oh * ow
    // Image i's output channel o at i·outImage + (firstChannel + o)·ohw (the output's own channels, or a range of a
    // wider tensor's); a residual has the output's shape.
    let (outImage, channelOffset) = (output.shape[1] * ohw, firstChannel * ohw)
    let isPointwise = window.isPointwise
    // Images per GEMM: enough columns to keep BLAS efficient, few enough to bound the im2col buffer. A 1×1
    // convolution over a large map (`pointwiseInPlaceColumns`) takes one image at a time (its GEMM reads the NCHW
    // buffer and writes the output in place); over a small map that GEMM has so few columns that BLAS spends its time
    // packing the weights again for each image, so the images are gathered into one matrix as for any other kernel
    // (on packed weights, unless the maps have `im2colOneImageColumns` outputs).
    // Chunks are then made up to half as large where that evens the workers' shares (13 chunks of 5 images on 2 cores:
    // 7 and 6; 16 of 4: 8 and 8).
    let inPlace = isPointwise && (ohw >= (packed == nil ? pointwiseInPlaceColumns.blas : pointwiseInPlaceColumns.packed)
        || packed != nil && ohw >= pointwiseInPlaceColumns.vectors && wc_gemm_vectors(Int32(ocg), Int32(ohw), Int32(kdim)) != 0)
    let oneImage = inPlace || packed != nil && residual == nil && ohw >= im2colOneImageColumns
    let widest = oneImage ? 1 : max(1, min(n, min((1024 + ohw - 1) / ohw, (1 << 22) / max(1, kdim * ohw))))
    let workers = ComputeThreads.count
    // The busiest worker's images: its rounds of chunks times the chunk's images.
    let busiest = { (p: Int) in ((n + p - 1) / p + workers - 1) / workers * p }
    let perChunk = stride(from: widest, through: max(1, widest / 2), by: -1).min { busiest($0) < busiest($1) } ?? widest
    let chunks = (n + perChunk - 1) / perChunk

    withResidual(residual) { residualAddress in
    input.scalars.withUnsafeBufferPointer { inBuf in
        weight.scalars.withUnsafeBufferPointer { wBuf in
            (bias ?? []).withUnsafeBufferPointer { biasBuf in
            output.scalars.withUnsafeMutableBufferPointer { outBuf in
                let inBase = inBuf.baseAddress!, wBase = wBuf.baseAddress!
                let outAddress = Int(bitPattern: outBuf.baseAddress!)
                let epilogue = ConvolutionEpilogue(bias: bias == nil ? nil : biasBuf.baseAddress,
                                                   residual: UnsafePointer(bitPattern: residualAddress), activation: activation)
                func runChunk(_ chunk: Int, _ col: UnsafeMutablePointer<Float>, _ tmp: UnsafeMutablePointer<Float>, _ parallelGemm: Bool) {
                    let out = UnsafeMutablePointer<Float>(bitPattern: outAddress)!
                    let first = chunk * perChunk
                    let count = min(perChunk, n - first)
                    let cols = count * ohw
                    for g in 0..<group {
                        let b: UnsafePointer<Float>
                        let ldb: Int
                        if isPointwise && count == 1 {
                            // A 1×1 convolution of one image is one GEMM on the NCHW buffer as it stands.
                            b = inBase + (first * c + g * icg) * h * w
                            ldb = ohw
                        } else {
                            // A lone chunk (its product split over the workers) splits its copy by channels too.
                            let split = parallelGemm && kdim * cols >= 1 << 16
                            parallelChunks(icg, minimumChunk: split ? 1 : icg) { channels in
                                im2col(inBase, c: c, h: h, w: w, firstImage: first, images: count,
                                       channels: g * icg + channels.lowerBound..<g * icg + channels.upperBound,
                                       window: window, oh: oh, ow: ow, into: col + channels.lowerBound * kh * kw * cols)
                            }
                            b = UnsafePointer(col)
                            ldb = cols
                        }
                        let a = wBase + g * ocg * kdim
                        let blas = parallelGemm ? parallelSgemm : sgemm
                        func gemm(_ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
                            if let packed {
                                packed.multiply(group: g, n: cols, b: b, ldb: ldb, c: c, ldc: ldc, parallel: parallelGemm)
                            } else {
                                blas(false, false, ocg, cols, kdim, 1, a, kdim, b, ldb, 0, c, ldc)
                            }
                        }
                        // Where this group's outputs go in NCHW (`dst`), and their index there (`offset`: the
                        // residual's, which has the output's own channels).
                        let dst = out + first * outImage + channelOffset + g * ocg * ohw
                        let offset = (first * oc + g * ocg) * ohw
                        if count == 1, let packed {
                            // One image, packed weights: the product stores each value with its bias and clamp, or
                            // each worker adds the bias and residual to its part and clamps it (no second pass over
                            // the whole output on one thread, reading the other workers' parts from their caches).
                            packed.multiply(group: g, n: cols, b: b, ldb: ldb, c: dst, ldc: ohw, parallel: parallelGemm,
                                            bias: bias == nil ? nil : biasBuf.baseAddress! + g * ocg, bounds: activation.bounds,
                                            residual: UnsafePointer<Float>(bitPattern: residualAddress).map { $0 + offset })
                            continue
                        }
                        // The product [ocg, image, ohw], then scattered into NCHW with the bias, residual and
                        // activation. One image's product rows are its output channels' planes, so it lands in place.
                        let product = count == 1 ? dst : tmp
                        gemm(product, cols)
                        epilogue.scatter(product, columns: cols, images: count, channels: ocg, planeSize: ohw, to: dst,
                                         imageStride: outImage, firstChannel: g * ocg, offset: offset)
                    }
                }
                // One image a chunk writes its product in place (no product buffer); a 1×1 one also reads its input
                // as it stands (no im2col buffer).
                let scratch = (isPointwise && perChunk == 1 ? 0 : kdim * perChunk * ohw, perChunk == 1 ? 0 : ocg * perChunk * ohw)
                forEachChunk(chunks, scratch: scratch, runChunk)
            }
            }
        }
    }
    }
}

/// Where one image's im2col matrix would exceed `image` floats (1 MB: the stems' 7×7 and 3×3 windows over 224 px
/// inputs, strided layers on 56 px maps), it is built and multiplied a block of output rows at a time, each block about
/// `block` floats so that it stays in L2 (512 KB per core on AMD EPYC) between the copy and the product. The whole
/// matrix of ResNet-18's 7×7 stem at batch 1 is 7.4 MB, written to memory and read back. At batch 1 only for inputs of
/// few channels (the stems), whose whole-image copy splits over the workers by channel (3 channels on 2 workers);
/// SqueezeNet's 16 → 64 3×3 layer on 55×55 maps ran 10% slower in blocks there. Two threads, images/s, whole image /
/// blocks (AMD EPYC, alternated, best of 3): the 7×7 stem alone at batch 1 253 / 424 (onnxruntime 521), at batch 64
/// 172 / 240 (438); a 3 → 32 3×3 stride-2 stem on 224 px at batch 1 2,017 / 2,780 (2,983), batch 64 843 / 960
/// (2,142). SqueezeNet 1.1 at 224 px, batch 64, ms: 3×3 16 → 64 on 55×55 50 / 40–42, the stem 43 / 34.
@usableFromInline let im2colRowBlockFloats = (image: 1 << 18, block: 1 << 16)

/// im2col + the packed product a block of output rows at a time (`im2colRowBlockFloats`), the blocks of every image
/// spread over the workers, each product storing its outputs with the bias and clamp. No residual, one group.
/// `rowsPerBlock` overrides the block's rows (tests).
@usableFromInline
func im2colConv2dInRowBlocks(_ input: Tensor<Float>, weight: Tensor<Float>, bias: [Float]?, window: Window2D,
                             activation: Activation, packed: PackedWeights, into output: inout Tensor<Float>,
                             firstChannel: Int, rowsPerBlock: Int? = nil) {
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let kdim = c * weight.shape[2] * weight.shape[3]
    let (oh, ow) = (output.shape[2], output.shape[3])
    var rows = max(1, min(oh, rowsPerBlock ?? im2colRowBlockFloats.block / max(1, kdim * ow)))
    if rowsPerBlock == nil && n == 1 {
        // One image: as many blocks per worker (55 rows of SqueezeNet's 55×55 maps in 8 blocks of 7, not 7 of 8).
        let workers = ComputeThreads.count
        let evened = ((oh + rows - 1) / rows + workers - 1) / workers * workers  // blocks, a multiple of the workers
        rows = (oh + evened - 1) / evened
    }
    let blocks = (oh + rows - 1) / rows
    let (outImage, channelOffset) = (output.shape[1] * oh * ow, firstChannel * oh * ow)
    var shape = wc_window(window)
    input.scalars.withUnsafeBufferPointer { inBuf in
        (bias ?? []).withUnsafeBufferPointer { biasBuf in
            output.scalars.withUnsafeMutableBufferPointer { outBuf in
                let (inBase, outAddress) = (inBuf.baseAddress!, Int(bitPattern: outBuf.baseAddress!))
                let biasAddress = bias == nil ? nil : Int(bitPattern: biasBuf.baseAddress!)
                withUnsafePointer(to: &shape) { shape in
                    parallelChunks(n * blocks) { items in
                        let col = UnsafeMutablePointer<Float>.allocate(capacity: kdim * rows * ow)
                        defer { col.deallocate() }
                        for item in items {
                            let (image, first) = (item / blocks, item % blocks * rows)
                            let count = min(rows, oh - first)
                            wc_im2col_rows(inBase, Int32(c), Int32(h), Int32(w), Int32(image), 1, 0, Int32(c), shape,
                                           Int32(first), Int32(count), Int32(ow), col)
                            let dst = UnsafeMutablePointer<Float>(bitPattern: outAddress)! + image * outImage
                                + channelOffset + first * ow
                            let bias = biasAddress.flatMap { UnsafePointer<Float>(bitPattern: $0) }
                            packed.multiply(group: 0, n: count * ow, b: col, ldb: count * ow, c: dst, ldc: oh * ow,
                                            parallel: false, bias: bias, bounds: activation.bounds)
                        }
                    }
                }
            }
        }
    }
}

/// Unfolds the receptive fields of `images` images (channels `channels`) into a
/// [channels·kh·kw, images·oh·ow] matrix.
@usableFromInline
func im2col(_ input: UnsafePointer<Float>, c: Int, h: Int, w: Int, firstImage: Int, images: Int, channels: Range<Int>,
            window: Window2D, oh: Int, ow: Int, into col: UnsafeMutablePointer<Float>) {
    if window.isPointwise {
        // A 1×1 window reads each plane as it stands: one copy per plane.
        let (ohw, cols) = (oh * ow, images * oh * ow)
        for (row, ch) in channels.enumerated() {
            for img in 0..<images {
                (col + row * cols + img * ohw).update(from: input + ((firstImage + img) * c + ch) * h * w, count: ohw)
            }
        }
        return
    }
    var shape = wc_window(window)
    wc_im2col(input, Int32(c), Int32(h), Int32(w), Int32(firstImage), Int32(images), Int32(channels.lowerBound),
              Int32(channels.count), &shape, Int32(oh), Int32(ow), col)
}
