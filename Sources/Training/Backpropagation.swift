import Compute
import Execution
import Dispatch
import Foundation
import ModelGraph

/// Reverse-mode gradients over a graph. The trainable parameters are its float initializers except running
/// statistics (BatchNormalization mean/variance) and bounds (Clip); whatever is rebuilt from them inside the graph
/// — a codebook gathered into kernels, shared columns gathered into a weight, scales multiplied in — gets its
/// gradient through the rebuild nodes, so tied weights stay tied by construction.
///
/// The forward pass runs every node with the executor's operators, except Dropout (a random mask in training) and
/// BatchNormalization (batch statistics in training, unless frozen), and keeps the values backward needs.
public final class Backpropagation {
    public private(set) var graph: Graph
    /// Names of the trainable initializers, in a fixed order.
    public let parameters: [String]
    /// Values that depend only on constants, computed once.
    private var constants: [String: AnyTensor]
    /// Nodes left to run, in topological order: the executor's plan (`Executor.plan`, training's fusions).
    public let plan: [Node]
    /// Values whose gradient is wanted (they depend on a parameter, or on the input when `inputGradients`).
    let differentiable: Set<String>
    /// For each parameter gathered by constant indices (a codebook or LUT, possibly through Cast/Reshape): how many
    /// places each of its elements is gathered into, summed over its Gathers. An element's gradient is the sum over
    /// those places.
    public let gatherCounts: [String: [Float]]
    /// The node whose input is the loss's logits, when the graph ends in Softmax/LogSoftmax (skipped in training).
    let logitsName: String
    public var batchNormalization: BatchNormalizationMode = .train
    /// Seeded generator for Dropout masks.
    private var generator: UInt64

    public enum BatchNormalizationMode: Sendable { case train, frozen }
    /// Values (not parameters) whose gradient `backward` returns too, e.g. a weight rebuilt from a codebook.
    public var retainedGradients: Set<String> = []
    /// When set, forward and backward add each node's wall time to `profile` under "forward/op" and "backward/op".
    public var profiling = false
    public internal(set) var profile: [String: Double] = [:]

    public init(graph: Graph, inputGradients: Bool = false, seed: UInt64 = 0) throws {
        self.graph = graph
        generator = seed &+ 0x9E37_79B9_7F4A_7C15
        var frozen = Set<String>()
        for node in graph.nodes {
            if node.opType == "BatchNormalization" { frozen.formUnion(node.inputs.dropFirst(3)) }
            if node.opType == "Clip" { frozen.formUnion(node.inputs.dropFirst()) }
            if node.opType == "Reshape" || node.opType == "Pad" { frozen.formUnion(node.inputs.dropFirst()) }
        }
        parameters = graph.initializers.keys.filter { graph.initializers[$0]?.floatTensor != nil && !frozen.contains($0) }.sorted()
        // The executor's plan: what depends on no parameter and no input folded once, each Conv fused with its
        // Pad, Add and Relu/Clip (whose backward needs only the fused output); then mark what gradients flow through.
        var constants = graph.initializers
        for p in parameters { constants[p] = nil }
        let plan = try Executor.plan(try Executor.topologicallySorted(graph), constants: &constants,
                                     variables: Set(graph.inputs.map(\.name)).union(parameters), graphOutputs: Set(graph.outputs.map(\.name)),
                                     opset: graph.opsetVersion, fusions: .training)
        var live = Set(parameters)
        if inputGradients { live.formUnion(graph.inputs.map(\.name)) }
        for node in plan where node.inputs.contains(where: live.contains) { live.formUnion(node.outputs.prefix(1)) }
        self.constants = constants
        gatherCounts = Self.gatherCounts(plan, constants: constants, parameters: Set(parameters), graph: graph)
        self.plan = plan
        self.differentiable = live
        guard let output = graph.outputs.first?.name else { throw TrainingError.invalid("the model has no output") }
        if let last = plan.last(where: { $0.outputs.contains(output) }), last.opType == "Softmax" || last.opType == "LogSoftmax" {
            logitsName = last.inputs[0]
        } else {
            logitsName = output
        }
    }

