/// Backward kernels of the training engine: the gradients of convolution and pooling with respect to their
/// inputs and weights, given the gradient of their output.

/// Gradients of `conv2d(input, weight, bias, window, group)`: (dInput, dWeight, dBias).
/// Images go in chunks, as in the forward pass: the chunk's receptive fields unfolded once (im2col), then
/// dW += dY·colsᵀ and dCols = Wᵀ·dY as two BLAS products over all its pixels, then col2im. Each worker sums its
/// own dW, added in a fixed order, so results do not depend on timing; a single chunk parallelises its GEMMs instead.
///
/// dInput is skipped when `inputGradient` is false (a first layer); for stride-1 "same" 3×3 layers it is the
/// convolution of dY with the flipped, transposed kernels, which takes the Winograd path.
public func conv2dBackward(_ input: Tensor<Float>, weight: Tensor<Float>, window: Window2D, group: Int,
                           gradOutput dy: Tensor<Float>, inputGradient: Bool = true) throws -> (input: Tensor<Float>?, weight: Tensor<Float>, bias: [Float]) {
    guard input.rank == 4, weight.rank == 4, dy.rank == 4 else {
        throw ComputeError.shapeMismatch("Conv backward expects 4-D tensors, got \(input.shape), \(weight.shape), \(dy.shape)")
    }
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (oc, icg, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
    let (oh, ow) = (dy.shape[2], dy.shape[3])
    guard dy.shape[0] == n, dy.shape[1] == oc, c == icg * group else {
        throw ComputeError.shapeMismatch("Conv backward: gradient \(dy.shape) does not match input \(input.shape) and weight \(weight.shape)")
    }
    if isDepthwise(weightShape: weight.shape, group: group) {
        return try depthwiseConv2dBackward(input, weight: weight, window: window, gradOutput: dy, inputGradient: inputGradient)
    }
    let ocg = oc / group, kdim = icg * kh * kw, ohw = oh * ow
    let perChunk = max(1, min(n, min((1024 + ohw - 1) / ohw, (1 << 22) / max(1, kdim * ohw))))
    let chunks = (n + perChunk - 1) / perChunk
    let workers = max(1, min(ComputeThreads.count, chunks))
    let alone = workers == 1
    var dx = Tensor<Float>(zeros: inputGradient ? input.shape : [1])  // one unused scalar keeps the buffer pointer valid
    var db = [Float](repeating: 0, count: oc)
    // dX as a forward convolution where Winograd applies: kernels [IC, OC, 3, 3] rotated by 180°.
    let transposed = Window2D(kernel: (kh, kw), pads: (kh - 1 - window.pads.top, kw - 1 - window.pads.left,
                                                      kh - 1 - window.pads.bottom, kw - 1 - window.pads.right))
    let viaConvolution = inputGradient && group == 1 && window.strides == (1, 1) && window.dilations == (1, 1) && oh == h && ow == w
        && Winograd.applies(weightShape: [c, oc, kh, kw], window: transposed, group: 1) && Winograd.isWorthwhile(inputChannels: oc)
    if viaConvolution {
        var flipped = [Float](repeating: 0, count: weight.count)
        for o in 0..<oc { for i in 0..<c { for y in 0..<kh { for x in 0..<kw {
            flipped[((i * oc + o) * kh + (kh - 1 - y)) * kw + (kw - 1 - x)] = weight.scalars[((o * c + i) * kh + y) * kw + x]
        } } } }
        let kernels = Tensor(shape: [c, oc, kh, kw], scalars: flipped)
        dx = try conv2d(dy, weight: kernels, bias: nil, window: transposed, prepared: Winograd.PreparedWeights(kernels))
    }
    let scatter = inputGradient && !viaConvolution
    for img in 0..<n { for o in 0..<oc { var s: Float = 0; let base = (img * oc + o) * ohw; for i in 0..<ohw { s += dy.scalars[base + i] }; db[o] += s } }
    // dW through the Winograd transforms where they apply (16 multiplies per 2×2 tile instead of 36).
    let winogradWeights = Winograd.applies(weightShape: weight.shape, window: window, group: group) && Winograd.isWorthwhile(inputChannels: c)
    let winogradDW = winogradWeights ? Winograd.weightGradient(input, gradOutput: dy, window: window) : nil
    if let dw = winogradDW, !scatter { return (inputGradient ? dx : nil, Tensor(shape: weight.shape, scalars: dw), db) }
    var partial = [[Float]](repeating: [], count: workers)
    let perWorker = (chunks + workers - 1) / workers
    input.scalars.withUnsafeBufferPointer { px in
        weight.scalars.withUnsafeBufferPointer { pw in
            dy.scalars.withUnsafeBufferPointer { pdy in
                dx.scalars.withUnsafeMutableBufferPointer { pdx in
                    let dxAddress = Int(bitPattern: pdx.baseAddress!)
                    partial.withUnsafeMutableBufferPointer { parts in
                        let partsAddress = Int(bitPattern: parts.baseAddress!)
                        parallelChunks(workers) { range in
                            let dxBase = UnsafeMutablePointer<Float>(bitPattern: dxAddress)!
                            let parts = UnsafeMutablePointer<[Float]>(bitPattern: partsAddress)!
                            let capacity = perChunk * ohw
                            let col = UnsafeMutablePointer<Float>.allocate(capacity: kdim * capacity)
                            let dcol = UnsafeMutablePointer<Float>.allocate(capacity: kdim * capacity)
                            let dyc = UnsafeMutablePointer<Float>.allocate(capacity: ocg * capacity)
                            defer { col.deallocate(); dcol.deallocate(); dyc.deallocate() }
                            let gemm = alone ? parallelSgemm : sgemm
                            for worker in range {
                                var dw = [Float](repeating: 0, count: weight.count)
                                dw.withUnsafeMutableBufferPointer { pdw in
                                    for chunk in (worker * perWorker)..<min(chunks, (worker + 1) * perWorker) {
                                        let first = chunk * perChunk, count = min(perChunk, n - first), cols = count * ohw
                                        for g in 0..<group {
                                            if !winogradWeights {
                                                im2col(px.baseAddress!, c: c, h: h, w: w, firstImage: first, images: count,
                                                       channels: g * icg..<(g + 1) * icg, window: window, oh: oh, ow: ow, into: col)
                                            }
                                            // dY of the chunk as [ocg, images·ohw].
                                            for img in 0..<count {
                                                for o in 0..<ocg {
                                                    (dyc + o * cols + img * ohw).update(from: pdy.baseAddress! + ((first + img) * oc + g * ocg + o) * ohw, count: ohw)
                                                }
                                            }
                                            // dW[g] (ocg×kdim) += dY (ocg×cols) · colsᵀ (cols×kdim)
                                            if !winogradWeights {
                                                gemm(false, true, ocg, kdim, cols, 1, dyc, cols, col, cols, 1, pdw.baseAddress! + g * ocg * kdim, kdim)
                                            }
                                            guard scatter else { continue }
                                            // dCols (kdim×cols) = W[g]ᵀ (kdim×ocg) · dY (ocg×cols)
                                            gemm(true, false, kdim, cols, ocg, 1, pw.baseAddress! + g * ocg * kdim, kdim, dyc, cols, 0, dcol, cols)
                                            for img in 0..<count {
                                                col2im(dcol + img * ohw, rowStride: cols, c: c, h: h, w: w, image: first + img,
                                                       channels: g * icg..<(g + 1) * icg, window: window, oh: oh, ow: ow, into: dxBase)
                                            }
                                        }
                                    }
                                }
                                parts[worker] = dw
                            }
                        }
                    }
                }
            }
        }
    }
    var dw = winogradDW ?? [Float](repeating: 0, count: weight.count)
    if !winogradWeights { for part in partial where !part.isEmpty { for i in dw.indices { dw[i] += part[i] } } }
    return (inputGradient ? dx : nil, Tensor(shape: weight.shape, scalars: dw), db)
}

/// Adds one image's [channels·kh·kw, oh·ow] columns (rows `rowStride` apart) back onto its NCHW input positions
/// (the adjoint of im2col).
func col2im(_ col: UnsafePointer<Float>, rowStride: Int, c: Int, h: Int, w: Int, image: Int, channels: Range<Int>, window: Window2D,
            oh: Int, ow: Int, into dx: UnsafeMutablePointer<Float>) {
    let (kh, kw) = window.kernel
    let (sh, sw) = window.strides
    let (dh, dw) = window.dilations
    let (pt, pl) = (window.pads.top, window.pads.left)
    var row = 0
    for ch in channels {
        let plane = dx + (image * c + ch) * h * w
        for ki in 0..<kh {
            for kj in 0..<kw {
                let src = col + row * rowStride
                for oy in 0..<oh {
                    let iy = oy * sh + ki * dh - pt
                    if iy < 0 || iy >= h { continue }
                    for ox in 0..<ow {
                        let ix = ox * sw + kj * dw - pl
                        if ix >= 0 && ix < w { plane[iy * w + ix] += src[oy * ow + ox] }
                    }
                }
                row += 1
            }
        }
    }
}

/// Gradient of `pool2d(input, kind, window)` with respect to its input. Max pooling sends each output's gradient
/// to the first maximum of its window (PyTorch's choice); average pooling spreads it over the divisor's cells.
public func pool2dBackward(_ input: Tensor<Float>, kind: PoolKind, window: Window2D, gradOutput dy: Tensor<Float>) throws -> Tensor<Float> {
    guard input.rank == 4, dy.rank == 4 else { throw ComputeError.shapeMismatch("pooling backward expects 4-D tensors") }
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (oh, ow) = (dy.shape[2], dy.shape[3])
    var dx = Tensor<Float>(zeros: input.shape)
    input.scalars.withUnsafeBufferPointer { px in
        dy.scalars.withUnsafeBufferPointer { pdy in
            dx.scalars.withUnsafeMutableBufferPointer { pdx in
                let address = Int(bitPattern: pdx.baseAddress!)
                parallelChunks(n * c, minimumChunk: 4) { planes in
                    let out = UnsafeMutablePointer<Float>(bitPattern: address)!
                    for p in planes {
                        let src = px.baseAddress! + p * h * w, g = pdy.baseAddress! + p * oh * ow, d = out + p * h * w
                        for oy in 0..<oh {
                            for ox in 0..<ow {
                                let grad = g[oy * ow + ox]
                                switch kind {
                                case .max:
                                    var best = -Float.infinity, at = -1
                                    window.forEachCell(oy: oy, ox: ox, h: h, w: w) { i in
                                        if src[i] > best || at < 0 { best = src[i]; at = i }
                                    }
                                    if at >= 0 { d[at] += grad }
                                case .average(let includePad):
                                    var inside = 0
                                    window.forEachCell(oy: oy, ox: ox, h: h, w: w) { _ in inside += 1 }
                                    let divisor = window.averageDivisor(oy: oy, ox: ox, h: h, w: w, inside: inside,
                                                                        includePad: includePad)
                                    guard divisor > 0 else { continue }
                                    let share = grad / Float(divisor)
                                    window.forEachCell(oy: oy, ox: ox, h: h, w: w) { i in d[i] += share }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return dx
}

/// Gradient of Relu from its output, in place: dy stays where y > 0 and becomes 0 elsewhere. Split over the workers.
public func reluBackward(_ dy: inout Tensor<Float>, output y: Tensor<Float>) {
    clampedBackward(&dy, output: y, low: 0, high: .infinity)
}

/// dy = 0 where the clamped output y is not strictly inside (low, high) (an infinite `high` bounds nothing) — the
/// gradient of Clip with constant bounds (ReLU6) and of Relu, in place, over the workers.
public func clampedBackward(_ dy: inout Tensor<Float>, output y: Tensor<Float>, low: Float, high: Float) {
    precondition(dy.count == y.count)
    let count = dy.count
    y.scalars.withUnsafeBufferPointer { y in
        dy.scalars.withUnsafeMutableBufferPointer { g in
            let address = Int(bitPattern: g.baseAddress!)
            parallelChunks(count, minimumChunk: 1 << 16) { range in
                let g = UnsafeMutablePointer<Float>(bitPattern: address)!
                // Eight at a time with comparison masks (a branch per value ran at a tenth of the speed).
                let unbounded = SIMDMask<SIMD8<Int32>>(repeating: high == .infinity)
                var i = range.lowerBound
                while i + 8 <= range.upperBound {
                    let v = UnsafeRawPointer(y.baseAddress! + i).loadUnaligned(as: SIMD8<Float>.self)
                    let d = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
                    let inside = (v .> low) .& ((v .< high) .| unbounded)
                    UnsafeMutableRawPointer(g + i).storeBytes(of: d.replacing(with: 0, where: .!inside), as: SIMD8<Float>.self)
                    i += 8
                }
                while i < range.upperBound { g[i] = y[i] > low && (y[i] < high || high == .infinity) ? g[i] : 0; i += 1 }
            }
        }
    }
}
