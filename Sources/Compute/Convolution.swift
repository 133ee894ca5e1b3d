import CKernels
/// Geometry of a 2D convolution or pooling window.
public struct Window2D: Sendable, Equatable {
    public var kernel: (h: Int, w: Int)
    public var strides: (h: Int, w: Int) = (1, 1)
    public var dilations: (h: Int, w: Int) = (1, 1)
    /// Padding as ONNX orders it: top, left, bottom, right.
    public var pads: (top: Int, left: Int, bottom: Int, right: Int) = (0, 0, 0, 0)
    public var ceilMode = false

    public init(kernel: (h: Int, w: Int), strides: (h: Int, w: Int) = (1, 1), dilations: (h: Int, w: Int) = (1, 1),
                pads: (top: Int, left: Int, bottom: Int, right: Int) = (0, 0, 0, 0), ceilMode: Bool = false) {
        self.kernel = kernel
        self.strides = strides
        self.dilations = dilations
        self.pads = pads
        self.ceilMode = ceilMode
    }

    public static func == (l: Window2D, r: Window2D) -> Bool {
        l.kernel == r.kernel && l.strides == r.strides && l.dilations == r.dilations && l.pads == r.pads
            && l.ceilMode == r.ceilMode
    }

    /// A 1×1 window at stride 1 without padding: each output reads the input value under it (a matrix product as it
    /// stands, no im2col).
    public var isPointwise: Bool { kernel == (1, 1) && strides == (1, 1) && pads == (0, 0, 0, 0) }

    /// Throws unless kernel, strides and dilations are in 1…`ShapeLimits.maxWindow` and pads in 0…that, so the
    /// output-size arithmetic cannot overflow.
    public func validate() throws {
        let positive = [kernel.h, kernel.w, strides.h, strides.w, dilations.h, dilations.w]
        let nonNegative = [pads.top, pads.left, pads.bottom, pads.right]
        guard positive.allSatisfy({ $0 >= 1 && $0 <= ShapeLimits.maxWindow }),
              nonNegative.allSatisfy({ $0 >= 0 && $0 <= ShapeLimits.maxWindow }) else {
            throw ComputeError.shapeMismatch("window kernel \(kernel), strides \(strides), dilations \(dilations) must be 1…\(ShapeLimits.maxWindow) and pads \(pads) 0…\(ShapeLimits.maxWindow)")
        }
    }

    /// Output size for an input of `h`×`w`; nil when the window does not fit.
    public func outputSize(h: Int, w: Int) -> (h: Int, w: Int)? {
        func size(_ n: Int, _ k: Int, _ s: Int, _ d: Int, _ p0: Int, _ p1: Int) -> Int {
            let span = n + p0 + p1 - d * (k - 1) - 1
            if span < 0 { return 0 }
            var out = (ceilMode ? (span + s - 1) / s : span / s) + 1
            // ONNX/PyTorch: the last window must start inside the input or the left padding.
            if ceilMode && (out - 1) * s >= n + p0 { out -= 1 }
            return out
        }
        let oh = size(h, kernel.h, strides.h, dilations.h, pads.top, pads.bottom)
        let ow = size(w, kernel.w, strides.w, dilations.w, pads.left, pads.right)
        return oh > 0 && ow > 0 ? (oh, ow) : nil
    }

    /// Calls `body` with the index (iy·w + ix) of each cell of output (oy, ox)'s window that lies inside an h×w input,
    /// in row-major order.
    @inlinable
    func forEachCell(oy: Int, ox: Int, h: Int, w: Int, _ body: (Int) -> Void) {
        let y0 = oy * strides.h - pads.top, x0 = ox * strides.w - pads.left
        for ki in 0..<kernel.h {
            let iy = y0 + ki * dilations.h
            if iy < 0 || iy >= h { continue }
            for kj in 0..<kernel.w {
                let ix = x0 + kj * dilations.w
                if ix < 0 || ix >= w { continue }
                body(iy * w + ix)
            }
        }
    }

    /// The divisor of an average pool's output (oy, ox) over an h×w input whose window holds `inside` cells of the
    /// input: those cells, or with `includePad` the window's cells inside the padded input (not past it).
    @inlinable
    func averageDivisor(oy: Int, ox: Int, h: Int, w: Int, inside: Int, includePad: Bool) -> Int {
        guard includePad else { return inside }
        let y0 = oy * strides.h - pads.top, x0 = ox * strides.w - pads.left
        let yEnd = min(y0 + (kernel.h - 1) * dilations.h, h - 1 + pads.bottom)
        let xEnd = min(x0 + (kernel.w - 1) * dilations.w, w - 1 + pads.right)
        return max(1, ((yEnd - y0) / dilations.h + 1) * ((xEnd - x0) / dilations.w + 1))
    }
}

