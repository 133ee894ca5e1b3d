import CKernels

/// Convolution straight from a bordered copy of the images into the NCHW output (`wc_conv_direct`, AVX-512 or
/// AVX2): the im2col path writes every input once per tap into a matrix, the product copies that matrix again in blocks
/// and writes a buffer that a last pass scatters into the output with the bias and clamp; here each block of outputs
/// is summed in registers from the images and stored once. Each output is the same sum, in the same order, as on the
/// im2col path over the same packed weights, so the two give the same bits.
///
/// A copy holds several images side by side when their rows are short, so that a vector of outputs spans several
/// images' rows (`wc_conv_direct_images`); a copy of one image at stride 1 on AVX-512 may lay its rows flat, S apart,
/// so that a vector spans the end of one row and the start of the next (`flat_pays` in DirectConvolution.c).
enum DirectConvolution {
    /// The least share of the vectors' lanes that must be outputs: below it im2col's product, which has no idle lanes,
    /// is faster (SqueezeNet 1.1's 3×3 layers on 3×3 maps, 12 of 16 lanes: 48 → 192 channels, batch 64, one thread,
    /// 0.84–0.87 ms through im2col, 1.28–1.36 direct; on 7×7 maps, 14 of 16 lanes, 2.1–2.2 → 1.87–1.89 ms).
    static let leastUseful = 0.8

    /// With AVX2 (eight lanes, four channels at a time) only at batch 1 and on inputs of at most this many channels:
    /// elsewhere im2col's product was as fast or faster. Two threads, batch 1, each node's least time over batches
    /// alternated in one process (10–15 s), µs, im2col → direct: ResNet-18 64 px's 7×7
    /// stem 199 → 138, at 224 px 1,730 → 1,628; SqueezeNet 1.1 64 px's 16 → 64 3×3 layers on 15×15 42 → 33, its stem
    /// 39 → 36 (224 px: 398 → 417, its 16 → 64 layers on 55×55 unchanged); MobileNetV2 224 px's stem 255 → 237.
    /// Deeper inputs lost: 32 → 128 on 27×27 and 48 → 192 on 13×13 346 → 441 and 183 → 232, ResNet-18's 3×3 stride-2
    /// layers at 224 px 830–900 → 1,100–1,780, 128 → 128 on 8×8 116 → 124; at batch 64 SqueezeNet 1.1 64 px 22.3 →
    /// 23.3 ms (least batch). Stems are the exception (`avx2StemChannels`).
    static let avx2MostChannels = 16

    /// With AVX2 at any batch: inputs of at most this many channels (an image's colours) on outputs of at most
    /// `avx2StemOutputs` values a map. Two threads, batch 64, each node's least time over 3 × 3 profiled batches, µs,
    /// im2col → direct: ResNet-18 64 px's 7×7 stem 11,434 → 8,994, MobileNetV2 64 px's 1,466 → 1,229, SqueezeNet 1.1
    /// 64 px's 2,979 → 2,755 (all 32×32 or 31×31 outputs); on 112×112 outputs, batch 16, MobileNetV2 224 px's
    /// 3,342 → 3,528, EfficientNet-Lite0's 4,435 → 5,022, ResNet-18 224 px's 31,501 → 36,062.
    static let avx2StemChannels = 4
    static let avx2StemOutputs = 32 * 32

