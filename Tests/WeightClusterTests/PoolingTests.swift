import Compute
import Testing
import _TestSupport

/// Max pooling's fast paths (straight from the input with AVX-512 at strides 1 and 2 along the rows, windows up to 4
/// wide, and with AVX2 for 3×3 windows at stride 2 — group by group on planes up to 2,048 values, 30×75 whole;
/// separable at strides 1 and 2 on AVX-512 and AVX2; along rows over a −∞-bordered copy kept as its stride phases,
/// eight rows at a time; the plain 2×2 loop; sixteen planes at a time for small outputs, eight with AVX2; planes 8 to
/// 16 wide in registers with AVX2) against the definition, two NaNs included (for the plain 2×2 loop in a window's
/// second cell, which Swift's `max` alone would drop). 38 planes: two whole groups of sixteen and a partial one (AVX2:
/// four of eight and six).
@Suite struct PoolingTests {
    struct Case: Sendable, CustomStringConvertible {
        var h, w, k, stride, dilation: Int
        var pads: (Int, Int, Int, Int)
        var ceil = false
        var description: String { "\(h)x\(w) k\(k) s\(stride) d\(dilation) pads\(pads) ceil \(ceil)" }
    }

    static let cases = [
        Case(h: 31, w: 31, k: 3, stride: 2, dilation: 1, pads: (0, 0, 0, 0), ceil: true),
        Case(h: 9, w: 13, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(h: 12, w: 21, k: 5, stride: 2, dilation: 2, pads: (2, 1, 2, 3)),
        Case(h: 8, w: 8, k: 2, stride: 2, dilation: 1, pads: (0, 0, 0, 0)),
        Case(h: 10, w: 11, k: 3, stride: 3, dilation: 1, pads: (1, 0, 1, 1)),
        // Outputs wider than two vectors (a partial third), rows not a multiple of four.
        Case(h: 7, w: 40, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(h: 9, w: 75, k: 3, stride: 2, dilation: 1, pads: (0, 0, 0, 0), ceil: true),
        // Along rows at stride 3 (three phases), uneven padding, a last group of two rows.
        Case(h: 30, w: 50, k: 3, stride: 3, dilation: 1, pads: (1, 0, 1, 1)),
        // SqueezeNet's second pool at 64 px, 15×15 to 7×7.
        Case(h: 15, w: 15, k: 3, stride: 2, dilation: 1, pads: (0, 0, 0, 0), ceil: true),
        // SqueezeNet's last pool at 64 px: 7×7 to 3×3; 9×9 to 4×4 and 5×5 to 2×2: each row one vector with AVX-512
        // (as the 15×15 above and the 14×14 and 10×8 below), one partial group with AVX2.
        Case(h: 7, w: 7, k: 3, stride: 2, dilation: 1, pads: (0, 0, 0, 0), ceil: true),
        Case(h: 9, w: 9, k: 3, stride: 2, dilation: 1, pads: (0, 0, 0, 0), ceil: true),
        Case(h: 5, w: 5, k: 3, stride: 2, dilation: 1, pads: (1, 1, 0, 0)),
        // AVX2, planes up to 8 wide without a top or left border, each row one vector (`pool3s2_rows_avx2`): 7×7 above,
        // 8×8 and 6×6 to 4×4 and 3×3, whose last windows reach past the row (lanes made −∞).
        Case(h: 8, w: 8, k: 3, stride: 2, dilation: 1, pads: (0, 0, 0, 0), ceil: true),
        Case(h: 6, w: 6, k: 3, stride: 2, dilation: 1, pads: (0, 0, 0, 0), ceil: true),
        // With AVX-512 the plane as it lies (`pool3s2_flat`): 7×7 above in two groups of rows; 6×6 padded on every
        // side (taps and rows over the border, two groups); 4×4 to 1×1 (one group, one output).
        Case(h: 6, w: 6, k: 3, stride: 2, dilation: 1, pads: (1, 1, 1, 1)),
        Case(h: 4, w: 4, k: 3, stride: 2, dilation: 1, pads: (0, 0, 0, 0)),
        // SqueezeNet's last pool at 224 px, 27×27 to 13×13: a whole group and a partial one with AVX2.
        Case(h: 27, w: 27, k: 3, stride: 2, dilation: 1, pads: (0, 0, 0, 0), ceil: true),
        // ResNet's pool (3×3, stride 2, padding 1): a first row cut by the padding, then pairs of rows that share one,
        // an odd count of rows and a partial vector on each row.
        Case(h: 20, w: 19, k: 3, stride: 2, dilation: 1, pads: (1, 1, 1, 1)),
        // A plane over 2,048 values at 3×3 stride 2 (AVX2: all groups of a row at once, four whole and a partial one);
        // outputs over 256 wide (AVX2: the separable kernel, two output rows at a time).
        Case(h: 30, w: 75, k: 3, stride: 2, dilation: 1, pads: (1, 1, 1, 1)),
        Case(h: 7, w: 521, k: 3, stride: 2, dilation: 1, pads: (0, 0, 0, 0)),
        // Planes 8 to 16 wide into at most 8 outputs a row (AVX2: each plane in registers, its rows' first and last
        // eight columns; 3×3 at stride 2 aside): MobileNet-style 14 → 7 at padding 1, 16 → 8 (two whole vectors, eight
        // outputs), dilation 2, an 8-wide window over padding on both sides, 8 wide (the two vectors the same).
        Case(h: 14, w: 14, k: 3, stride: 2, dilation: 1, pads: (1, 1, 1, 1)),
        Case(h: 16, w: 16, k: 2, stride: 2, dilation: 1, pads: (0, 0, 0, 0)),
        Case(h: 11, w: 12, k: 3, stride: 1, dilation: 2, pads: (0, 0, 0, 0)),
        Case(h: 9, w: 16, k: 8, stride: 2, dilation: 1, pads: (1, 2, 1, 2)),
        Case(h: 10, w: 8, k: 3, stride: 2, dilation: 1, pads: (0, 1, 2, 1), ceil: true),
    ]

    /// Global average pool, bit for bit against each plane summed in order then divided: whole groups of eight planes
    /// and a partial one (26 planes; with AVX-512 a group of sixteen and a partial second; with AVX2 a pair of eights,
    /// then an eight and a two), planes of 9 and 50 values (a partial block of sixteen or eight values), and a batch
    /// large enough to split over the workers.
    @Test(arguments: [(2, 13, 3, 3), (2, 13, 5, 10), (64, 40, 3, 3)])
    func globalAveragePoolMatchesDefinition(_ shape: (Int, Int, Int, Int)) throws {
        let (n, c, h, w) = shape
        let x = Tensor(shape: [n, c, h, w], scalars: ConvolutionTests.random(n * c * h * w, seed: 61))
        let y = try globalAveragePool(x)
        #expect(y.shape == [n, c, 1, 1])
        let expected = (0..<n * c).map { p -> Float in
            var sum: Float = 0
            for i in 0..<h * w { sum += x.scalars[p * h * w + i] }
            return sum / Float(h * w)
        }
        #expect(y.scalars.map(\.bitPattern) == expected.map(\.bitPattern))
    }

    @Test(arguments: cases)
    func maxPoolMatchesDefinition(_ k: Case) throws {
        let (n, c) = (2, 19)
        var values = ConvolutionTests.random(n * c * k.h * k.w, seed: 41)
        values[7] = .nan
        values[k.h * k.w * 3 + 4 * k.w + 9] = .nan  // plane 3, row 4: unpadded, the last of the first pair's rows
        // Infinities of both signs in one plane's row (a NaN when summed: kernels that check sums take it again).
        values[k.h * k.w * 5 + k.w + 1] = .infinity
        values[k.h * k.w * 5 + k.w + 6] = -.infinity
        let x = Tensor(shape: [n, c, k.h, k.w], scalars: values)
        let window = Window2D(kernel: (k.k, k.k), strides: (k.stride, k.stride), dilations: (k.dilation, k.dilation),
                              pads: k.pads, ceilMode: k.ceil)
        let ours = try pool2d(x, kind: .max, window: window)
        let (oh, ow) = window.outputSize(h: k.h, w: k.w)!
        #expect(ours.shape == [n, c, oh, ow])
        for p in 0..<n * c { for y in 0..<oh { for xx in 0..<ow {
            var best = -Float.infinity
            for ki in 0..<k.k { for kj in 0..<k.k {
                let iy = y * k.stride + ki * k.dilation - k.pads.0, ix = xx * k.stride + kj * k.dilation - k.pads.1
                guard iy >= 0, iy < k.h, ix >= 0, ix < k.w else { continue }
                let v = values[(p * k.h + iy) * k.w + ix]
                if v > best || v.isNaN { best = v }
            } }
            let got = ours.scalars[(p * oh + y) * ow + xx]
            #expect(got == best || (got.isNaN && best.isNaN), "\(k) plane \(p) at \(y),\(xx)")
        } } }
    }
}
