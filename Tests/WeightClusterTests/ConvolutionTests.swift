import CKernels
@testable import Compute
import Testing
import _TestSupport

/// Winograd F(2×2,3×3) against im2col + GEMM and a naive loop, over odd sizes, paddings and batch sizes.
@Suite struct ConvolutionTests {
    struct Case: Sendable, CustomStringConvertible {
        var n, c, h, w, oc: Int
        var pads: (Int, Int, Int, Int)
        var description: String { "n\(n) c\(c) \(h)x\(w) oc\(oc) pads\(pads)" }
    }

    static let cases = [
        Case(n: 1, c: 3, h: 5, w: 5, oc: 2, pads: (1, 1, 1, 1)),
        Case(n: 3, c: 16, h: 7, w: 6, oc: 5, pads: (1, 1, 1, 1)),
        Case(n: 2, c: 8, h: 9, w: 4, oc: 4, pads: (0, 0, 0, 0)),
        Case(n: 5, c: 4, h: 2, w: 2, oc: 3, pads: (1, 1, 1, 1)),
        Case(n: 2, c: 5, h: 6, w: 7, oc: 6, pads: (2, 0, 1, 2)),
        // Rows of 7 or more tiles (the AVX2 transforms): a partial last vector of tiles, an odd last row of tiles,
        // uneven padding.
        Case(n: 2, c: 3, h: 17, w: 29, oc: 4, pads: (1, 1, 1, 1)),
        Case(n: 1, c: 2, h: 16, w: 31, oc: 3, pads: (2, 0, 1, 2)),
        // Rows of up to 8 tiles (AVX-512: sixteen consecutive tiles a vector over several rows of them): 7 a row, so
        // that vectors begin and end within rows; one a row, 20 rows over two vectors; 8 a row, two rows a vector.
        Case(n: 2, c: 4, h: 13, w: 13, oc: 3, pads: (1, 1, 1, 1)),
        Case(n: 1, c: 3, h: 40, w: 3, oc: 2, pads: (0, 1, 1, 0)),
        Case(n: 1, c: 2, h: 11, w: 16, oc: 2, pads: (1, 1, 1, 1)),
    ]

