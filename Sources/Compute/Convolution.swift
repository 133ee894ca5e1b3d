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
/// Grouped convolutions with one input channel per group (depthwise) take a direct loop;
/// everything else is im2col over a chunk of images followed by one GEMM per group.
///
/// `prepared` holds Winograd-transformed weights: when given (and the layer qualifies), the convolution takes
/// Winograd F(2×2,3×3); `Winograd.isWorthwhile` says when preparing them pays.
public func conv2d(_ input: Tensor<Float>, weight: Tensor<Float>, bias: [Float]?, window: Window2D,
                   group: Int = 1, activation: Activation = .none,
                   prepared: Winograd.PreparedWeights? = nil) throws -> Tensor<Float> {
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
    // Every path below writes each output element, so the buffer starts uninitialised (no memset).
    var output = Tensor<Float>(shape: [n, oc, oh, ow], unsafeUninitialized: { _ in })
    if group == c && icg == 1 && oc == c {
        depthwiseConv2d(input, weight: weight, bias: bias, window: window, into: &output)
        if activation == .relu { output = output.mapped { max($0, 0) } }
    } else if let prepared, prepared.outputChannels == oc, prepared.inputChannels == icg,
              Winograd.applies(weightShape: weight.shape, window: window, group: group) {
        Winograd.convolve(input, weights: prepared, bias: bias, window: window, activation: activation, into: &output)
    } else {
        im2colConv2d(input, weight: weight, bias: bias, window: window, group: group, activation: activation, into: &output)
    }
    return output
}


