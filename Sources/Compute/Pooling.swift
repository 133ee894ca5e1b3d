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
    let isPlainMax2x2 = window.kernel == (2, 2) && window.strides == (2, 2) && window.dilations == (1, 1)
        && window.pads.top == 0 && window.pads.left == 0 && 2 * oh <= h && 2 * ow <= w
    input.scalars.withUnsafeBufferPointer { inBuf in
        output.scalars.withUnsafeMutableBufferPointer { outBuf in
            let inBase = inBuf.baseAddress!
            let outAddress = Int(bitPattern: outBuf.baseAddress!)
            let shape = wc_window(window)
            // Many planes a call, sixteen at a time: straight from the input (AVX-512 at strides 1 and 2 along the
            // rows, windows up to 4 wide; AVX2 planes 8 to 16 wide, each in registers), else small outputs one plane
            // per lane (AVX2: two groups of eight). AVX-512, against the separable and across-plane kernels before it,
            // each node's least time over 4 alternated rounds: SqueezeNet 1.1 64 px at batch 64, two threads, µs,
            // 31 → 15 645 → 447, 15 → 7 259 → 189, 7 → 3 261 → 169; at 224 px, batch 1, one thread 118 → 78, 64 → 38,
            // 33 → 19; AlexNet FMNIST batch 64 1,015 → 562, 826 → 520, 475 → 305; VGG-16's first 2×2 pool
            // 1,257 → 663.
            let (straight, across) = withUnsafePointer(to: shape) {
                (wc_maxpool_planes_runs(Int32(h), Int32(w), $0, Int32(oh), Int32(ow)) != 0,
                 wc_maxpool_across_runs(Int32(h), Int32(w), $0, Int32(oh), Int32(ow)) != 0)
            }
            if case .max = kind, straight || across {
                let planes = n * c
                let kernel = straight ? wc_maxpool_planes : wc_maxpool_across
                parallelChunks((planes + 15) / 16) { groups in
                    let first = groups.lowerBound * 16, count = min(planes, groups.upperBound * 16) - first
                    withUnsafePointer(to: shape) {
                        kernel(inBase + first * h * w, count, Int32(h), Int32(w), $0,
                               UnsafeMutablePointer<Float>(bitPattern: outAddress)! + first * oh * ow, Int32(oh), Int32(ow))
                    }
                }
                return
            }
            // The plain 2×2 loop below only where the separable kernel does not run (AlexNet FMNIST's and VGG-16's
            // 2×2 pools are faster through it: see Session 18 in docs/RESULTS.md, and Session 25 for AVX2).
            if case .max = kind, !isPlainMax2x2 || withUnsafePointer(to: shape, { wc_maxpool_separable_runs($0) }) != 0 {
                // Plane by plane (`wc_maxpool_rows`, vector code in CKernels: separable, or from a −∞-bordered copy).
                forEachPlaneWithRowCopy(n * c, h: h, w: w, window: window, oh: oh, ow: ow, border: -.infinity,
                                        scratchCount: wc_maxpool_scratch_count, minimumChunk: 4) { p, copy, shape in
                    wc_maxpool_rows(inBase + p * h * w, Int32(h), Int32(w), shape,
                                    UnsafeMutablePointer<Float>(bitPattern: outAddress)! + p * oh * ow, Int32(oh),
                                    Int32(ow), copy)
                }
                return
            }
            parallelChunks(n * c, minimumChunk: 4) { planes in
                let out = UnsafeMutablePointer<Float>(bitPattern: outAddress)!
                for p in planes {
                    let src = inBase + p * h * w
                    let dst = out + p * oh * ow
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
                    // Average pooling: each output over the window's cells inside the input.
                    guard case .average(let includePad) = kind else { continue }
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            var sum: Float = 0
                            var inside = 0
                            window.forEachCell(oy: oy, ox: ox, h: h, w: w) { i in
                                sum += src[i]
                                inside += 1
                            }
                            let divisor = window.averageDivisor(oy: oy, ox: ox, h: h, w: w, inside: inside,
                                                                includePad: includePad)
                            dst[oy * ow + ox] = divisor > 0 ? sum / Float(divisor) : 0
                        }
                    }
                }
            }
        }
    }
    return output
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
            // With AVX-512 or AVX2 sixteen or eight planes a vector (`wc_global_average`), in groups of 32 planes.
            if wc_global_average_runs() != 0 {
                parallelChunks((planes + 31) / 32, minimumChunk: max(1, (1 << 14) / max(1, 32 * size))) { groups in
                    let first = groups.lowerBound * 32, count = min(planes, groups.upperBound * 32) - first
                    wc_global_average(src + first * size, count, size, UnsafeMutablePointer<Float>(bitPattern: dstAddress)! + first)
                }
                return
            }
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
