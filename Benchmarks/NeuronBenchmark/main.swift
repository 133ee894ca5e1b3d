// A fully-connected layer run dense against the same layer with shared columns (neuron clustering), in the
// executor, on the same input, interleaved in one run. Prints milliseconds per batch, the speed ratio and the
// multiply-add ratio at each column reduction, and peak RSS.
//   wc-neuron-bench [MODEL] [--layer NAME] [--batch 64] [--repeats 30]
// Default layer: AlexNet's /classifier/classifier.5/Gemm (4096×4096) from ../shared/models/alexnet-fmnist.onnx;
// without the model, a random 4096×4096 layer.
import _BenchmarkSupport
import Compression
import Compute
import Dispatch
import Execution
import Foundation
import ModelGraph
import ONNXFormat


var arguments = BenchmarkArguments()
let batch = Int(arguments.take("--batch") ?? "") ?? 64
let repeats = Int(arguments.take("--repeats") ?? "") ?? 30
let layerName = arguments.take("--layer") ?? "/classifier/classifier.5/Gemm"
let modelPath = arguments.rest.first ?? "../shared/models/alexnet-fmnist.onnx"

// The layer as a one-node graph: x[batch, in] → Gemm(W, b, transB = 1) → Relu → y.
var weight: Tensor<Float>, bias: Tensor<Float>, source: String
if FileManager.default.fileExists(atPath: modelPath) {
    let model = orExit { try ONNXModelFile.load(modelPath) }
    guard let node = model.nodes.first(where: { $0.name == layerName && $0.opType == "Gemm" && $0.int("transB", default: 0) == 1 }),
          let w = model.initializers[node.inputs[1]]?.floatTensor, let b = model.initializers[node.inputs[2]]?.floatTensor else {
        FileHandle.standardError.write(Data("error: no Gemm (transB = 1) named \(layerName) in \(modelPath)\n".utf8))
        exit(1)
    }
    (weight, bias, source) = (w, b, "\(modelPath) \(layerName)")
} else {
    var state: UInt64 = 1
    func next() -> Float { state = state &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: state >> 11) % 2000) / 100_000 }
    weight = Tensor(shape: [4096, 4096], scalars: (0..<4096 * 4096).map { _ in next() })
    bias = Tensor(shape: [4096], scalars: (0..<4096).map { _ in next() })
    source = "random 4096×4096"
}
let (outputs, inputs) = (weight.shape[0], weight.shape[1])
var graph = Graph(name: "fc", inputs: [ValueInfo(name: "x", shape: [.symbolic("N"), .fixed(inputs)])],
                  outputs: [ValueInfo(name: "y", shape: [.symbolic("N"), .fixed(outputs)])])
graph.initializers = ["w": .float(weight), "b": .float(bias)]
graph.nodes = [Node(name: "fc", opType: "Gemm", inputs: ["x", "w", "b"], outputs: ["h"], attributes: ["transB": .int(1)]),
               Node(name: "relu", opType: "Relu", inputs: ["h"], outputs: ["y"])]

var state: UInt64 = 7
let x = Tensor<Float>(shape: [batch, inputs], scalars: (0..<batch * inputs).map { _ in
    state = state &* 6364136223846793005 &+ 1442695040888963407; return max(0, Float(Int64(bitPattern: state >> 11) % 2000) / 1000 - 1)
})

@MainActor func milliseconds(_ executor: Executor) throws -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    _ = try executor(x)
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
}

func median(_ v: [Double]) -> Double { let s = v.sorted(); return s[s.count / 2] }

print("layer: \(source) (\(outputs)×\(inputs)), batch \(batch), \(repeats) interleaved runs, \(ComputeThreads.count) threads, OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "<unset>")")
let dense = try Executor(graph: graph)
for reduction in [0.5, 0.9] {
    var config = NeuronClusteringConfiguration(size: .reduction(reduction), mode: .spherical)
    config.initialization = .randomSample  // execution speed is measured here, not clustering quality
    let result = try clusterNeurons(in: graph, configuration: config)
    let compressed = try Executor(graph: result.graph)
    let reference = try Executor(graph: result.denseGraph)
    // Same numbers both ways (the compressed form is the dense reconstruction, computed differently).
    let a = try compressed(x).scalars, b = try reference(x).scalars
    let difference = zip(a, b).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) } / max(1, b.map(abs).max() ?? 1)
    for _ in 0..<3 { _ = try milliseconds(dense); _ = try milliseconds(compressed) }
    var d: [Double] = [], c: [Double] = []
    for _ in 0..<repeats { d.append(try milliseconds(dense)); c.append(try milliseconds(compressed)) }
    let k = result.layers[0].clusters
    print(String(format: "column reduction %.2f (k = %d): dense %.3f ms, compressed %.3f ms → speed ratio %.2f× (multiply-adds %.2f× fewer); max relative |Δ| vs dense reconstruction %.1e",
                 reduction, k, median(d), median(c), median(d) / median(c), Double(inputs) / Double(k), difference))
}
print(String(format: "peak RSS %.0f MiB", Double(peakRSSBytes()) / 1_048_576))
