import Compute
import Foundation
import ModelGraph

/// ln(1 + eˣ) without overflow for large x.
@Sendable func softplus(_ x: Float) -> Float { x > 20 ? x : Foundation.log1p(Foundation.exp(x)) }

/// The error function, computed in Double.
@Sendable func errorFunction(_ x: Float) -> Float { Float(Foundation.erf(Double(x))) }

/// Convolution, pooling, normalisation and activations.
extension Operators {
    static func registerNeuralOperators(_ t: inout [String: Kernel]) {
        t["Conv"] = { node, args in
            let residual = args.layer?.fusedResidual ?? (node.attributes[fusedResidualKey] != nil) ? try args.float(3) : nil
            return [.float(try convolution(node, args, input: try args.float(0), weight: try args.float(1),
                                           bias: args.has(2) ? try args.float(2).scalars : nil, residual: residual))]
        }
        t["ConvTranspose"] = { node, args in [.float(try convTransposeOp(node, args))] }
        t["LayerNormalization"] = { node, args in
            guard node.outputs.count < 2 || node.outputs.dropFirst().allSatisfy(\.isEmpty) else {
                throw args.invalid("the Mean and InvStdDev outputs of LayerNormalization are not supported")
            }
            let x = try args.float(0)
            let axis = try args.axis(node.int("axis", default: -1), rank: x.rank)
            return [.float(try layerNormalized(x, axis: axis, scale: try args.float(1).scalars, bias: args.has(2) ? try args.float(2).scalars : nil,
                                               epsilon: node.float("epsilon", default: 1e-5)))]
        }
        t["MaxPool"] = { node, args in
            guard node.outputs.count < 2 || node.outputs[1].isEmpty else { throw args.invalid("the Indices output of MaxPool is not supported") }
            let x = try args.float(0)
            return [.float(try pool2d(x, kind: .max, window: try poolingWindow(node, args, input: x.shape)))]
        }
        t["AveragePool"] = { node, args in
            let x = try args.float(0)
            let kind = PoolKind.average(countIncludePad: node.int("count_include_pad", default: 0) != 0)
            return [.float(try pool2d(x, kind: kind, window: try poolingWindow(node, args, input: x.shape)))]
        }
        t["GlobalAveragePool"] = { _, args in [.float(try globalAveragePool(try args.float(0)))] }
        t["GlobalMaxPool"] = { _, args in [.float(try globalMaxPool(try args.float(0)))] }
        t["BatchNormalization"] = { node, args in
            if node.int("training_mode", default: 0) != 0 { throw args.invalid("training_mode=1 is not supported for inference") }
            let y = try batchNormalized(try args.float(0), scale: try args.float(1).scalars, bias: try args.float(2).scalars,
                                        mean: try args.float(3).scalars, variance: try args.float(4).scalars,
                                        epsilon: node.float("epsilon", default: 1e-5))
            return [.float(y)]
        }
        t["InstanceNormalization"] = { node, args in
            let x = try args.float(0)
            return [.float(try groupNormalized(x, groups: x.rank >= 2 ? x.shape[1] : 1, scale: try args.float(1).scalars,
                                               bias: try args.float(2).scalars, epsilon: node.float("epsilon", default: 1e-5)))]
        }
        t["GroupNormalization"] = { node, args in
            guard let groups = node.int("num_groups"), groups >= 1 else { throw args.invalid("GroupNormalization needs num_groups ≥ 1") }
            return [.float(try groupNormalized(try args.float(0), groups: groups, scale: try args.float(1).scalars,
                                               bias: try args.float(2).scalars, epsilon: node.float("epsilon", default: 1e-5)))]
        }
        t["LRN"] = { node, args in
            guard let size = node.int("size"), size >= 1 else { throw args.invalid("LRN needs a size attribute ≥ 1") }
            return [.float(try localResponseNormalized(try args.float(0), size: size, alpha: node.float("alpha", default: 1e-4),
                                                       beta: node.float("beta", default: 0.75), bias: node.float("bias", default: 1)))]
        }
        t["Softmax"] = { node, args in [.float(try softmaxOp(node, args, log: false))] }
        t["LogSoftmax"] = { node, args in [.float(try softmaxOp(node, args, log: true))] }
        t["Relu"] = { _, args in [.float(try args.float(0).mapped { max($0, 0) })] }
        t["LeakyRelu"] = { node, args in
            let alpha = node.float("alpha", default: 0.01)
            return [.float(try args.float(0).mapped { $0 >= 0 ? $0 : alpha * $0 })]
        }
        t["Sigmoid"] = { _, args in [.float(try args.float(0).mapped { 1 / (1 + Foundation.exp(-$0)) })] }
        t["Tanh"] = { _, args in [.float(try args.float(0).mapped { Foundation.tanh($0) })] }
        t["HardSigmoid"] = { node, args in
            let alpha = node.float("alpha", default: 0.2), beta = node.float("beta", default: 0.5)
            return [.float(try args.float(0).mapped { min(1, max(0, alpha * $0 + beta)) })]
        }
        t["HardSwish"] = { _, args in [.float(try args.float(0).mapped { $0 * min(1, max(0, $0 / 6 + 0.5)) })] }
        t["Softplus"] = { _, args in [.float(try args.float(0).mapped(softplus))] }
        t["Mish"] = { _, args in [.float(try args.float(0).mapped { $0 * Foundation.tanh(softplus($0)) })] }
        t["Gelu"] = { node, args in
            switch node.string("approximate", default: "none") {
            case "none": return [.float(try args.float(0).mapped { $0 * 0.5 * (1 + errorFunction($0 * 0.70710678118654752)) })]
            case "tanh":
                return [.float(try args.float(0).mapped { x in
                    x * 0.5 * (1 + Foundation.tanh(0.79788456080286536 * (x + 0.044715 * x * x * x)))
                })]
            default: throw args.invalid("approximate '\(node.string("approximate", default: "").prefix(40))' is not none or tanh")
            }
        }
        t["Clip"] = { node, args in
            var lo = -Float.greatestFiniteMagnitude, hi = Float.greatestFiniteMagnitude
            if args.opset < 11 {
                lo = node.float("min", default: lo)
                hi = node.float("max", default: hi)
            } else {
                if args.has(1) { lo = try args.float(1).scalars.first ?? lo }
                if args.has(2) { hi = try args.float(2).scalars.first ?? hi }
            }
            let (low, high) = (lo, hi)
            return [.float(try args.float(0).mapped { min(max($0, low), high) })]
        }
        t["Dropout"] = { node, args in
            let x = try args.any(0)
            // Inference: identity; the optional mask output is all true.
            if node.outputs.count > 1 && !node.outputs[1].isEmpty {
                return [x, .int64(Tensor(shape: x.shape, repeating: 1))]
            }
            return [x]
        }
    }

