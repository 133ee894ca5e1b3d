import CKernels

/// Max or average pooling over NCHW planes.
public enum PoolKind: Sendable { case max, average(countIncludePad: Bool) }

public func pool2d(_ input: Tensor<Float>, kind: PoolKind, window: Window2D) throws -> Tensor<Float> {
    guard input.rank == 4 else { throw ComputeError.shapeMismatch("pooling expects 4-D NCHW input, got \(input.shape)") }
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    try window.validate()
    guard let (oh, ow) = window.outputSize(h: h, w: w) else {
        throw ComputeError.shapeMismatch("pooling window \(window.kernel) does not fit input \(input.shape)")
    }
    _ = try elementCount([n, c, oh, ow], "pooling output")
    // Every path below writes each output element, so the buffer starts uninitialised (no memset).
    var output = Tensor<Float>(shape: [n, c, oh, ow], unsafeUninitialized: { _ in })
    let (kh, kw) = window.kernel
    let (sh, sw) = window.strides
    let (dh, dw) = window.dilations
    let (pt, pl) = (window.pads.top, window.pads.left)
    let (pb, pr) = (window.pads.bottom, window.pads.right)
    let isPlainMax2x2 = window.kernel == (2, 2) && window.strides == (2, 2) && window.dilations == (1, 1)
        && pt == 0 && pl == 0 && 2 * oh <= h && 2 * ow <= w
    let spans = columnSpans(kernel: kw, stride: sw, dilation: dw, padLeft: pl, width: w, outputWidth: ow)
    input.scalars.withUnsafeBufferPointer { inBuf in
        output.scalars.withUnsafeMutableBufferPointer { outBuf in
            let inBase = inBuf.baseAddress!
            let outAddress = Int(bitPattern: outBuf.baseAddress!)
            if case .max = kind, wc_maxpool_across_runs(Int32(h), Int32(w), Int32(oh), Int32(ow)) != 0 {
                // Small outputs: sixteen planes at a time, one per lane.
                let shape = wc_window(window), planes = n * c
                parallelChunks((planes + 15) / 16) { groups in
                    let first = groups.lowerBound * 16, count = min(planes, groups.upperBound * 16) - first
                    withUnsafePointer(to: shape) {
                        wc_maxpool_across(inBase + first * h * w, count, Int32(h), Int32(w), $0,
                                          UnsafeMutablePointer<Float>(bitPattern: outAddress)! + first * oh * ow, Int32(oh), Int32(ow))
                    }
                }
                return
            }
            parallelChunks(n * c, minimumChunk: 4) { planes in
                let out = UnsafeMutablePointer<Float>(bitPattern: outAddress)!
                // Max pools with stride 1 or 2 read a −∞-bordered copy of each plane, eight outputs at a time.
                var padded: PaddedPlane? = nil
                if case .max = kind, !isPlainMax2x2, sw <= 2 {
                    padded = PaddedPlane(h: h, w: w, window: window, oh: oh, ow: ow, fill: -.infinity)
                }
                defer { padded?.deallocate() }
                for p in planes {
                    let src = inBase + p * h * w
                    let dst = out + p * oh * ow
                    if case .max = kind, !isPlainMax2x2 {
                        if let plane = padded {
                            plane.load(src, h: h, w: w)
                            maxPoolPlane(plane, window: window, into: dst, oh: oh, ow: ow)
                        } else {
                            maxPoolPlane(src, h: h, w: w, window: window, spans: spans, into: dst, oh: oh, ow: ow)
                        }
                        continue
                    }
                    if case .max = kind, isPlainMax2x2 {
                        // The common 2×2 / stride-2 max pool, without bounds checks. `max` drops a NaN in its
                        // second operand, so a row whose windows hold one (their sum is NaN; an infinity of each
                        // sign also makes it NaN, harmlessly) is taken again keeping it, as the other paths do.
                        for oy in 0..<oh {
                            let r0 = src + 2 * oy * w, r1 = r0 + w
                            let d = dst + oy * ow
                            var nan = false
                            for ox in 0..<ow {
                                let (a, b, c, e) = (r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1])
                                d[ox] = max(max(a, b), max(c, e))
                                nan = nan || (a + b + c + e).isNaN
                            }
                            guard nan else { continue }
                            let keep = { (m: Float, v: Float) in v > m || v.isNaN ? v : m }
                            for ox in 0..<ow { d[ox] = keep(keep(keep(r0[2 * ox], r0[2 * ox + 1]), r1[2 * ox]), r1[2 * ox + 1]) }
                        }
                        continue
                    }
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            let y0 = oy * sh - pt, x0 = ox * sw - pl
                            switch kind {
                            case .max:
                                var best = -Float.infinity
                                for ki in 0..<kh {
                                    let iy = y0 + ki * dh
                                    if iy < 0 || iy >= h { continue }
                                    for kj in 0..<kw {
                                        let ix = x0 + kj * dw
                                        if ix < 0 || ix >= w { continue }
                                        let v = src[iy * w + ix]
                                        if v > best || v.isNaN { best = v }
                                    }
                                }
                                dst[oy * ow + ox] = best
                            case .average(let includePad):
                                var sum: Float = 0
                                var inside = 0
                                for ki in 0..<kh {
                                    let iy = y0 + ki * dh
                                    if iy < 0 || iy >= h { continue }
                                    for kj in 0..<kw {
                                        let ix = x0 + kj * dw
                                        if ix < 0 || ix >= w { continue }
                                        sum += src[iy * w + ix]
                                        inside += 1
                                    }
                                }
                                var divisor = inside
                                if includePad {
                                    // Count the window's cells that lie inside the padded input (not past it).
                                    let yEnd = min(y0 + (kh - 1) * dh, h - 1 + pb), xEnd = min(x0 + (kw - 1) * dw, w - 1 + pr)
                                    let rows = (yEnd - y0) / dh + 1, cols = (xEnd - x0) / dw + 1
                                    divisor = max(1, rows * cols)
                                }
                                dst[oy * ow + ox] = divisor > 0 ? sum / Float(divisor) : 0
                            }
                        }
                    }
                }
            }
        }
    }
    return output
}

