import Compute
import Datasets
import Evaluation
import Execution
import FileOutput
import Foundation
import ModelGraph
import ONNXFormat
import Testing
import _FuzzSupport

@Suite(.serialized) struct RobustnessTests {
    /// A chain of `n` nodes (Neg and Relu alternating) from input x to output y, listed in `order`.
    static func chain(_ n: Int, order: (inout [Node]) -> Void) -> Graph {
        var nodes = (0..<n).map { i in
            Node(name: "n\(i)", opType: i % 2 == 0 ? "Neg" : "Relu", inputs: [i == 0 ? "x" : "v\(i - 1)"],
                 outputs: [i == n - 1 ? "y" : "v\(i)"])
        }
        order(&nodes)
        return Graph(nodes: nodes, inputs: [ValueInfo(name: "x", shape: [.fixed(1), .fixed(4)])],
                     outputs: [ValueInfo(name: "y", shape: nil)])
    }

    /// Kahn's algorithm is linear: 100,000 nodes listed backwards or shuffled sort (and load) without a quadratic
    /// scan or recursion. The time is printed by `wc-graph-bench`; here it only has to finish and be right.
    @Test func aHundredThousandNodesSortInAnyOrder() throws {
        // Debug builds are slow: the full 100,000 nodes reversed, a shuffled 20,000.
        for (n, graph) in [(100_000, Self.chain(100_000) { $0.reverse() }), (20_000, Self.chain(20_000) { nodes in
            var rng = SplitMix(seed: 7)
            for i in stride(from: nodes.count - 1, to: 0, by: -1) { nodes.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        })] {
            let order = try Executor.topologicallySorted(graph)
            #expect(order.count == n && order.first?.name == "n0" && order.last?.name == "n\(n - 1)")
            #expect(zip(order, order.dropFirst()).allSatisfy { $0.outputs == $1.inputs || $1.outputs == ["y"] })
        }
        let executor = try Executor(graph: Self.chain(10_000) { $0.reverse() })
        let y = try executor.run(["x": .float(Tensor(shape: [1, 4], scalars: [1, -2, 3, -4]))])["y"]
        #expect(y?.floatTensor?.scalars == [0, 0, 0, 0])  // 5,000 × (Neg, Relu)
    }

    @Test func aFileInOrderKeepsItsOrder() throws {
        let graph = Self.chain(50) { _ in }
        #expect(try Executor.topologicallySorted(graph).map(\.name) == graph.nodes.map(\.name))
    }

    @Test func cyclesAndDuplicateProducersAreErrors() {
        var graph = Self.chain(4) { _ in }
        graph.nodes[0].inputs = ["v2"]
        #expect(throws: ExecutionError.self) { try Executor.topologicallySorted(graph) }
        graph = Self.chain(4) { _ in }
        graph.nodes[2].outputs = ["v0"]
        let error = #expect(throws: ExecutionError.self) { try Executor.topologicallySorted(graph) }
        #expect(error?.description.contains("already produced") == true)
    }

    @Test func floatsBecomeIntegersOnlyWhenTheyFit() {
        #expect(Int64(checking: Float.nan) == nil)
        #expect(Int64(checking: Float.infinity) == nil)
        #expect(Int64(checking: -Float.infinity) == nil)
        #expect(Int64(checking: 1e30) == nil)
        #expect(Int64(checking: 0x1p63) == nil)
        #expect(Int64(checking: -0x1p63) == Int64.min)
        #expect(Int64(checking: -2.7) == -2)
        #expect(AnyTensor.float(Tensor(shape: [2], scalars: [1, .nan])).checkedInt64Values == nil)
        #expect(AnyTensor.float(Tensor(shape: [2], scalars: [.nan, .infinity])).int64Values == [0, .max])
    }

    @Test func elementCountsAreChecked() {
        #expect(checkedElementCount([2, 3, 4]) == 24)
        #expect(checkedElementCount([]) == 1)
        #expect(checkedElementCount([1 << 40, 0]) == 0)
        #expect(checkedElementCount([1 << 31, 1 << 31, 1 << 31]) == nil)  // wraps to 0 without the check
        #expect(checkedElementCount([-1, 4]) == nil)
        #expect(checkedElementCount([ShapeLimits.maxElements]) == ShapeLimits.maxElements)
        #expect(checkedElementCount([ShapeLimits.maxElements + 1]) == nil)
    }

    /// The temporary file is mkstemp's, so a symlink planted at the old predictable name is never written through,
    /// and a symlink at the output path itself is replaced, not followed.
    @Test func atomicWritesFollowNoPlantedSymlink() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wc-atomic-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let victim = dir.appendingPathComponent("victim.txt").path
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: victim))
        let out = dir.appendingPathComponent("out.bin").path
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent(".out.bin.\(getpid()).tmp").path,
                                                   withDestinationPath: victim)
        try writeAtomically(Data("new".utf8), to: out)
        #expect(FileManager.default.contents(atPath: victim) == Data("keep me".utf8))
        #expect(FileManager.default.contents(atPath: out) == Data("new".utf8))
        let link = dir.appendingPathComponent("link.bin").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: victim)
        try writeAtomically(Data("replaced".utf8), to: link)
        #expect(FileManager.default.contents(atPath: victim) == Data("keep me".utf8))
        #expect(try FileManager.default.attributesOfItem(atPath: link)[.type] as? FileAttributeType == .typeRegular)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path))
                == ["victim.txt", "out.bin", "link.bin", ".out.bin.\(getpid()).tmp"])
        let error = #expect(throws: FileOutputError.self) { try writeAtomically(Data(), to: dir.path) }
        #expect(error?.description.contains("cannot write") == true)
    }

    @Test func nonFiniteLogitsNameTheFirstNode() throws {
        let graph = try ONNXModelFile.load(Fixtures.path("hostile/m/nan_weights/model.onnx"))
        let images = Tensor<Float>(shape: [2, 1, 8, 8], repeating: 0.5)
        let dataset = try ImageDataset(images: images, labels: [0, 1])
        let error = #expect(throws: ExecutionError.self) { try Evaluator.evaluate(try Executor(graph: graph), on: dataset) }
        #expect(error == .nonFinite(node: "fc", op: "Gemm"))
        let empty = try ImageDataset(images: Tensor(shape: [0, 1, 8, 8], scalars: []), labels: [])
        #expect(throws: DatasetError.self) { try Evaluator.evaluate(try Executor(graph: graph), on: empty) }
    }

    @Test func anUnknownOpsetIsNamed() throws {
        let graph = try ONNXModelFile.load(Fixtures.path("hostile/m/opset_99/model.onnx"))
        let error = #expect(throws: ExecutionError.self) { try ModelValidation.validate(graph) }
        #expect(error == .unknownOpset(opset: 99, newest: Executor.newestKnownOpset))
        #expect(error?.description.contains("opset 99") == true)
    }

    @Test func unsupportedOperatorsAreWarningsWhenLenient() throws {
        let graph = try ONNXModelFile.load(Fixtures.path("hostile/m/graph_unsupported_op/model.onnx"))
        let warnings = try ModelValidation.validate(graph, strictness: .lenient)
        #expect(warnings.count == 1 && warnings[0].contains("Einsum"))
        #expect(throws: ExecutionError.self) { try ModelValidation.validate(graph, strictness: .runnable) }
    }

    /// A seeded mutation run of every fuzz target over the committed fixtures (small, for debug builds);
    /// `Scripts/fuzz.sh` runs the same targets for millions of executions.
    @Test(arguments: FuzzTarget.allCases)
    func seededMutationsNeverCrash(_ target: FuzzTarget) throws {
        FuzzTarget.prepare()
        defer { ShapeLimits.maxElements = 1 << 28 }
        let fm = FileManager.default
        func files(_ folder: String, _ suffix: String) -> [Data] {
            let root = Fixtures.path(folder)
            let names = (fm.enumerator(atPath: root)?.compactMap { $0 as? String } ?? []).filter { $0.hasSuffix(suffix) }.sorted()
            return names.compactMap { fm.contents(atPath: root + "/" + $0) }
        }
        let seeds: [Data] = switch target {
        case .onnx: files("ops", ".onnx") + files("hostile/m", ".onnx")
        case .npy: files("hostile/data", ".npy") + files("ops", ".input.npy").prefix(20)
        case .idx: [Data([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2] + [UInt8](repeating: 7, count: 8)),
                    Data([0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4])]
        case .run: files("ops", ".onnx").map { model in
            var d = Data([UInt8(model.count >> 8 & 0xff), UInt8(model.count & 0xff)]); d.append(model); d.append(Data(repeating: 0x41, count: 64)); return d
        }
        case .packed: files("packed", ".wcm")
        case .product: files("product", ".bin")
        }
        var fuzzer = MutationFuzzer(seeds: seeds, seed: 15)
        for seed in seeds { target(seed) }
        for _ in 0..<300 { target(fuzzer.mutated()) }
    }
}

/// SplitMix64, for a seeded shuffle.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
