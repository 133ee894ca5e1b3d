import Compute
import ModelGraph

/// Shape computation and data movement: these run on constants at load time when they can.
extension Operators {
    static func registerShapeOperators(_ t: inout [String: Kernel]) {
        t["Identity"] = { _, args in [try args.any(0)] }
        t["Constant"] = { node, args in
            switch node.attributes["value"] ?? node.attributes["value_float"] ?? node.attributes["value_floats"]
                ?? node.attributes["value_int"] ?? node.attributes["value_ints"] {
            case .tensor(let v)?: return [v]
            case .float(let v)?: return [.float(Tensor(shape: [], scalars: [v]))]
            case .floats(let v)?: return [.float(Tensor(shape: [v.count], scalars: v))]
            case .int(let v)?: return [.int64(Tensor(shape: [], scalars: [Int64(v)]))]
            case .ints(let v)?: return [.int64(Tensor(shape: [v.count], scalars: v.map { Int64($0) }))]
            default: throw args.invalid("Constant without a supported value attribute")
            }
        }
        t["Shape"] = { node, args in
            let shape = try args.any(0).shape.map { Int64($0) }
            let rank = shape.count
            func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + rank : v, 0), rank) }
            let start = clamp(node.int("start", default: 0)), end = clamp(node.int("end", default: rank))
            let part = start < end ? Array(shape[start..<end]) : []
            return [.int64(Tensor(shape: [part.count], scalars: part))]
        }
        t["Flatten"] = { node, args in
            let x = try args.any(0)
            let axis = node.int("axis", default: 1)
            let a = axis < 0 ? axis + x.shape.count : axis
            guard a >= 0 && a <= x.shape.count else { throw args.invalid("axis \(axis) is out of range for \(x.shape)") }
            let rows = x.shape[..<a].reduce(1, *)  // a prefix of a valid shape: cannot overflow
            return [x.reshaped([rows, x.count / max(1, rows)])]
        }
        t["Reshape"] = { node, args in
            let x = try args.any(0)
            var shape = try args.ints(1)
            let allowZero = node.int("allowzero", default: 0) != 0
            // ONNX: at most one -1, no value below -1, and with allowzero a 0 cannot stand beside a -1.
            guard shape.count <= ShapeLimits.maxRank, shape.allSatisfy({ $0 >= -1 }), shape.filter({ $0 == -1 }).count <= 1,
                  !(allowZero && shape.contains(0) && shape.contains(-1)) else {
                throw args.invalid("shape \(shape) is not a valid Reshape target (one -1 at most, no other negative value)")
            }
            for i in shape.indices where shape[i] == 0 && !allowZero {
                guard i < x.shape.count else { throw args.mismatch("shape \(shape) copies dimension \(i) of \(x.shape)") }
                shape[i] = x.shape[i]
            }
            if let unknown = shape.firstIndex(of: -1) {
                var known = shape
                known.remove(at: unknown)
                guard let product = checkedElementCount(known, limit: .max), product > 0, x.count % product == 0 else {
                    throw args.mismatch("cannot reshape \(x.shape) to \(shape)")
                }
                shape[unknown] = x.count / product
            }
            guard checkedElementCount(shape, limit: .max) == x.count else {
                throw args.mismatch("cannot reshape \(x.shape) (\(x.count) values) to \(shape)")
            }
            return [x.reshaped(shape)]
        }
        t["Transpose"] = { node, args in
            let x = try args.any(0)
            let perm = node.ints("perm") ?? Array((0..<x.shape.count).reversed())
            switch x {
            case .float(let v): return [.float(try transposed(v, permutation: perm))]
            case .int64(let v): return [.int64(try transposed(v, permutation: perm))]
            }
        }
        t["Concat"] = { node, args in
            let parts = args.values.compactMap { $0 }
            guard let first = parts.first else { throw args.invalid("Concat has no inputs") }
            guard let rawAxis = node.int("axis") else { throw args.invalid("Concat needs the axis attribute") }
            let axis = try args.axis(rawAxis, rank: first.shape.count)
            if parts.allSatisfy({ $0.int64Tensor != nil }) {
                return [.int64(try concatenated(parts.map { $0.int64Tensor! }, axis: axis))]
            }
            return [.float(try concatenated(try (0..<args.count).filter(args.has).map(args.float), axis: axis))]
        }
        t["Gather"] = { node, args in
            let x = try args.any(0)
            let indices = Tensor(shape: try args.any(1).shape, scalars: try args.ints(1).map { Int64($0) })
            let axis = try args.axis(node.int("axis", default: 0), rank: x.shape.count)
            switch x {
            case .float(let v): return [.float(try gathered(v, indices: indices, axis: axis))]
            case .int64(let v): return [.int64(try gathered(v, indices: indices, axis: axis))]
            }
        }
        t["Unsqueeze"] = { node, args in
            let x = try args.any(0)
            let axes = args.opset >= 13 ? try args.ints(1) : (node.ints("axes") ?? [])
            let rank = x.shape.count + axes.count
            let normalized = try Set(axes.map { try args.axis($0, rank: rank) })
            guard normalized.count == axes.count else { throw args.invalid("axes \(axes) name an axis twice") }
            var shape: [Int] = []
            var source = x.shape.makeIterator()
            for i in 0..<rank { shape.append(normalized.contains(i) ? 1 : source.next() ?? 1) }
            return [x.reshaped(shape)]
        }
        t["Squeeze"] = { node, args in
            let x = try args.any(0)
            let given = args.opset >= 13 ? (args.has(1) ? try args.ints(1) : nil) : node.ints("axes")
            let axes = try given.map { try Set($0.map { try args.axis($0, rank: x.shape.count) }) }
            var shape: [Int] = []
            for (i, d) in x.shape.enumerated() {
                if let axes, axes.contains(i) {
                    guard d == 1 else { throw args.mismatch("cannot squeeze axis \(i) of size \(d) in \(x.shape)") }
                } else if axes != nil || d != 1 {
                    shape.append(d)
                }
            }
            return [x.reshaped(shape)]
        }
        t["Cast"] = { node, args in
            let x = try args.any(0)
            guard let to = node.int("to") else { throw args.invalid("Cast needs the 'to' attribute") }
            switch to {
            case 1, 10, 11: return [.float(try args.float(0))]
            case 2, 3, 4, 5, 6, 7, 9, 12, 13:
                guard let values = x.checkedInt64Values else {
                    throw args.invalid("cannot cast NaN, an infinity or a value outside the 64-bit range to an integer type")
                }
                return [.int64(Tensor(shape: x.shape, scalars: values))]
            default: throw args.invalid("Cast to ONNX type \(to) is not supported")
            }
        }
        t["Slice"] = { node, args in
            let x = try args.any(0)
            let rank = x.shape.count
            let starts = args.opset >= 10 ? try args.ints(1) : (node.ints("starts") ?? [])
            let ends = args.opset >= 10 ? try args.ints(2) : (node.ints("ends") ?? [])
            let axes = args.opset >= 10 ? (args.has(3) ? try args.ints(3) : Array(0..<starts.count)) : (node.ints("axes") ?? Array(0..<starts.count))
            let steps = args.opset >= 10 && args.has(4) ? try args.ints(4) : Array(repeating: 1, count: starts.count)
            guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count, !steps.contains(0) else {
                throw args.invalid("starts, ends, axes and steps must have one nonzero entry per sliced axis")
            }
            var s = Array(repeating: 0, count: rank), e = x.shape, st = Array(repeating: 1, count: rank)
            for (i, rawAxis) in axes.enumerated() {
                let a = try args.axis(rawAxis, rank: rank)
                let n = x.shape[a]
                func clamp(_ v: Int, _ lo: Int, _ hi: Int) -> Int { min(max(v < 0 ? v + n : v, lo), hi) }
                // A step longer than the axis takes one element, as any longer step would: keep it in range.
                let step = max(-(n + 1), min(n + 1, steps[i]))
                guard step != 0 else { throw args.invalid("Slice steps must be nonzero") }
                st[a] = step
                if step > 0 {
                    s[a] = clamp(starts[i], 0, n)
                    e[a] = clamp(ends[i], 0, n)
                } else {
                    s[a] = clamp(starts[i], 0, n - 1)
                    e[a] = ends[i] < -n ? -1 : clamp(ends[i], -1, n - 1)
                }
            }
            switch x {
            case .float(let v): return [.float(sliced(v, starts: s, ends: e, steps: st))]
            case .int64(let v): return [.int64(sliced(v, starts: s, ends: e, steps: st))]
            }
        }
        t["Pad"] = { node, args in
            let x = try args.float(0)
            guard let mode = PadMode(rawValue: node.string("mode", default: "constant")) else {
                throw args.invalid("pad mode '\(node.string("mode", default: ""))' is not supported (constant, reflect, edge)")
            }
            var pads: [Int]
            var value: Float = 0
            if args.opset < 11 {
                pads = node.ints("pads") ?? []
                value = node.float("value", default: 0)
            } else {
                pads = try args.ints(1)
                if args.has(2) { value = try args.float(2).scalars.first ?? 0 }
                if args.has(3) {
                    // Pads given for some axes only.
                    let axes = try args.ints(3).map { try args.axis($0, rank: x.rank) }
                    guard pads.count == 2 * axes.count, Set(axes).count == axes.count else {
                        throw args.invalid("pads \(pads) need two values for each of the axes \(axes), each axis once")
                    }
                    var full = Array(repeating: 0, count: 2 * x.rank)
                    for (i, a) in axes.enumerated() { full[a] = pads[i]; full[x.rank + a] = pads[axes.count + i] }
                    pads = full
                }
            }
            guard pads.count == 2 * x.rank, pads.allSatisfy({ (-ShapeLimits.maxElements...ShapeLimits.maxElements).contains($0) }) else {
                throw args.invalid("pads \(pads) must be \(2 * x.rank) values of at most \(ShapeLimits.maxElements) each for input \(x.shape)")
            }
            try args.checkShape((0..<x.rank).map { x.shape[$0] + pads[$0] + pads[x.rank + $0] })
            return [.float(try padded(x, pads: pads, mode: mode, value: value))]
        }
        t["Expand"] = { _, args in
            let shape = try args.ints(1)
            guard shape.count <= ShapeLimits.maxRank, let target = broadcastShape(try args.any(0).shape, shape) else {
                throw args.mismatch("\(try args.any(0).shape) does not broadcast to \(shape)")
            }
            try args.checkShape(target)
            switch try args.any(0) {
            case .float(let x): return [.float(try broadcasted(x, to: shape))]
            case .int64(let x): return [.int64(try broadcasted(x, to: shape))]
            }
        }
        t["Split"] = { node, args in
            let x = try args.any(0)
            let axis = try args.axis(node.int("axis", default: 0), rank: x.shape.count)
            let n = x.shape[axis], parts = node.outputs.count
            var sizes = args.opset >= 13 ? (args.has(1) ? try args.ints(1) : nil) : node.ints("split")
            if sizes == nil {
                // Equal parts; from opset 18 (num_outputs) the last part may be smaller.
                let size = args.opset >= 18 ? (n + parts - 1) / max(1, parts) : n / max(1, parts)
                guard parts >= 1, args.opset >= 18 || n % parts == 0 else { throw args.mismatch("axis \(axis) of \(x.shape) does not split into \(parts) equal parts") }
                sizes = (0..<parts).map { min(size, max(0, n - $0 * size)) }
            }
            guard let sizes, sizes.count == parts else { throw args.invalid("split sizes \(sizes ?? []) do not match the \(parts) outputs") }
            switch x {
            case .float(let v): return try split(v, axis: axis, sizes: sizes).map { .float($0) }
            case .int64(let v): return try split(v, axis: axis, sizes: sizes).map { .int64($0) }
            }
        }
        t["Tile"] = { _, args in
            let repeats = try args.ints(1)
            switch try args.any(0) {
            case .float(let x): return [.float(try tiled(x, repeats: repeats))]
            case .int64(let x): return [.int64(try tiled(x, repeats: repeats))]
            }
        }
        t["Range"] = { _, args in
            let parts = try (0..<3).map { try args.any($0) }
            guard parts.allSatisfy({ $0.count == 1 }) else { throw args.invalid("start, limit and delta must be scalars") }
            if parts.allSatisfy({ $0.int64Tensor != nil }) {
                let (start, limit, delta) = (parts[0].int64Values[0], parts[1].int64Values[0], parts[2].int64Values[0])
                guard delta != 0 else { throw args.invalid("delta must not be 0") }
                let steps = ((Double(limit) - Double(start)) / Double(delta)).rounded(.up)
                guard steps < Double(ShapeLimits.maxElements) else { throw args.mismatch("Range of \(steps) values is too large") }
                let count = steps > 0 ? Int(steps) : 0
                return [.int64(Tensor(shape: [count], scalars: (0..<count).map { start &+ Int64($0) &* delta }))]
            }
            let (start, limit, delta) = (parts[0].floatValues[0], parts[1].floatValues[0], parts[2].floatValues[0])
            guard delta != 0, start.isFinite, limit.isFinite, delta.isFinite else { throw args.invalid("delta must be finite and not 0, start and limit finite") }
            let steps = ((limit - start) / delta).rounded(.up)
            guard steps < Float(ShapeLimits.maxElements) else { throw args.mismatch("Range of \(steps) values is too large") }
            let count = steps > 0 ? Int(steps) : 0
            return [.float(Tensor(shape: [count], scalars: (0..<count).map { start + Float($0) * delta }))]
        }
        t["ConstantOfShape"] = { node, args in
            guard try args.any(0).shape.count == 1 else { throw args.invalid("the shape input must be a 1-D tensor, got \(try args.any(0).shape)") }
            let shape = try args.ints(0)
            try args.checkShape(shape)
            switch node.attributes["value"] {
            case .tensor(.int64(let v))?: return [.int64(Tensor(shape: shape, repeating: v.scalars.first ?? 0))]
            case .tensor(.float(let v))?: return [.float(Tensor(shape: shape, repeating: v.scalars.first ?? 0))]
            default: return [.float(Tensor(shape: shape, repeating: 0))]
            }
        }
    }
}
