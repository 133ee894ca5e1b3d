// Inference throughput and sgemm speed, printed as JSON for Scripts/bench-inference.sh.
// Not a test: numbers are information, compared with a baseline measured in the same run.
//   swift run -c release wc-inference-bench MODEL [--batch 64] [--iterations 10] [--seconds S] [--throughput-only] [--top N]
//                                              [--profile-runs N] [--times FILE]
//                                              [--threads N] [--alternate winograd=always|never|passBytes=N|stageBytes=N|parallelPasses=false|chooseWorkers=false|expandInBands=false|shareIdle=false|splitBySpeed=false]
// --seconds S times batches until S seconds have passed (at least three, after warm-up batches: two, and more until
// `warmUpSeconds` have passed, as Benchmarks/ort_inference.py does: onnxruntime's second batch at batch 64 on 224 px
// maps is still 15–30% slower than its third, and ours at batch 1 on two threads ran at one thread's speed for their
// first 30–80 ms, the second core not yet up to speed; and ours until the worker choice's warm-up is over) instead of
// a fixed count, and prints
// the least and the median batch's seconds too; --throughput-only skips the per-operator profile and
// the sgemm table (Scripts/bench-architectures.sh);
// --top N lists the N slowest nodes (12 by default); --profile-runs N profiles N batches and keeps each node's least
// time (and each op type's); --threads N runs on N threads (all cores by default); --alternate SETTINGS times the
// default executor and one with SETTINGS changed, batch by batch in turn (for S seconds, 10 by default), and prints
// each one's least, first-quartile, median, 90th-percentile and mean batch seconds; --times FILE (with --seconds)
// writes each timed batch's µs, in order, one a line.
import _BenchmarkSupport
import Clustering
import Compute
import Dispatch
import Execution
import Foundation
import ONNXFormat
import PackedFormat
#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}


var arguments = BenchmarkArguments()
let batch = arguments.take("--batch", 64)
let iterations = arguments.take("--iterations", 10)
let top = arguments.take("--top", 12)
let profileRuns = arguments.take("--profile-runs", 1)
let minimumSeconds = arguments.take("--seconds").flatMap(Double.init)
let timesPath = arguments.take("--times")
let throughputOnly = arguments.rest.contains("--throughput-only")
if let threads = arguments.take("--threads").flatMap(Int.init) { ComputeThreads.configure(threads) }
guard let modelPath = arguments.rest.first(where: { !$0.hasPrefix("--") }) else {
    FileHandle.standardError.write(Data("usage: wc-inference-bench MODEL [--batch 64] [--iterations 10]\n".utf8))
    exit(2)
}

var result: [String: Any] = ["model": modelPath, "batch": batch, "iterations": iterations, "threads": ComputeThreads.count,
                            "kernels": PackedWeights.kernels]

