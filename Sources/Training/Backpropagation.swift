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
    /// Nodes left to run, in topological order.
    private let plan: [Node]
    /// Values whose gradient is wanted (they depend on a parameter, or on the input when `inputGradients`).
    private let differentiable: Set<String>
    /// The node whose input is the loss's logits, when the graph ends in Softmax/LogSoftmax (skipped in training).
    private let logitsName: String
    public var batchNormalization: BatchNormalizationMode = .train
    /// Seeded generator for Dropout masks.
    private var generator: UInt64

    public enum BatchNormalizationMode: Sendable { case train, frozen }
    /// When set, forward and backward add each node's wall time to `profile` under "forward/op" and "backward/op".
    public var profiling = false
    public private(set) var profile: [String: Double] = [:]

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
        let order = try Executor.topologicallySorted(graph)
        // Fold what depends on no parameter and no input; mark what gradients flow through.
        var constants = graph.initializers
        var live = Set(parameters)
        if inputGradients { live.formUnion(graph.inputs.map(\.name)) }
        var dynamic = Set(graph.inputs.map(\.name)).union(parameters)
        var plan: [Node] = []
        for node in order {
            if node.inputs.allSatisfy({ $0.isEmpty || !dynamic.contains($0) }) && node.opType != "Dropout" {
                let outputs = try Executor.evaluate(node, inputs: node.inputs.map { $0.isEmpty ? nil : constants[$0] }, opset: graph.opsetVersion)
                for (name, value) in zip(node.outputs, outputs) where !name.isEmpty { constants[name] = value }
                continue
            }
            dynamic.formUnion(node.outputs)
            if node.inputs.contains(where: live.contains) { live.formUnion(node.outputs.prefix(1)) }
            plan.append(node)
        }
        for p in parameters { constants[p] = nil }
        self.constants = constants
        self.plan = plan
        self.differentiable = live
        guard let output = graph.outputs.first?.name else { throw TrainingError.invalid("the model has no output") }
        if let last = plan.last(where: { $0.outputs.contains(output) }), last.opType == "Softmax" || last.opType == "LogSoftmax" {
            logitsName = last.inputs[0]
        } else {
            logitsName = output
        }
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
            } else if node.opType == "Conv", let x = inputs[0]?.floatTensor, let w = inputs[1]?.floatTensor, x.rank == 4, w.rank == 4,
                      case let window = try Executor.window(of: node, input: x.shape, kernel: Array(w.shape.suffix(2)), opset: graph.opsetVersion),
                      Winograd.applies(weightShape: w.shape, window: window, group: node.int("group", default: 1)),
                      Winograd.isWorthwhile(inputChannels: w.shape[1]) {
                // The executor's fast path; the weights change every step, so they are transformed every step.
                outputs = [.float(try conv2d(x, weight: w, bias: inputs.count > 2 ? inputs[2]?.floatTensor?.scalars : nil, window: window,
                                             prepared: Winograd.PreparedWeights(w)))]
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
        return crossEntropyChecked(logits, labels: labels, n: n, k: k)
    }

    private static func crossEntropyChecked(_ logits: Tensor<Float>, labels: [Int], n: Int, k: Int) -> (loss: Float, gradient: Tensor<Float>, correct: Int) {
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

    // MARK: backward

    /// Gradients of every parameter (and of the inputs when asked at init) given the gradient of the logits.
    public func backward(_ tape: Tape, logitsGradient: Tensor<Float>) throws -> [String: Tensor<Float>] {
        var grads: [String: Tensor<Float>] = [logitsName: logitsGradient]
        func accumulate(_ name: String, _ g: Tensor<Float>) {
            guard differentiable.contains(name) else { return }
            if let existing = grads[name] {
                grads[name] = Tensor(shape: existing.shape, scalars: zip(existing.scalars, g.scalars).map { $0 + $1 })
            } else {
                grads[name] = g
            }
        }
        let values = tape.values
        func value(_ name: String, _ node: Node) throws -> Tensor<Float> { try float(values[name], node) }
        for node in plan.reversed() {
            guard let out = node.outputs.first, let dy = grads[out] else { continue }
            if out != logitsName { grads[out] = nil }  // consumed
            let wants = node.inputs.map { !$0.isEmpty && differentiable.contains($0) }
            guard wants.contains(true) else { continue }
            let started = profiling ? DispatchTime.now().uptimeNanoseconds : 0
            defer { if profiling { profile["backward/" + node.opType, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 } }
            switch node.opType {
            case "Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Cast":
                if node.opType == "Cast", node.int("to", default: 1) != 1 { break }
                accumulate(node.inputs[0], dy.reshaped(try value(node.inputs[0], node).shape))
            case "Softmax", "LogSoftmax":
                // Only the final one (training skips it; the loss differentiates the logits).
                accumulate(node.inputs[0], dy)
            case "Relu":
                let y = try value(out, node)
                accumulate(node.inputs[0], Tensor(shape: dy.shape, scalars: zip(dy.scalars, y.scalars).map { $1 > 0 ? $0 : 0 }))
            case "LeakyRelu":
                let x = try value(node.inputs[0], node), alpha = node.float("alpha", default: 0.01)
                accumulate(node.inputs[0], Tensor(shape: dy.shape, scalars: zip(dy.scalars, x.scalars).map { $1 >= 0 ? $0 : alpha * $0 }))
            case "Clip":
                let x = try value(node.inputs[0], node), y = try value(out, node)
                accumulate(node.inputs[0], Tensor(shape: dy.shape, scalars: (0..<dy.count).map { x.scalars[$0] == y.scalars[$0] ? dy.scalars[$0] : 0 }))
            case "Sigmoid":
                let y = try value(out, node)
                accumulate(node.inputs[0], Tensor(shape: dy.shape, scalars: zip(dy.scalars, y.scalars).map { $0 * $1 * (1 - $1) }))
            case "Tanh":
                let y = try value(out, node)
                accumulate(node.inputs[0], Tensor(shape: dy.shape, scalars: zip(dy.scalars, y.scalars).map { $0 * (1 - $1 * $1) }))
            case "Dropout":
                let mask = tape.dropoutMasks[out]
                accumulate(node.inputs[0], mask.map { Tensor(shape: dy.shape, scalars: zip(dy.scalars, $0).map { $0 * $1 }) } ?? dy)
            case "Add", "Sub", "Mul", "Div":
                let a = try value(node.inputs[0], node), b = try value(node.inputs[1], node)
                var da = dy, db = dy
                switch node.opType {
                case "Sub": db = dy.mapped { -$0 }
                case "Mul":
                    da = try broadcastBinary(dy, b) { $0 * $1 }
                    db = try broadcastBinary(dy, a) { $0 * $1 }
                case "Div":
                    da = try broadcastBinary(dy, b) { $0 / $1 }
                    let quotient = try broadcastBinary(a, b) { $0 / ($1 * $1) }
                    db = try broadcastBinary(dy, quotient) { -$0 * $1 }
                default: break
                }
                if wants[0] { accumulate(node.inputs[0], reduced(da, to: a.shape)) }
                if wants[1] { accumulate(node.inputs[1], reduced(db, to: b.shape)) }
            case "Gemm":
                try gemmBackward(node, dy: dy, values: values, wants: wants, accumulate: accumulate)
            case "MatMul":
                let a = try value(node.inputs[0], node), b = try value(node.inputs[1], node)
                guard b.rank == 2, a.rank >= 2 else { throw TrainingError.unsupported(op: "MatMul (batched weight)", node: node.displayName) }
                let (rows, k, n) = (a.count / a.shape[a.rank - 1], b.shape[0], b.shape[1])
                if wants[0] {
                    var da = Tensor<Float>(zeros: a.shape)
                    matmul(dy.scalars, b.scalars, into: &da.scalars, m: rows, n: k, k: n, transA: false, transB: true)
                    accumulate(node.inputs[0], da)
                }
                if wants[1] {
                    var db = Tensor<Float>(zeros: b.shape)
                    matmul(a.scalars, dy.scalars, into: &db.scalars, m: k, n: n, k: rows, transA: true, transB: false)
                    accumulate(node.inputs[1], db)
                }
            case "Conv":
                let x = try value(node.inputs[0], node), w = try value(node.inputs[1], node)
                let window = try Executor.window(of: node, input: x.shape, kernel: Array(w.shape.suffix(2)), opset: graph.opsetVersion)
                let g = try conv2dBackward(x, weight: w, window: window, group: node.int("group", default: 1), gradOutput: dy,
                                           inputGradient: wants[0])
                if let dx = g.input { accumulate(node.inputs[0], dx) }
                if wants[1] { accumulate(node.inputs[1], g.weight) }
                if wants.count > 2 && wants[2] { accumulate(node.inputs[2], Tensor(shape: [g.bias.count], scalars: g.bias)) }
            case "MaxPool", "AveragePool":
                let x = try value(node.inputs[0], node)
                guard let k = node.ints("kernel_shape") else { throw TrainingError.unsupported(op: node.opType, node: node.displayName) }
                let window = try Executor.window(of: node, input: x.shape, kernel: k, opset: graph.opsetVersion)
                let kind: PoolKind = node.opType == "MaxPool" ? .max : .average(countIncludePad: node.int("count_include_pad", default: 0) != 0)
                accumulate(node.inputs[0], try pool2dBackward(x, kind: kind, window: window, gradOutput: dy))
            case "GlobalAveragePool":
                let x = try value(node.inputs[0], node)
                let inner = x.count / max(1, x.shape[0] * x.shape[1])
                accumulate(node.inputs[0], Tensor(shape: x.shape, scalars: (0..<x.count).map { dy.scalars[$0 / inner] / Float(inner) }))
            case "Concat":
                let shapes = try node.inputs.map { try value($0, node).shape }
                let axis = node.int("axis", default: 0) < 0 ? node.int("axis", default: 0) + dy.rank : node.int("axis", default: 0)
                let outer = dy.shape[..<axis].reduce(1, *), inner = dy.shape[(axis + 1)...].reduce(1, *)
                var offset = 0
                for (i, shape) in shapes.enumerated() {
                    let width = shape[axis] * inner
                    if wants[i] {
                        var part = [Float](repeating: 0, count: outer * width)
                        for o in 0..<outer { for j in 0..<width { part[o * width + j] = dy.scalars[o * dy.shape[axis] * inner + offset + j] } }
                        accumulate(node.inputs[i], Tensor(shape: shape, scalars: part))
                    }
                    offset += width
                }
            case "Pad":
                guard node.string("mode", default: "constant") == "constant" else {
                    throw TrainingError.unsupported(op: "Pad (\(node.string("mode", default: "")) mode)", node: node.displayName)
                }
                let x = try value(node.inputs[0], node)
                let pads = graph.opsetVersion >= 11 ? values[node.inputs[1]]!.int64Values.map { Int($0) } : (node.ints("pads") ?? [])
                let rank = x.rank, outStrides = strides(of: dy.shape)
                var dx = [Float](repeating: 0, count: x.count)
                var index = [Int](repeating: 0, count: rank)
                for i in 0..<x.count {
                    var o = 0, inside = true
                    for a in 0..<rank {
                        let p = index[a] + (a < pads.count / 2 ? pads[a] : 0)
                        if p < 0 || p >= dy.shape[a] { inside = false; break }
                        o += p * outStrides[a]
                    }
                    if inside { dx[i] = dy.scalars[o] }
                    var a = rank - 1
                    while a >= 0 { index[a] += 1; if index[a] < x.shape[a] { break }; index[a] = 0; a -= 1 }
                }
                accumulate(node.inputs[0], Tensor(shape: x.shape, scalars: dx))
            case "BatchNormalization":
                try batchNormalizationBackward(node, dy: dy, tape: tape, wants: wants, accumulate: accumulate)
            case "Gather":
                guard wants[0] else { break }
                let data = try value(node.inputs[0], node)
                let index = values[node.inputs[1]]!.int64Values.map { Int($0) }
                let axis = node.int("axis", default: 0) < 0 ? node.int("axis", default: 0) + data.rank : node.int("axis", default: 0)
                let outer = data.shape[..<axis].reduce(1, *), inner = data.shape[(axis + 1)...].reduce(1, *), size = data.shape[axis]
                var dd = [Float](repeating: 0, count: data.count)
                for o in 0..<outer {
                    for (j, raw) in index.enumerated() {
                        let i = raw < 0 ? raw + size : raw
                        let src = (o * index.count + j) * inner, dst = (o * size + i) * inner
                        for t in 0..<inner { dd[dst + t] += dy.scalars[src + t] }
                    }
                }
                accumulate(node.inputs[0], Tensor(shape: data.shape, scalars: dd))
            default:
                throw TrainingError.unsupported(op: node.opType, node: node.displayName)
            }
        }
        let wanted = Set(parameters).union(graph.inputs.map(\.name))
        return grads.filter { wanted.contains($0.key) }
    }

    private func gemmBackward(_ node: Node, dy: Tensor<Float>, values: [String: AnyTensor], wants: [Bool],
                              accumulate: (String, Tensor<Float>) -> Void) throws {
        let a = try float(values[node.inputs[0]], node), b = try float(values[node.inputs[1]], node)
        let transA = node.int("transA", default: 0) != 0, transB = node.int("transB", default: 0) != 0
        let alpha = node.float("alpha", default: 1), beta = node.float("beta", default: 1)
        let (m, n) = (dy.shape[0], dy.shape[1]), k = transA ? a.shape[0] : a.shape[1]
        if wants[0] {
            // dA = alpha·dY·op(B)ᵀ, stored as A is (transposed back when transA).
            var da = Tensor<Float>(zeros: a.shape)
            if transA { matmul(b.scalars, dy.scalars, into: &da.scalars, m: k, n: m, k: n, transA: transB, transB: true, bRows: n, aCols: b.shape[1]) }
            else { matmul(dy.scalars, b.scalars, into: &da.scalars, m: m, n: k, k: n, transA: false, transB: !transB, bCols: b.shape[1]) }
            accumulate(node.inputs[0], alpha == 1 ? da : da.mapped { $0 * alpha })
        }
        if wants[1] {
            var db = Tensor<Float>(zeros: b.shape)
            if transB { matmul(dy.scalars, a.scalars, into: &db.scalars, m: n, n: k, k: m, transA: true, transB: transA, aCols: n, bCols: a.shape[1]) }
            else { matmul(a.scalars, dy.scalars, into: &db.scalars, m: k, n: n, k: m, transA: !transA, transB: false, aCols: a.shape[1]) }
            accumulate(node.inputs[1], alpha == 1 ? db : db.mapped { $0 * alpha })
        }
        if wants.count > 2 && wants[2] {
            let c = try float(values[node.inputs[2]], node)
            accumulate(node.inputs[2], reduced(beta == 1 ? dy : dy.mapped { $0 * beta }, to: c.shape))
        }
    }

    private func batchNormalizationBackward(_ node: Node, dy: Tensor<Float>, tape: Tape, wants: [Bool],
                                            accumulate: (String, Tensor<Float>) -> Void) throws {
        let x = try float(tape.values[node.inputs[0]], node), gamma = try float(tape.values[node.inputs[1]], node).scalars
        let (n, c) = (x.shape[0], x.shape[1]), inner = x.count / max(1, n * c), count = Float(n * inner)
        let xhat: Tensor<Float>, inverseStd: [Float]
        let training = tape.normalized[node.outputs[0]] != nil
        if let saved = tape.normalized[node.outputs[0]] {
            (xhat, inverseStd) = saved
        } else {
            let mean = try float(tape.values[node.inputs[3]], node).scalars, variance = try float(tape.values[node.inputs[4]], node).scalars
            let epsilon = node.float("epsilon", default: 1e-5)
            inverseStd = variance.map { 1 / ($0 + epsilon).squareRoot() }
            var h = x
            for i in 0..<x.count { let ch = (i / inner) % c; h.scalars[i] = (x.scalars[i] - mean[ch]) * inverseStd[ch] }
            xhat = h
        }
        var sumDy = [Float](repeating: 0, count: c), sumDyXhat = [Float](repeating: 0, count: c)
        for i in 0..<x.count { let ch = (i / inner) % c; sumDy[ch] += dy.scalars[i]; sumDyXhat[ch] += dy.scalars[i] * xhat.scalars[i] }
        if wants[0] {
            var dx = x
            for i in 0..<x.count {
                let ch = (i / inner) % c
                dx.scalars[i] = training
                    ? gamma[ch] * inverseStd[ch] * (dy.scalars[i] - sumDy[ch] / count - xhat.scalars[i] * sumDyXhat[ch] / count)
                    : gamma[ch] * inverseStd[ch] * dy.scalars[i]
            }
            accumulate(node.inputs[0], dx)
        }
        if wants[1] { accumulate(node.inputs[1], Tensor(shape: [c], scalars: sumDyXhat)) }
        if wants[2] { accumulate(node.inputs[2], Tensor(shape: [c], scalars: sumDy)) }
    }

    // MARK: helpers

    private func float(_ value: AnyTensor?, _ node: Node?) throws -> Tensor<Float> {
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

/// Sums a broadcast gradient back to `shape` (numpy broadcasting, trailing alignment).
func reduced(_ g: Tensor<Float>, to shape: [Int]) -> Tensor<Float> {
    if g.shape == shape { return g }
    let rank = g.rank
    let aligned = [Int](repeating: 1, count: rank - shape.count) + shape
    let outStrides = strides(of: aligned)
    var out = [Float](repeating: 0, count: max(1, shape.reduce(1, *)))
    var index = [Int](repeating: 0, count: rank)
    for v in g.scalars {
        var o = 0
        for a in 0..<rank where aligned[a] != 1 { o += index[a] * outStrides[a] }
        out[o] += v
        var a = rank - 1
        while a >= 0 { index[a] += 1; if index[a] < g.shape[a] { break }; index[a] = 0; a -= 1 }
    }
    return Tensor(shape: shape, scalars: out)
}

/// C (m×n) = op(A)·op(B) with op(A) m×k and op(B) k×n, through BLAS. `aCols`/`bCols` are the stored row lengths.
func matmul(_ a: [Float], _ b: [Float], into c: inout [Float], m: Int, n: Int, k: Int, transA: Bool, transB: Bool,
            bRows: Int? = nil, aCols: Int? = nil, bCols: Int? = nil) {
    let lda = aCols ?? (transA ? m : k), ldb = bCols ?? (transB ? k : n)
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            c.withUnsafeMutableBufferPointer { pc in
                parallelSgemm(transA: transA, transB: transB, m: m, n: n, k: k, a: pa.baseAddress!, lda: lda,
                              b: pb.baseAddress!, ldb: ldb, c: pc.baseAddress!, ldc: n)
            }
        }
    }
}

public enum TrainingError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    case unsupported(op: String, node: String)

    public var description: String {
        switch self {
        case .invalid(let message): message
        case .unsupported(let op, let node): "no gradient for \(op) (node \(node)); training supports Conv, Gemm, MatMul, Add/Sub/Mul/Div, Relu, LeakyRelu, Clip, Sigmoid, Tanh, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, Concat, Pad (constant), BatchNormalization, Dropout, Gather, Cast"
        }
    }
}
