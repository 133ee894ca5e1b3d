import CKernels

/// Depthwise convolution along the flattened plane (for maps narrower than `depthwiseFlatWidth`): each plane's outputs
/// taken a vector at a time in row-major order, across row ends, every tap a masked load, or with AVX-512 a permute of
/// the plane held in registers (planes up to 64 floats) or a gather (`wc_depthwise_flat` in CKernels); no copies. With
/// AVX2 only at stride 1 on maps as wide as their input. Returns false, doing nothing, where the kernels chosen for this
/// processor have no such path (`wc_depthwise_flat_runs`).
@usableFromInline
func depthwiseConv2dFlat(_ input: Tensor<Float>, weight: Tensor<Float>, bias: [Float]?, window: Window2D,
                         activation: Activation = .none, residual: Tensor<Float>? = nil,
                         into output: inout Tensor<Float>) -> Bool {
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (kh, kw) = window.kernel
    let (oh, ow) = (output.shape[2], output.shape[3])
    let runs = withUnsafePointer(to: wc_window(window)) { wc_depthwise_flat_runs(Int32(h), Int32(w), $0, Int32(oh), Int32(ow)) }
    guard runs != 0 else { return false }
    let scratch = wc_depthwise_flat_scratch(Int32(oh), Int32(ow), Int32(kh), Int32(kw))
    let (low, high) = activation.bounds
    // Planes in groups of four (the kernel sums four at once), a chunk at least 256 multiply-adds.
    let groups = (n * c + 3) / 4
    withDepthwiseOperands(input, weight, bias, window, residual, &output) { x, wt, bias, shape, residual, out in
        parallelChunks(groups, minimumChunk: max(1, 256 / max(1, oh * ow * kh * kw)), evenly: n == 1) { range in
            let table = UnsafeMutableRawPointer.allocate(byteCount: scratch, alignment: 64)
            defer { table.deallocate() }
            let first = range.lowerBound * 4, end = min(n * c, range.upperBound * 4)
            _ = wc_depthwise_flat(x, Int32(c), first, end - first, Int32(h), Int32(w), wt, bias, shape, out,
                                  Int32(oh), Int32(ow), residual, low, high, table)
        }
    }
    return true
}

/// Calls `body` with the base addresses of the input, the weight, the bias (nil without one), the window as a
/// `wc_window`, the residual (nil without one) and the output, for the depthwise kernels of CKernels.
func withDepthwiseOperands(_ input: Tensor<Float>, _ weight: Tensor<Float>, _ bias: [Float]?, _ window: Window2D,
                           _ residual: Tensor<Float>?, _ output: inout Tensor<Float>,
                           _ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>?,
                                    UnsafePointer<wc_window>, UnsafePointer<Float>?, UnsafeMutablePointer<Float>) -> Void) {
    var shape = wc_window(window)
    withResidual(residual) { residualAddress in
        input.scalars.withUnsafeBufferPointer { x in
            weight.scalars.withUnsafeBufferPointer { wt in
                (bias ?? []).withUnsafeBufferPointer { b in
                    withUnsafePointer(to: &shape) { shape in
                        output.scalars.withUnsafeMutableBufferPointer { out in
                            body(x.baseAddress!, wt.baseAddress!, bias == nil ? nil : b.baseAddress, shape,
                                 UnsafePointer(bitPattern: residualAddress), out.baseAddress!)
                        }
                    }
                }
            }
        }
    }
}

extension wc_window {
    init(_ window: Window2D) {
        self.init(kh: Int32(window.kernel.h), kw: Int32(window.kernel.w), sh: Int32(window.strides.h),
                  sw: Int32(window.strides.w), dh: Int32(window.dilations.h), dw: Int32(window.dilations.w),
                  pad_top: Int32(window.pads.top), pad_left: Int32(window.pads.left))
    }
}

/// Depthwise convolution vectorised across channels instead of along rows: a block of channels of one image is copied
/// channels-last (each pixel's channels side by side), every output pixel then sums its taps 16 (AVX-512) or 8
/// channels at a time, and the result is copied back into the NCHW planes through the epilogue (`wc_depthwise_channels`
/// in CKernels).
///
/// Along a row, a plane narrower than a vector leaves most lanes idle and pays the per-plane set-up for a few values
/// (MobileNetV2's 4×4 and 2×2 maps ran at a tenth of the speed of its 16×16 ones); across channels every lane works
/// whatever the plane's size. Each output sums bias, then its taps in row-major order, skipping the taps that fall on
/// padding, as the naive loop does.
@usableFromInline
func depthwiseConv2dAcrossChannels(_ input: Tensor<Float>, weight: Tensor<Float>, bias: [Float]?, window: Window2D,
                                   activation: Activation = .none, residual: Tensor<Float>? = nil,
                                   into output: inout Tensor<Float>) {
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (kh, kw) = window.kernel
    let (oh, ow) = (output.shape[2], output.shape[3])
    // Channels per block: a multiple of 16 whose channels-last input and output fit in about 256 KiB (within the
    // core's L2). With fewer images than workers, the blocks come in a multiple of the workers, as even as the groups
    // of 16 allow: MobileNetV2's 576-channel 14 → 7 layer (224 px, batch 1) made three blocks of 256, 192 and 128
    // channels, two of them on one worker (two threads 23.9 µs against one thread's 26.1).
    let lanes = 16
    let groups = (c + lanes - 1) / lanes
    let fittingGroups = max(1, (1 << 16) / max(1, h * w + oh * ow) / lanes)
    let splits = n >= ComputeThreads.count ? 1 : ComputeThreads.count
    let blockCount = ((groups + fittingGroups - 1) / fittingGroups + splits - 1) / splits * splits
    let block = (groups + min(groups, blockCount) - 1) / min(groups, blockCount) * lanes
    let blocks = (c + block - 1) / block
    let scratch = wc_depthwise_channels_scratch(Int32(block), Int32(h), Int32(w), Int32(kh), Int32(kw), Int32(oh), Int32(ow))
    let (low, high) = activation.bounds
    withDepthwiseOperands(input, weight, bias, window, residual, &output) { x, wt, bias, shape, residual, out in
        parallelChunks(n * blocks) { items in
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: scratch)
            defer { buffer.deallocate() }
            for item in items {
                let image = item / blocks
                let first = (item % blocks) * block
                let count = min(block, c - first)
                let plane = image * c + first
                wc_depthwise_channels(x + plane * h * w, Int32(count), Int32(h), Int32(w), wt + first * kh * kw,
                                      bias.map { $0 + first }, shape, out + plane * oh * ow, Int32(oh), Int32(ow),
                                      residual.map { $0 + plane * oh * ow }, low, high, buffer)
            }
        }
    }
}
