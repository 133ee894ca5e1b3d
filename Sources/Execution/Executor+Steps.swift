import Compute
import Dispatch
import ModelGraph

/// A node of the plan with everything `run` would otherwise look up by name on every call, resolved at load: its
/// operator, where each input comes from, which values it is the last to read, the slots its outputs go to, and its
/// prepared weights and layer attributes. `run` keeps the values in an array by slot: a small network runs hundreds of
/// nodes of a few microseconds each. With the names hashed on every call, and each Conv's attributes read from the
/// node's dictionary, 22% of MobileNetV2's samples at 64 px and batch 1 (one thread, `perf`) fell outside the kernels;
/// 15% with the steps and `LayerAttributes`. 4 alternating rounds, two threads, median images/s: MobileNetV2 64 px
/// 612 → 708, SqueezeNet 1.1 64 px 1,051 → 1,173. A class, so that running a step retains one reference.
final class Step: Sendable {
    enum Source: Sendable {
        case omitted
        /// A graph input or an earlier node's output.
        case value(Int)
        case constant(AnyTensor)
        /// A compressed weight, expanded for this node only.
        case deferred(DeferredWeight)
        /// Nothing of that name exists when the node runs (an error, raised then).
        case missing(String)
    }

    let node: Node
    let kernel: Operators.Kernel?
    let sources: [Source]
    /// Slots whose last reader this node is (graph outputs excluded): released once the inputs are read.
    let freed: [Int]
    /// The slot of each output; nil for an omitted one.
    let outputs: [Int?]
    /// Winograd-transformed weights of a Conv that takes that path.
    let prepared: Winograd.PreparedWeights?
    /// A Conv whose deferred weight takes the Winograd path: transformed as it is expanded.
    let preparedOnTheFly: Bool
    /// A Conv's weight packed for the matrix product (the im2col, 1×1 and direct paths).
    let packed: PackedWeights?
    /// A compressed fully-connected layer (shared columns).
    let shared: SharedColumnProduct?
    let layer: LayerAttributes?
    /// A Conv whose output goes straight into channels of a Concat's output (`Executor.concatenatedInPlace`): that
    /// output's slot, this Conv's first channel in it, and its channel count. The Conv's own output is never stored.
    let place: (slot: Int, firstChannel: Int, channels: Int)?
    /// A Concat whose output its Convs have written: nothing is left to do when it runs.
    let assembled: Bool
    /// A Conv whose weight and bias are constants and whose input (and fused Add's operand) are values: run on them
    /// directly, its inputs not gathered into `Arguments` (`Executor.runConvolution`). A tiny Conv's step (perf uprobes)
    /// made 43 retains, 53 releases and 10 allocations before this and the allocations cut in Compute (closure contexts,
    /// empty scratch, shape arrays made for checks); 18, 22 and 2 after (the output's shape and scalars). Batch
    /// 1, least of 3 alternated runs: a chain of 100 tiny convolutions, one thread, 84.5 → 41.8 µs a pass (onnxruntime
    /// 60); two threads, images/s, MobileNetV2 64 px 3,557 → 3,947, SqueezeNet 1.1 64 px 5,993 → 6,437.
    let convolution: ConvolutionOperands?
    /// The steps right before this one that it runs with in bands of rows (`Executor.bandedBlocks`): a depthwise Conv
    /// has its 1×1 expansion here, a 1×1 projection the expansion and the depthwise Conv. Where `ExpandedDepthwise`
    /// does not apply to a call's shapes, they run first, each as it would have.
    let bandedWith: [Step]
    /// A step that a later one runs (`bandedWith`): nothing to do in its own place.
    let absorbed: Bool

    /// The slots and constants of a Conv step (`convolution`); a class, so that a step reads it with one retain.
    final class ConvolutionOperands: Sendable {
        let input: Int
        let weight: Tensor<Float>
        let bias: [Float]?
        let residual: Int?

        init(input: Int, weight: Tensor<Float>, bias: [Float]?, residual: Int?) {
            (self.input, self.weight, self.bias, self.residual) = (input, weight, bias, residual)
        }
    }