    /// Whether a layer with packed weights takes this path: one group, strides of 1 or 2 with AVX-512 (with AVX2 see
    /// `avx2MostChannels`, `avx2StemChannels` and `weightsAsVectors`), enough useful lanes, and a copy whose offsets
    /// fit in 32 bits. A 1×1 convolution with stride 1 and no padding reads its input as it stands on the im2col path
    /// already.
    static func applies(inputShape: [Int], weightShape: [Int], window: Window2D, group: Int, outputSize: (h: Int, w: Int)) -> Bool {
        // Sizes the kernel's 32-bit arithmetic holds (the copy's size is checked below).
        guard group == 1, inputShape[1] < 1 << 24, inputShape[3] < 1 << 24 else { return false }
        let pointwise = weightShape[2] == 1 && weightShape[3] == 1 && window.strides == (1, 1) && window.pads == (0, 0, 0, 0)
        var shape = wc_window(window)
        guard !pointwise, wc_conv_direct_runs(&shape) != 0 else { return false }
        if wc_kernels_isa() == Int32(WC_ISA_AVX512),
           weightsAsVectors(batch: inputShape[0], inputWidth: inputShape[3], inputChannels: inputShape[1],
                            weightShape: weightShape, window: window, outputSize: outputSize) {
            return wc_conv_padded_count(Int32(inputShape[1]), Int32(inputShape[3]), &shape, Int32(outputSize.h),
                                        Int32(outputSize.w), 1) < Int(Int32.max)
        }
        if wc_kernels_isa() == Int32(WC_ISA_AVX2) {
            if weightsAsVectors(batch: inputShape[0], inputWidth: inputShape[3], inputChannels: inputShape[1],
                                weightShape: weightShape, window: window, outputSize: outputSize) {
                let images = imagesPerCopy(batch: inputShape[0], w: inputShape[3], window: window, outputSize: outputSize,
                                           vectors: true)
                return wc_conv_padded_count(Int32(inputShape[1]), Int32(inputShape[3]), &shape, Int32(outputSize.h),
                                            Int32(outputSize.w), Int32(images)) < Int(Int32.max)
            }
            let stem = inputShape[1] <= avx2StemChannels && outputSize.h * outputSize.w <= avx2StemOutputs
            guard stem || inputShape[0] == 1 && inputShape[1] <= avx2MostChannels else { return false }
        }
        let (w, oh, ow) = (Int32(inputShape[3]), Int32(outputSize.h), Int32(outputSize.w))
        let images = imagesPerCopy(batch: inputShape[0], w: inputShape[3], window: window, outputSize: outputSize,
                                   vectors: false)
        return wc_conv_direct_useful(Int32(inputShape[1]), w, &shape, oh, ow, Int32(images)) >= leastUseful
            && wc_conv_padded_count(Int32(inputShape[1]), w, &shape, oh, ow, Int32(images)) < Int(Int32.max)
    }

