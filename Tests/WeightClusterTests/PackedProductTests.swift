import CKernels
@testable import Compute
import Execution
import ModelGraph
import Testing
import _TestSupport

/// The packed-weight product (Sources/CKernels) against the definition, for every variant this processor runs, over
/// shapes that reach each of its paths: few columns (down the rows, up to ten; 8, 4, 2 and 1 at a time), one and two
/// vectors, a remainder, three columns a block (AVX2: 3, 6 or 9 columns), wide products (copied blocks of B, or B in place under five panels of rows, or thirteen where its rows spread over L1), depths past one
/// block of 256, row counts that are not a multiple of 8, and padded leading dimensions, with and without the epilogue
/// (bias, clamp); and convolutions on packed weights against BLAS.
@Suite struct PackedProductTests {
    struct Case: Sendable, CustomStringConvertible {
        var m, n, k: Int
        var description: String { "\(m)×\(k) · \(k)×\(n)" }
    }

    static let cases = [Case(m: 1, n: 1, k: 1), Case(m: 8, n: 4, k: 9), Case(m: 13, n: 15, k: 300), Case(m: 17, n: 16, k: 27),
                        Case(m: 24, n: 33, k: 5), Case(m: 9, n: 70, k: 257), Case(m: 40, n: 200, k: 64), Case(m: 3, n: 9, k: 600),
                        Case(m: 20, n: 93, k: 40), Case(m: 19, n: 10, k: 300),
                        // A few columns past B's whole vectors, taken down the rows with each group of panels: a
                        // narrow B (AVX-512), groups of four panels, two and a partial one; a wide one (AVX2), after each
                        // group of eight panels' blocks, one and a partial one, all 300 columns of A in one block (few
                        // columns of B: `WHOLE_DEPTH_FLOATS`); deeper than that block may be (2,100 × 24 floats on AVX2),
                        // across nine blocks of depth (accumulating).
                        Case(m: 70, n: 49, k: 300), Case(m: 45, n: 21, k: 40), Case(m: 40, n: 49, k: 2100),
                        // Runs of columns that end three vectors before their end, taken in one three-vector block: B in
                        // place under few panels, a narrow B with a tail down the rows, and copied blocks of B (shallow,
                        // and deep across two blocks of depth, accumulating).
                        Case(m: 24, n: 80, k: 50), Case(m: 33, n: 58, k: 20), Case(m: 40, n: 304, k: 64),
                        Case(m: 40, n: 112, k: 300), Case(m: 40, n: 112, k: 600),
                        // AVX-512, copied and deep in one block of depth: the last three vectors (400 × 48 floats)
                        // fill more than the 16,384-float block on the stack that two vectors' chunks fit.
                        Case(m: 104, n: 80, k: 400),
                        // B in place and wide (512 columns or more): blocks of 48 rows of B, the last one shallower.
                        Case(m: 20, n: 530, k: 100),
                        // AVX-512, B in place under 13 panels where its rows spread over L1's sets (`spreads_in_l1`):
                        // a 14×14 map's 576 → 96 product (three blocks of depth, the last shallower), and 9 panels over
                        // rows 103 floats apart; rows 256 floats apart (ldb = n + 3) pile on a few sets and are copied.
                        Case(m: 96, n: 196, k: 576), Case(m: 70, n: 100, k: 300), Case(m: 96, n: 253, k: 100),
                        // A block of A over L2 (520 rows × 256 of its columns): B's columns in chunks kept in L2, each
                        // panel once per chunk (two chunks and a tail down the rows), then a shallow block of depth.
                        Case(m: 520, n: 203, k: 257),
                        // AVX-512, 4 to 31 columns: the weights as vectors (`wc_gemm_vectors`), blocks of 4 to 9
                        // columns, the last one back over the one before it; rows in groups as even as whole vectors
                        // make them (`group_width`): 121 in 64 + 57 (the last ending in nine rows, two panels), 100 in
                        // 48 + 48 + 4 (nine columns a block: three vectors, then one panel), 40 in one group of two
                        // vectors and a panel (two tiles of nine), 50 in 32 + 18; one and two tiles.
                        Case(m: 121, n: 4, k: 33), Case(m: 100, n: 9, k: 70), Case(m: 40, n: 18, k: 33),
                        Case(m: 50, n: 7, k: 300),
                        Case(m: 30, n: 6, k: 257), Case(m: 57, n: 31, k: 20), Case(m: 16, n: 25, k: 3),
                        // A last tile narrower than a block (19 columns: three blocks of five, then one of the last five).
                        Case(m: 40, n: 19, k: 50), Case(m: 24, n: 17, k: 10),
                        // AVX2, three, six or nine columns: groups of four panels, three columns a block, 128 columns
                        // of A at a time (two whole, then 44; one, then one column), the rows past the last group of
                        // four panels on the narrow kernel (with the epilogue's bias from their first row).
                        Case(m: 70, n: 6, k: 300), Case(m: 33, n: 3, k: 129), Case(m: 64, n: 9, k: 128)]