public enum ComputeError: Error, Equatable, CustomStringConvertible {
    case shapeMismatch(String)

    public var description: String {
        switch self {
        case .shapeMismatch(let message): message
        }
    }
}

/// 2D convolution, NCHW input, weight [OC, IC/group, KH, KW], optional bias [OC].
/// Grouped convolutions with one input channel per group (depthwise) run along the flattened plane where this
/// processor's kernels have that path and the map is narrower than `depthwiseFlatWidth`, else across channels on maps
/// narrower than `depthwiseAcrossWidth`, else along rows (`depthwiseConv2d`); ungrouped ones with packed weights are
/// summed straight from a bordered copy of the images (`DirectConvolution`) unless their vectors of outputs would be
/// mostly idle lanes; everything else is im2col over a chunk of images followed by one GEMM per group (over a block of
/// output rows at a time where one image's im2col matrix would be large: `im2colRowBlockFloats`).
///
/// `residual`, a tensor of the output's shape, is added after the bias and before `activation` (a fused Add).
///
/// `prepared` holds Winograd-transformed weights: when given (and the layer qualifies), the convolution takes
/// Winograd F(2×2,3×3); `Winograd.isWorthwhile` says when preparing them pays. Where `PackedWeights.isWorthwhile`, every
/// matrix product of the im2col and 1×1 paths runs on packed weights: `packed` when given (packed once at load), else
/// packed for this call, so a weight gives the same outputs whether it was packed ahead or not.
public func conv2d(_ input: Tensor<Float>, weight: Tensor<Float>, bias: [Float]?, window: Window2D,
                   group: Int = 1, activation: Activation = .none,
                   prepared: Winograd.PreparedWeights? = nil, packed: PackedWeights? = nil,
                   residual: Tensor<Float>? = nil) throws -> Tensor<Float> {
    let (oh, ow) = try convolutionOutputSize(input, weight: weight, bias: bias, window: window, group: group)
    if let residual, residual.shape != [input.shape[0], weight.shape[0], oh, ow] {
        throw ComputeError.shapeMismatch("Conv residual \(residual.shape) does not match the output [\(input.shape[0]), \(weight.shape[0]), \(oh), \(ow)]")
    }
    // Every path below writes each output element, so the buffer starts uninitialised (no memset).
    var output = Tensor<Float>(shape: [input.shape[0], weight.shape[0], oh, ow], unsafeUninitialized: { _ in })
    convolve(input, weight: weight, bias: bias, window: window, group: group, activation: activation, prepared: prepared,
             packed: packed, residual: residual, into: &output, firstChannel: 0)
    return output
}

/// The same convolution written into channels firstChannel ..< firstChannel + OC of `destination`, an
/// [N, C, OH, OW] tensor: a Concat over channels of several convolutions' outputs, each written where the Concat would
/// copy it. Each value is the one `conv2d` returns. The depthwise paths write a whole tensor of their own, copied in.
public func conv2d(_ input: Tensor<Float>, weight: Tensor<Float>, bias: [Float]?, window: Window2D,
                   group: Int = 1, activation: Activation = .none,
                   prepared: Winograd.PreparedWeights? = nil, packed: PackedWeights? = nil,
                   into destination: inout Tensor<Float>, firstChannel: Int) throws {
    let (oh, ow) = try convolutionOutputSize(input, weight: weight, bias: bias, window: window, group: group)
    let (n, oc) = (input.shape[0], weight.shape[0])
    guard destination.rank == 4, destination.shape[0] == n, destination.shape[2] == oh, destination.shape[3] == ow,
          firstChannel >= 0, firstChannel <= destination.shape[1] - oc else {
        throw ComputeError.shapeMismatch("Conv output [\(n), \(oc), \(oh), \(ow)] does not fit channels from \(firstChannel) of \(destination.shape)")
    }
    if isDepthwise(weightShape: weight.shape, group: group) {
        let own = try conv2d(input, weight: weight, bias: bias, window: window, group: group, activation: activation,
                             prepared: prepared, packed: packed)
        let (block, imageStride) = (oc * oh * ow, destination.shape[1] * oh * ow)
        own.scalars.withUnsafeBufferPointer { src in
            destination.scalars.withUnsafeMutableBufferPointer { dst in
                for image in 0..<n {
                    (dst.baseAddress! + image * imageStride + firstChannel * oh * ow)
                        .update(from: src.baseAddress! + image * block, count: block)
                }
            }
        }
        return
    }
    convolve(input, weight: weight, bias: bias, window: window, group: group, activation: activation, prepared: prepared,
             packed: packed, residual: nil, into: &destination, firstChannel: firstChannel)
}