    /// The activation `Executor.fusingConvolutions` folded into a Conv node.
    static func fusedActivation(_ node: Node) -> Activation {
        switch node.attributes[fusedActivationKey] {
        case .string("Relu"): return .relu
        case .string("Clip"):
            guard case .floats(let b) = node.attributes[fusedClipKey], b.count == 2 else { return .none }
            return .clip(low: b[0], high: b[1])
        case .string("HardSigmoid"):
            guard case .floats(let b) = node.attributes[fusedClipKey], b.count == 2 else { return .none }
            return .hardSigmoid(alpha: b[0], beta: b[1])
        case .string("HardSwish"): return .hardSwish
        default: return .none
        }
    }

    /// ConvTranspose (2-D): kernel from the weight; strides, dilations, pads, output_padding, group, and
    /// output_shape / auto_pad resolved into pads as the ONNX specification states.
    static func convTransposeOp(_ node: Node, _ args: Arguments) throws -> Tensor<Float> {
        let x = try args.float(0), w = try args.float(1)
        guard x.rank == 4, w.rank == 4 else { throw args.invalid("only 2-D ConvTranspose (4-D NCHW input) is supported, input is \(x.shape)") }
        let kernel = Array(w.shape.suffix(2))
        if let declared = node.ints("kernel_shape"), declared != kernel {
            throw args.mismatch("kernel_shape \(declared) does not match the weight's spatial shape \(kernel)")
        }
        let s = node.ints("strides") ?? [1, 1], d = node.ints("dilations") ?? [1, 1], extra = node.ints("output_padding") ?? [0, 0]
        var p = node.ints("pads") ?? [0, 0, 0, 0]
        let limit = ShapeLimits.maxWindow
        guard s.count == 2, d.count == 2, p.count == 4, extra.count == 2, (kernel + s + d).allSatisfy({ $0 >= 1 && $0 <= limit }),
              (p + extra).allSatisfy({ $0 >= 0 && $0 <= limit }) else {
            throw args.invalid("strides \(s), dilations \(d) (1…\(limit)), pads \(p) and output_padding \(extra) (0…\(limit)) do not fit a 2-D kernel \(kernel)")
        }
        let autoPad = node.string("auto_pad", default: "NOTSET")
        guard ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"].contains(autoPad) else {
            throw args.invalid("auto_pad '\(autoPad.prefix(40))' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")
        }
        let outputShape = node.ints("output_shape").map { Array($0.suffix(2)) }
        if outputShape != nil || autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
            for a in 0..<2 {
                let full = s[a] * (x.shape[2 + a] - 1) + extra[a] + (kernel[a] - 1) * d[a] + 1
                let target = outputShape.map { $0[a] } ?? x.shape[2 + a] * s[a]
                let total = max(0, full - target)
                let (small, large) = (total / 2, total - total / 2)
                (p[a], p[a + 2]) = autoPad == "SAME_UPPER" ? (small, large) : (large, small)
            }
        } else if autoPad == "VALID" {
            p = [0, 0, 0, 0]
        }
        let window = Window2D(kernel: (kernel[0], kernel[1]), strides: (s[0], s[1]), dilations: (d[0], d[1]), pads: (p[0], p[1], p[2], p[3]))
        return try convTransposed2d(x, weight: w, bias: args.has(2) ? try args.float(2).scalars : nil, window: window,
                                    outputPadding: (extra[0], extra[1]), group: node.int("group", default: 1))
    }

    static func softmaxOp(_ node: Node, _ args: Arguments, log: Bool) throws -> Tensor<Float> {
        let x = try args.float(0)
        if args.opset < 13 {
            // Before opset 13: coerce to 2-D at `axis` (default 1) and normalise each row.
            let axis = try args.axis(node.int("axis", default: 1), rank: max(1, x.rank))
            let rows = x.shape[..<axis].reduce(1, *)
            let flat = x.reshaped([rows, x.count / max(1, rows)])
            return softmax(flat, axis: 1, log: log).reshaped(x.shape)
        }
        return softmax(x, axis: try args.axis(node.int("axis", default: -1), rank: x.rank), log: log)
    }

    /// Kernel, strides, dilations and pads of a 2-D Conv or pooling node, resolving auto_pad: from the attributes the
    /// executor read at load (`args.layer`), else from the node's.
    static func window2D(_ node: Node, args: Arguments, input: [Int], kernel: [Int]) throws -> Window2D {
        try (args.layer?.window ?? WindowAttributes(node, args: args)).window(input: input, kernel: kernel, args: args)
    }

    /// A pooling node's window: its kernel_shape over `input`.
    static func poolingWindow(_ node: Node, _ args: Arguments, input: [Int]) throws -> Window2D {
        let attributes = try args.layer?.window ?? WindowAttributes(node, args: args)
        guard let kernel = attributes.declaredKernel else { throw args.invalid("only 2-D pooling with kernel_shape is supported") }
        return try attributes.window(input: input, kernel: kernel, args: args)
    }
}