    static func random(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2000) / 1000 - 1
        }
    }

    /// The definition, in six loops.
    static func naive(_ x: Tensor<Float>, _ wt: Tensor<Float>, _ bias: [Float], _ window: Window2D) -> Tensor<Float> {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oc = wt.shape[0]
        let (oh, ow) = window.outputSize(h: h, w: w)!
        var out = Tensor<Float>(zeros: [n, oc, oh, ow])
        for b in 0..<n { for o in 0..<oc { for y in 0..<oh { for xx in 0..<ow {
            var s = bias[o]
            for i in 0..<c { for ki in 0..<3 { for kj in 0..<3 {
                let iy = y + ki - window.pads.top, ix = xx + kj - window.pads.left
                if iy >= 0 && iy < h && ix >= 0 && ix < w { s += x.scalars[((b * c + i) * h + iy) * w + ix] * wt.scalars[((o * c + i) * 3 + ki) * 3 + kj] }
            } } }
            out.scalars[((b * oc + o) * oh + y) * ow + xx] = s
        } } } }
        return out
    }

    @Test(arguments: cases)
    func winogradMatchesDefinition(_ k: Case) throws {
        let x = Tensor(shape: [k.n, k.c, k.h, k.w], scalars: Self.random(k.n * k.c * k.h * k.w, seed: 1))
        let wt = Tensor(shape: [k.oc, k.c, 3, 3], scalars: Self.random(k.oc * k.c * 9, seed: 2))
        let bias = Self.random(k.oc, seed: 3)
        let window = Window2D(kernel: (3, 3), pads: k.pads)
        let reference = Self.naive(x, wt, bias, window)
        let winograd = try conv2d(x, weight: wt, bias: bias, window: window, prepared: Winograd.PreparedWeights(wt))
        let im2col = try conv2d(x, weight: wt, bias: bias, window: window)
        #expect(winograd.shape == reference.shape)
        #expect(TestSupport.maxAbsDifference(winograd.scalars, reference.scalars) < 1e-4)
        #expect(TestSupport.maxAbsDifference(im2col.scalars, reference.scalars) < 1e-4)
        let fused = try conv2d(x, weight: wt, bias: bias, window: window, activation: .relu, prepared: Winograd.PreparedWeights(wt))
        #expect(TestSupport.maxAbsDifference(fused.scalars, reference.scalars.map { max($0, 0) }) < 1e-4)
    }

    /// dW[o,i,ky,kx] = Σ dy[b,o,y,x]·input[b,i,y+ky−top,x+kx−left]: the Winograd weight gradient (and conv2dBackward,
    /// which takes it for 16+ input channels) against the definition, over the same odd sizes and paddings,
    /// plus a batch large enough to split into chunks over the workers.
    @Test(arguments: cases + [Case(n: 9, c: 16, h: 11, w: 9, oc: 7, pads: (1, 0, 2, 1))])
    func winogradWeightGradientMatchesDefinition(_ k: Case) throws {
        let x = Tensor(shape: [k.n, k.c, k.h, k.w], scalars: Self.random(k.n * k.c * k.h * k.w, seed: 4))
        let window = Window2D(kernel: (3, 3), pads: k.pads)
        let (oh, ow) = window.outputSize(h: k.h, w: k.w)!
        let dy = Tensor(shape: [k.n, k.oc, oh, ow], scalars: Self.random(k.n * k.oc * oh * ow, seed: 5))
        var reference = [Float](repeating: 0, count: k.oc * k.c * 9)
        for b in 0..<k.n { for o in 0..<k.oc { for y in 0..<oh { for xx in 0..<ow {
            let g = dy.scalars[((b * k.oc + o) * oh + y) * ow + xx]
            for i in 0..<k.c { for ki in 0..<3 { for kj in 0..<3 {
                let iy = y + ki - window.pads.top, ix = xx + kj - window.pads.left
                if iy >= 0 && iy < k.h && ix >= 0 && ix < k.w { reference[((o * k.c + i) * 3 + ki) * 3 + kj] += g * x.scalars[((b * k.c + i) * k.h + iy) * k.w + ix] }
            } } }
        } } } }
        let winograd = Winograd.weightGradient(x, gradOutput: dy, window: window)
        #expect(TestSupport.maxAbsDifference(winograd, reference) < 1e-3)
        let wt = Tensor(shape: [k.oc, k.c, 3, 3], scalars: Self.random(k.oc * k.c * 9, seed: 6))
        let backward = try conv2dBackward(x, weight: wt, window: window, group: 1, gradOutput: dy)
        #expect(TestSupport.maxAbsDifference(backward.weight.scalars, reference) < 1e-3)
    }

    /// The direct path, bit for bit against im2col + the packed product over the same weights (and within rounding of
    /// the definition): strides 1 and 2 (even and odd columns), uneven padding, dilation, 7×7 and 1×5 kernels, a 1×1
    /// with stride 2, rows that end inside a vector, fewer than eight channels in the last panel, bias or none, a
    /// residual and a clamp; whole images per worker (3 images), and lone images split over the workers by rows (the
    /// copy larger than the weights; 23 rows at stride 2) and by panels (the weights larger); small maps whose
    /// copies hold several images side by side (5×5, 7×7 and 1×1 outputs, a last copy of fewer images).
    /// im2col + product a block of output rows at a time (large maps: the stems) gives the bits of the whole image's
    /// im2col + product: blocks of 1, 3 and 5 rows (a partial last one), several images, written into a range of a
    /// wider tensor's channels (a Concat), a 7×7 stride-2 stem, stride 2 with uneven padding, dilation.
    /// Maps of `im2colOneImageColumns` outputs or more take one image per product on packed weights, each value stored
    /// in place with its bias and clamp: each image of a batch gives the bits it gives alone and the definition's
    /// values, written into a range of a wider tensor's channels (a Concat) without touching the others.
    @Test func oneImageProductsMatchDefinition() throws {
        let (n, c, h, w, oc) = (3, 3, 24, 23, 5)
        let window = Window2D(kernel: (3, 3), pads: (1, 1, 1, 1))
        let (oh, ow) = try #require(window.outputSize(h: h, w: w))
        #expect(oh * ow >= im2colOneImageColumns)
        let x = Tensor(shape: [n, c, h, w], scalars: Self.random(n * c * h * w, seed: 71))
        let wt = Tensor(shape: [oc, c, 3, 3], scalars: Self.random(oc * c * 9, seed: 72))
        let bias = Self.random(oc, seed: 73)
        let packed = PackedWeights(wt, group: 1)
        var wide = Tensor<Float>(shape: [n, oc + 3, oh, ow], scalars: Array(repeating: 7, count: n * (oc + 3) * oh * ow))
        im2colConv2d(x, weight: wt, bias: bias, window: window, group: 1, activation: .relu, packed: packed,
                     into: &wide, firstChannel: 2)
        let reference = Self.naive(x, wt, bias, window).scalars.map { max($0, 0) }
        let plane = oh * ow
        for image in 0..<n {
            let one = Tensor(shape: [1, c, h, w], scalars: Array(x.scalars[image * c * h * w..<(image + 1) * c * h * w]))
            var alone = Tensor<Float>(shape: [1, oc, oh, ow], unsafeUninitialized: { _ in })
            im2colConv2d(one, weight: wt, bias: bias, window: window, group: 1, activation: .relu, packed: packed, into: &alone)
            let got = Array(wide.scalars[(image * (oc + 3) + 2) * plane..<(image * (oc + 3) + 2 + oc) * plane])
            #expect(got.map(\.bitPattern) == alone.scalars.map(\.bitPattern), "image \(image)")
            #expect(TestSupport.maxAbsDifference(got, Array(reference[image * oc * plane..<(image + 1) * oc * plane])) < 1e-4)
            let untouched = wide.scalars[image * (oc + 3) * plane..<(image * (oc + 3) + 2) * plane]
                + wide.scalars[(image * (oc + 3) + 2 + oc) * plane..<(image + 1) * (oc + 3) * plane]
            #expect(untouched.allSatisfy { $0 == 7 }, "image \(image): channels outside the range written")
        }
    }

    @Test(arguments: [
        (n: 2, c: 3, h: 40, w: 37, oc: 10, k: 7, s: 2, d: 1, pads: (3, 3, 3, 3)),
        (n: 1, c: 5, h: 33, w: 30, oc: 12, k: 3, s: 2, d: 1, pads: (1, 0, 0, 1)),
        (n: 3, c: 4, h: 17, w: 19, oc: 9, k: 3, s: 1, d: 2, pads: (2, 2, 2, 2)),
    ])
    func rowBlocksMatchWholeImage(_ t: (n: Int, c: Int, h: Int, w: Int, oc: Int, k: Int, s: Int, d: Int,
                                        pads: (Int, Int, Int, Int))) throws {
        let window = Window2D(kernel: (t.k, t.k), strides: (t.s, t.s), dilations: (t.d, t.d), pads: t.pads)
        let (oh, ow) = try #require(window.outputSize(h: t.h, w: t.w))
        let x = Tensor(shape: [t.n, t.c, t.h, t.w], scalars: Self.random(t.n * t.c * t.h * t.w, seed: 31))
        let wt = Tensor(shape: [t.oc, t.c, t.k, t.k], scalars: Self.random(t.oc * t.c * t.k * t.k, seed: 32))
        let packed = PackedWeights(wt, group: 1)
        for (bias, activation) in [(Self.random(t.oc, seed: 33), Activation.relu), (nil, .clip(low: -0.25, high: 0.5))] {
            var whole = Tensor<Float>(shape: [t.n, t.oc, oh, ow], unsafeUninitialized: { _ in })
            im2colConv2d(x, weight: wt, bias: bias, window: window, group: 1, activation: activation, packed: packed,
                         into: &whole)
            for rows in [1, 3, 5] {
                // Channels 2 ..< 2 + oc of a tensor with 3 more, the others left as they were.
                var wide = Tensor<Float>(shape: [t.n, t.oc + 3, oh, ow],
                                         scalars: Array(repeating: 7, count: t.n * (t.oc + 3) * oh * ow))
                im2colConv2dInRowBlocks(x, weight: wt, bias: bias, window: window, activation: activation,
                                        packed: packed, into: &wide, firstChannel: 2, rowsPerBlock: rows)
                let plane = oh * ow
                for image in 0..<t.n {
                    let got = wide.scalars[(image * (t.oc + 3) + 2) * plane..<(image * (t.oc + 3) + 2 + t.oc) * plane]
                    let want = whole.scalars[image * t.oc * plane..<(image + 1) * t.oc * plane]
                    #expect(got.map(\.bitPattern) == want.map(\.bitPattern), "\(rows) rows, image \(image), \(activation)")
                    let untouched = wide.scalars[image * (t.oc + 3) * plane..<(image * (t.oc + 3) + 2) * plane]
                        + wide.scalars[(image * (t.oc + 3) + 2 + t.oc) * plane..<(image + 1) * (t.oc + 3) * plane]
                    #expect(untouched.allSatisfy { $0 == 7 }, "\(rows) rows: channels outside the range written")
                }
            }
        }
    }

    /// The output pass of every variant, bit for bit against the definition (src + bias, + residual, then
    /// min(max(x, low), high)): −0, NaN and infinities among the values, a bias of 0 (which turns −0 into +0) and of
    /// −0 (which leaves it), with and without a residual, 37 values (whole vectors and a tail).
    @Test func outputPassMatchesDefinitionOnEveryVariant() {
        let specials: [Float] = [-0.0, 0, .nan, .infinity, -.infinity, 6, -6, 7.5, -1e-30]
        let src = (0..<37).map { $0 < specials.count ? specials[$0] : Float($0 % 11) - 5.25 }
        let residual = (0..<37).map { Float(($0 * 7) % 13) * 0.5 - 3 }
        for isa in [WC_ISA_GENERIC, WC_ISA_AVX2, WC_ISA_AVX512].map(Int32.init) where wc_kernels_supported(isa) != 0 {
            for bias: Float in [0, -0.0, 0.75] { for withResidual in [false, true] {
                for (low, high): (Float, Float) in [(-.infinity, .infinity), (0, .infinity), (0, 6), (2, -1)] {
                    let expected = src.indices.map { i -> Float in
                        var x = src[i] + bias
                        if withResidual { x += residual[i] }
                        return min(max(x, low), high)
                    }
                    var out = [Float](repeating: 1, count: src.count)
                    residual.withUnsafeBufferPointer { r in
                        wc_conv_epilogue_isa(isa, src, &out, src.count, bias, withResidual ? r.baseAddress : nil, low, high)
                    }
                    #expect(out.map(\.bitPattern) == expected.map(\.bitPattern),
                            "\(String(cString: wc_kernels_name(isa))) bias \(bias) residual \(withResidual) [\(low), \(high)]")
                }
            } }
        }
    }

    /// im2col of every variant this processor runs, equal to the definition: strides 1 to 3 (2 is the AVX-512 kernel's
    /// two-load path), dilations, uneven padding wider than the kernel's reach, "same" padding (AVX2's masked loads at one
    /// shift per tap), rows of 16 outputs and more (copied row
    /// by row), 2 to 15 (through the plane's table) and planes under 8 outputs, input planes of at most 32 values (AVX-512's
    /// permutes: one register or two, one image's taps as one run or several images' tap by tap; 49 values take the
    /// masked loads and gathers), a channel range and an image range that start past 0.
    @Test(arguments: [(9, 37), (3, 4), (5, 6), (4, 8), (4, 4), (2, 2), (7, 7)])
    func im2colMatchesDefinitionOnEveryVariant(_ size: (Int, Int)) {
        let (n, c, h, w) = (3, 4, size.0, size.1)
        let x = Self.random(n * c * h * w, seed: 7)
        var windows = 0
        for (kh, kw) in [(1, 1), (3, 3), (1, 7), (5, 2)] {
            for stride in 1...3 { for dilation in 1...2 { for pads in [(0, 0, 0, 0), (1, 2, 0, 3), (4, 4, 4, 4), (1, 1, 1, 1)] {
                let window = Window2D(kernel: (kh, kw), strides: (stride, stride), dilations: (dilation, dilation), pads: pads)
                guard let (oh, ow) = window.outputSize(h: h, w: w) else { continue }
                windows += 1
                for images in 1...2 {
                    let channels = 1..<4
                    let cols = images * oh * ow
                    var expected = [Float](repeating: 0, count: channels.count * kh * kw * cols)
                    for (row, ch) in channels.enumerated() { for ki in 0..<kh { for kj in 0..<kw {
                        for img in 0..<images { for oy in 0..<oh { for ox in 0..<ow {
                            let iy = oy * stride + ki * dilation - pads.0, ix = ox * stride + kj * dilation - pads.1
                            let inside = iy >= 0 && iy < h && ix >= 0 && ix < w
                            expected[((row * kh + ki) * kw + kj) * cols + (img * oh + oy) * ow + ox] =
                                inside ? x[(((1 + img) * c + ch) * h + iy) * w + ix] : 0
                        } } }
                    } } }
                    var shape = wc_window(kh: Int32(kh), kw: Int32(kw), sh: Int32(stride), sw: Int32(stride), dh: Int32(dilation),
                                          dw: Int32(dilation), pad_top: Int32(pads.0), pad_left: Int32(pads.1))
                    for isa in [WC_ISA_GENERIC, WC_ISA_AVX2, WC_ISA_AVX512].map(Int32.init) where wc_kernels_supported(isa) != 0 {
                        var col = [Float](repeating: .nan, count: expected.count)
                        wc_im2col_isa(isa, x, Int32(c), Int32(h), Int32(w), 1, Int32(images), Int32(channels.lowerBound),
                                      Int32(channels.count), &shape, Int32(oh), Int32(ow), &col)
                        let wrong = col.indices.first { col[$0] != expected[$0] }
                        #expect(wrong == nil, "\(String(cString: wc_kernels_name(isa))) \(window), \(images) images: first wrong value at \(wrong ?? 0)")
                    }
                }
            } } }
        }
        #expect(windows > 20)
    }

    /// One image is one chunk, whose transforms are split over the workers by channels: the same outputs, bit for bit,
    /// as that image in a batch of two (a chunk per worker, each transformed whole), and within rounding of im2col.
    @Test func winogradSplitsALoneImage() throws {
        let (c, h, w, oc) = (64, 32, 30, 72)
        let image = Self.random(c * h * w, seed: 8)
        let wt = Tensor(shape: [oc, c, 3, 3], scalars: Self.random(oc * c * 9, seed: 9))
        let bias = Self.random(oc, seed: 10)
        let window = Window2D(kernel: (3, 3), pads: (1, 1, 1, 1))
        let prepared = Winograd.PreparedWeights(wt)
        let one = try conv2d(Tensor(shape: [1, c, h, w], scalars: image), weight: wt, bias: bias, window: window,
                             activation: .relu, prepared: prepared)
        let two = try conv2d(Tensor(shape: [2, c, h, w], scalars: image + image.reversed()), weight: wt, bias: bias,
                             window: window, activation: .relu, prepared: prepared)
        #expect(one.scalars == Array(two.scalars[0..<one.scalars.count]))
        let im2col = try conv2d(Tensor(shape: [1, c, h, w], scalars: image), weight: wt, bias: bias, window: window,
                                activation: .relu)
        #expect(TestSupport.maxAbsDifference(one.scalars, im2col.scalars) < 1e-3)
    }
}
