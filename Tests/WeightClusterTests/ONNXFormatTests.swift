import Compute
import Execution
import Foundation
import ModelGraph
@testable import ONNXFormat
import Testing
import _TestSupport

enum ONNXFormatTestLoader {
    static func load(_ fixture: String) throws -> Graph { try ONNXModelFile.load(Fixtures.path(fixture + ".onnx")) }
}

@Suite struct ONNXFormatTests {
    @Test func exportRoundTripKeepsOutputs() throws {
        let name = "models/tiny_resnet_opset13"
        let graph = try ONNXFormatTestLoader.load(name)
        let data = try ONNXModelFile.encode(graph)
        let reloaded = try ONNXModelFile.decode(data)
        #expect(reloaded.nodes == graph.nodes)
        #expect(reloaded.initializers == graph.initializers)
        #expect(reloaded.opsetVersion == graph.opsetVersion)
        let input = try TestSupport.readFloat(Fixtures.path(name + ".input.npy"))
        // On one worker: with the generic kernels the products go to OpenBLAS, whose sums for a column depend on how many
        // columns the product has, and im2colConv2d takes one or two images a product by the workers it sees (session
        // 59: 1 run in 6 differed in the last bit) — not what this test is about.
        let (a, b) = try ComputeThreads.limited(to: 1) {
            (try Executor(graph: graph)(input), try Executor(graph: reloaded)(input))
        }
        #expect(a == b)
        #expect(try ONNXModelFile.encode(reloaded) == data, "encoding is deterministic")
    }

    @Test func saveIsAtomicAndLeavesNoTemporaryFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wc-save-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("m.onnx").path
        try ONNXModelFile.save(try ONNXFormatTestLoader.load("ops/relu"), to: out)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["m.onnx"])
        #expect(try ONNXModelFile.load(out).nodes.map(\.opType) == ["Relu"])
    }

    @Test func missingFile() {
        #expect(throws: ONNXError.fileNotFound(path: "/nonexistent/model.onnx")) {
            try ONNXModelFile.load("/nonexistent/model.onnx")
        }
    }

    @Test func truncatedFileIsRejected() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("models/tiny_vgg_opset13.onnx")))
        let error = #expect(throws: ONNXError.self) { try ONNXModelFile.decode(data.prefix(data.count / 2), path: "cut.onnx") }
        #expect(error?.description.contains("cut.onnx is not a valid ONNX model") == true)
    }

    @Test func nonONNXFileIsRejected() {
        let error = #expect(throws: ONNXError.self) {
            try ONNXModelFile.decode(Data("hello, this is a text file\n".utf8), path: "notes.txt")
        }
        #expect(error?.description.hasPrefix("notes.txt is not a valid ONNX model") == true)
    }

    @Test func float16AndIntegerInitializersAreRead() {
        #expect(Float(halfBits: 0x3C00) == 1)
        #expect(Float(halfBits: 0xC000) == -2)
        #expect(Float(halfBits: 0x0001) == 0x1p-24)
    }
}

@Suite struct ExecutorErrorTests {
    @Test func unsupportedOperatorNamesOpNodeAndOpset() {
        let graph = Graph(nodes: [Node(name: "mystery", opType: "Einsum", inputs: ["x"], outputs: ["y"])],
                          inputs: [ValueInfo(name: "x", shape: nil)], outputs: [ValueInfo(name: "y", shape: nil)], opsetVersion: 15)
        let error = #expect(throws: ExecutionError.self) { try Executor(graph: graph) }
        #expect(error == .unsupportedOperator(op: "Einsum", domain: "", node: "mystery", opset: 15))
        #expect(error?.description.contains("Einsum") == true && error?.description.contains("opset 15") == true)
    }