    static func gatherCounts(_ plan: [Node], constants: [String: AnyTensor], parameters: Set<String>, graph: Graph) -> [String: [Float]] {
        var producer: [String: Node] = [:]
        for node in plan { for output in node.outputs { producer[output] = node } }
        var counts: [String: [Float]] = [:]
        for node in plan where node.opType == "Gather" && node.int("axis", default: 0) == 0 && node.inputs.count == 2 {
            guard let index = constants[node.inputs[1]]?.int64Values else { continue }
            // Back through element-preserving nodes to the parameter.
            var source = node.inputs[0]
            while !parameters.contains(source), let p = producer[source], ["Cast", "Reshape", "Identity"].contains(p.opType) { source = p.inputs[0] }
            guard parameters.contains(source), let data = graph.initializers[source]?.floatTensor, data.rank >= 1 else { continue }
            let rows = data.shape[0], inner = data.count / max(1, rows)
            var c = counts[source] ?? [Float](repeating: 0, count: data.count)
            for raw in index {
                let i = raw < 0 ? Int(raw) + rows : Int(raw)
                guard i >= 0 && i < rows else { continue }
                for t in 0..<inner { c[i * inner + t] += 1 }
            }
            counts[source] = c
        }
        return counts
    }

    /// Current value of a parameter.
    public func parameter(_ name: String) -> Tensor<Float> { graph.initializers[name]!.floatTensor! }

    public func setParameter(_ name: String, _ value: Tensor<Float>) { graph.initializers[name] = .float(value) }

    // MARK: forward

    /// The values of one forward pass, kept for backward.
    public struct Tape {
        var values: [String: AnyTensor]
        var dropoutMasks: [String: [Float]] = [:]
        var normalized: [String: (xhat: Tensor<Float>, inverseStd: [Float])] = [:]
        /// The logits the loss reads.
        public var logits: Tensor<Float>
    }