    /// A buffer for the bordered copy, on a cache line: its rows are whole vectors (but for one image's flat rows, S
    /// apart), so the loads under a window's first column (and, at stride 2, its second) do not straddle two lines.
    static func alignedCopy(_ count: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Float>.stride, alignment: 64)
            .assumingMemoryBound(to: Float.self)
    }

    /// Below this share of useful lanes in the vectors of outputs (one image a copy), AVX-512 takes the weights as
    /// vectors at batch 1 (`weightsAsVectors`).
    static let vectorsBelowUseful = 0.9

    /// Whether the kernel takes the weights as vectors (`wc_conv_direct_vectors`), every lane an output: with AVX2 at
    /// any batch, from 100 weights per output where they fit in half of L2 or the maps have 256 outputs, or a copy of
    /// several images on small maps (`imagesPerCopy`) has 64; with AVX-512 at batch 1, on rows of 4 outputs or more
    /// whose vectors of outputs would leave a tenth of their lanes idle or more (`vectorsBelowUseful`), from 64
    /// weights per output and up to 1 MB of them.
    static func weightsAsVectors(batch n: Int, inputWidth w: Int, inputChannels c: Int, weightShape: [Int],
                                 window: Window2D, outputSize: (h: Int, w: Int)) -> Bool {
        let images = wc_conv_vectors_images(Int32(clamping: outputSize.h), Int32(clamping: outputSize.w), Int32(clamping: n))
        guard wc_conv_direct_vectors(Int32(clamping: c * weightShape[2] * weightShape[3]), Int32(clamping: weightShape[0]),
                                     Int32(clamping: outputSize.h), Int32(clamping: outputSize.w), images) != 0 else { return false }
        guard wc_kernels_isa() == Int32(WC_ISA_AVX512) else { return true }
        var shape = wc_window(window)
        return n == 1 && wc_conv_direct_useful(Int32(clamping: c), Int32(clamping: w), &shape, Int32(clamping: outputSize.h),
                                               Int32(clamping: outputSize.w), 1) < vectorsBelowUseful
    }

    static func imagesPerCopy(batch n: Int, w: Int, window: Window2D, outputSize: (h: Int, w: Int), vectors: Bool) -> Int {
        // The weights as vectors leave no lane idle: one image a copy, but on small maps with AVX2, where a block's
        // outputs at one position of several images sum only the taps that read the images (`wc_conv_vectors_images`).
        if vectors {
            return Int(wc_conv_vectors_images(Int32(clamping: outputSize.h), Int32(clamping: outputSize.w), Int32(clamping: n)))
        }
        var shape = wc_window(window)
        return Int(wc_conv_direct_images(Int32(w), &shape, Int32(outputSize.h), Int32(outputSize.w), Int32(min(n, 64))))
    }

    static func convolve(_ input: Tensor<Float>, packed: PackedWeights, bias: [Float]?, window: Window2D,
                         activation: Activation, residual: Tensor<Float>?, into output: inout Tensor<Float>,
                         firstChannel: Int = 0) {
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (oc, oh, ow) = (packed.outputChannels, output.shape[2], output.shape[3])
        let vectors = weightsAsVectors(batch: n, inputWidth: w, inputChannels: c,
                                       weightShape: [oc, c, window.kernel.h, window.kernel.w], window: window,
                                       outputSize: (oh, ow))
        let perCopy = imagesPerCopy(batch: n, w: w, window: window, outputSize: (oh, ow), vectors: vectors)
        let copies = (n + perCopy - 1) / perCopy
        var shape = wc_window(window)
        let padded = wc_conv_padded_count(Int32(c), Int32(w), &shape, Int32(oh), Int32(ow), Int32(perCopy))
        let paddedRows = Int(wc_conv_padded_rows(&shape, Int32(oh)))
        let bounds = activation.bounds
        let panels = (oc + 7) / 8
        let multiplyAdds = oc * c * window.kernel.h * window.kernel.w * oh * ow * perCopy
        // Image i's output channel o at i·outImage + (firstChannel + o)·oh·ow: the output's own channels, or a range of
        // a wider tensor's (then without a residual, which has the output's shape and the same image stride).
        let (inImage, outImage) = (c * h * w, output.shape[1] * oh * ow)
        let channelOffset = firstChannel * oh * ow
        withAddresses(input, bias, residual, &output) { inAddress, biasAddress, residualAddress, outAddress in
            // Bordered rows [row, row + rows) of images [first, first + count) into `copy`; then output rows
            // [row, row + rows) of their output channels [from, from + channels).
            let pad = { (first: Int, count: Int, row: Int, rows: Int, copy: UnsafeMutablePointer<Float>) in
                var shape = shape
                wc_conv_pad(UnsafePointer<Float>(bitPattern: inAddress)! + first * inImage, inImage, Int32(count),
                            Int32(c), Int32(h), Int32(w), &shape, Int32(oh), Int32(ow), Int32(row), Int32(rows), copy)
            }
            let run = { (first: Int, count: Int, copy: UnsafePointer<Float>, from: Int, channels: Int, row: Int, rows: Int) in
                var shape = shape
                wc_conv_direct(copy, Int32(count), Int32(c), Int32(h), Int32(w), &shape, Int32(oh), Int32(ow),
                               packed.panels(group: 0), Int32(from), Int32(channels), Int32(row), Int32(rows),
                               UnsafePointer(bitPattern: biasAddress),
                               UnsafePointer<Float>(bitPattern: residualAddress).map { $0 + first * outImage }, outImage,
                               bounds.low, bounds.high, vectors ? 1 : 0,
                               UnsafeMutablePointer<Float>(bitPattern: outAddress)! + first * outImage + channelOffset)
            }
            if copies >= ComputeThreads.count || multiplyAdds < PackedWeights.splitMultiplyAdds {
                // Whole copies per worker, each into its own buffer.
                parallelChunks(copies) { range in
                    let copy = DirectConvolution.alignedCopy(padded)
                    defer { copy.deallocate() }
                    for index in range {
                        let first = index * perCopy, count = min(perCopy, n - first)
                        pad(first, count, 0, paddedRows, copy)
                        run(first, count, copy, 0, oc, 0, oh)
                    }
                }
                return
            }
            // Fewer copies than workers (batch 1): each worker makes its own copy of the bordered rows it reads, then
            // computes its outputs from it, in one region. The outputs are split by rows where the weights are smaller
            // than the copy (every worker reads all of them: the stems, 3 → 32 or 64 channels on 224 px maps), else by
            // panels of eight channels (each reads its own, and the whole copy). A copy shared by the workers cost a
            // second region and each worker reading the half that the other had written from the other core's cache
            // (SqueezeNet 1.1's 16 → 64 3×3 layer on 15×15 maps, one-layer model at batch 1, µs, medians of 3 and 5
            // alternated runs: 48–50 on one thread, 52–53 on two with a shared copy, 37–40 on two with their own).
            let byRows = oc * c * window.kernel.h * window.kernel.w < padded
            for index in 0..<copies {
                let first = index * perCopy, count = min(perCopy, n - first)
                parallelChunks(byRows ? oh : panels, evenly: !byRows) { range in
                    let copy = DirectConvolution.alignedCopy(padded)
                    defer { copy.deallocate() }
                    if byRows {
                        // Bordered rows from the first output row's to past the last one's window.
                        let top = range.lowerBound * window.strides.h
                        let bottom = min(paddedRows, (range.upperBound - 1) * window.strides.h
                                             + (window.kernel.h - 1) * window.dilations.h + 1)
                        pad(first, count, top, bottom - top, copy)
                        run(first, count, copy, 0, oc, range.lowerBound, range.count)
                    } else {
                        pad(first, count, 0, paddedRows, copy)
                        let from = range.lowerBound * 8
                        run(first, count, copy, from, min(oc, range.upperBound * 8) - from, 0, oh)
                    }
                }
            }
        }
    }
}