    init(node: Node, kernel: Operators.Kernel?, sources: [Source], freed: [Int], outputs: [Int?],
         prepared: Winograd.PreparedWeights?, preparedOnTheFly: Bool, packed: PackedWeights?, shared: SharedColumnProduct?,
         layer: LayerAttributes?, place: (slot: Int, firstChannel: Int, channels: Int)? = nil, assembled: Bool = false,
         bandedWith: [Step] = [], absorbed: Bool = false) {
        self.node = node
        self.kernel = kernel
        self.sources = sources
        self.freed = freed
        self.outputs = outputs
        self.prepared = prepared
        self.preparedOnTheFly = preparedOnTheFly
        self.packed = packed
        self.shared = shared
        self.layer = layer
        self.place = place
        self.assembled = assembled
        self.bandedWith = bandedWith
        self.absorbed = absorbed
        convolution = Step.convolutionOperands(node: node, kernel: kernel, sources: sources, layer: layer)
    }

    /// This step with `bandedWith` and `absorbed` set.
    func with(bandedWith: [Step] = [], absorbed: Bool = false) -> Step {
        Step(node: node, kernel: kernel, sources: sources, freed: freed, outputs: outputs, prepared: prepared,
             preparedOnTheFly: preparedOnTheFly, packed: packed, shared: shared, layer: layer, place: place,
             assembled: assembled, bandedWith: bandedWith, absorbed: absorbed)
    }

    private static func convolutionOperands(node: Node, kernel: Operators.Kernel?, sources: [Source], layer: LayerAttributes?)
        -> ConvolutionOperands? {
        // Input, weight, optional bias, and the fused Add's operand where there is one.
        guard node.opType == "Conv", kernel != nil, let layer, (layer.fusedResidual ? 4...4 : 2...3).contains(sources.count),
              case .value(let input) = sources[0], case .constant(.float(let weight)) = sources[1] else { return nil }
        var bias: [Float]?
        if sources.count > 2 {
            switch sources[2] {
            case .omitted: bias = nil
            case .constant(.float(let b)): bias = b.scalars
            default: return nil
            }
        }
        var residual: Int?
        if layer.fusedResidual {
            guard case .value(let r) = sources[3] else { return nil }
            residual = r
        }
        return ConvolutionOperands(input: input, weight: weight, bias: bias, residual: residual)
    }
}

extension Executor {
    /// A Conv step (`Step.convolution`) on its input and fused Add's operand, read from their slots (already freed
    /// when this step is their last reader): its output stored in its slot, or written into its Concat's. Returns the
    /// bytes of the value it computed.
    func runConvolution(_ step: Step, _ operands: Step.ConvolutionOperands, input x: Tensor<Float>, residual: Tensor<Float>?,
                        on values: inout [AnyTensor?], checkingFinite: Bool) throws -> Int {
        let node = step.node
        let start = profiling ? DispatchTime.now().uptimeNanoseconds : nil
        let arguments = Arguments(node: node, values: [], opset: graph.opsetVersion, prepared: step.prepared,
                                  packed: step.packed, layer: step.layer)
        if let place = step.place {
            let bytes = try convolve(step, arguments, into: place, input: x, weight: operands.weight, bias: operands.bias,
                                     on: &values)
            if let start { record(since: start, node: node) }
            return bytes
        }
        let y = try Operators.namingTheNode(node) {
            try Operators.convolution(node, arguments, input: x, weight: operands.weight, bias: operands.bias, residual: residual)
        }
        if let start { record(since: start, node: node) }
        if let index = step.outputs.first ?? nil { values[index] = .float(y) }
        if checkingFinite, !y.scalars.allSatisfy(\.isFinite) {
            throw ExecutionError.nonFinite(node: node.displayName, op: node.opType)
        }
        return y.count * 4
    }

