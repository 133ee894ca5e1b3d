import CKernels

/// A convolution's weights packed once for the matrix product (`wc_gemm_packed`, Sources/CKernels): each group's
/// [output channels, input channels·kh·kw] matrix in panels of eight rows.
///
/// OpenBLAS packs both operands of every product it is given, and a convolution's weight is the same operand on every
/// call: at batch 1 on VGG-16's 4×4 and 2×2 maps that copy took 39% of the time (perf), more than the product. The
/// packed kernel reads the weight once as it stands. It is taken where its AVX-512 or AVX2 variant runs (`isWorthwhile`):
/// on AVX-512 it beat OpenBLAS's Haswell kernels on every convolution shape measured (1.4–2×); on AVX2 (AMD EPYC, one
/// thread) its 4 × 24 blocks run at OpenBLAS's rate on most shapes (72–89 against 66–89 GFLOP/s) and whole models at
/// batch 1 ran 1.3–1.9× faster than through OpenBLAS (no weight copy per call, the bias and clamp as values are
/// stored); the baseline variant did not beat OpenBLAS.
public final class PackedWeights: @unchecked Sendable {
    public let outputChannels: Int
    public let group: Int
    /// Columns of each group's matrix: input channels per group · kh · kw.
    public let depth: Int
    private let storage: UnsafeMutablePointer<Float>
    private let groupStride: Int

    /// Whether packing pays on this machine: the kernels' chosen variant is AVX-512 or AVX2
    /// (`WEIGHTCLUSTER_KERNELS=generic` turns it off).
    public static var isWorthwhile: Bool { wc_kernels_isa() != Int32(WC_ISA_GENERIC) }

    /// The smallest product (multiply-adds) split over the workers, about 1.5 µs on one thread: a region of the
    /// pool costs under a microsecond, but the two halves then read and write cache lines the other core last held
    /// (about 90 ns each way here), so smaller products run faster on one thread. Alternating rounds at batch 1
    /// (images/s, medians), from 1M / 128K / 256K: SqueezeNet 1.1 64 px 841 / 964–990 / 926–1097, MobileNetV2 64 px
    /// 563 / 600–664 / 624–710. From 256K to 64K (session 32, least and median ms over 4 alternated processes, 2 s
    /// each): SqueezeNet 1.1 64 px 0.42 / 0.43 → 0.40 / 0.40 (its 1×1 layers on 15×15 to 3×3 maps, 83K–230K each, had
    /// run on one thread while the other waited); MobileNetV2 64 px, EfficientNet-Lite0, ResNet-18 even; 16K even
    /// with 64K.
    public static let splitMultiplyAdds = 1 << 16

    /// Up to this many floats of B (depth × columns), a product with at least four panels per worker splits by panels,
    /// each worker reading all of B and half of the weight, rather than by columns (all of the weight, half of B): a
    /// small B is read from cache by both cores, the weight is the larger operand there, and each worker writes whole
    /// rows of C. One-thread C harness against two workers, µs: 144×24·24×256 (a 1×1 layer of MobileNetV2 at 64 px,
    /// batch 1) 17.5–18.8 on one thread, 14–20 by columns, 11–13 by panels; 96×16·16×1024 40–49, 36–37, 26–31;
    /// 576×96·96×64 55–78, 49–82, 36–81; 144×24·24×3136 331–336, 178–180, 164–171.
    static let sharedOperandFloats = 128 << 10

    /// The columns of a product split over `workers` (see `multiply`): `count` pieces, each `size` columns (a whole
    /// number of `vector`-column vectors, the kernels' width: 8 with AVX2, 16 with AVX-512) but the last. Blocks of a
    /// fixed 32 columns left workers uneven shares on small maps: 196 columns (14×14) in 128 + 68, 225 in 128 + 97;
    /// now 104 + 92 and 120 + 105. EfficientNet-Lite0 at batch 1, two threads, minimum of 5 alternated rounds: its
    /// 672 → 112 1×1 layers on 14×14 maps 254–255 → 201–220 µs; the other layers within noise.
    struct ColumnPieces {
        let count: Int, size: Int, columns: Int
        /// The first column of piece `piece`, and how many it has.
        func first(_ piece: Int) -> Int { piece * size }
        func width(_ piece: Int) -> Int { max(0, min(columns, (piece + 1) * size) - piece * size) }
    }

    static func evenPieces(columns n: Int, workers: Int, vector: Int = vectorColumns) -> ColumnPieces {
        let vectors = (n + vector - 1) / vector
        let wanted = vectors >= 16 * workers ? 2 * workers : workers
        let size = (vectors + wanted - 1) / wanted * vector
        return ColumnPieces(count: (n + size - 1) / size, size: size, columns: n)
    }

    /// Floats in one vector of the chosen kernels (`evenPieces`).
    static let vectorColumns = wc_kernels_isa() == Int32(WC_ISA_AVX512) ? 16 : 8

    /// The variant of the kernels this process runs ("avx512", "avx2" or "generic").
    public static var kernels: String { String(cString: wc_kernels_name(wc_kernels_isa())) }

    /// The packed weights the products of a convolution with `weight` run on: `given` when it matches, else `weight`
    /// packed now; nil where packing does not pay (the products go to BLAS).
    public static func forProduct(_ given: PackedWeights?, weight: Tensor<Float>, group: Int) -> PackedWeights? {
        guard isWorthwhile else { return nil }
        if let given, given.matches(weight.shape, group: group) { return given }
        return PackedWeights(weight, group: group)
    }

