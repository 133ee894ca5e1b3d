import Compute
import Foundation
import ModelGraph

/// Reductions over axes, TopK and ArgMax/ArgMin.
extension Operators {
    static func registerReduceOperators(_ t: inout [String: Kernel]) {
        t["ReduceMean"] = reduction(initial: 0, +) { v, n in v / Float(max(1, n)) }
        t["ReduceSum"] = reduction(initial: 0, +)
        t["ReduceMax"] = reduction(initial: -.infinity) { $0.isNaN || $1.isNaN ? .nan : max($0, $1) }
        t["ReduceMin"] = reduction(initial: .infinity) { $0.isNaN || $1.isNaN ? .nan : min($0, $1) }
        t["ReduceProd"] = reduction(initial: 1, *)
        t["ReduceL1"] = reduction(initial: 0) { $0 + abs($1) }
        t["ReduceL2"] = reduction(initial: 0, { $0 + $1 * $1 }) { v, _ in v.squareRoot() }
        t["ReduceSumSquare"] = reduction(initial: 0) { $0 + $1 * $1 }
        t["ReduceLogSum"] = reduction(initial: 0, +) { v, _ in Foundation.log(v) }
        t["ReduceLogSumExp"] = reduction(initial: 0, { $0 + Foundation.exp($1) }) { v, _ in Foundation.log(v) }
        t["TopK"] = { node, args in
            let x = try args.float(0)
            let k = args.opset >= 10 ? try args.ints(1).first ?? -1 : node.int("k", default: -1)
            let axis = try args.axis(node.int("axis", default: -1), rank: x.rank)
            guard k >= 0 && k <= x.shape[axis] else { throw args.mismatch("k = \(k) is not in 0…\(x.shape[axis]) for axis \(axis) of \(x.shape)") }
            let (values, indices) = try topK(x, k: k, axis: axis, largest: node.int("largest", default: 1) != 0)
            return [.float(values), .int64(indices)]
        }
        t["ArgMax"] = argExtremumOp(largest: true)
        t["ArgMin"] = argExtremumOp(largest: false)
    }

    /// A reduction over axes (an attribute before opset 18 — 13 for ReduceSum — the second input from then on),
    /// keepdims by default; with noop_with_empty_axes and no axes, the input unchanged.
    static func reduction(initial: Float, _ combine: @escaping @Sendable (Float, Float) -> Float,
                          finish: @escaping @Sendable (Float, Int) -> Float = { v, _ in v }) -> Kernel {
        return { node, args in
            let x = try args.float(0)
            let axesFromInput = node.opType == "ReduceSum" ? args.opset >= 13 : args.opset >= 18
            var given = axesFromInput ? (args.has(1) ? try args.ints(1) : nil) : node.ints("axes")
            if given?.isEmpty == true { given = nil }
            if given == nil && node.int("noop_with_empty_axes", default: 0) != 0 { return [.float(x)] }
            let axes = Set(try (given ?? Array(0..<x.rank)).map { try args.axis($0, rank: x.rank) })
            return [.float(reduced(x, axes: axes, keepDims: node.int("keepdims", default: 1) != 0, initial: initial, combine, finish: finish))]
        }
    }

    static func argExtremumOp(largest: Bool) -> Kernel {
        return { node, args in
            let x = try args.float(0)
            let axis = try args.axis(node.int("axis", default: 0), rank: x.rank)
            return [.int64(try argExtremum(x, axis: axis, largest: largest, keepDims: node.int("keepdims", default: 1) != 0,
                                           lastIndex: node.int("select_last_index", default: 0) != 0))]
        }
    }
}
