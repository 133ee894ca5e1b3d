import Compute
import ModelGraph

/// Comparisons, boolean logic and Where. ONNX booleans are carried as int64 0/1 tensors.
extension Operators {
    static func registerLogicOperators(_ t: inout [String: Kernel]) {
        t["Equal"] = comparison({ $0 == $1 }, { $0 == $1 })
        t["Less"] = comparison({ $0 < $1 }, { $0 < $1 })
        t["LessOrEqual"] = comparison({ $0 <= $1 }, { $0 <= $1 })
        t["Greater"] = comparison({ $0 > $1 }, { $0 > $1 })
        t["GreaterOrEqual"] = comparison({ $0 >= $1 }, { $0 >= $1 })
        t["Not"] = { _, args in
            let x = try args.any(0)
            return [.int64(Tensor(shape: x.shape, scalars: x.floatValues.map { $0 == 0 ? 1 : 0 }))]
        }
        t["And"] = logical { $0 && $1 }
        t["Or"] = logical { $0 || $1 }
        t["Xor"] = logical { $0 != $1 }
        t["Where"] = { _, args in
            let condition = try args.any(0)
            let chosen = Tensor(shape: condition.shape, scalars: condition.floatValues.map { $0 != 0 })
            let a = try args.any(1), b = try args.any(2)
            guard let ab = broadcastShape(a.shape, b.shape), let shape = broadcastShape(ab, chosen.shape) else {
                throw args.mismatch("condition \(chosen.shape), X \(a.shape) and Y \(b.shape) do not broadcast")
            }
            let c = try broadcasted(chosen, to: shape)
            if case .int64(let x) = a, case .int64(let y) = b {
                let (xs, ys) = (try broadcasted(x, to: shape).scalars, try broadcasted(y, to: shape).scalars)
                return [.int64(Tensor(shape: shape, scalars: c.scalars.indices.map { c.scalars[$0] ? xs[$0] : ys[$0] }))]
            }
            let (xs, ys) = (try broadcasted(try args.float(1), to: shape).scalars, try broadcasted(try args.float(2), to: shape).scalars)
            return [.float(Tensor(shape: shape, scalars: c.scalars.indices.map { c.scalars[$0] ? xs[$0] : ys[$0] }))]
        }
    }

    /// A broadcasting comparison giving 0/1: on integers when both sides are integers, on floats otherwise.
    static func comparison(_ f: @escaping @Sendable (Float, Float) -> Bool, _ i: @escaping @Sendable (Int64, Int64) -> Bool) -> Kernel {
        return { _, args in
            if case .int64(let x) = try args.any(0), case .int64(let y) = try args.any(1) {
                return [.int64(try broadcastBinary(x, y) { i($0, $1) ? 1 : 0 })]
            }
            return [.int64(try broadcastBinary(try args.float(0), try args.float(1)) { f($0, $1) ? 1 : 0 })]
        }
    }

    static func logical(_ f: @escaping @Sendable (Bool, Bool) -> Bool) -> Kernel {
        return { _, args in
            let x = try args.any(0), y = try args.any(1)
            let a = Tensor(shape: x.shape, scalars: x.floatValues.map { $0 != 0 }), b = Tensor(shape: y.shape, scalars: y.floatValues.map { $0 != 0 })
            return [.int64(try broadcastBinary(a, b) { f($0, $1) ? 1 : 0 })]
        }
    }
}