/// 1×1 convolutions (stride 1, no padding) with AVX2 and the weights as vectors (`wc_conv_pointwise_vectors`): three
/// panels × four outputs a block, each output's input broadcast straight from the NCHW input, on maps of 4, 8, 12 or 16
/// outputs (whole blocks of four), where the product's blocks of 16 or 24 columns fit badly. C harness, one thread,
/// GFLOP/s, batch 64, in place (one product per image) / images gathered / weights as vectors: 4×4 maps 384 → 64
/// 57 / 65 / 89, 576 → 96 57 / 64 / 94, 64 → 384 55 / 64 / 70, 96 → 576 56 / 76 / 76; 2×2 maps 960 → 160 89 / 64 / 95,
/// 64 → 384 30 / 31 / 45. Not on wider maps into many channels, where each group of panels reads the image's inputs
/// again from L2 (7×7, 4 images, 1152 → 192 77 / 77 / 58; 8×8 64 → 384 82 / 69 / 59), under 64 input channels (16×16
/// 32 → 16 43 / 33 / 25), nor at batch 1, where the product splits over the workers more evenly (MobileNetV2 64 px
/// 0.73 → 0.78 ms, least batch). MobileNetV2 64 px at batch 64, two threads, batches alternated in one process, least
/// and median ms: 32.4 / 35.5 → 30.6 / 33.7 and 32.9 / 44.0 → 31.1 / 42.5.
enum PointwiseVectors {
    static func applies(inputShape: [Int], window: Window2D, group: Int) -> Bool {
        guard wc_kernels_isa() == Int32(WC_ISA_AVX2), group == 1, window.isPointwise, inputShape.count == 4 else { return false }
        let (n, c, plane) = (inputShape[0], inputShape[1], inputShape[2] * inputShape[3])
        return n > 1 && c >= 64 && (plane == 4 || plane == 8 || plane == 12 || plane == 16) && c < Int(Int32.max) / 16
    }

    static func convolve(_ input: Tensor<Float>, packed: PackedWeights, bias: [Float]?, activation: Activation,
                         residual: Tensor<Float>?, into output: inout Tensor<Float>, firstChannel: Int = 0) {
        let (n, c, plane, oc) = (input.shape[0], input.shape[1], input.shape[2] * input.shape[3], packed.outputChannels)
        let groups = (oc + 23) / 24  // three panels each
        let (inImage, outImage, channelOffset) = (c * plane, output.shape[1] * plane, firstChannel * plane)
        let bounds = activation.bounds
        withAddresses(input, bias, residual, &output) { inAddress, biasAddress, residualAddress, outAddress in
            // One image's group of panels a piece; pieces of at least 2¹⁶ multiply-adds a worker. Group by group, each
            // group's weights (c · 24 floats: 92 KB at 960 channels) read from L2 by every image, not from L3.
            parallelChunks(n * groups, minimumChunk: max(1, (1 << 16) / max(1, 24 * c * plane))) { items in
                // The piece's items a run of images of one group at a time (one call each).
                var item = items.lowerBound
                while item < items.upperBound {
                    let (image, group) = (item % n, item / n)
                    let images = min(n - image, items.upperBound - item), first = group * 24
                    wc_conv_pointwise_vectors(UnsafePointer<Float>(bitPattern: inAddress)! + image * inImage, inImage,
                                              Int32(images), Int32(c), plane, packed.panels(group: 0), Int32(first),
                                              Int32(min(24, oc - first)), UnsafePointer(bitPattern: biasAddress),
                                              UnsafePointer<Float>(bitPattern: residualAddress).map { $0 + image * outImage },
                                              outImage, bounds.low, bounds.high,
                                              UnsafeMutablePointer<Float>(bitPattern: outAddress)! + image * outImage + channelOffset)
                    item += images
                }
            }
        }
    }
}

/// The addresses of the input's, bias's (0 when nil), residual's (0 when nil) and output's values, for the parallel
/// bodies (which take integers, not borrowed pointers).
func withAddresses(_ input: Tensor<Float>, _ bias: [Float]?, _ residual: Tensor<Float>?, _ output: inout Tensor<Float>,
                   _ body: (_ input: Int, _ bias: Int, _ residual: Int, _ output: Int) -> Void) {
    withResidual(residual) { residualAddress in
        input.scalars.withUnsafeBufferPointer { inBuf in
            (bias ?? []).withUnsafeBufferPointer { biasBuf in
                output.scalars.withUnsafeMutableBufferPointer { outBuf in
                    body(Int(bitPattern: inBuf.baseAddress), bias == nil ? 0 : Int(bitPattern: biasBuf.baseAddress),
                         residualAddress, Int(bitPattern: outBuf.baseAddress))
                }
            }
        }
    }
}