@usableFromInline
func im2colConv2d(_ input: Tensor<Float>, weight: Tensor<Float>, bias: [Float]?, window: Window2D, group: Int,
                  activation: Activation, into output: inout Tensor<Float>) {
    let relu = activation == .relu
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (oc, icg, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
    let (oh, ow) = (output.shape[2], output.shape[3])
    let ocg = oc / group
    let kdim = icg * kh * kw
    let ohw = oh * ow
    // Images per GEMM: enough columns to keep BLAS efficient, few enough to bound the im2col buffer.
    let perChunk = max(1, min(n, min((1024 + ohw - 1) / ohw, (1 << 22) / max(1, kdim * ohw))))
    let chunks = (n + perChunk - 1) / perChunk
    let isPointwise = kh == 1 && kw == 1 && window.strides == (1, 1) && window.pads == (0, 0, 0, 0)

    input.scalars.withUnsafeBufferPointer { inBuf in
        weight.scalars.withUnsafeBufferPointer { wBuf in
            output.scalars.withUnsafeMutableBufferPointer { outBuf in
                let inBase = inBuf.baseAddress!, wBase = wBuf.baseAddress!
                let outAddress = Int(bitPattern: outBuf.baseAddress!)
                let runChunk = { (chunk: Int, col: UnsafeMutablePointer<Float>, tmp: UnsafeMutablePointer<Float>, parallelGemm: Bool) in
                    let out = UnsafeMutablePointer<Float>(bitPattern: outAddress)!
                    let first = chunk * perChunk
                    let count = min(perChunk, n - first)
                    let cols = count * ohw
                    for g in 0..<group {
                        let b: UnsafePointer<Float>
                        let ldb: Int
                        if isPointwise && count == 1 {
                            b = inBase + (first * c + g * icg) * h * w
                            ldb = ohw
                        } else {
                            im2col(inBase, c: c, h: h, w: w, firstImage: first, images: count, channels: g * icg..<(g + 1) * icg,
                                   window: window, oh: oh, ow: ow, into: col)
                            b = UnsafePointer(col)
                            ldb = cols
                        }
                        let a = wBase + g * ocg * kdim
                        let gemm = parallelGemm ? parallelSgemm : sgemm
                        gemm(false, false, ocg, cols, kdim, 1, a, kdim, b, ldb, 0, tmp, cols)
                        // Scatter [ocg, image, ohw] into NCHW and add the bias.
                        for img in 0..<count {
                            for o in 0..<ocg {
                                let channel = g * ocg + o
                                let dst = out + ((first + img) * oc + channel) * ohw
                                let src = tmp + o * cols + img * ohw
                                let bv = bias?[channel] ?? 0
                                if relu {
                                    for i in 0..<ohw { dst[i] = max(src[i] + bv, 0) }
                                } else {
                                    for i in 0..<ohw { dst[i] = src[i] + bv }
                                }
                            }
                        }
                    }
                }
                forEachChunk(chunks, scratch: (kdim * perChunk * ohw, ocg * perChunk * ohw), runChunk)
            }
        }
    }
}

/// Unfolds the receptive fields of `images` images (channels `channels`) into a
/// [channels·kh·kw, images·oh·ow] matrix.
@usableFromInline
func im2col(_ input: UnsafePointer<Float>, c: Int, h: Int, w: Int, firstImage: Int, images: Int, channels: Range<Int>,
            window: Window2D, oh: Int, ow: Int, into col: UnsafeMutablePointer<Float>) {
    let (kh, kw) = window.kernel
    let (sh, sw) = window.strides
    let (dh, dw) = window.dilations
    let (pt, pl) = (window.pads.top, window.pads.left)
    let ohw = oh * ow
    let cols = images * ohw
    var row = 0
    for ch in channels {
        for ki in 0..<kh {
            for kj in 0..<kw {
                let rowBase = col + row * cols
                for img in 0..<images {
                    let plane = input + ((firstImage + img) * c + ch) * h * w
                    let dstImg = rowBase + img * ohw
                    // Output columns whose input column lies inside the image: ox in [oxLo, oxHi).
                    let xOff = kj * dw - pl
                    var oxLo = 0
                    while oxLo < ow && oxLo * sw + xOff < 0 { oxLo += 1 }
                    var oxHi = ow
                    while oxHi > oxLo && (oxHi - 1) * sw + xOff >= w { oxHi -= 1 }
                    for oy in 0..<oh {
                        let iy = oy * sh + ki * dh - pt
                        let dst = dstImg + oy * ow
                        if iy < 0 || iy >= h {
                            dst.update(repeating: 0, count: ow)
                            continue
                        }
                        let src = plane + iy * w
                        if oxLo > 0 { dst.update(repeating: 0, count: oxLo) }
                        if sw == 1 {
                            (dst + oxLo).update(from: src + (oxLo + xOff), count: oxHi - oxLo)
                        } else {
                            for ox in oxLo..<oxHi { dst[ox] = src[ox * sw + xOff] }
                        }
                        if oxHi < ow { (dst + oxHi).update(repeating: 0, count: ow - oxHi) }
                    }
                }
                row += 1
            }
        }
    }
}

@usableFromInline
func depthwiseConv2d(_ input: Tensor<Float>, weight: Tensor<Float>, bias: [Float]?, window: Window2D,
                     into output: inout Tensor<Float>) {
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (kh, kw) = window.kernel
    let (sh, sw) = window.strides
    let (dh, dw) = window.dilations
    let (pt, pl) = (window.pads.top, window.pads.left)
    let (oh, ow) = (output.shape[2], output.shape[3])
    input.scalars.withUnsafeBufferPointer { inBuf in
        weight.scalars.withUnsafeBufferPointer { wBuf in
            output.scalars.withUnsafeMutableBufferPointer { outBuf in
                let inBase = inBuf.baseAddress!, wBase = wBuf.baseAddress!
                let outAddress = Int(bitPattern: outBuf.baseAddress!)
                parallelChunks(n * c) { planes in
                    let out = UnsafeMutablePointer<Float>(bitPattern: outAddress)!
                    for p in planes {
                        let ch = p % c
                        let src = inBase + p * h * w
                        let dst = out + p * oh * ow
                        let k = wBase + ch * kh * kw
                        let bv = bias?[ch] ?? 0
                        for oy in 0..<oh {
                            for ox in 0..<ow {
                                var sum = bv
                                for ki in 0..<kh {
                                    let iy = oy * sh + ki * dh - pt
                                    if iy < 0 || iy >= h { continue }
                                    for kj in 0..<kw {
                                        let ix = ox * sw + kj * dw - pl
                                        if ix < 0 || ix >= w { continue }
                                        sum += src[iy * w + ix] * k[ki * kw + kj]
                                    }
                                }
                                dst[oy * ow + ox] = sum
                            }
                        }
                    }
                }
            }
        }
    }
}
