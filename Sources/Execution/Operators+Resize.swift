import Compute
import ModelGraph

/// Resize (opset 11 on): nearest, linear and cubic, every coordinate mode but tf_crop_and_resize.
extension Operators {
    static func registerResizeOperators(_ t: inout [String: Kernel]) {
        t["Resize"] = { node, args in [.float(try resizeOp(node, args))] }
    }

    static func resizeMode(_ node: Node) -> ResizeMode? {
        switch node.string("mode", default: "nearest") {
        case "nearest":
            ResizeMode.Rounding(rawValue: node.string("nearest_mode", default: "round_prefer_floor")).map { .nearest($0) }
        case "linear": .linear
        case "cubic": .cubic(coefficient: node.float("cubic_coeff_a", default: -0.75), excludeOutside: node.int("exclude_outside", default: 0) != 0)
        default: nil
        }
    }

    static func resizeOp(_ node: Node, _ args: Arguments) throws -> Tensor<Float> {
        let x = try args.float(0)
        guard args.opset >= 11 else { throw args.invalid("Resize before opset 11 is not supported; re-export the model at opset 11 or later") }
        guard let mode = resizeMode(node) else {
            throw args.invalid("mode '\(node.string("mode", default: "").prefix(40))' / nearest_mode '\(node.string("nearest_mode", default: "").prefix(40))' is not supported (nearest: round_prefer_floor, round_prefer_ceil, floor, ceil; linear; cubic)")
        }
        let coordinateMode = node.string("coordinate_transformation_mode", default: "half_pixel")
        guard let coordinates = ResizeCoordinates(rawValue: coordinateMode) else {
            throw args.invalid("coordinate_transformation_mode '\(coordinateMode.prefix(40))' is not supported")
        }
        guard node.int("antialias", default: 0) == 0, node.string("keep_aspect_ratio_policy", default: "stretch") == "stretch" else {
            throw args.invalid("antialias and keep_aspect_ratio_policy other than stretch are not supported")
        }
        let axes = try (node.ints("axes") ?? Array(0..<x.rank)).map { try args.axis($0, rank: x.rank) }
        guard Set(axes).count == axes.count else { throw args.invalid("axes \(axes) name an axis twice") }
        var shape = x.shape, scales = [Float](repeating: 1, count: x.rank)
        let givenScales = args.has(2) ? try args.float(2).scalars : []
        if !givenScales.isEmpty {
            guard givenScales.count == axes.count, givenScales.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw args.invalid("scales \(givenScales) need one positive value per resized axis (\(axes.count))")
            }
            for (i, a) in axes.enumerated() {
                let size = (Float(x.shape[a]) * givenScales[i]).rounded(.down)
                guard size < Float(ShapeLimits.maxElements) else { throw args.mismatch("scale \(givenScales[i]) makes axis \(a) of \(x.shape) too large") }
                shape[a] = Int(size)
                scales[a] = givenScales[i]
            }
        } else {
            guard args.has(3) else { throw args.invalid("Resize needs scales or sizes") }
            let sizes = try args.ints(3)
            guard sizes.count == axes.count, sizes.allSatisfy({ $0 >= 0 }) else {
                throw args.invalid("sizes \(sizes) need one value ≥ 0 per resized axis (\(axes.count))")
            }
            for (i, a) in axes.enumerated() {
                shape[a] = sizes[i]
                scales[a] = x.shape[a] == 0 ? 1 : Float(sizes[i]) / Float(x.shape[a])
            }
        }
        try args.checkShape(shape)
        return try resized(x, to: shape, scales: scales, mode: mode, coordinates: coordinates)
    }
}