    /// Weights kept in Constant nodes (as Paddle exports them) load as initializers, so they count as weights; a
    /// Constant that something else reads stays a node, and the model computes the same.
    @Test func constantNodeWeightsBecomeInitializers() throws {
        let w = Tensor<Float>(shape: [2, 3, 1, 1], scalars: [1, 2, 3, 4, 5, 6])
        let graph = Graph(nodes: [Node(name: "w_const", opType: "Constant", inputs: [], outputs: ["w"], attributes: ["value": .tensor(.float(w))]),
                                  Node(name: "s_const", opType: "Constant", inputs: [], outputs: ["s"], attributes: ["value": .tensor(.float(Tensor(shape: [], scalars: [2])))]),
                                  Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"]),
                                  Node(name: "scale", opType: "Mul", inputs: ["c", "s"], outputs: ["y"])],
                          inputs: [ValueInfo(name: "x", shape: [.fixed(1), .fixed(3), .fixed(2), .fixed(2)])],
                          outputs: [ValueInfo(name: "y", shape: nil)], opsetVersion: 13)
        let loaded = try ONNXModelFile.decode(try ONNXModelFile.encode(graph))
        #expect(loaded.initializers["w"]?.floatTensor == w)
        #expect(loaded.initializers["s"] == nil && loaded.nodes.map(\.name) == ["s_const", "conv", "scale"])
        let x = Tensor<Float>(shape: [1, 3, 2, 2], scalars: (0..<12).map(Float.init))
        #expect(try Executor(graph: loaded)(x) == Executor(graph: graph)(x))
    }

    /// A model with several unsupported operators gets one error listing all of them (first node and count).
    @Test func everyUnsupportedOperatorInOneError() throws {
        let graph = Graph(nodes: [Node(name: "roi1", opType: "RoiAlign", inputs: ["x"], outputs: ["a"]),
                                  Node(name: "nms", opType: "NonMaxSuppression", inputs: ["a"], outputs: ["b"]),
                                  Node(name: "roi2", opType: "RoiAlign", inputs: ["b"], outputs: ["c"]),
                                  Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["y"])],
                          inputs: [ValueInfo(name: "x", shape: nil)], outputs: [ValueInfo(name: "y", shape: nil)], opsetVersion: 13)
        let error = #expect(throws: ExecutionError.self) { try ModelValidation.validate(graph) }
        #expect(error == .unsupportedOperators([UnsupportedOperator(op: "RoiAlign", domain: "", firstNode: "roi1", count: 2),
                                                UnsupportedOperator(op: "NonMaxSuppression", domain: "", firstNode: "nms", count: 1)], opset: 13))
        #expect(error?.description == "unsupported operators (opset 13): RoiAlign at node 'roi1' and 1 more, NonMaxSuppression at node 'nms'; WeightCluster runs the ai.onnx operators listed in the README")
        #expect(try ModelValidation.validate(graph, strictness: .lenient).count == 1)
    }

    @Test func shapeMismatchNamesNodeAndShapes() throws {
        let graph = Graph(nodes: [Node(name: "fc", opType: "Gemm", inputs: ["x", "w"], outputs: ["y"], attributes: ["transB": .int(1)])],
                          initializers: ["w": .float(Tensor(zeros: [4, 5]))],
                          inputs: [ValueInfo(name: "x", shape: nil)], outputs: [ValueInfo(name: "y", shape: nil)])
        let executor = try Executor(graph: graph)
        let error = #expect(throws: ExecutionError.self) { try executor(Tensor(zeros: [2, 3])) }
        #expect(error?.description.contains("node 'fc'") == true)
        #expect(error?.description.contains("[2, 3]") == true && error?.description.contains("[4, 5]") == true)
    }

    @Test func wrongInputShapeIsReported() throws {
        let graph = try ONNXFormatTestLoader.load("ops/relu")
        let error = #expect(throws: ExecutionError.self) { try Executor(graph: graph)(Tensor(zeros: [1, 1, 28, 28])) }
        #expect(error?.description.contains("expects shape [2, 4, 7, 7], got [1, 1, 28, 28]") == true)
    }

    @Test func danglingValueIsReported() {
        let graph = Graph(nodes: [Node(name: "r", opType: "Relu", inputs: ["nowhere"], outputs: ["y"])],
                          outputs: [ValueInfo(name: "y", shape: nil)])
        #expect(throws: ExecutionError.missingValue(node: "r", value: "nowhere")) { try Executor(graph: graph) }
    }
}