    /// Packs `weight` [OC, IC/group, KH, KW].
    public init(_ weight: Tensor<Float>, group: Int) {
        precondition(weight.rank == 4 && group >= 1 && weight.shape[0] % group == 0, "PackedWeights: weight \(weight.shape), group \(group)")
        outputChannels = weight.shape[0]
        self.group = group
        depth = weight.shape[1] * weight.shape[2] * weight.shape[3]
        let rows = outputChannels / group
        groupStride = wc_packed_count(Int32(rows), Int32(depth))
        storage = .allocate(capacity: max(1, groupStride * group))
        weight.scalars.withUnsafeBufferPointer { w in
            for g in 0..<group {
                wc_pack_rows(Int32(rows), Int32(depth), w.baseAddress! + g * rows * depth, depth, storage + g * groupStride)
            }
        }
    }

    deinit { storage.deallocate() }

    /// Group `g`'s panels as `wc_gemm_packed` reads them (valid while these weights live).
    func panels(group g: Int) -> UnsafePointer<Float> { UnsafePointer(storage + g * groupStride) }

    /// Whether these are the packed form of a weight of `shape` with `group` groups.
    public func matches(_ shape: [Int], group: Int) -> Bool {
        shape.count == 4 && shape[0] == outputChannels && group == self.group && shape[1] * shape[2] * shape[3] == depth
    }

    /// C = W_g·B for group `g`: B is depth×n (row stride ldb), C is (OC/group)×n (row stride ldc). With `bias`
    /// (that group's, one per row; nil adds 0) and `bounds`, each value then gets the bias and the clamp as it is
    /// stored (`ConvolutionEpilogue` without a residual, rounded the same). With `residual` (a matrix laid out as C,
    /// row stride ldc) too, each worker's part gets bias + residual, then the clamp (`wc_conv_epilogue`), right after
    /// its product: the same values as the scatter after the whole product gave, but in parallel and on the values
    /// each core has just written. With `parallel`, split over the workers: by columns when there are many and B is
    /// large or the panels few (`sharedOperandFloats`), else by panels of eight output channels.
    @usableFromInline
    func multiply(group g: Int, n: Int, b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                  parallel: Bool, bias: UnsafePointer<Float>? = nil, bounds: (low: Float, high: Float)? = nil,
                  residual: UnsafePointer<Float>? = nil) {
        let rows = outputChannels / group, depth = self.depth
        let workers = parallel && rows * n * depth >= PackedWeights.splitMultiplyAdds ? ComputeThreads.count : 1
        let (aAddress, bAddress, cAddress) = (Int(bitPattern: storage + g * groupStride), Int(bitPattern: b), Int(bitPattern: c))
        let residualAddress = residual.map { Int(bitPattern: $0) }
        // Rows [first, first + count) of columns [column, column + columns); rows start at a panel.
        func product(_ first: Int, _ count: Int, _ column: Int, _ columns: Int) {
            let c = UnsafeMutablePointer<Float>(bitPattern: cAddress)! + first * ldc + column
            // With a residual the product stores the plain sums; the part's rows then get bias + residual and the clamp.
            var e = wc_epilogue(bias: bias.map { $0 + first }, low: bounds?.low ?? 0, high: bounds?.high ?? 0)
            withUnsafePointer(to: &e) { e in
                wc_gemm_packed(Int32(count), Int32(columns), Int32(depth), UnsafePointer<Float>(bitPattern: aAddress)! + first * depth,
                               UnsafePointer<Float>(bitPattern: bAddress)! + column, ldb, c, ldc,
                               bounds == nil || residualAddress != nil ? nil : e)
            }
            guard let residualAddress else { return }
            let r = UnsafePointer<Float>(bitPattern: residualAddress)! + first * ldc + column
            for row in 0..<count {
                wc_conv_epilogue(c + row * ldc, c + row * ldc, columns, bias?[first + row] ?? 0, r + row * ldc,
                                 bounds?.low ?? -.infinity, bounds?.high ?? .infinity)
            }
        }
        let panels = (rows + 7) / 8
        if workers <= 1 {
            product(0, rows, 0, n)
        } else if n >= 64 * workers && (panels < 4 * workers || depth * n > PackedWeights.sharedOperandFloats) {
            // Columns in pieces of whole vectors, one per worker or two where each worker's share is 16 vectors or more
            // (taken as workers come free): `evenPieces`. One on each of two workers: split by their speeds.
            let pieces = PackedWeights.evenPieces(columns: n, workers: workers)
            if pieces.count == 2 && workers == 2 {
                let vector = PackedWeights.vectorColumns
                runInTwoPieces((n + vector - 1) / vector) { vectors in
                    let first = vectors.lowerBound * vector
                    product(0, rows, first, min(n, vectors.upperBound * vector) - first)
                }
            } else {
                runPiecesOnPool(workers: min(workers, pieces.count), pieces: pieces.count) { piece in
                    product(0, rows, pieces.first(piece), pieces.width(piece))
                }
            }
        } else {
            // Panels of eight rows: each worker reads its own part of the weight, and all of B. One part per worker, so
            // that at batch 1 a worker takes the same channels here as in a depthwise layer next (`depthwiseConv2d`).
            parallelChunks(panels, evenly: true) { panels in
                let first = panels.lowerBound * 8
                product(first, min(rows, panels.upperBound * 8) - first, 0, n)
            }
        }
    }
}