// 1. Inference throughput.
let graph = orExit { PackedModelFile.isPacked(modelPath) ? try PackedModel.load(modelPath).graph : try ONNXModelFile.load(modelPath) }
orExit { try ModelValidation.validate(graph) }  // operators, attributes and shapes, as the CLI checks them at load
var options = Executor.Options()
if ProcessInfo.processInfo.environment["WC_WINOGRAD"] == "never" { options.winograd = .never }
if ProcessInfo.processInfo.environment["WC_WINOGRAD"] == "always" { options.winograd = .always }
if let bytes = ProcessInfo.processInfo.environment["WC_PASS_BYTES"].flatMap(Int.init) { options.passBytes = bytes }
let executor = orExit { try Executor(graph: graph, options: options) }
// Seeded: the system generator makes a syscall per value (4 s for a 64×3×224×224 batch).
var generator = SeededGenerator(seed: 1)
let inputShape = graph.inputs[0].shape!.enumerated().map { i, d -> Int in
    if case .fixed(let n) = d, n > 0 { return i == 0 ? batch : n }
    return batch
}
let input = Tensor<Float>(shape: inputShape, scalars: (0..<inputShape.reduce(1, *)).map { _ in Float.random(in: -1...1, using: &generator) })
// A model that does not run on this input (a fixed batch of 1 asked for 2, dynamic sizes taken as the batch) ends with
// the executor's one-line error, not a crash report.
orExit { _ = try executor(input) }
if let alternative = arguments.take("--alternate") {
    // The same model under other options (winograd=always|never, passBytes=N, stageBytes=N, parallelPasses=true|false, …), batches alternated with the default
    // executor's in this one process, so that both see the same states of a shared host.
    var other = options
    // The pool's sharing of idle workers (`wc_pool_share_idle`): process-wide, set before each of the other's batches.
    var shareIdle = true
    // Two-piece regions split by the cores' learnt speeds (`ComputeThreads.splitBySpeed`): process-wide, likewise.
    var splitBySpeed = true
    for setting in alternative.split(separator: ",") {
        let parts = setting.split(separator: "=").map(String.init)
        switch (parts.first, parts.count == 2 ? parts[1] : nil) {
        case ("winograd", "always"): other.winograd = .always
        case ("winograd", "never"): other.winograd = .never
        case ("passBytes", let value?) where Int(value) != nil: other.passBytes = Int(value)!
        case ("stageBytes", let value?) where Int(value) != nil: other.stageBytes = Int(value)!
        case ("parallelPasses", let value?) where Bool(value) != nil: other.parallelPasses = Bool(value)!
        case ("chooseWorkers", let value?) where Bool(value) != nil: other.chooseWorkers = Bool(value)!
        case ("expandInBands", let value?) where Bool(value) != nil: other.expandInBands = Bool(value)!
        case ("shareIdle", let value?) where Bool(value) != nil: shareIdle = Bool(value)!
        case ("splitBySpeed", let value?) where Bool(value) != nil: splitBySpeed = Bool(value)!
        default:
            FileHandle.standardError.write(Data("wc-inference-bench: --alternate takes winograd=always|never, passBytes=N, stageBytes=N, parallelPasses=true|false, chooseWorkers=true|false, expandInBands=true|false, shareIdle=true|false or splitBySpeed=true|false, not \(setting)\n".utf8))
            exit(2)
        }
    }
    let executors = [executor, orExit { try Executor(graph: graph, options: other) }]
    var times: [[Double]] = [[], []]
    for e in executors { for _ in 0..<2 { _ = try e(input) } }
    // How far apart the two executors' outputs are (0 where the settings give the same values).
    let outputs = try executors.enumerated().map { i, e in
        ComputeThreads.shareIdleWorkers(i == 0 || shareIdle)
        ComputeThreads.splitBySpeed(i == 0 || splitBySpeed)
        return try e(input).scalars
    }
    result["largest_difference"] = zip(outputs[0], outputs[1]).map { abs($0 - $1) }.max() ?? 0
    let start = DispatchTime.now().uptimeNanoseconds
    while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < (minimumSeconds ?? 10) {
        for (i, e) in executors.enumerated() {
            ComputeThreads.shareIdleWorkers(i == 0 || shareIdle)
            ComputeThreads.splitBySpeed(i == 0 || splitBySpeed)
            times[i].append(try seconds { _ = try e(input) })
        }
    }
    for (i, label) in ["default", alternative].enumerated() {
        let t = times[i].sorted()
        result[label] = ["least": t[0], "quartile": t[t.count / 4], "median": t[t.count / 2], "batches": t.count,
                         "mean": t.reduce(0, +) / Double(t.count), "ninetieth": t[t.count * 9 / 10]]
    }
    let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
    exit(0)
}
/// The least warm-up before timed batches (`--seconds`): from process start our batches at batch 1 on two threads ran
/// at one thread's speed for 30–80 ms (SqueezeNet 1.1 224 px: the first 20–30 batches 2.7–3.3 ms, then 1.4–1.6;
/// the same with the worker choice off; 100 ms of arithmetic on both threads first made them quick from the fourth
/// batch), while onnxruntime, whose session takes longer to create, started at its steady speed.
let warmUpSeconds = 0.25
if let minimumSeconds {
    let warmUpStart = DispatchTime.now().uptimeNanoseconds
    for i in 0... {
        // And past the worker choice's warm-up (`Executor.choosingWorkers`): its passes alternate the settings, one
        // thread among them (24–36 passes; ResNet-18 224 px at batch 1 about 0.7 s, whose passes on one thread take
        // twice as long), and the timed batches are the steady ones.
        guard i < 2 || Double(DispatchTime.now().uptimeNanoseconds - warmUpStart) / 1e9 < warmUpSeconds
                || executor.choosingWorkers else { break }
        _ = try executor(input)
    }
    var times: [Double] = [], elapsed = 0.0
    while times.count < 3 || elapsed < minimumSeconds {
        times.append(try seconds { _ = try executor(input) })
        elapsed += times[times.count - 1]
    }
    if let timesPath {
        // In the order timed, one µs figure a line: whether slow batches come in stretches (docs/RESULTS.md, session 57).
        try (times.map { String(format: "%.1f", $0 * 1e6) }.joined(separator: "\n") + "\n")
            .write(toFile: timesPath, atomically: true, encoding: .utf8)
    }
    times.sort()
    result["images_per_second"] = Double(batch * times.count) / elapsed
    result["seconds_per_batch"] = elapsed / Double(times.count)
    // The spread of single batches (a shared host moves them by tens of percent).
    result["batch_seconds_least"] = times[0]
    result["batch_seconds_median"] = times[times.count / 2]
} else {
    for _ in 0..<2 { _ = try executor(input) }
    let inferenceSeconds = try seconds { for _ in 0..<iterations { _ = try executor(input) } }
    result["images_per_second"] = Double(batch * iterations) / inferenceSeconds
    result["seconds_per_batch"] = inferenceSeconds / Double(iterations)
}
if throughputOnly {
    result["peak_rss_bytes"] = peakRSSBytes()
    let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
    exit(0)
}
// The profile: each node's (and op type's) least time over `profileRuns` profiled batches (one by default).
executor.profiling = true
var byOp: [String: Double] = [:], byNode: [String: Double] = [:]
for _ in 0..<max(1, profileRuns) {
    let (op0, node0) = (executor.profile, executor.nodeProfile)
    _ = try executor(input)
    for (key, value) in executor.profile { byOp[key] = min(byOp[key] ?? .infinity, value - (op0[key] ?? 0)) }
    for (key, value) in executor.nodeProfile { byNode[key] = min(byNode[key] ?? .infinity, value - (node0[key] ?? 0)) }
}
result["seconds_by_op"] = byOp
result["slowest_nodes"] = byNode.sorted { $0.value > $1.value }.prefix(top).map { ["node": $0.key, "seconds": $0.value] }