    public func forward(_ feeds: [String: AnyTensor], training: Bool) throws -> Tape {
        var values = constants
        for p in parameters { values[p] = graph.initializers[p] }
        for (name, value) in feeds { values[name] = value }
        var tape = Tape(values: [:], logits: Tensor(zeros: [0]))
        for node in plan {
            let started = profiling ? DispatchTime.now().uptimeNanoseconds : 0
            defer { if profiling { profile["forward/" + node.opType, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 } }
            let inputs = node.inputs.map { $0.isEmpty ? nil : values[$0] }
            var outputs: [AnyTensor]
            if node.opType == "Dropout" && training {
                let x = try float(inputs[0], node)
                let ratio = node.inputs.count > 1 && !node.inputs[1].isEmpty ? (inputs[1]?.floatTensor?.scalars.first ?? 0.5) : node.float("ratio", default: 0.5)
                let keep = 1 / max(1 - ratio, .leastNormalMagnitude)
                let mask = (0..<x.count).map { _ in nextUnit() >= Double(ratio) ? keep : 0 }
                tape.dropoutMasks[node.outputs[0]] = mask
                outputs = [.float(Tensor(shape: x.shape, scalars: zip(x.scalars, mask).map { $0 * $1 }))]
            } else if node.opType == "Conv", let x = inputs[0]?.floatTensor, let w = inputs[1]?.floatTensor,
                      Executor.takesWinograd(node, weightShape: w.shape, opset: graph.opsetVersion),
                      Executor.winogradPays(node, input: x.shape, weightShape: w.shape, opset: graph.opsetVersion) {
                // Winograd as the executor takes it; the weights change every step, so they are transformed every step.
                outputs = try Executor.evaluate(node, inputs: inputs, opset: graph.opsetVersion, prepared: Winograd.PreparedWeights(w))
            } else if node.opType == "BatchNormalization" && training && batchNormalization == .train {
                outputs = [.float(try batchNormalizationTraining(node, inputs, tape: &tape))]
            } else if node.opType == "Softmax" || node.opType == "LogSoftmax", node.inputs[0] == logitsName, training {
                outputs = [inputs[0]!]  // the loss applies its own log-softmax
            } else {
                var plain = node
                if node.opType == "BatchNormalization" { plain.attributes["training_mode"] = nil }
                outputs = try Executor.evaluate(plain, inputs: inputs, opset: graph.opsetVersion)
            }
            for (name, value) in zip(node.outputs, outputs) where !name.isEmpty { values[name] = value }
        }
        tape.logits = try float(values[logitsName], nil)
        tape.values = values
        return tape
    }

    private func batchNormalizationTraining(_ node: Node, _ inputs: [AnyTensor?], tape: inout Tape) throws -> Tensor<Float> {
        let x = try float(inputs[0], node), gamma = try float(inputs[1], node).scalars, beta = try float(inputs[2], node).scalars
        let (n, c) = (x.shape[0], x.shape[1]), inner = x.count / max(1, n * c)
        let count = Float(n * inner), epsilon = node.float("epsilon", default: 1e-5), momentum = node.float("momentum", default: 0.9)
        var mean = [Float](repeating: 0, count: c), variance = [Float](repeating: 0, count: c)
        for b in 0..<n { for ch in 0..<c { let base = (b * c + ch) * inner; for i in 0..<inner { mean[ch] += x.scalars[base + i] } } }
        for ch in 0..<c { mean[ch] /= count }
        for b in 0..<n { for ch in 0..<c { let base = (b * c + ch) * inner; for i in 0..<inner { let d = x.scalars[base + i] - mean[ch]; variance[ch] += d * d } } }
        for ch in 0..<c { variance[ch] /= count }
        let inverseStd = variance.map { 1 / ($0 + epsilon).squareRoot() }
        var xhat = x, y = x
        for b in 0..<n {
            for ch in 0..<c {
                let base = (b * c + ch) * inner
                for i in 0..<inner {
                    let h = (x.scalars[base + i] - mean[ch]) * inverseStd[ch]
                    xhat.scalars[base + i] = h
                    y.scalars[base + i] = gamma[ch] * h + beta[ch]
                }
            }
        }
        tape.normalized[node.outputs[0]] = (xhat, inverseStd)
        // Running statistics (PyTorch's unbiased variance), in the graph so evaluation and export use them.
        if node.inputs.count > 4, var runningMean = graph.initializers[node.inputs[3]]?.floatTensor,
           var runningVariance = graph.initializers[node.inputs[4]]?.floatTensor {
            let unbiased = count > 1 ? count / (count - 1) : 1
            for ch in 0..<c {
                runningMean.scalars[ch] = momentum * runningMean.scalars[ch] + (1 - momentum) * mean[ch]
                runningVariance.scalars[ch] = momentum * runningVariance.scalars[ch] + (1 - momentum) * variance[ch] * unbiased
            }
            graph.initializers[node.inputs[3]] = .float(runningMean)
            graph.initializers[node.inputs[4]] = .float(runningVariance)
        }
        return y
    }

    // MARK: loss

    /// Mean softmax cross-entropy of the tape's logits ([N, classes]) against `labels`, its gradient, and how many
    /// rows have their label as the arg-max.
    public static func crossEntropy(_ logits: Tensor<Float>, labels: [Int]) throws -> (loss: Float, gradient: Tensor<Float>, correct: Int) {
        guard logits.rank == 2, logits.shape[0] == labels.count else {
            throw TrainingError.invalid("logits \(logits.shape) do not match \(labels.count) labels")
        }
        let (n, k) = (logits.shape[0], logits.shape[1])
        if let bad = labels.first(where: { $0 < 0 || $0 >= k }) {
            throw TrainingError.invalid("label \(bad) is outside the model's \(k) outputs")
        }
        var gradient = Tensor<Float>(zeros: logits.shape)
        var loss = 0.0, correct = 0
        for r in 0..<n {
            let row = Array(logits.scalars[r * k..<(r + 1) * k])
            let m = row.max() ?? 0
            let exps = row.map { Foundation.exp($0 - m) }
            let sum = exps.reduce(0, +)
            loss += Double(Foundation.log(sum) + m - row[labels[r]])
            if row.firstIndex(of: m) == labels[r] { correct += 1 }
            for j in 0..<k { gradient.scalars[r * k + j] = (exps[j] / sum - (j == labels[r] ? 1 : 0)) / Float(n) }
        }
        return (Float(loss / Double(n)), gradient, correct)
    }

    // MARK: helpers

    func float(_ value: AnyTensor?, _ node: Node?) throws -> Tensor<Float> {
        guard let t = value?.floatTensor else {
            throw TrainingError.invalid("a float value is missing at \(node?.displayName ?? "the output")")
        }
        return t
    }

    private func nextUnit() -> Double {
        generator = generator &* 6364136223846793005 &+ 1442695040888963407
        return Double(generator >> 11) / Double(1 << 53)
    }
}