    /// A step with the steps it absorbed (`bandedWith`) run together in bands of rows (`ExpandedDepthwise`): the output
    /// stored in its slot, and the bytes of the expanded map it stands for returned (for `passPlan`, so that passes
    /// keep the sizes measured best: sized by the bands' bytes, MobileNetV2 and EfficientNet-Lite0 at 224 px and batch
    /// 64 ran 1–3% slower). Nil, having done nothing, where that path does not apply to these shapes.
    func runInBands(_ step: Step, on values: inout [AnyTensor?], checkingFinite: Bool) throws -> Int? {
        let expansion = step.bandedWith[0], depthwise = step.bandedWith.count > 1 ? step.bandedWith[1] : step
        let projection = step.bandedWith.count > 1 ? step : nil
        guard let e = expansion.convolution, let d = depthwise.convolution, let x = values[e.input]?.floatTensor, x.rank == 4,
              let packed = expansion.packed, let el = expansion.layer, let dl = depthwise.layer,
              packed.matches(e.weight.shape, group: 1), e.weight.shape[1] == x.shape[1] else { return nil }
        let opset = graph.opsetVersion
        let (n, c, k) = (x.shape[0], e.weight.shape[0], d.weight.shape[2])
        guard (try? el.window.window(input: x.shape, kernel: (1, 1),
                                     args: Arguments(node: expansion.node, values: [], opset: opset, layer: el)))?.isPointwise == true,
              let window = try? dl.window.window(input: [n, c, x.shape[2], x.shape[3]], kernel: (k, d.weight.shape[3]),
                                                 args: Arguments(node: depthwise.node, values: [], opset: opset, layer: dl)),
              (try? window.validate()) != nil, let size = window.outputSize(h: x.shape[2], w: x.shape[3]),
              ExpandedDepthwise.applies(inputShape: x.shape, expandedChannels: c, window: window) else { return nil }
        var projecting: ExpandedDepthwise.Projection?
        if let projection, let p = projection.convolution {
            guard let pl = projection.layer, let weights = projection.packed, weights.matches(p.weight.shape, group: 1),
                  (try? pl.window.window(input: [n, c, size.h, size.w], kernel: (1, 1),
                                         args: Arguments(node: projection.node, values: [], opset: opset, layer: pl)))?
                      .isPointwise == true else { return nil }
            var residual: Tensor<Float>?
            if let slot = p.residual {
                guard let r = values[slot]?.floatTensor, r.shape == [n, p.weight.shape[0], size.h, size.w] else { return nil }
                residual = r
            }
            projecting = .init(weights: weights, bias: p.bias, activation: pl.activation, residual: residual)
        }
        let start = profiling ? DispatchTime.now().uptimeNanoseconds : nil
        for absorbed in step.bandedWith { for index in absorbed.freed { values[index] = nil } }
        for index in step.freed { values[index] = nil }
        let y = ExpandedDepthwise.convolve(x, expand: packed, expandBias: e.bias, expandActivation: el.activation,
                                           weight: d.weight, bias: d.bias, window: window, activation: dl.activation,
                                           projection: projecting)
        if let start {
            record(since: start, op: "Conv",
                   node: "\(step.node.displayName) (Conv, in bands with the \(step.bandedWith.count) before it)")
        }
        if let index = step.outputs.first ?? nil { values[index] = .float(y) }
        if checkingFinite, !y.scalars.allSatisfy(\.isFinite) {
            throw ExecutionError.nonFinite(node: step.node.displayName, op: step.node.opType)
        }
        return max(y.count, n * c * x.shape[2] * x.shape[3]) * 4
    }

    /// A Conv step placed in its Concat's output (`Step.place`): written into its channels there, that output taken
    /// out of its slot meanwhile so that it is written in place (one reference), not copied. Returns its bytes.
    func convolve(_ step: Step, _ arguments: Arguments, into place: (slot: Int, firstChannel: Int, channels: Int),
                  input x: Tensor<Float>, weight: Tensor<Float>, bias: [Float]?, on values: inout [AnyTensor?]) throws -> Int {
        var destination = values[place.slot]?.floatTensor
        values[place.slot] = nil
        try Operators.convolve(step.node, arguments, input: x, weight: weight, bias: bias, into: &destination,
                               firstChannel: place.firstChannel, channels: place.channels)
        values[place.slot] = destination.map(AnyTensor.float)
        return (destination?.count ?? 0) * 4
    }

