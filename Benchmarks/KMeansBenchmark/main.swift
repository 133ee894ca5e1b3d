// k-means on a model's real 3×3 kernel set, printed as JSON for Scripts/bench-kmeans.sh.
//   swift run -c release wc-kmeans-bench MODEL K [--iterations 25] [--seed 0] [--tolerance 0] [--export kernels.npy]
import _BenchmarkSupport
import Clustering
import Datasets
import Dispatch
import Foundation
import ModelGraph
import ONNXFormat

@MainActor func value(_ name: String, _ arguments: [String]) -> String? {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
    return arguments[i + 1]
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 2, let k = Int(arguments[1]) else {
    FileHandle.standardError.write(Data("usage: wc-kmeans-bench MODEL K [--iterations N] [--seed S] [--tolerance T] [--export kernels.npy]\n".utf8))
    exit(2)
}
let graph = orExit { try ONNXModelFile.load(arguments[0]) }
var kernels: [Float] = []
for node in graph.nodes where node.opType == "Conv" {
    guard let w = graph.initializers[node.inputs[1]]?.floatTensor, w.rank == 4, w.shape[2] == 3, w.shape[3] == 3 else { continue }
    kernels.append(contentsOf: w.scalars)
}
let n = kernels.count / 9
if let path = value("--export", arguments) {
    try NPYFile.write(.float(.init(shape: [n, 9], scalars: kernels)), to: path)
}
var configuration = KMeansConfiguration(clusters: k, maxIterations: Int(value("--iterations", arguments) ?? "25") ?? 25,
                                        tolerance: Double(value("--tolerance", arguments) ?? "0") ?? 0,
                                        seed: UInt64(value("--seed", arguments) ?? "0") ?? 0)
if let initialization = value("--init", arguments), let method = KMeansConfiguration.Initialization(rawValue: initialization) {
    configuration.initialization = method
}
if let leaves = value("--leaves", arguments), let budget = Int(leaves) { configuration.leafBudget = budget }
if let m = value("--neighbours", arguments), let count = Int(m) { configuration.neighbours = count }
if arguments.contains("--approximate") { configuration.exactSearchBudget = 0 }
let start = DispatchTime.now().uptimeNanoseconds
let result = try KMeans.fit(kernels, rows: n, dimension: 9, configuration: configuration)
let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
let peak = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
let json: [String: Any] = ["rows": n, "k": k, "seconds": seconds, "inertia": result.inertia, "iterations": result.iterations,
                           "initialization": result.initialization.rawValue, "assignment": result.assignmentMethod,
                           "inertia_history": result.inertiaHistory, "peak_rss_bytes": peak * 1024]
print(String(decoding: try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), as: UTF8.self))