/// The output size of a convolution, once its operands are checked.
private func convolutionOutputSize(_ input: Tensor<Float>, weight: Tensor<Float>, bias: [Float]?, window: Window2D,
                                   group: Int) throws -> (h: Int, w: Int) {
    guard input.rank == 4, weight.rank == 4 else {
        throw ComputeError.shapeMismatch("Conv expects 4-D input and weight, got input \(input.shape) and weight \(weight.shape)")
    }
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (oc, icg, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
    guard group >= 1, c % group == 0, oc % group == 0, icg == c / group else {
        throw ComputeError.shapeMismatch("Conv input has \(c) channels but weight \(weight.shape) with group \(group) expects \(icg * group)")
    }
    guard oc > 0, icg > 0 else { throw ComputeError.shapeMismatch("Conv weight \(weight.shape) has no elements") }
    guard kh == window.kernel.h, kw == window.kernel.w else {
        throw ComputeError.shapeMismatch("Conv kernel_shape \(window.kernel) does not match weight \(weight.shape)")
    }
    if let bias, bias.count != oc {
        throw ComputeError.shapeMismatch("Conv bias has \(bias.count) values for \(oc) output channels")
    }
    try window.validate()
    guard let (oh, ow) = window.outputSize(h: h, w: w) else {
        throw ComputeError.shapeMismatch("Conv window \(kh)x\(kw) does not fit input \(input.shape)")
    }
    _ = try elementCount([n, oc, oh, ow], "Conv output")
    _ = try elementCount([icg, kh, kw, oh, ow], "Conv im2col buffer")
    return (oh, ow)
}

/// Runs the convolution's path into channels firstChannel ..< firstChannel + OC of `output` ([N, C, OH, OW]; C = OC
/// for a depthwise one or with a residual). Operands checked by the caller.
private func convolve(_ input: Tensor<Float>, weight: Tensor<Float>, bias: [Float]?, window: Window2D, group: Int,
                      activation: Activation, prepared: Winograd.PreparedWeights?, packed: PackedWeights?,
                      residual: Tensor<Float>?, into output: inout Tensor<Float>, firstChannel: Int) {
    let (oc, icg, ow) = (weight.shape[0], weight.shape[1], output.shape[3])
    let depthwise = isDepthwise(weightShape: weight.shape, group: group)
    precondition(firstChannel == 0 && output.shape[1] == oc || residual == nil && !depthwise,
                 "a residual or a depthwise path writes a whole output of its own")
    if depthwise {
        let flatPays = ow < (wc_kernels_isa() != Int32(WC_ISA_AVX512) ? depthwiseFlatWidth.avx2
                             : window.strides == (1, 1) ? depthwiseFlatWidth.stride1 : depthwiseFlatWidth.strided)
        let done = flatPays && depthwiseConv2dFlat(input, weight: weight, bias: bias, window: window,
                                                   activation: activation, residual: residual, into: &output)
        if !done && ow < depthwiseAcrossWidth {
            depthwiseConv2dAcrossChannels(input, weight: weight, bias: bias, window: window, activation: activation, residual: residual, into: &output)
        } else if !done {
            depthwiseConv2d(input, weight: weight, bias: bias, window: window, activation: activation, residual: residual, into: &output)
        }
    } else if let prepared, prepared.outputChannels == oc, prepared.inputChannels == icg,
              Winograd.applies(weightShape: weight.shape, window: window, group: group) {
        Winograd.convolve(input, weights: prepared, bias: bias, window: window, activation: activation, residual: residual,
                          into: &output, firstChannel: firstChannel)
    } else {
        let packed = PackedWeights.forProduct(packed, weight: weight, group: group)
        if let packed, DirectConvolution.applies(inputShape: input.shape, weightShape: weight.shape, window: window,
                                                 group: group, outputSize: (output.shape[2], output.shape[3])) {
            DirectConvolution.convolve(input, packed: packed, bias: bias, window: window, activation: activation,
                                       residual: residual, into: &output, firstChannel: firstChannel)
        } else if let packed, group == 1, residual == nil, !window.isPointwise, input.shape[0] > 1 || icg < 8,
                  icg * weight.shape[2] * weight.shape[3] * output.shape[2] * ow > im2colRowBlockFloats.image {
            im2colConv2dInRowBlocks(input, weight: weight, bias: bias, window: window, activation: activation,
                                    packed: packed, into: &output, firstChannel: firstChannel)
        } else {
            im2colConv2d(input, weight: weight, bias: bias, window: window, group: group, activation: activation,
                         residual: residual, packed: packed, into: &output, firstChannel: firstChannel)
        }
    }
    if activation.isPointwiseAfterPass {
        // Each image's planes of these channels, one contiguous block per image: value i of the blocks laid end to end
        // sits at i + image·(imageStride − block) + first.
        let plane = output.shape[2] * output.shape[3]
        let (block, imageStride, first) = (oc * plane, output.shape[1] * plane, firstChannel * plane)
        output.scalars.withUnsafeMutableBufferPointer { p in
            parallelChunks(output.shape[0] * block, minimumChunk: 1 << 15) { range in
                var i = range.lowerBound
                while i < range.upperBound {
                    let image = i / block, end = min(range.upperBound, (image + 1) * block)
                    let shift = image * (imageStride - block) + first
                    for j in i + shift..<end + shift { p[j] = activation(p[j]) }
                    i = end
                }
            }
        }
    }
}


/// Whether a convolution with a weight of `weightShape` [OC, IC/group, KH, KW] and `group` groups is depthwise: one
/// input channel per group and one filter per channel (the direct loops, not a matrix product).
public func isDepthwise(weightShape: [Int], group: Int) -> Bool {
    weightShape.count == 4 && weightShape[1] == 1 && weightShape[0] == group
}

/// The output plane size from which a 1×1 convolution runs one GEMM per image on the NCHW buffer instead of
/// gathering several images' columns first: through BLAS, which packs the weights again on every call (measured on
/// MobileNetV2 at 64 px, batch 64: 26% faster overall); on packed weights, from one vector of columns (no copy in, no
/// scatter out: the 1×1 layers of MobileNetV2 at 64 px, batch 64, 6–8% faster over five alternating rounds).
@usableFromInline let pointwiseInPlaceColumns = (blas: 1024, packed: 16)

/// Where the flattened path does not run (no AVX-512; on AVX2 strided, or outputs narrower than the input), depthwise
/// convolutions with outputs narrower than this run across channels (`depthwiseConv2dAcrossChannels`); wider ones along
/// rows, where the channels-last copies cost more than the idle lanes (EfficientNet-Lite0's 112 and 56 px maps were
/// slower across channels, MobileNetV2's 8, 4 and 2 px maps twice as fast). On AVX2 (AMD EPYC, one thread, C harness,
/// two runs) 14-wide maps at stride 1 ran faster along rows, two 8-lane vectors a row: 5×5 on 14×14, 480 channels
/// 284–381 against 483–496 µs, 3×3 168–236 against 186–262; 8×8 and narrower stayed faster across (3×3, 4×4, 384
/// channels: 17–22 against 47–70 µs; 8×8 23–27 against 25–32).
@usableFromInline let depthwiseAcrossWidth = 12

/// Depthwise outputs narrower than these run along the flattened plane where AVX-512 is (`depthwiseConv2dFlat`): each
/// tap one masked load per vector of outputs at stride 1, no bordered copy; a permute or a gather at other strides.
/// Wider ones run along rows. One thread, 3×3 taps, ns per plane, flattened / along rows (C harness, planes in L2):
/// stride 1 56×56 2,617 / 3,198, 28×28 434 / 606, 112×112 11,218 / 11,141; stride 2 from 14×14 98 / 175, 16×16
/// 155 / 255. From 28×28 at stride 2 the harness favoured rows (393 / 340), but in EfficientNet-Lite0 at batch 1 that
/// layer (28 → 14, 3×3) took 0.10–0.14 ms flattened against 0.23–0.27 along rows: stride 2 stays flattened below 16.
/// With AVX2 the flattened path runs only at stride 1 on maps as wide as their input, 8 outputs a vector, below 15 wide.
/// One thread (AMD EPYC, C harness, 3×3 taps unless noted, best of 5–9; all bit-equal), ms along rows / flattened, 64
/// images' planes read from memory as in a model at batch 64: 14×14, 480 channels 10.6–11.1 / 11.2–15.3, 5×5 taps
/// 17.4–17.7 / 15.2–17.8; 12×12, 240: 5.0–5.2 / 2.9–4.0; 7×7 5×5 taps, 1152: 16.6–27.3 / 7.7–7.9; 8×8, 192: 1.7–2.7 /
/// 0.7–0.9; 4×4, 576: 4.6–5.1 / 0.6–0.7; but 16×16, 144: 3.2–3.4 / 3.8–6.3. One layer's planes in cache (batch 1),
/// µs across channels / along rows / flattened: 4×4, 384 channels 15–26 / 46–82 / 6.4–10; 2×2, 960: 22–24 / 110–120 /
/// 12–13; 7×7 5×5 taps, 1152: 298–309 / 250–267 / 128–135; 14×14, 480: 185–278 / 169–242 / 100–153.
@usableFromInline let depthwiseFlatWidth = (stride1: 65, strided: 16, avx2: 15)

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
    // packing the weights again for each image, so the images are gathered into one matrix as for any other kernel.
    // Chunks are then made up to half as large where that evens the workers' shares (13 chunks of 5 images on 2 cores:
    // 7 and 6; 16 of 4: 8 and 8).
    let inPlace = isPointwise && ohw >= (packed == nil ? pointwiseInPlaceColumns.blas : pointwiseInPlaceColumns.packed)
    let widest = inPlace ? 1 : max(1, min(n, min((1024 + ohw - 1) / ohw, (1 << 22) / max(1, kdim * ohw))))
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
                let runChunk = { (chunk: Int, col: UnsafeMutablePointer<Float>, tmp: UnsafeMutablePointer<Float>, parallelGemm: Bool) in
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
                        let gemm = { (c: UnsafeMutablePointer<Float>, ldc: Int) in
                            if let packed {
                                packed.multiply(group: g, n: cols, b: b, ldb: ldb, c: c, ldc: ldc, parallel: parallelGemm)
                            } else {
                                blas(false, false, ocg, cols, kdim, 1, a, kdim, b, ldb, 0, c, ldc)
                            }
                        }
                        if count == 1, let packed, residual == nil {
                            // One image, packed weights: the product stores each value with its bias and clamp
                            // (no second pass over an output that may not fit in cache).
                            let dst = out + first * outImage + channelOffset + g * ocg * ohw
                            packed.multiply(group: g, n: cols, b: b, ldb: ldb, c: dst, ldc: ohw, parallel: parallelGemm,
                                            bias: bias == nil ? nil : biasBuf.baseAddress! + g * ocg, bounds: activation.bounds)
                            continue
                        }
                        // The product [ocg, image, ohw], then scattered into NCHW with the bias, residual and
                        // activation. One image's product rows are its output channels' planes, so it lands in place.
                        let offset = (first * oc + g * ocg) * ohw
                        let dst = out + first * outImage + channelOffset + g * ocg * ohw
                        let product = count == 1 ? dst : tmp
                        gemm(product, cols)
                        epilogue.scatter(product, columns: cols, images: count, channels: ocg, planeSize: ohw, to: dst,
                                         imageStride: outImage, firstChannel: g * ocg, offset: offset)
                    }
                }
                forEachChunk(chunks, scratch: (kdim * perChunk * ohw, ocg * perChunk * ohw), runChunk)
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