// 1b. A packed model: seconds to expand every deferred weight per batch, whole (as Gemm and non-Winograd layers get
//     them) and for 3×3 weights straight into the Winograd form (as the executor does), against transforming the
//     already-dense weight.
if !graph.deferredWeights.isEmpty {
    var expand = 0.0, fused = 0.0, transformDense = 0.0
    for _ in 0..<3 {
        for weight in graph.deferredWeights.values {
            var dense: Tensor<Float>?
            expand += seconds { dense = weight.expanded() }
            let s = weight.shape
            guard s.count == 4, s[2] == 3, s[3] == 3, s[1] >= 16, let dense else { continue }
            fused += seconds { _ = Winograd.PreparedWeights(outputChannels: s[0], inputChannels: s[1], rows: weight.expandRows) }
            transformDense += seconds { _ = Winograd.PreparedWeights(dense) }
        }
    }
    result["expand_seconds"] = expand / 3
    result["winograd_from_compressed_seconds"] = fused / 3
    result["winograd_from_dense_seconds"] = transformDense / 3
}

// 2. sgemm GFLOP/s on conv-like shapes: our threaded split (BLAS pinned to one thread per call)
//    against OpenBLAS called directly with its own threads.
func gflops(m: Int, n: Int, k: Int, repeats: Int, _ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> Double {
    let a = (0..<m * k).map { _ in Float.random(in: -1...1) }, b = (0..<k * n).map { _ in Float.random(in: -1...1) }
    var c = [Float](repeating: 0, count: m * n)
    return a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
        body(pa.baseAddress!, pb.baseAddress!, pc.baseAddress!)
        let t = seconds { for _ in 0..<repeats { body(pa.baseAddress!, pb.baseAddress!, pc.baseAddress!) } }
        return 2 * Double(m) * Double(n) * Double(k) * Double(repeats) / t / 1e9
    } } }
}
var gemmRows: [[String: Any]] = []
for (m, n, k) in [(1024, 1024, 1024), (64, 1024, 576), (256, 1024, 2304), (512, 256, 4608)] {
    let repeats = max(3, Int(2e9 / (2 * Double(m * n * k))))
    let ours = gflops(m: m, n: n, k: k, repeats: repeats) { a, b, c in
        parallelSgemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: c, ldc: n)
    }
    #if !canImport(Accelerate)
    openblas_set_num_threads(Int32(ComputeThreads.count))
    #endif
    let direct = gflops(m: m, n: n, k: k, repeats: repeats) { a, b, c in
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(n), 0, c, Int32(n))
    }
    ComputeThreads.configure(ComputeThreads.count)  // pins BLAS to one thread again
    gemmRows.append(["m": m, "n": n, "k": k, "ours_gflops": ours, "openblas_gflops": direct, "ratio": ours / direct])
}
result["sgemm"] = gemmRows
result["peak_rss_bytes"] = peakRSSBytes()
let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys, .prettyPrinted])
print(String(decoding: data, as: UTF8.self))
