import CKernels

/// Gradients of a depthwise convolution (one k×k filter per channel: group = channels, one input channel per group),
/// a worker per range of channels. dW and db: `wc_depthwise_weight_gradient` (CKernels), one vector accumulator per
/// tap over each row of dY. dX at stride 1 is itself a depthwise convolution — of dY with each filter turned by 180°,
/// padded by the kernel's extent less the forward padding — and takes the forward kernels; at other strides it spreads
/// dY·W over a zero-bordered plane. The general path ran each channel as its own group (an im2col of one channel and
/// two products with a single row), and took half of a MobileNetV2-style training step.
func depthwiseConv2dBackward(_ input: Tensor<Float>, weight: Tensor<Float>, window: Window2D, gradOutput dy: Tensor<Float>,
                             inputGradient: Bool) throws -> (input: Tensor<Float>?, weight: Tensor<Float>, bias: [Float]) {
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (kh, kw) = window.kernel
    let (oh, ow) = (dy.shape[2], dy.shape[3])
    let taps = kh * kw
    var dWeight = [Float](repeating: 0, count: c * taps)
    var db = [Float](repeating: 0, count: c)
    var shape = wc_window(window)
    let scratch = wc_depthwise_weight_gradient_scratch(Int32(h), Int32(w), &shape, Int32(oh), Int32(ow))
    input.scalars.withUnsafeBufferPointer { px in
    dy.scalars.withUnsafeBufferPointer { pdy in
    dWeight.withUnsafeMutableBufferPointer { pdw in
    db.withUnsafeMutableBufferPointer { pdb in
    withUnsafePointer(to: &shape) { shape in
        let (x, g, dw, dbias) = (px.baseAddress!, pdy.baseAddress!, pdw.baseAddress!, pdb.baseAddress!)
        parallelChunks(c) { channels in
            let plane = UnsafeMutablePointer<Float>.allocate(capacity: scratch)
            defer { plane.deallocate() }
            wc_depthwise_weight_gradient(x, g, Int32(n), Int32(c), Int32(h), Int32(w), shape, Int32(oh), Int32(ow),
                                         Int32(channels.lowerBound), Int32(channels.count), dw, dbias, plane)
        }
    }
    }
    }
    }
    }
    let dx = inputGradient ? try depthwiseInputGradient(weight: weight, window: window, gradOutput: dy, inputShape: input.shape) : nil
    return (dx, Tensor(shape: weight.shape, scalars: dWeight), db)
}

/// dX of a depthwise convolution.
func depthwiseInputGradient(weight: Tensor<Float>, window: Window2D, gradOutput dy: Tensor<Float>, inputShape: [Int]) throws -> Tensor<Float> {
    let (n, c, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
    let (kh, kw) = window.kernel, (sh, sw) = window.strides, (dh, dw) = window.dilations
    let (pt, pl) = (window.pads.top, window.pads.left)
    let (oh, ow) = (dy.shape[2], dy.shape[3])
    let taps = kh * kw
    // Stride 1: dX[iy, ix] = Σ dY[iy + pt − ki·dh, ix + pl − kj·dw]·W[ki, kj], a convolution of dY with the turned filter.
    let (extentH, extentW) = ((kh - 1) * dh, (kw - 1) * dw)
    let turned = Window2D(kernel: (kh, kw), dilations: (dh, dw),
                          pads: (extentH - pt, extentW - pl, extentH - window.pads.bottom, extentW - window.pads.right))
    if (sh, sw) == (1, 1), [turned.pads.top, turned.pads.left, turned.pads.bottom, turned.pads.right].allSatisfy({ $0 >= 0 }),
       let size = turned.outputSize(h: oh, w: ow), size == (h, w) {
        var flipped = [Float](repeating: 0, count: weight.scalars.count)
        for ch in 0..<c { for t in 0..<taps { flipped[ch * taps + t] = weight.scalars[ch * taps + taps - 1 - t] } }
        return try conv2d(dy, weight: Tensor(shape: weight.shape, scalars: flipped), bias: nil, window: turned, group: c)
    }
    // The plane inside its border: every tap of every output lands inside.
    let rows = max(pt + h, (oh - 1) * sh + (kh - 1) * dh + 1), width = max(pl + w, (ow - 1) * sw + (kw - 1) * dw + 1)
    var dx = Tensor<Float>(zeros: inputShape)
    weight.scalars.withUnsafeBufferPointer { pw in
    dy.scalars.withUnsafeBufferPointer { pdy in
    dx.scalars.withUnsafeMutableBufferPointer { pdx in
        let (wBase, gBase, dxOut) = (pw.baseAddress!, pdy.baseAddress!, pdx.baseAddress!)
        parallelChunks(c) { channels in
            let gp = UnsafeMutablePointer<Float>.allocate(capacity: rows * width)
            defer { gp.deallocate() }
            for ch in channels {
                let k = wBase + ch * taps
                for img in 0..<n {
                    let g = gBase + (img * c + ch) * oh * ow
                    gp.initialize(repeating: 0, count: rows * width)
                    for ki in 0..<kh {
                        for kj in 0..<kw {
                            let kv = k[ki * kw + kj]
                            for oy in 0..<oh {
                                let line = gp + (oy * sh + ki * dh) * width + kj * dw, grow = g + oy * ow
                                for ox in 0..<ow { line[ox * sw] += grow[ox] * kv }
                            }
                        }
                    }
                    let dplane = dxOut + (img * c + ch) * h * w
                    for y in 0..<h { (dplane + y * w).update(from: gp + (pt + y) * width + pl, count: w) }
                }
            }
        }
    }
    }
    }
    return dx
}