    /// The steps of `plan` (by plan index: `prepared`, `packed`, `products`), the slots of the graph's inputs, where
    /// each graph output is found, and how many slots a pass holds. A name is read, in this order, from a deferred
    /// weight, from a graph input or an earlier node's output, then from the constants.
    static func steps(_ plan: [Node], graph: Graph, constants: [String: AnyTensor], prepared: [Int: Winograd.PreparedWeights],
                      preparedOnTheFly: Set<Int>, packed: [Int: PackedWeights], products: [Int: SharedColumnProduct],
                      expandInBands: Bool = true)
        -> (steps: [Step], inputSlots: [Int], outputSources: [Step.Source], slotCount: Int) {
        var slotOf: [String: Int] = [:]
        func slot(_ name: String) -> Int {
            if let s = slotOf[name] { return s }
            slotOf[name] = slotOf.count
            return slotOf.count - 1
        }
        let inputSlots = graph.inputs.map { slot($0.name) }
        var lastUse: [String: Int] = [:]
        for (index, node) in plan.enumerated() {
            for input in node.inputs where !input.isEmpty && constants[input] == nil && graph.deferredWeights[input] == nil {
                lastUse[input] = index
            }
        }
        let graphOutputs = Set(graph.outputs.map(\.name))
        let inPlace = concatenatedInPlace(plan, graph: graph, constants: constants)
        var steps: [Step] = []
        steps.reserveCapacity(plan.count)
        for (index, node) in plan.enumerated() {
            let sources: [Step.Source] = node.inputs.map { name in
                if name.isEmpty { return .omitted }
                if let deferred = graph.deferredWeights[name] { return .deferred(deferred) }
                if let s = slotOf[name] { return .value(s) }
                if let value = constants[name] { return .constant(value) }
                return .missing(name)
            }
            var freed: [Int] = []
            for name in Set(node.inputs) where lastUse[name] == index && !graphOutputs.contains(name) {
                if let s = slotOf[name] { freed.append(s) }
            }
            let outputs = node.outputs.map { $0.isEmpty ? nil : slot($0) }
            // A Conv placed in a Concat's output: that output's slot, given now (the Concat comes later in the plan).
            let place = inPlace.producers[index].map { (slot: slot(plan[$0.concat].outputs[0]), firstChannel: $0.firstChannel,
                                                        channels: $0.channels) }
            steps.append(Step(node: node, kernel: Operators.table[node.opType], sources: sources, freed: freed,
                              outputs: outputs, prepared: prepared[index],
                              preparedOnTheFly: preparedOnTheFly.contains(index), packed: packed[index],
                              shared: products[index], layer: LayerAttributes(node, opset: graph.opsetVersion),
                              place: place, assembled: inPlace.concats.contains(index)))
        }
        let banding = expandInBands && ExpandedDepthwise.runsHere
        for (index, count) in banding ? bandedBlocks(steps, plan: plan, graphOutputs: graphOutputs) : [] {
            let last = index + count - 1
            steps[last] = steps[last].with(bandedWith: Array(steps[index..<last]))
            for i in index..<last { steps[i] = steps[i].with(absorbed: true) }
        }
        let outputSources: [Step.Source] = graph.outputs.map { output in
            if let s = slotOf[output.name] { return .value(s) }
            if let value = constants[output.name] { return .constant(value) }
            return .missing(output.name)
        }
        return (steps, inputSlots, outputSources, slotOf.count)
    }
}