/// The window attributes of a Conv or pooling node, checked: read once per node at load by the executor
/// (`LayerAttributes`), since a node's attributes are a dictionary by name and a small network runs hundreds of
/// layers of a few microseconds each.
struct WindowAttributes: Sendable {
    enum AutoPad: Sendable { case notSet, sameUpper, sameLower, valid }
    /// kernel_shape, when the node has one (two values: a declaration of another length is refused).
    var declaredKernel: (h: Int, w: Int)?
    var strides: (h: Int, w: Int)
    var dilations: (h: Int, w: Int)
    var pads: (top: Int, left: Int, bottom: Int, right: Int)
    var autoPad: AutoPad
    var ceilMode: Bool

    init(_ node: Node, args: Arguments) throws {
        let s = node.ints("strides") ?? [1, 1]
        let d = node.ints("dilations") ?? [1, 1]
        guard s.count == 2, d.count == 2, s.allSatisfy({ $0 > 0 }), d.allSatisfy({ $0 > 0 }) else {
            throw args.invalid("strides \(s) and dilations \(d) must be two positive numbers")
        }
        let p = node.ints("pads") ?? [0, 0, 0, 0]
        guard p.count == 4 else { throw args.invalid("pads \(p) must have four values") }
        let limit = ShapeLimits.maxWindow
        guard (s + d).allSatisfy({ $0 >= 1 && $0 <= limit }), p.allSatisfy({ $0 >= 0 && $0 <= limit }) else {
            throw args.invalid("strides \(s) and dilations \(d) must be 1…\(limit), pads \(p) 0…\(limit)")
        }
        switch node.string("auto_pad", default: "NOTSET") {
        case "NOTSET": autoPad = .notSet
        case "SAME_UPPER": autoPad = .sameUpper
        case "SAME_LOWER": autoPad = .sameLower
        case "VALID": autoPad = .valid
        case let other: throw args.invalid("auto_pad '\(other.prefix(40))' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")
        }
        if let k = node.ints("kernel_shape") {
            guard k.count == 2 else { throw args.invalid("kernel_shape \(k) must have two values: only 2-D windows are supported") }
            declaredKernel = (k[0], k[1])
        }
        strides = (s[0], s[1])
        dilations = (d[0], d[1])
        pads = (p[0], p[1], p[2], p[3])
        ceilMode = node.int("ceil_mode", default: 0) != 0
    }

