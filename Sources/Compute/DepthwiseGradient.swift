/// Gradients of a depthwise convolution (one k×k filter per channel: group = channels, one input channel per group)
/// by direct loops over each plane, a worker per range of channels: dW[ch] sums dY·X over every image in order, dX
/// spreads dY·W over a zero-bordered plane. The general path ran each channel as its own group (an im2col of one
/// channel and two products with a single row), and took half of a MobileNetV2-style training step.
func depthwiseConv2dBackward(_ input: Tensor<Float>, weight: Tensor<Float>, window: Window2D, gradOutput dy: Tensor<Float>,
                             inputGradient: Bool) -> (input: Tensor<Float>?, weight: Tensor<Float>, bias: [Float]) {
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (kh, kw) = window.kernel, (sh, sw) = window.strides, (dh, dw) = window.dilations
    let (pt, pl) = (window.pads.top, window.pads.left)
    let (oh, ow) = (dy.shape[2], dy.shape[3])
    let taps = kh * kw
    // The plane inside its border: every tap of every output lands inside.
    let rows = max(pt + h, (oh - 1) * sh + (kh - 1) * dh + 1), width = max(pl + w, (ow - 1) * sw + (kw - 1) * dw + 1)
    var dx = Tensor<Float>(zeros: inputGradient ? input.shape : [1])
    var dWeight = [Float](repeating: 0, count: c * taps)
    var db = [Float](repeating: 0, count: c)
    input.scalars.withUnsafeBufferPointer { px in
    weight.scalars.withUnsafeBufferPointer { pw in
    dy.scalars.withUnsafeBufferPointer { pdy in
    dx.scalars.withUnsafeMutableBufferPointer { pdx in
    dWeight.withUnsafeMutableBufferPointer { pdw in
    db.withUnsafeMutableBufferPointer { pdb in
        let (xBase, wBase, gBase) = (px.baseAddress!, pw.baseAddress!, pdy.baseAddress!)
        let addresses = (dx: Int(bitPattern: pdx.baseAddress!), dw: Int(bitPattern: pdw.baseAddress!), db: Int(bitPattern: pdb.baseAddress!))
        parallelChunks(c) { channels in
            let dxOut = UnsafeMutablePointer<Float>(bitPattern: addresses.dx)!
            let dwOut = UnsafeMutablePointer<Float>(bitPattern: addresses.dw)!
            let dbOut = UnsafeMutablePointer<Float>(bitPattern: addresses.db)!
            let xp = UnsafeMutablePointer<Float>.allocate(capacity: rows * width)
            let gp = UnsafeMutablePointer<Float>.allocate(capacity: rows * width)
            xp.initialize(repeating: 0, count: rows * width)
            defer { xp.deallocate(); gp.deallocate() }
            for ch in channels {
                let k = wBase + ch * taps
                for img in 0..<n {
                    let plane = xBase + (img * c + ch) * h * w
                    let g = gBase + (img * c + ch) * oh * ow
                    for y in 0..<h { (xp + (pt + y) * width + pl).update(from: plane + y * w, count: w) }
                    var bias: Float = 0
                    for i in 0..<oh * ow { bias += g[i] }
                    dbOut[ch] += bias
                    for ki in 0..<kh {
                        for kj in 0..<kw {
                            // Eight partial sums along each row (stride 1), added lane by lane at the end.
                            var lanes = SIMD8<Float>()
                            var s: Float = 0
                            for oy in 0..<oh {
                                let line = xp + (oy * sh + ki * dh) * width + kj * dw, grow = g + oy * ow
                                if sw == 1 {
                                    var ox = 0
                                    while ox + 8 <= ow {
                                        lanes += UnsafeRawPointer(grow + ox).loadUnaligned(as: SIMD8<Float>.self)
                                            * UnsafeRawPointer(line + ox).loadUnaligned(as: SIMD8<Float>.self)
                                        ox += 8
                                    }
                                    while ox < ow { s += grow[ox] * line[ox]; ox += 1 }
                                } else {
                                    for ox in 0..<ow { s += grow[ox] * line[ox * sw] }
                                }
                            }
                            dwOut[ch * taps + ki * kw + kj] += s + lanes.sum()
                        }
                    }
                    guard inputGradient else { continue }
                    gp.update(repeating: 0, count: rows * width)
                    for ki in 0..<kh {
                        for kj in 0..<kw {
                            let kv = k[ki * kw + kj]
                            for oy in 0..<oh {
                                let line = gp + (oy * sh + ki * dh) * width + kj * dw, grow = g + oy * ow
                                if sw == 1 {
                                    let k8 = SIMD8<Float>(repeating: kv)
                                    var ox = 0
                                    while ox + 8 <= ow {
                                        let sum = UnsafeRawPointer(line + ox).loadUnaligned(as: SIMD8<Float>.self)
                                            + UnsafeRawPointer(grow + ox).loadUnaligned(as: SIMD8<Float>.self) * k8
                                        UnsafeMutableRawPointer(line + ox).storeBytes(of: sum, as: SIMD8<Float>.self)
                                        ox += 8
                                    }
                                    while ox < ow { line[ox] += grow[ox] * kv; ox += 1 }
                                } else {
                                    for ox in 0..<ow { line[ox * sw] += grow[ox] * kv }
                                }
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
    }
    }
    }
    return (inputGradient ? dx : nil, Tensor(shape: weight.shape, scalars: dWeight), db)
}