/// One plane of a max pool, an output row at a time: each window cell updates the span of output columns whose input
/// column lies inside the image (a loop the compiler vectorises). Cells are visited in the same order as the
/// per-output loop, so a NaN propagates the same way.
@usableFromInline
func maxPoolPlane(_ src: UnsafePointer<Float>, h: Int, w: Int, window: Window2D, spans: [(lo: Int, hi: Int)],
                  into dst: UnsafeMutablePointer<Float>, oh: Int, ow: Int) {
    let (kh, kw) = window.kernel
    let (sh, sw) = window.strides
    let (dh, dw) = window.dilations
    let (pt, pl) = (window.pads.top, window.pads.left)
    for oy in 0..<oh {
        let row = dst + oy * ow
        row.update(repeating: -.infinity, count: ow)
        for ki in 0..<kh {
            let iy = oy * sh + ki * dh - pt
            if iy < 0 || iy >= h { continue }
            for kj in 0..<kw {
                let (lo, hi) = spans[kj]
                let base = src + iy * w + (kj * dw - pl)
                if sw == 1 {
                    for ox in lo..<hi { let v = base[ox], b = row[ox]; row[ox] = v > b || v.isNaN ? v : b }
                } else if sw == 2 {
                    for ox in lo..<hi { let v = base[2 * ox], b = row[ox]; row[ox] = v > b || v.isNaN ? v : b }
                } else {
                    for ox in lo..<hi { let v = base[ox * sw], b = row[ox]; row[ox] = v > b || v.isNaN ? v : b }
                }
            }
        }
    }
}