    /// The window over an NCHW `input` of a `kernel` (the weight's spatial shape, or kernel_shape for pooling).
    func window(input: [Int], kernel: [Int], args: Arguments) throws -> Window2D {
        guard kernel.count == 2, input.count == 4 else {
            throw args.invalid("only 2-D windows are supported (kernel \(kernel), input \(input))")
        }
        return try window(input: input, kernel: (kernel[0], kernel[1]), args: args)
    }

    /// The same for a 2-D kernel given as a pair (a Conv's weight shape, read without making an array on every call).
    func window(input: [Int], kernel: (h: Int, w: Int), args: Arguments) throws -> Window2D {
        guard input.count == 4 else { throw args.invalid("only 2-D windows are supported (input \(input))") }
        if let declaredKernel, declaredKernel != kernel {
            throw args.mismatch("kernel_shape \([declaredKernel.h, declaredKernel.w]) does not match the weight's spatial shape \([kernel.h, kernel.w])")
        }
        let limit = ShapeLimits.maxWindow
        guard kernel.h >= 1 && kernel.h <= limit && kernel.w >= 1 && kernel.w <= limit else {
            throw args.invalid("kernel \([kernel.h, kernel.w]) must be 1…\(limit)")
        }
        var p = pads
        switch autoPad {
        case .notSet: break
        case .valid: p = (0, 0, 0, 0)
        case .sameUpper, .sameLower:
            // Total padding per axis so that out = ceil(n / stride); the odd one goes at the end (SAME_UPPER) or start.
            func split(_ n: Int, _ s: Int, _ k: Int, _ d: Int) -> (Int, Int) {
                let out = (n + s - 1) / s
                let total = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
                let small = total / 2, large = total - small
                return autoPad == .sameUpper ? (small, large) : (large, small)
            }
            let (top, bottom) = split(input[2], strides.h, kernel.h, dilations.h)
            let (left, right) = split(input[3], strides.w, kernel.w, dilations.w)
            p = (top, left, bottom, right)
        }
        return Window2D(kernel: kernel, strides: strides, dilations: dilations, pads: p, ceilMode: ceilMode)
    }
}

