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
    if let residual, residual.rank != 4 || residual.shape[0] != input.shape[0] || residual.shape[1] != weight.shape[0]
        || residual.shape[2] != oh || residual.shape[3] != ow {
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
    // The arrays are made only for the message.
    if checkedElementCount(n, oc, oh, ow) == nil { _ = try elementCount([n, oc, oh, ow], "Conv output") }
    if checkedElementCount(icg, kh, kw, oh, ow) == nil { _ = try elementCount([icg, kh, kw, oh, ow], "Conv im2col buffer") }
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
        // Layers the row kernels take without the bordered copy run there, rather than across channels or along the
        // flattened plane (`wc_depthwise_uncopied_runs`). AVX2, 3×3 (C harness, one thread, ns per plane, sixteen
        // images' planes: 14×14, 576 channels, along rows 157–160, flattened 254–263, across 399–438; 12×12 125–188 /
        // 152–205 / 279–406; MobileNetV2 at 64 px, batch 64, two threads, least of 3 × 5 batches: its 16 → 8 layer
        // 534 µs along rows, 1,318–1,543 across channels). AVX-512, 3×3 and 5×5 on planes of more than 64 values
        // (MobileNetV2 at 224 px, batch 1, one thread, each node's least over 4 alternated rounds, µs, flattened or
        // bordered copy → without it: 56×56 187 → 119, 112 → 56 168 → 145, 56 → 28 95 → 53, 28 → 14 79 → 20, 14 → 7
        // 59 → 33, 28×28 57 → 41; EfficientNet-Lite0's 5×5 stride-2 layer onto 7×7 177 → 74, its 3×3 one onto 14×14
        // 99 → 24; the loops then unrolled in full: 56×56 112 → 93, 112 → 56 147 → 115). AVX2, 5×5 at stride 1 on
        // 14×14, flattened → without the copy: EfficientNet-Lite0 at batch 1, two threads, 92.5–124 → 63–87 µs a layer
        // (Depthwise.c).
        var shape = wc_window(window)
        // One image on AVX-512, 5×5 onto outputs 5 to 8 wide (EfficientNet-Lite0's 7×7 maps and its stride-2 layer onto
        // them), 3×3 at stride 2 onto 5 to 8 wide and 3×3 onto 2×2: across channels, sixteen at a time through
        // transposes in registers (`wc_depthwise_across16_pays`). One thread, node least, µs: EfficientNet-Lite0's 5×5
        // layers on 7×7 62–63 → 43 (its 14 → 7 41 → 38); MobileNetV2 at 64 px, its 2×2 layers 6.2 → 5.8. At batch 64
        // (passes of several images) EfficientNet-Lite0 ran 1–2% slower through the first version: one image only.
        let acrossFirst = input.shape[0] == 1
            && wc_depthwise_across16_pays(&shape, Int32(input.shape[2]), Int32(input.shape[3]), Int32(output.shape[2]),
                                          Int32(ow)) != 0
        let uncopied = !acrossFirst && wc_depthwise_uncopied_runs(Int32(input.shape[2]), Int32(input.shape[3]), &shape,
                                                                  Int32(output.shape[2]), Int32(ow)) != 0
        let flatPays = !acrossFirst && !uncopied
            && ow < (wc_kernels_isa() != Int32(WC_ISA_AVX512) ? depthwiseFlatWidth.avx2
                     : window.strides == (1, 1) ? depthwiseFlatWidth.stride1 : depthwiseFlatWidth.strided)
        let done = flatPays && depthwiseConv2dFlat(input, weight: weight, bias: bias, window: window,
                                                   activation: activation, residual: residual, into: &output)
        // At stride 2 on AVX2, one image's outputs 7 to 11 wide run along rows, on the kernel without the bordered
        // copy (`wc_depthwise_stride2_runs`), rather than across channels (C harness, one thread, 14 → 7, 3×3, one
        // image's 576 planes: across channels 104–109 µs, along rows 91–103; four images' planes 254–262 against
        // 376–381; in MobileNetV2 at 224 px, batch 1, two threads: 99 → 48 µs); larger kernels at any batch (the same
        // harness, ns per plane, sixteen images' 672 planes, 5×5, 14 → 7: along rows 350–375, across 445–510).
        let alongRows = uncopied
            || (input.shape[0] == 1 || window.kernel.h > 3) && wc_depthwise_stride2_runs(&shape, Int32(ow)) != 0
        let across = acrossFirst || !done && ow < depthwiseAcrossWidth && !alongRows
        if across {
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
        } else if let packed, PointwiseVectors.applies(inputShape: input.shape, window: window, group: group) {
            PointwiseVectors.convolve(input, packed: packed, bias: bias, activation: activation, residual: residual,
                                      into: &output, firstChannel: firstChannel)
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

/// Where the flattened path does not run (no AVX-512; on AVX2 strided, or outputs narrower than the input), depthwise
/// convolutions with outputs narrower than this run across channels (`depthwiseConv2dAcrossChannels`); wider ones along
/// rows, where the channels-last copies cost more than the idle lanes (EfficientNet-Lite0's 112 and 56 px maps were
/// slower across channels, MobileNetV2's 8, 4 and 2 px maps twice as fast). On AVX2 (AMD EPYC, one thread, C harness,
/// two runs) 14-wide maps at stride 1 ran faster along rows, two 8-lane vectors a row: 5×5 on 14×14, 480 channels
/// 284–381 against 483–496 µs, 3×3 168–236 against 186–262; 8×8 and narrower stayed faster across (3×3, 4×4, 384
/// channels: 17–22 against 47–70 µs; 8×8 23–27 against 25–32). At stride 2 on AVX2, one image's outputs 7 to 11 wide
/// run along rows instead, on the kernel without the bordered copy (`convolve`).
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
        forEachPlaneWithRowCopy(n * c, h: h, w: w, window: window, oh: oh, ow: ow, border: 0,
                                scratchCount: wc_depthwise_rows_scratch_count, evenly: n == 1) { p, copy, shape in
            let ch = p % c
            wc_depthwise_rows(x + p * h * w, Int32(h), Int32(w), shape, wt + ch * taps, bias?[ch] ?? 0,
                              out + p * oh * ow, Int32(oh), Int32(ow), residual.map { $0 + p * oh * ow }, low, high,
                              copy)
        }
    }
}