    @Test(arguments: cases)
    func productMatchesDefinition(_ size: Case) {
        let (m, n, k) = (size.m, size.n, size.k)
        let (lda, ldb, ldc) = (k + 1, n + 3, n + 2)
        let a = ConvolutionTests.random(m * lda, seed: 41), b = ConvolutionTests.random(k * ldb, seed: 42)
        var packed = [Float](repeating: .nan, count: wc_packed_count(Int32(m), Int32(k)))
        a.withUnsafeBufferPointer { pa in
            packed.withUnsafeMutableBufferPointer { wc_pack_rows(Int32(m), Int32(k), pa.baseAddress!, lda, $0.baseAddress!) }
        }
        let bias = ConvolutionTests.random(m, seed: 43)
        var variants = 0
        for isa in [WC_ISA_GENERIC, WC_ISA_AVX2, WC_ISA_AVX512].map(Int32.init) where wc_kernels_supported(isa) != 0 {
            variants += 1
            let name = String(cString: wc_kernels_name(isa))
            // Plain, then with the epilogue (bias, then a clamp to [-0.1, 0.2]).
            for finishing in [false, true] {
                // C's old values (NaN) must never be read, and the spare column of each row never written.
                var c = [Float](repeating: .nan, count: m * ldc)
                packed.withUnsafeBufferPointer { pp in
                    b.withUnsafeBufferPointer { pb in
                        c.withUnsafeMutableBufferPointer { pc in
                            bias.withUnsafeBufferPointer { pbias in
                                var e = wc_epilogue(bias: pbias.baseAddress, low: -0.1, high: 0.2)
                                withUnsafePointer(to: &e) { e in
                                    wc_gemm_packed_isa(isa, Int32(m), Int32(n), Int32(k), pp.baseAddress!, pb.baseAddress!, ldb,
                                                       pc.baseAddress!, ldc, finishing ? e : nil)
                                }
                            }
                        }
                    }
                }
                for i in 0..<m {
                    for j in 0..<n {
                        var sum: Double = 0
                        for p in 0..<k { sum += Double(a[i * lda + p]) * Double(b[p * ldb + j]) }
                        if finishing { sum = min(max(sum + Double(bias[i]), -0.1), 0.2) }
                        #expect(abs(Double(c[i * ldc + j]) - sum) < 1e-5 * Double(k), "\(name) \(size) epilogue \(finishing) at \(i),\(j)")
                    }
                    for j in n..<ldc { #expect(c[i * ldc + j].isNaN, "\(name) \(size) wrote past row \(i)") }
                }
            }
        }
        #expect(variants >= 1)
    }

    /// A clamp whose lower bound is −0 (a Clip with min −0.0) stores −0 for every negative sum, as Swift's
    /// min(max(x, −0), high) does, on every variant and path: few columns, vector blocks and a remainder.
    @Test func negativeZeroBoundKeepsItsSign() {
        let (m, k) = (16, 3)
        let a = [Float](repeating: -1, count: m * k)
        var packed = [Float](repeating: .nan, count: wc_packed_count(Int32(m), Int32(k)))
        packed.withUnsafeMutableBufferPointer { wc_pack_rows(Int32(m), Int32(k), a, k, $0.baseAddress!) }
        for isa in [WC_ISA_GENERIC, WC_ISA_AVX2, WC_ISA_AVX512].map(Int32.init) where wc_kernels_supported(isa) != 0 {
            for n in [5, 40, 130] {
                let b = [Float](repeating: 1, count: k * n)
                var c = [Float](repeating: .nan, count: m * n)
                var e = wc_epilogue(bias: nil, low: -0.0, high: .infinity)
                c.withUnsafeMutableBufferPointer { pc in
                    withUnsafePointer(to: &e) { e in
                        wc_gemm_packed_isa(isa, Int32(m), Int32(n), Int32(k), packed, b, n, pc.baseAddress!, n, e)
                    }
                }
                #expect(c.allSatisfy { $0.bitPattern == Float(-0.0).bitPattern }, "\(String(cString: wc_kernels_name(isa))) n \(n)")
            }
        }
    }

    /// Infinite bounds (a convolution without an activation, or a ReLU's +∞ above) leave every sum as it is — NaN, ±∞
    /// and −0 included — on every variant and path: the vector blocks skip those bounds' comparisons.
    @Test func infiniteBoundsLeaveEverySum() {
        let (m, k) = (16, 3)
        let a = ConvolutionTests.random(m * k, seed: 49).enumerated().map { $0.offset == 5 ? 0 : $0.element }
        var packed = [Float](repeating: .nan, count: wc_packed_count(Int32(m), Int32(k)))
        packed.withUnsafeMutableBufferPointer { wc_pack_rows(Int32(m), Int32(k), a, k, $0.baseAddress!) }
        for isa in [WC_ISA_GENERIC, WC_ISA_AVX2, WC_ISA_AVX512].map(Int32.init) where wc_kernels_supported(isa) != 0 {
            for n in [5, 40, 130] {
                // Column 0 all −0 (sums of −0 · a, −0 where a > 0), then a NaN, +∞ and −∞ among the inputs.
                var b = ConvolutionTests.random(k * n, seed: 50)
                for r in 0..<k { b[r * n] = -0.0 }
                b[1] = .nan; b[n + 2] = .infinity; b[2 * n + 3] = -.infinity
                var plain = [Float](repeating: 1, count: m * n)
                plain.withUnsafeMutableBufferPointer {
                    wc_gemm_packed_isa(isa, Int32(m), Int32(n), Int32(k), packed, b, n, $0.baseAddress!, n, nil)
                }
                for (low, high) in [(-Float.infinity, Float.infinity), (0, Float.infinity)] {
                    var c = [Float](repeating: 1, count: m * n)
                    var e = wc_epilogue(bias: nil, low: low, high: high)
                    c.withUnsafeMutableBufferPointer { pc in
                        withUnsafePointer(to: &e) { e in
                            wc_gemm_packed_isa(isa, Int32(m), Int32(n), Int32(k), packed, b, n, pc.baseAddress!, n, e)
                        }
                    }
                    let expected = plain.map { x in min(max(x, low), high) }
                    #expect(c.map(\.bitPattern) == expected.map(\.bitPattern),
                            "\(String(cString: wc_kernels_name(isa))) n \(n) low \(low)")
                }
            }
        }
    }