/// One k×k filter per channel, each plane through `wc_depthwise_rows` (CKernels: a bordered copy, vectors of outputs
/// along eight rows at once, the bias, residual and clamp in the same pass): each output is bias, then
/// fma(input, tap, sum) for its taps in row-major order. At batch 1 the planes are split evenly over the workers, as
/// the 1×1 layer before splits its output channels (`PackedWeights.multiply`): each worker then reads the planes it
/// wrote, from its own cache (MobileNetV2 at batch 1, 5 alternating rounds, median images/s: 64 px 731 → 755, 224 px
/// 111 → 112: within this machine's noise, kept for the locality).
@usableFromInline
func depthwiseConv2d(_ input: Tensor<Float>, weight: Tensor<Float>, bias: [Float]?, window: Window2D,
                     activation: Activation = .none, residual: Tensor<Float>? = nil, into output: inout Tensor<Float>) {
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let taps = window.kernel.h * window.kernel.w
    let (oh, ow) = (output.shape[2], output.shape[3])
    let (low, high) = activation.bounds
    withDepthwiseOperands(input, weight, bias, window, residual, &output) { x, wt, bias, _, residual, out in
        forEachPlaneWithRowCopy(n * c, h: h, w: w, window: window, oh: oh, ow: ow, border: 0, evenly: n == 1) { p, copy, shape in
            let ch = p % c
            wc_depthwise_rows(x + p * h * w, Int32(h), Int32(w), shape, wt + ch * taps, bias?[ch] ?? 0,
                              out + p * oh * ow, Int32(oh), Int32(ow), residual.map { $0 + p * oh * ow }, low, high,
                              copy)
        }
    }
}