extension Operators {
    /// A Conv of `input` by `weight` (the node's inputs 0 to 2, and the fused Add's other operand as `residual`): the
    /// Conv kernel's work, called by the executor's steps with the operands they hold (`Step.convolution`).
    static func convolution(_ node: Node, _ args: Arguments, input x: Tensor<Float>, weight w: Tensor<Float>, bias: [Float]?,
                            residual: Tensor<Float>?) throws -> Tensor<Float> {
        let (window, activation, group, prepared) = try convolutionOperands(node, args, input: x, weight: w)
        guard let residual else {
            return try conv2d(x, weight: w, bias: bias, window: window, group: group, activation: activation,
                              prepared: prepared, packed: args.packed)
        }
        // A fused Add: in the output pass when the other operand has the output's shape, else as the Add would.
        if let size = window.outputSize(h: x.shape[2], w: x.shape[3]), residual.rank == 4, residual.shape[0] == x.shape[0],
           residual.shape[1] == w.shape[0], residual.shape[2] == size.h, residual.shape[3] == size.w {
            return try conv2d(x, weight: w, bias: bias, window: window, group: group, activation: activation,
                              prepared: prepared, packed: args.packed, residual: residual)
        }
        let y = try conv2d(x, weight: w, bias: bias, window: window, group: group, prepared: prepared, packed: args.packed)
        let sum = try broadcastBinary(y, residual, { $0 + $1 })
        return activation == .none ? sum : sum.mapped { activation($0) }
    }

    /// What a Conv's kernel reads besides its tensors: the window, fused activation, group, and the Winograd weights
    /// where this call gains from them (batch 1 on small maps, or few channels: im2col + GEMM).
    static func convolutionOperands(_ node: Node, _ args: Arguments, input x: Tensor<Float>, weight w: Tensor<Float>) throws
        -> (Window2D, Activation, Int, Winograd.PreparedWeights?) {
        guard x.rank == 4 else {
            throw args.invalid("only 2-D convolution (4-D NCHW input) is supported, input is \(x.shape)")
        }
        guard w.rank == 4 else { throw args.invalid("only 2-D convolution (4-D weight) is supported, weight is \(w.shape)") }
        let window = try (args.layer?.window ?? WindowAttributes(node, args: args))
            .window(input: x.shape, kernel: (w.shape[2], w.shape[3]), args: args)
        let activation = args.layer?.activation ?? fusedActivation(node)
        let group = args.layer?.group ?? node.int("group", default: 1)
        let size = window.outputSize(h: x.shape[2], w: x.shape[3])
        let prepared = size.flatMap {
            Winograd.pays(images: x.shape[0], outputHeight: $0.h, outputWidth: $0.w, inputChannels: x.shape[1]) ? args.prepared : nil
        }
        return (window, activation, group, prepared)
    }

    /// A Conv (no fused Add) written into channels firstChannel… of a Concat's output of `channels` channels,
    /// `destination`, made by the first of the Concat's Convs to run (uninitialised: its Convs write every channel).
    static func convolve(_ node: Node, _ args: Arguments, input x: Tensor<Float>, weight w: Tensor<Float>, bias: [Float]?,
                         into destination: inout Tensor<Float>?, firstChannel: Int, channels: Int) throws {
        try namingTheNode(node) {
            let (window, activation, group, prepared) = try convolutionOperands(node, args, input: x, weight: w)
            if destination == nil {
                guard w.rank == 4, let size = window.outputSize(h: x.shape[2], w: x.shape[3]) else {
                    throw args.invalid("Conv window \(window.kernel) does not fit input \(x.shape)")
                }
                let shape = [x.shape[0], channels, size.h, size.w]
                _ = try elementCount(shape, "Concat output")
                destination = Tensor(shape: shape, unsafeUninitialized: { _ in })
            }
            try conv2d(x, weight: w, bias: bias, window: window, group: group, activation: activation, prepared: prepared,
                       packed: args.packed, into: &destination!, firstChannel: firstChannel)
        }
    }
}

/// What a Conv or pooling node's kernel reads from its attributes on every call, read at load instead.
struct LayerAttributes: Sendable {
    var window: WindowAttributes
    var group: Int
    var activation: Activation
    var fusedResidual: Bool

    /// nil for other op types, and where the attributes are invalid (the call then reads them and throws).
    init?(_ node: Node, opset: Int) {
        guard ["Conv", "MaxPool", "AveragePool"].contains(node.opType),
              let window = try? WindowAttributes(node, args: Arguments(node: node, values: [], opset: opset)) else { return nil }
        self.window = window
        group = node.int("group", default: 1)
        activation = Operators.fusedActivation(node)
        fusedResidual = node.attributes[Operators.fusedResidualKey] != nil
    }
}