    /// A clamp whose lower bound exceeds its upper one (a Clip with min > max) gives the upper bound everywhere, as
    /// Swift's min(max(x, low), high) and onnxruntime do, on every variant and path of both products: few columns,
    /// vector blocks and a remainder. The packed product's vector blocks gave the lower bound until session 17.
    @Test func crossedBoundsGiveTheUpperOne() {
        let (m, k) = (16, 3)
        let a = ConvolutionTests.random(m * k, seed: 47)
        var packed = [Float](repeating: .nan, count: wc_packed_count(Int32(m), Int32(k)))
        packed.withUnsafeMutableBufferPointer { wc_pack_rows(Int32(m), Int32(k), a, k, $0.baseAddress!) }
        for isa in [WC_ISA_GENERIC, WC_ISA_AVX2, WC_ISA_AVX512].map(Int32.init) where wc_kernels_supported(isa) != 0 {
            for n in [5, 40, 130] {
                let b = ConvolutionTests.random(k * n, seed: 48)
                var fromPacked = [Float](repeating: .nan, count: m * n), fromRows = fromPacked
                var e = wc_epilogue(bias: nil, low: 0.5, high: -0.25)
                withUnsafePointer(to: &e) { e in
                    fromPacked.withUnsafeMutableBufferPointer {
                        wc_gemm_packed_isa(isa, Int32(m), Int32(n), Int32(k), packed, b, n, $0.baseAddress!, n, e)
                    }
                    fromRows.withUnsafeMutableBufferPointer {
                        wc_gemm_rows_isa(isa, Int32(m), Int32(n), Int32(k), a, k, b, n, $0.baseAddress!, n, e)
                    }
                }
                let name = "\(String(cString: wc_kernels_name(isa))) n \(n)"
                #expect(fromPacked.allSatisfy { $0 == -0.25 }, "packed \(name)")
                #expect(fromRows.allSatisfy { $0 == -0.25 }, "rows \(name)")
            }
        }
    }