extension Executor {
    /// The steps that begin a block run in bands of rows (`ExpandedDepthwise`), and how many steps it has: a 1×1 Conv
    /// (one group, packed weight, no fused Add, an activation its product's store applies) whose output only the next
    /// step reads, a depthwise Conv with no fused Add; then, where the depthwise output is read only by the step after
    /// it, a 1×1 Conv of the same kind (a fused Add allowed), the block's projection. The expanded map (and the
    /// depthwise one) are then never stored whole.
    static func bandedBlocks(_ steps: [Step], plan: [Node], graphOutputs: Set<String>) -> [(index: Int, count: Int)] {
        var readers: [String: Int] = [:]
        for node in plan { for input in node.inputs where !input.isEmpty { readers[input, default: 0] += 1 } }
        /// Whether `step`'s output is read by `next` alone, and is not a graph output.
        func feedsOnly(_ step: Step, _ next: Step.ConvolutionOperands) -> Bool {
            guard let value = step.node.outputs.first, step.outputs.first ?? nil == next.input else { return false }
            return !graphOutputs.contains(value) && readers[value] == 1
        }
        /// Whether `step` is a 1×1 Conv on packed weights that the bands can run.
        func pointwise(_ step: Step, residual: Bool) -> Bool {
            guard let o = step.convolution, let layer = step.layer, step.packed != nil, step.place == nil, layer.group == 1,
                  residual || o.residual == nil, !layer.activation.isPointwiseAfterPass, o.weight.rank == 4 else { return false }
            return o.weight.shape[2] == 1 && o.weight.shape[3] == 1
        }
        var blocks: [(index: Int, count: Int)] = []
        var index = 0
        while index + 1 < steps.count {
            let (e, d) = (steps[index], steps[index + 1])
            guard pointwise(e, residual: false), let dO = d.convolution, let dl = d.layer, d.place == nil,
                  dO.residual == nil, !dl.activation.isPointwiseAfterPass,
                  isDepthwise(weightShape: dO.weight.shape, group: dl.group), dO.weight.shape[0] == e.convolution!.weight.shape[0],
                  feedsOnly(e, dO) else {
                index += 1
                continue
            }
            var count = 2
            if index + 2 < steps.count, let pO = steps[index + 2].convolution, pointwise(steps[index + 2], residual: true),
               pO.weight.shape[1] == dO.weight.shape[0], feedsOnly(d, pO) {
                count = 3
            }
            blocks.append((index, count))
            index += count
        }
        return blocks
    }

    /// The Concats over channels whose every input is a Conv's output read by nothing else (not a graph output, no
    /// fused Add, one group): each of those Convs writes into its range of the Concat's output instead of a tensor of
    /// its own, which the Concat would then copy (SqueezeNet's fire modules: a 1×1 and a 3×3 expand layer side by
    /// side). By plan index: each such Conv's Concat, first channel and the Concat's channel count; and the Concats.
    /// The channel counts come from the weights' shapes, known at load.
    static func concatenatedInPlace(_ plan: [Node], graph: Graph, constants: [String: AnyTensor])
        -> (producers: [Int: (concat: Int, firstChannel: Int, channels: Int)], concats: Set<Int>) {
        var producer: [String: Int] = [:], readers: [String: Int] = [:]
        for (index, node) in plan.enumerated() {
            for output in node.outputs where !output.isEmpty { producer[output] = index }
            for input in node.inputs where !input.isEmpty { readers[input, default: 0] += 1 }
        }
        let graphOutputs = Set(graph.outputs.map(\.name))
        var producers: [Int: (concat: Int, firstChannel: Int, channels: Int)] = [:], concats = Set<Int>()
        for (index, node) in plan.enumerated()
        where node.opType == "Concat" && node.int("axis") == 1 && node.inputs.count > 1 && node.outputs.count == 1
            && !node.outputs[0].isEmpty && Set(node.inputs).count == node.inputs.count {
            var channels: [Int] = []
            for input in node.inputs {
                guard let p = producer[input], p < index, plan[p].opType == "Conv", plan[p].outputs == [input],
                      plan[p].inputs.count >= 2, !graphOutputs.contains(input), readers[input] == 1,
                      plan[p].int("group", default: 1) == 1, plan[p].attributes[Operators.fusedResidualKey] == nil,
                      let shape = constants[plan[p].inputs[1]]?.shape ?? graph.deferredWeights[plan[p].inputs[1]]?.shape,
                      shape.count == 4, shape[0] > 0 else { break }
                channels.append(shape[0])
            }
            guard channels.count == node.inputs.count else { continue }
            let total = channels.reduce(0, +)
            var first = 0
            for (input, count) in zip(node.inputs, channels) {
                producers[producer[input]!] = (index, first, total)
                first += count
            }
            concats.insert(index)
        }
        return (producers, concats)
    }
}
