// Training throughput of our engine: SGD (momentum 0.9, Nesterov) steps on a model at batch 64, after one
// warm-up step; prints one JSON object with images/s and peak RSS. Scripts/bench-training.sh runs it beside
// PyTorch on the same architecture.
//   wc-train-bench [MODEL] [--steps 10] [--batch 64]
import _BenchmarkSupport
import Compute
import Datasets
import Dispatch
import Foundation
import ModelGraph
import ONNXFormat
import Training


var arguments = BenchmarkArguments()
let steps = Int(arguments.take("--steps") ?? "") ?? 10
let batch = Int(arguments.take("--batch") ?? "") ?? 64
let path = arguments.rest.first ?? "../shared/models/vgg16-fmnist.onnx"
let graph = orExit { try ONNXModelFile.load(path) }
let shape = graph.inputs.first?.shape?.dropFirst().map { if case .fixed(let n) = $0 { n } else { 1 } } ?? [1, 32, 32]
var state: UInt64 = 3
let count = batch * (steps + 1)
let images = Tensor<Float>(shape: [count] + shape, scalars: (0..<count * shape.reduce(1, *)).map { _ in
    state = state &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: state >> 11) % 2000) / 1000 - 0.5
})
let data = try ImageDataset(images: images, labels: (0..<count).map { $0 % 10 })
var config = TrainingConfiguration(epochs: 1)
config.batchSize = batch
config.augment = false
config.schedule = .constant
config.stepsPerEpoch = 1
_ = try orExit { try Trainer(graph: graph, configuration: config) }.train(data)  // warm-up (allocations, BLAS)
config.stepsPerEpoch = steps
let trainer = orExit { try Trainer(graph: graph, configuration: config) }
trainer.engine.profiling = ProcessInfo.processInfo.environment["WC_PROFILE"] != nil
let start = DispatchTime.now().uptimeNanoseconds
let report = try trainer.train(data)
let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
let result: [String: Any] = ["engine": "weightcluster", "steps": steps, "batch": batch, "seconds": seconds,
                             "images_per_second": Double(steps * batch) / seconds, "loss": report[0].loss,
                             "threads": ComputeThreads.count, "peak_rss_bytes": peakRSSBytes()]
print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
if trainer.engine.profiling {
    for (op, t) in trainer.engine.profile.sorted(by: { $0.value > $1.value }) {
        FileHandle.standardError.write(Data(String(format: "%-28@ %7.3f s\n", op as NSString, t).utf8))
    }
}