/// The same over a −∞-bordered plane (C vector code in CKernels): a border cell never wins (nor does a NaN lose), as
/// when the cell is skipped.
@usableFromInline
func maxPoolPlane(_ plane: PaddedPlane, window: Window2D, into dst: UnsafeMutablePointer<Float>, oh: Int, ow: Int) {
    wc_maxpool_plane(plane.buffer, plane.width, Int32(window.kernel.h), Int32(window.kernel.w), Int32(window.dilations.h),
                     Int32(window.dilations.w), Int32(window.strides.h), Int32(window.strides.w), dst, Int32(oh), Int32(ow))
}

/// For each kernel column kj, the output columns [lo, hi) whose input column ox·stride + kj·dilation − padLeft lies in
/// 0..<width.
@usableFromInline
func columnSpans(kernel: Int, stride: Int, dilation: Int, padLeft: Int, width: Int, outputWidth: Int) -> [(lo: Int, hi: Int)] {
    (0..<kernel).map { kj in
        let off = kj * dilation - padLeft
        let lo = off >= 0 ? 0 : min(outputWidth, (-off + stride - 1) / stride)
        let hi = width - 1 - off < 0 ? 0 : min(outputWidth, (width - 1 - off) / stride + 1)
        return (lo, max(lo, hi))
    }
}

/// Mean over each H×W plane, keeping [N, C, 1, 1].
public func globalAveragePool(_ input: Tensor<Float>) throws -> Tensor<Float> {
    guard input.rank >= 3 else { throw ComputeError.shapeMismatch("GlobalAveragePool expects N×C×spatial input, got \(input.shape)") }
    let planes = input.shape[0] * input.shape[1]
    let size = input.count / max(1, planes)
    var out = [Float](repeating: 0, count: planes)
    let divisor = Float(max(1, size))
    input.scalars.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            let (src, dstAddress) = (src.baseAddress!, Int(bitPattern: dst.baseAddress))
            // Each plane summed in order, as one chain; eight planes at a time, so that eight chains run side by side.
            parallelChunks((planes + 7) / 8, minimumChunk: max(1, (1 << 14) / max(1, 8 * size))) { groups in
                let dst = UnsafeMutablePointer<Float>(bitPattern: dstAddress)!
                for group in groups {
                    let first = group * 8, count = min(8, planes - first)
                    guard count == 8 else {
                        for p in first..<first + count {
                            var sum: Float = 0
                            for i in 0..<size { sum += src[p * size + i] }
                            dst[p] = sum / divisor
                        }
                        continue
                    }
                    let base = src + first * size
                    var (s0, s1, s2, s3, s4, s5, s6, s7): (Float, Float, Float, Float, Float, Float, Float, Float) = (0, 0, 0, 0, 0, 0, 0, 0)
                    for i in 0..<size {
                        s0 += base[i]; s1 += base[size + i]; s2 += base[2 * size + i]; s3 += base[3 * size + i]
                        s4 += base[4 * size + i]; s5 += base[5 * size + i]; s6 += base[6 * size + i]; s7 += base[7 * size + i]
                    }
                    (dst[first], dst[first + 1], dst[first + 2], dst[first + 3]) = (s0 / divisor, s1 / divisor, s2 / divisor, s3 / divisor)
                    (dst[first + 4], dst[first + 5], dst[first + 6], dst[first + 7]) = (s4 / divisor, s5 / divisor, s6 / divisor, s7 / divisor)
                }
            }
        }
    }
    return Tensor(shape: [input.shape[0], input.shape[1]] + Array(repeating: 1, count: input.rank - 2), scalars: out)
}

/// Max over each H×W plane, keeping [N, C, 1, 1].
public func globalMaxPool(_ input: Tensor<Float>) throws -> Tensor<Float> {
    guard input.rank >= 3 else { throw ComputeError.shapeMismatch("GlobalMaxPool expects N×C×spatial input, got \(input.shape)") }
    let planes = input.shape[0] * input.shape[1]
    let size = input.count / max(1, planes)
    var out = [Float](repeating: 0, count: planes)
    for p in 0..<planes { out[p] = input.scalars[p * size..<(p + 1) * size].max() ?? 0 }
    return Tensor(shape: [input.shape[0], input.shape[1]] + Array(repeating: 1, count: input.rank - 2), scalars: out)
}