    /// The product on A as it stands (a fully-connected weight, `wc_gemm_rows`) gives the packed product's values bit
    /// for bit, on every variant, with and without the epilogue.
    @Test(arguments: cases)
    func rowsProductEqualsPacked(_ size: Case) {
        let (m, n, k) = (size.m, size.n, size.k)
        let (lda, ldb, ldc) = (k + 1, n + 3, n + 2)
        let a = ConvolutionTests.random(m * lda, seed: 44), b = ConvolutionTests.random(k * ldb, seed: 45)
        let bias = ConvolutionTests.random(m, seed: 46)
        var packed = [Float](repeating: .nan, count: wc_packed_count(Int32(m), Int32(k)))
        a.withUnsafeBufferPointer { pa in
            packed.withUnsafeMutableBufferPointer { wc_pack_rows(Int32(m), Int32(k), pa.baseAddress!, lda, $0.baseAddress!) }
        }
        for isa in [WC_ISA_GENERIC, WC_ISA_AVX2, WC_ISA_AVX512].map(Int32.init) where wc_kernels_supported(isa) != 0 {
            for finishing in [false, true] {
                var fromPacked = [Float](repeating: .nan, count: m * ldc), fromRows = fromPacked
                a.withUnsafeBufferPointer { pa in packed.withUnsafeBufferPointer { pp in b.withUnsafeBufferPointer { pb in
                    bias.withUnsafeBufferPointer { pbias in
                        var e = wc_epilogue(bias: pbias.baseAddress, low: -0.1, high: 0.2)
                        withUnsafePointer(to: &e) { e in
                            fromPacked.withUnsafeMutableBufferPointer {
                                wc_gemm_packed_isa(isa, Int32(m), Int32(n), Int32(k), pp.baseAddress!, pb.baseAddress!, ldb,
                                                   $0.baseAddress!, ldc, finishing ? e : nil)
                            }
                            fromRows.withUnsafeMutableBufferPointer {
                                wc_gemm_rows_isa(isa, Int32(m), Int32(n), Int32(k), pa.baseAddress!, lda, pb.baseAddress!, ldb,
                                                 $0.baseAddress!, ldc, finishing ? e : nil)
                            }
                        }
                    }
                } } }
                let same = zip(fromPacked, fromRows).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
                #expect(same, "\(String(cString: wc_kernels_name(isa))) \(size) epilogue \(finishing)")
            }
        }
    }

    /// A Gemm with a batch of 16 rows or more (transB, a bias of one value per output, as PyTorch exports Linear) runs
    /// on the fully-connected product where AVX-512 runs; either way it equals the definition to float rounding.
    @Test func batchedGemmMatchesDefinition() throws {
        let (m, k, n) = (21, 70, 19)
        let x = Tensor(shape: [m, k], scalars: ConvolutionTests.random(m * k, seed: 90))
        let w = Tensor(shape: [n, k], scalars: ConvolutionTests.random(n * k, seed: 91))
        for biasShape in [[n], [1, n]] {
            let bias = Tensor(shape: biasShape, scalars: ConvolutionTests.random(n, seed: 92))
            let graph = Graph(nodes: [Node(name: "fc", opType: "Gemm", inputs: ["x", "w", "b"], outputs: ["y"],
                                           attributes: ["transB": .int(1), "beta": .float(0.5)])],
                              initializers: ["w": .float(w), "b": .float(bias)],
                              inputs: [ValueInfo(name: "x", shape: nil)], outputs: [ValueInfo(name: "y", shape: nil)])
            let y = try Executor(graph: graph)(x)
            #expect(y.shape == [m, n])
            for i in 0..<m {
                for j in 0..<n {
                    var sum: Double = 0.5 * Double(bias.scalars[j])
                    for p in 0..<k { sum += Double(x.scalars[i * k + p]) * Double(w.scalars[j * k + p]) }
                    #expect(abs(Double(y.scalars[i * n + j]) - sum) < 1e-4, "bias \(biasShape) at \(i),\(j)")
                }
            }
        }
    }

