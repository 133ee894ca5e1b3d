import Compute
@testable import Execution
import ModelGraph
import Synchronization
import Testing
import _TestSupport

/// A batch run as passes of a few images (`Executor.Options.passBytes`) gives the outputs of one pass, up to rounding
/// (a product over fewer images may sum in another order); plans that mix images, and inputs with a fixed batch axis,
/// run in one pass.
@Suite struct BatchPassTests {
    static func graph(batchAxis: ValueInfo.Dimension = .symbolic("N"), extra: [Node] = [], output: String = "p",
                      constants: [String: AnyTensor] = [:]) -> Graph {
        func weight(_ shape: [Int], _ seed: UInt64) -> AnyTensor {
            .float(Tensor(shape: shape, scalars: ConvolutionTests.random(shape.reduce(1, *), seed: seed)))
        }
        var initializers: [String: AnyTensor] = [
            "w": weight([4, 3, 3, 3], 41), "b": weight([4], 42), "fc": weight([5, 8], 43), "fcb": weight([5], 44),
            "scale": weight([1, 4, 1, 1], 45),
        ]
        initializers.merge(constants) { $1 }
        let nodes = [
            Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: ["pads": .ints([1, 1, 1, 1])]),
            Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
            Node(name: "mul", opType: "Mul", inputs: ["scale", "r"], outputs: ["m"]),
            Node(name: "pool", opType: "MaxPool", inputs: ["m"], outputs: ["q"], attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]),
            Node(name: "cat", opType: "Concat", inputs: ["q", "q"], outputs: ["k"], attributes: ["axis": .int(1)]),
            Node(name: "gap", opType: "GlobalAveragePool", inputs: ["k"], outputs: ["g"]),
            Node(name: "flat", opType: "Flatten", inputs: ["g"], outputs: ["f"]),
            Node(name: "fc", opType: "Gemm", inputs: ["f", "fc", "fcb"], outputs: ["l"], attributes: ["transB": .int(1)]),
            Node(name: "soft", opType: "Softmax", inputs: ["l"], outputs: ["p"], attributes: ["axis": .int(1)]),
        ] + extra
        return Graph(nodes: nodes, initializers: initializers,
                     inputs: [ValueInfo(name: "x", shape: [batchAxis, .fixed(3), .fixed(9), .fixed(9)])],
                     outputs: [ValueInfo(name: output, shape: nil)])
    }

    static func run(_ graph: Graph, passBytes: Int, images: Int, parallelPasses: Bool = true) throws -> (Tensor<Float>, Executor) {
        var options = Executor.Options()
        options.passBytes = passBytes
        options.stageBytes = passBytes / 4  // stages on these small maps too
        options.parallelPasses = parallelPasses
        let executor = try Executor(graph: graph, options: options)
        let x = Tensor(shape: [images, 3, 9, 9], scalars: ConvolutionTests.random(images * 3 * 81, seed: 46))
        return (try executor(x), executor)
    }

    @Test func passesGiveTheOutputsOfOnePass() throws {
        let graph = Self.graph()
        let (whole, one) = try Self.run(graph, passBytes: 0, images: 7)
        #expect(one.batchSeparable)
        #expect(one.imagesPerPass([[3, 9, 9]]) == nil)
        // One image per pass; then passes of 2 (a multiple of the workers when they fit) with a remainder.
        let largest = 8 * 4 * 4 * 4  // the Concat's output per image, in bytes
        // Side by side (one pass per thread) and one after another; with a size larger than the batch, side by side
        // still splits it over the threads.
        for bytes in [1, 2 * largest + 5, 4 * largest, 64 * largest] {
            for parallel in [true, false] {
                let (passes, executor) = try Self.run(graph, passBytes: bytes, images: 7, parallelPasses: parallel)
                #expect(passes.shape == whole.shape, "passBytes \(bytes), parallel \(parallel)")
                #expect(TestSupport.maxAbsDifference(passes.scalars, whole.scalars) < 1e-6, "passBytes \(bytes), parallel \(parallel)")
                #expect(executor.imagesPerPass([[3, 9, 9]]) != nil)
                // Again, with the pass size known: the same passes, the same outputs.
                let x = Tensor(shape: [7, 3, 9, 9], scalars: ConvolutionTests.random(7 * 3 * 81, seed: 46))
                #expect(try executor(x).scalars == passes.scalars)
            }
        }
    }

    /// The fewest passes within the size, evened out, a multiple of the workers where the size is one.
    @Test func passesAreEven() {
        #expect(Executor.passRanges(images: 64, atMost: 42, workers: 2) == [0..<32, 32..<64])
        #expect(Executor.passRanges(images: 64, atMost: 12, workers: 2) == [0..<12, 12..<24, 24..<36, 36..<48, 48..<60, 60..<64])
        #expect(Executor.passRanges(images: 7, atMost: 4, workers: 2) == [0..<4, 4..<7])
        #expect(Executor.passRanges(images: 7, atMost: 1, workers: 2) == (0..<7).map { $0..<$0 + 1 })
        #expect(Executor.passRanges(images: 10, atMost: 9, workers: 4) == [0..<5, 5..<10])
        #expect(Executor.passRanges(images: 9, atMost: 8, workers: 4) == [0..<8, 8..<9])
    }

    /// The tail run once over the batch starts after the last step whose values, for every image, exceed the bound.
    @Test func tailStartsAfterTheLastLargeValues() {
        let plan = Executor.PassPlan(size: 2, live: [100, 400, 400, 50, 10, 10])
        #expect(plan.tail(images: 8, within: 800) == 4)  // from the values after step 3 (50 · 8 ≤ 800)
        #expect(plan.tail(images: 8, within: 3200) == 1)  // all but the first step
        #expect(plan.tail(images: 8, within: 79) == 6)  // none: every step in the passes
        #expect(plan.tail(images: 2, within: 100) == 4)
    }

    /// Two stages where the later steps' values fit for the whole pass and the earlier steps' largest intermediate
    /// lets fewer images through at a time; none where every step fits, where none of the later ones does, or where the
    /// earlier steps take the whole pass anyway.
    @Test func stagesSplitWhereTheLaterValuesFit() {
        let plan = Executor.PassPlan(size: 8, live: [100, 400, 400, 50, 10, 10], peaks: [200, 500, 400, 400, 60, 10])
        let stages = { (images: Int, bytes: Int, end: Int) in plan.stages(images: images, within: bytes, end: end).map { [$0.step, $0.size] } }
        #expect(stages(8, 800, 6) == [4, 1])  // from the values after step 3; before it 800 / 500: one image at a time
        #expect(stages(8, 1000, 6) == [4, 2])
        #expect(stages(8, 4000, 6) == nil)  // every step fits
        #expect(stages(8, 79, 6) == nil)  // no later step fits
        #expect(stages(8, 800, 4) == nil)  // the split would be at the end
        #expect(stages(1, 800, 6) == nil)  // one image: nothing to split
    }

    /// Passes side by side in two stages (`PassPlan.stages`) give the outputs of one pass: bounds from one image's
    /// values to the whole batch's, at least one of them splitting the passes in two stages.
    @Test func twoStagePassesGiveTheOutputsOfOnePass() throws {
        let graph = Self.graph()
        let whole = try Self.run(graph, passBytes: 0, images: 8).0
        var split = 0
        for bytes in stride(from: 256, through: 1 << 16, by: 256) {
            let (passes, executor) = try Self.run(graph, passBytes: bytes, images: 8)
            #expect(TestSupport.maxAbsDifference(passes.scalars, whole.scalars) < 1e-6, "passBytes \(bytes)")
            let plan = try #require(executor.passPlans.withLock { $0[[[3, 9, 9]]] })
            let workers = ComputeThreads.count
            let size = min(max(1, plan.size / workers), (8 + workers - 1) / workers)
            if plan.stages(images: size, within: bytes / (2 * workers), end: plan.head) != nil { split += 1 }
        }
        #expect(split > 0)
    }

    /// Side by side, the passes leave to one run over the batch the steps from the first of the last flat ones on
    /// (one value per channel: after a global pool), and the one that computes the first flat value stays in them.
    @Test func headStartsAfterTheFirstFlatStep() {
        #expect(Executor.PassPlan(size: 2, live: [], flat: [false, false, true, true, true]).head == 3)
        #expect(Executor.PassPlan(size: 2, live: [], flat: [false, true, false, true]).head == 4)  // none
        #expect(Executor.PassPlan(size: 2, live: [], flat: [true, true]).head == 1)  // all but the first step
    }

    /// Each piece runs once; inside one, `ComputeThreads.count` is 1 while every other worker runs a piece (the work
    /// it calls is planned for its thread), and at most the workers, counting those with no piece left to take, which
    /// join its regions (`ParallelRegionTests`).
    @Test func piecesRunOnceEach() {
        let seen = Mutex<[Int]>([])
        parallelPieces(10) { piece in seen.withLock { $0.append(100 * piece + ComputeThreads.count) } }
        #expect(seen.withLock { $0.map { $0 / 100 }.sorted() } == Array(0..<10))
        #expect(seen.withLock { $0.allSatisfy { (1...ComputeThreads.count).contains($0 % 100) } })
        // Regions inside a piece: every chunk of each, once.
        let chunks = Mutex<[Range<Int>]>([])
        parallelPieces(2) { _ in parallelChunks(8) { range in chunks.withLock { $0.append(range) } } }
        var covered = [Int](repeating: 0, count: 8)
        for range in chunks.withLock({ $0 }) { for i in range { covered[i] += 1 } }
        #expect(covered == [Int](repeating: 2, count: 8))
    }

    /// The pass size is kept per shape of every input: a second input of another size is measured again.
    @Test func passSizesFollowEveryInputsShape() throws {
        let graph = Graph(nodes: [Node(name: "a", opType: "Relu", inputs: ["x"], outputs: ["u"]),
                                  Node(name: "b", opType: "Relu", inputs: ["z"], outputs: ["v"])],
                          initializers: [:], inputs: [ValueInfo(name: "x", shape: nil), ValueInfo(name: "z", shape: nil)],
                          outputs: [ValueInfo(name: "u", shape: nil), ValueInfo(name: "v", shape: nil)])
        var options = Executor.Options()
        options.passBytes = 4 * 64 * 4  // 4 images of 64 floats
        let executor = try Executor(graph: graph, options: options)
        #expect(executor.batchSeparable)
        for width in [4, 64] {
            let x = Tensor<Float>(shape: [8, 4], scalars: ConvolutionTests.random(32, seed: 48))
            let z = Tensor<Float>(shape: [8, width], scalars: ConvolutionTests.random(8 * width, seed: 49))
            let outputs = try executor.run(["x": .float(x), "z": .float(z)])
            #expect(outputs["v"]?.floatTensor?.scalars == z.scalars.map { max($0, 0) })
        }
        #expect(executor.imagesPerPass([[4], [4]]) == 64)
        #expect(executor.imagesPerPass([[4], [64]]) == 4)
    }

    /// An error names the shapes of the whole batch, not of a pass.
    @Test func errorsNameTheBatchShape() throws {
        let graph = Graph(nodes: [Node(name: "fc", opType: "Gemm", inputs: ["x", "w"], outputs: ["y"], attributes: ["transB": .int(1)])],
                          initializers: ["w": .float(Tensor(zeros: [4, 5]))],
                          inputs: [ValueInfo(name: "x", shape: nil)], outputs: [ValueInfo(name: "y", shape: nil)])
        var options = Executor.Options()
        options.passBytes = 1
        let executor = try Executor(graph: graph, options: options)
        #expect(executor.batchSeparable)
        let error = #expect(throws: ExecutionError.self) { try executor(Tensor(zeros: [6, 3])) }
        #expect(error?.description.contains("[6, 3]") == true, "\(String(describing: error))")
    }

    @Test func plansThatMixImagesRunInOnePass() throws {
        // A constant with a batch axis added to the logits: image i gets row i.
        let mixing = Self.graph(extra: [Node(name: "add", opType: "Add", inputs: ["p", "rows"], outputs: ["o"])], output: "o",
                                constants: ["rows": .float(Tensor(shape: [7, 5], scalars: ConvolutionTests.random(35, seed: 47)))])
        let (a, executor) = try Self.run(mixing, passBytes: 1, images: 7)
        #expect(!executor.batchSeparable)
        #expect(try Self.run(mixing, passBytes: 0, images: 7).0.scalars == a.scalars)  // the same single pass
        // Concat over the batch axis.
        let stacked = Self.graph(extra: [Node(name: "stack", opType: "Concat", inputs: ["p", "p"], outputs: ["o"],
                                              attributes: ["axis": .int(0)])], output: "o")
        #expect(try !Self.run(stacked, passBytes: 1, images: 3).1.batchSeparable)
        // A fixed batch axis: one pass, nothing measured.
        let (_, fixed) = try Self.run(Self.graph(batchAxis: .fixed(7)), passBytes: 1, images: 7)
        #expect(fixed.batchSeparable && fixed.imagesPerPass([[3, 9, 9]]) == nil)
    }
}
