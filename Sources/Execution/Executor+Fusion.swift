import Compute
import ModelGraph

extension Executor {
    /// Which rewrites a plan may make.
    public struct Fusions: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// A BatchNormalization folded into the Conv before it (changes the weights: inference only).
        public static let batchNormalization = Fusions(rawValue: 1)
        /// A Conv absorbs its zero Pad, then its Add, then its Relu or Clip (each one's backward needs only the
        /// fused output, so training takes these too).
        public static let convolutionNeighbours = Fusions(rawValue: 2)
        /// HardSigmoid/HardSwish after a Conv (their backward needs the input: inference only).
        public static let hardActivations = Fusions(rawValue: 4)
        public static let inference: Fusions = [.batchNormalization, .convolutionNeighbours, .hardActivations]
        public static let training: Fusions = [.convolutionNeighbours]
    }

    /// The plan inference and training both run: `sorted` (topological order) without the nodes computable from
    /// `constants` alone — evaluated once, their outputs added to `constants` — except Dropout and the nodes writing
    /// `keeping`, with the rewrites `fusions` allows. `variables` are never constant (graph inputs; for training also
    /// the parameters, which the caller leaves out of `constants`).
    public static func plan(_ sorted: [Node], constants: inout [String: AnyTensor], variables: Set<String>, keeping: Set<String> = [],
                            graphOutputs: Set<String>, opset: Int, fusions: Fusions) throws -> [Node] {
        var remaining: [Node] = []
        for node in sorted {
            let foldable = Operators.isFoldable(node) && !keeping.contains(node.outputs.first ?? "")
                && node.inputs.allSatisfy { $0.isEmpty || (constants[$0] != nil && !variables.contains($0)) }
            if foldable {
                let outputs = try Operators.evaluate(node, inputs: node.inputs.map { $0.isEmpty ? nil : constants[$0] }, opset: opset)
                for (name, value) in zip(node.outputs, outputs) where !name.isEmpty { constants[name] = value }
            } else {
                remaining.append(node)
            }
        }
        if fusions.contains(.batchNormalization) {
            remaining = foldingBatchNormalization(remaining, constants: &constants, graphOutputs: graphOutputs)
        }
        if fusions.contains(.convolutionNeighbours) {
            remaining = fusingConvolutions(remaining, constants: constants, opset: opset, graphOutputs: graphOutputs,
                                           hardActivations: fusions.contains(.hardActivations))
        }
        return remaining
    }

    /// Whether a Conv with this weight takes Winograd F(2×2,3×3): 3×3, stride 1, one group, explicit or VALID padding,
    /// and (unless `always`) enough input channels to gain. Each call then still checks `Winograd.pays` for its tiles.
    public static func takesWinograd(_ node: Node, weightShape shape: [Int], opset: Int, always: Bool = false) -> Bool {
        guard node.opType == "Conv", shape.count == 4,
              node.string("auto_pad", default: "NOTSET") == "NOTSET" || node.string("auto_pad", default: "") == "VALID",
              let window = try? window(of: node, input: [1, shape[1], 8, 8], kernel: Array(shape.suffix(2)), opset: opset),
              Winograd.applies(weightShape: shape, window: window, group: node.int("group", default: 1)) else { return false }
        return always || Winograd.isWorthwhile(inputChannels: shape[1])
    }

    /// Whether this call of a Conv that takes Winograd gains from it (`Winograd.pays`) on `input`.
    public static func winogradPays(_ node: Node, input: [Int], weightShape: [Int], opset: Int) -> Bool {
        guard input.count == 4, weightShape.count == 4,
              let size = (try? window(of: node, input: input, kernel: Array(weightShape.suffix(2)), opset: opset))?
                  .outputSize(h: input[2], w: input[3]) else { return false }
        return Winograd.pays(images: input[0], outputHeight: size.h, outputWidth: size.w, inputChannels: input[1])
    }

    /// What a Conv of a plan does after its product: the fused activation, and the input slot of a fused Add's other
    /// operand (added before the activation), for training's backward.
    public static func fusedEpilogue(of node: Node) -> (activation: Activation, residualSlot: Int?) {
        (Operators.fusedActivation(node), node.attributes[Operators.fusedResidualKey] != nil && node.inputs.count > 3 ? 3 : nil)
    }

    /// Rewrites each Conv to absorb its neighbours, so one pass over the output does what several nodes did:
    /// - a constant-mode Pad with value 0 and constant, non-negative spatial pads that feeds only this Conv (its pads
    ///   are added to the Conv's);
    /// - then an Add that alone reads the Conv's output (its other operand becomes the Conv's residual input, added
    ///   after the bias);
    /// - then a Relu, a Clip with constant bounds, a HardSigmoid or a HardSwish that alone reads the result (the hard
    ///   ones in a pass of their own over the output, in place).
    /// The fused Conv writes the last absorbed node's output and runs where that node ran (so an Add's other operand is
    /// ready). Values that are graph outputs are never absorbed. Each output is rounded as the separate nodes would
    /// round it: bias, residual and clamp are applied in that order.
    static func fusingConvolutions(_ nodes: [Node], constants: [String: AnyTensor], opset: Int,
                                   graphOutputs: Set<String>, hardActivations: Bool = true) -> [Node] {
        guard nodes.contains(where: { $0.opType == "Conv" }) else { return nodes }
        var readers: [String: [Int]] = [:]
        var producer: [String: Int] = [:]
        for (j, node) in nodes.enumerated() {
            for input in node.inputs where !input.isEmpty { readers[input, default: []].append(j) }
            for output in node.outputs where !output.isEmpty { producer[output] = j }
        }
        /// The one node that reads `value` (once), when nothing else does and it is not a graph output.
        func soleReader(_ value: String) -> Int? {
            guard !graphOutputs.contains(value), let r = readers[value], r.count == 1 else { return nil }
            return r[0]
        }
        var removed = Set<Int>()
        var placed: [Int: Node] = [:]  // fused Conv by the index it now runs at
        for (i, node) in nodes.enumerated() where node.opType == "Conv" && node.outputs.count == 1 && node.inputs.count >= 2 {
            var conv = node
            if let p = producer[conv.inputs[0]], !removed.contains(p), soleReader(conv.inputs[0]) == i,
               let pads = foldablePads(nodes[p], into: conv, constants: constants, opset: opset) {
                conv.inputs[0] = nodes[p].inputs[0]
                conv.attributes["pads"] = .ints(pads)
                removed.insert(p)
            }
            var value = conv.outputs[0], position = i
            if let a = soleReader(value), !removed.contains(a), nodes[a].opType == "Add", nodes[a].inputs.count == 2, nodes[a].outputs.count == 1,
               let other = nodes[a].inputs.first(where: { $0 != value }), !other.isEmpty,
               nodes[a].inputs.filter({ $0 == value }).count == 1 {
                while conv.inputs.count < 3 { conv.inputs.append("") }
                conv.inputs.append(other)
                conv.attributes[Operators.fusedResidualKey] = .int(1)
                removed.insert(a)
                (value, position) = (nodes[a].outputs[0], a)
            }
            if let r = soleReader(value), !removed.contains(r), nodes[r].outputs.count == 1,
               let activation = fusableActivation(nodes[r], constants: constants, opset: opset),
               hardActivations || !activation.isPointwiseAfterPass {
                switch activation {
                case .relu: conv.attributes[Operators.fusedActivationKey] = .string("Relu")
                case .clip(let low, let high):
                    conv.attributes[Operators.fusedActivationKey] = .string("Clip")
                    conv.attributes[Operators.fusedClipKey] = .floats([low, high])
                case .hardSigmoid(let alpha, let beta):
                    conv.attributes[Operators.fusedActivationKey] = .string("HardSigmoid")
                    conv.attributes[Operators.fusedClipKey] = .floats([alpha, beta])
                case .hardSwish: conv.attributes[Operators.fusedActivationKey] = .string("HardSwish")
                case .none: break
                }
                removed.insert(r)
                (value, position) = (nodes[r].outputs[0], r)
            }
            guard position != i || conv != node else { continue }
            conv.outputs = [value]
            removed.insert(i)
            placed[position] = conv
        }
        var result: [Node] = []
        result.reserveCapacity(nodes.count - removed.count + placed.count)
        for (j, node) in nodes.enumerated() {
            if let conv = placed[j] { result.append(conv) } else if !removed.contains(j) { result.append(node) }
        }
        return result
    }

    /// Folds each inference BatchNormalization into the Conv before it, when the Conv's output feeds only it and the
    /// weight, bias and the normalisation's parameters are constants: y = a·(W∗x + b) + c with a = scale/√(var + ε),
    /// c = B − mean·a becomes (a·W)∗x + (a·b + c) — one node and one pass over the output fewer (the weights are
    /// folded once, so the result differs from the two nodes by rounding only). The folded weight and bias are new
    /// constants; a weight another node also reads stays as it was for that node.
    static func foldingBatchNormalization(_ nodes: [Node], constants: inout [String: AnyTensor], graphOutputs: Set<String>) -> [Node] {
        guard nodes.contains(where: { $0.opType == "BatchNormalization" }) else { return nodes }
        var readers: [String: Int] = [:]
        var producer: [String: Int] = [:]
        for (j, node) in nodes.enumerated() {
            for input in node.inputs where !input.isEmpty { readers[input, default: 0] += 1 }
            for output in node.outputs where !output.isEmpty { producer[output] = j }
        }
        var result = nodes
        var removed = Set<Int>()
        for (j, bn) in nodes.enumerated() where bn.opType == "BatchNormalization" && bn.inputs.count == 5 && bn.outputs.count == 1
            && bn.int("training_mode", default: 0) == 0 {
            guard let i = producer[bn.inputs[0]], nodes[i].opType == "Conv", nodes[i].outputs.count == 1, nodes[i].inputs.count >= 2,
                  !removed.contains(i), readers[bn.inputs[0]] == 1, !graphOutputs.contains(bn.inputs[0]),
                  let w = constants[nodes[i].inputs[1]]?.floatTensor, w.rank >= 3, w.shape[0] > 0 else { continue }
            let oc = w.shape[0], per = w.count / oc, epsilon = bn.float("epsilon", default: 1e-5)
            let params = bn.inputs[1...4].compactMap { constants[$0]?.floatTensor?.scalars }
            let hasBias = nodes[i].inputs.count > 2 && !nodes[i].inputs[2].isEmpty
            let bias = hasBias ? constants[nodes[i].inputs[2]]?.floatTensor?.scalars : [Float](repeating: 0, count: oc)
            guard params.count == 4, params.allSatisfy({ $0.count == oc }), let bias, bias.count == oc else { continue }
            let a = (0..<oc).map { params[0][$0] / (params[3][$0] + epsilon).squareRoot() }
            var folded = w
            for o in 0..<oc { for k in 0..<per { folded.scalars[o * per + k] *= a[o] } }
            let shift = (0..<oc).map { bias[$0] * a[$0] + (params[1][$0] - params[2][$0] * a[$0]) }
            var conv = nodes[i]
            let name = "\(conv.inputs[1])/wc_folded_\(bn.name.isEmpty ? bn.outputs[0] : bn.name)"
            constants[name] = .float(folded)
            constants[name + "_bias"] = .float(Tensor(shape: [oc], scalars: shift))
            conv.inputs[1] = name
            if conv.inputs.count > 2 { conv.inputs[2] = name + "_bias" } else { conv.inputs.append(name + "_bias") }
            conv.outputs = bn.outputs
            result[i] = conv
            removed.insert(j)
        }
        return result.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// The Conv's pads plus `pad`'s, when `pad` is a zero constant Pad of the spatial axes only and the Conv pads
    /// explicitly (auto_pad NOTSET).
    private static func foldablePads(_ pad: Node, into conv: Node, constants: [String: AnyTensor], opset: Int) -> [Int]? {
        guard pad.opType == "Pad", pad.outputs.count == 1, pad.string("mode", default: "constant") == "constant",
              conv.string("auto_pad", default: "NOTSET") == "NOTSET" else { return nil }
        let padding: [Int]
        if opset < 11 {
            guard pad.float("value", default: 0) == 0, let p = pad.ints("pads") else { return nil }
            padding = p
        } else {
            guard pad.inputs.count >= 2, pad.inputs.count < 4 || pad.inputs[3].isEmpty,
                  let p = constants[pad.inputs[1]]?.int64Tensor?.scalars.map({ Int($0) }) else { return nil }
            if pad.inputs.count >= 3, !pad.inputs[2].isEmpty {
                guard let v = constants[pad.inputs[2]]?.floatTensor, v.scalars.allSatisfy({ $0 == 0 }) else { return nil }
            }
            padding = p
        }
        // [N, C, H, W] begins then ends: only H and W, never negative (cropping).
        guard padding.count == 8, padding[0] == 0, padding[1] == 0, padding[4] == 0, padding[5] == 0,
              padding.allSatisfy({ $0 >= 0 && $0 <= ShapeLimits.maxWindow }) else { return nil }
        let own = conv.ints("pads") ?? [0, 0, 0, 0]
        guard own.count == 4 else { return nil }
        let sum = [own[0] + padding[2], own[1] + padding[3], own[2] + padding[6], own[3] + padding[7]]
        return sum.allSatisfy({ $0 <= ShapeLimits.maxWindow }) ? sum : nil
    }

    /// Relu, Clip whose bounds are absent or constant scalars, HardSigmoid or HardSwish.
    private static func fusableActivation(_ node: Node, constants: [String: AnyTensor], opset: Int) -> Activation? {
        switch node.opType {
        case "Relu" where node.inputs.count == 1: return .relu
        case "HardSigmoid" where node.inputs.count == 1:
            return .hardSigmoid(alpha: node.float("alpha", default: 0.2), beta: node.float("beta", default: 0.5))
        case "HardSwish" where node.inputs.count == 1: return .hardSwish
        case "Clip":
            var low = -Float.greatestFiniteMagnitude, high = Float.greatestFiniteMagnitude
            if opset < 11 {
                low = node.float("min", default: low)
                high = node.float("max", default: high)
            } else {
                for (slot, name) in node.inputs.enumerated().dropFirst() where !name.isEmpty {
                    guard slot <= 2, let t = constants[name]?.floatTensor, t.count <= 1 else { return nil }
                    if let v = t.scalars.first { if slot == 1 { low = v } else { high = v } }
                }
            }
            return .clip(low: low, high: high)
        default: return nil
        }
    }
}