    /// A product's columns split over the workers cover each column once, in whole vectors but the last piece, with
    /// shares that differ by at most a vector per piece; and a batch-1 convolution split that way (196 columns on few
    /// panels) equals BLAS.
    @Test func columnPiecesAreEvenAndComplete() throws {
        for (n, workers, vector) in [(196, 2, 8), (225, 2, 8), (784, 2, 8), (128, 2, 16), (3136, 4, 16), (129, 2, 8)] {
            let pieces = PackedWeights.evenPieces(columns: n, workers: workers, vector: vector)
            let sizes = (0..<pieces.count).map(pieces.width)
            #expect(sizes.reduce(0, +) == n && sizes.allSatisfy { $0 > 0 }, "\(n) columns: \(sizes)")
            #expect((0..<pieces.count).allSatisfy { pieces.first($0) == sizes[..<$0].reduce(0, +) }, "\(n): \(sizes)")
            #expect(sizes.dropLast().allSatisfy { $0 % vector == 0 }, "\(n): \(sizes)")
            #expect(pieces.count >= workers && pieces.count <= 2 * workers, "\(n): \(sizes)")
            #expect(sizes.max()! - sizes.min()! <= vector * pieces.count, "\(n): \(sizes)")
        }
        let x = Tensor(shape: [1, 96, 14, 14], scalars: ConvolutionTests.random(96 * 196, seed: 55))
        let w = Tensor(shape: [16, 96, 1, 1], scalars: ConvolutionTests.random(16 * 96, seed: 56))
        let bias = ConvolutionTests.random(16, seed: 57)
        let window = Window2D(kernel: (1, 1))
        let plain = try conv2d(x, weight: w, bias: bias, window: window, activation: .relu)
        let packed = try conv2d(x, weight: w, bias: bias, window: window, activation: .relu, packed: PackedWeights(w, group: 1))
        let worst = zip(plain.scalars, packed.scalars).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1e-4, "largest difference \(worst)")
    }

    /// Convolutions given packed weights (im2col, 1×1 in place and gathered, grouped, batch 1 and 3) equal the same
    /// convolution through BLAS to float rounding. 1×1 on 3×3 maps at batch 3: in place with AVX-512 (the weights as
    /// vectors), else gathered; on 2×2 maps gathered.
    @Test func packedConvolutionsMatchBLAS() throws {
        let shapes: [(input: [Int], weight: [Int], group: Int, stride: Int, pad: Int)] = [
            ([1, 16, 6, 6], [24, 16, 3, 3], 1, 1, 1), ([3, 8, 5, 5], [12, 8, 3, 3], 1, 2, 0), ([2, 16, 40, 40], [9, 16, 1, 1], 1, 1, 0),
            ([3, 32, 4, 4], [40, 32, 1, 1], 1, 1, 0), ([2, 12, 7, 7], [18, 4, 3, 3], 3, 1, 1), ([1, 64, 2, 2], [70, 64, 3, 3], 1, 1, 1),
            ([3, 24, 3, 3], [20, 24, 1, 1], 1, 1, 0), ([3, 24, 2, 2], [20, 24, 1, 1], 1, 1, 0)]
        for (index, s) in shapes.enumerated() {
            let x = Tensor(shape: s.input, scalars: ConvolutionTests.random(s.input.reduce(1, *), seed: UInt64(50 + index)))
            let w = Tensor(shape: s.weight, scalars: ConvolutionTests.random(s.weight.reduce(1, *), seed: UInt64(60 + index)))
            let bias = ConvolutionTests.random(s.weight[0], seed: UInt64(70 + index))
            let window = Window2D(kernel: (s.weight[2], s.weight[3]), strides: (s.stride, s.stride),
                                  pads: (s.pad, s.pad, s.pad, s.pad))
            let plain = try conv2d(x, weight: w, bias: bias, window: window, group: s.group, activation: .relu)
            let packed = try conv2d(x, weight: w, bias: bias, window: window, group: s.group, activation: .relu,
                                    packed: PackedWeights(w, group: s.group))
            #expect(plain.shape == packed.shape)
            let worst = zip(plain.scalars, packed.scalars).map { abs($0 - $1) }.max() ?? 0
            #expect(worst < 1e-4, "shape \(index): largest difference \(worst)")
        }
        // Winograd's sixteen products on packed transformed weights.
        let x = Tensor(shape: [2, 16, 8, 8], scalars: ConvolutionTests.random(2 * 16 * 64, seed: 80))
        let w = Tensor(shape: [20, 16, 3, 3], scalars: ConvolutionTests.random(20 * 16 * 9, seed: 81))
        let window = Window2D(kernel: (3, 3), pads: (1, 1, 1, 1))
        let packedU = Winograd.PreparedWeights(w)
        packedU.packForProduct()
        let plain = try conv2d(x, weight: w, bias: nil, window: window, prepared: Winograd.PreparedWeights(w))
        let packed = try conv2d(x, weight: w, bias: nil, window: window, prepared: packedU)
        let worst = zip(plain.scalars, packed.scalars).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1e-4, "Winograd: largest difference \(worst)")
    }
}
