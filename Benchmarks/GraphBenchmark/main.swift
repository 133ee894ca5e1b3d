import Dispatch
import Execution
import Foundation
import ModelGraph
import ONNXFormat

// Load time of 100,000-node graphs in three orders (as listed in the file, reversed, shuffled): ONNX decode,
// validation (topological sort, attributes, one dry run) and executor preparation, each timed on its own (wall
// seconds), and the CPU seconds of all three.
//   swift run -c release wc-graph-bench [NODES]
let n = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 100_000

/// Wall and CPU seconds (the machine is shared: CPU time is what the code costs, wall time what a user waits).
func seconds(_ body: () throws -> Void) rethrows -> String {
    func cpu() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
    let start = DispatchTime.now().uptimeNanoseconds, startCPU = cpu()
    try body()
    return String(format: "%.3f / %.3f", Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, cpu() - startCPU)
}

var state: UInt64 = 15
func random(_ state: inout UInt64) -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

let chain = (0..<n).map { i in
    Node(name: "n\(i)", opType: i % 2 == 0 ? "Neg" : "Relu", inputs: [i == 0 ? "x" : "v\(i - 1)"], outputs: [i == n - 1 ? "y" : "v\(i)"])
}
var shuffled = chain
for i in stride(from: n - 1, to: 0, by: -1) { shuffled.swapAt(i, Int(random(&state) % UInt64(i + 1))) }
print("seconds, wall / CPU: decode = ONNX bytes to graph; validate = sort, attributes, executor, dry run (what")
print("evaluate and run do at load); executor = preparing a second executor, for comparison")
print("nodes   order      bytes    decode           validate         executor")
for (label, nodes) in [("in order", chain), ("reversed", Array(chain.reversed())), ("shuffled", shuffled)] {
    let graph = Graph(nodes: nodes, inputs: [ValueInfo(name: "x", shape: [.fixed(1), .fixed(4)])], outputs: [ValueInfo(name: "y", shape: nil)])
    let data = try ONNXModelFile.encode(graph)
    var loaded = graph
    let decode = try seconds { loaded = try ONNXModelFile.decode(data) }
    let validate = try seconds { _ = try ModelValidation.validatedExecutor(loaded) }
    let prepare = try seconds { _ = try Executor(graph: loaded) }
    print("\(n)  \(label.padding(toLength: 9, withPad: " ", startingAt: 0)) \(data.count)  \(decode)    \(validate)    \(prepare)")
}
