import Compute
import ModelGraph

/// DequantizeLinear and QuantizeLinear (opsets 10–21): integer tensors travel as Int64 (as the ONNX loader decodes
/// int8/uint8/int16/uint16/int32 data), scale and zero point per tensor or, from opset 13, per `axis`.
extension Operators {
    static func registerQuantizeOperators(_ t: inout [String: Kernel]) {
        t["DequantizeLinear"] = { node, args in
            guard case .int64(let x) = try args.any(0) else { throw args.invalid("x must be an integer tensor, got \(try args.any(0).elementTypeName)") }
            let (scale, zeroPoint, channel) = try quantizationParameters(node, args, shape: x.shape)
            var y = [Float](repeating: 0, count: x.count)
            for i in 0..<x.count {
                let c = channel(i)
                // As onnxruntime: (x − zero_point) in integers, then one rounding to Float, times the scale.
                y[i] = Float(x.scalars[i] &- (zeroPoint.isEmpty ? 0 : zeroPoint[c])) * scale[c]
            }
            return [.float(Tensor(shape: x.shape, scalars: y))]
        }
        t["QuantizeLinear"] = { node, args in
            let x = try args.float(0)
            let (scale, zeroPoint, channel) = try quantizationParameters(node, args, shape: x.shape)
            let range = try quantizedRange(node, args)
            let low = Float(range.lowerBound), high = Float(range.upperBound)
            var y = [Int64](repeating: 0, count: x.count)
            for i in 0..<x.count {
                let c = channel(i)
                // Round half to even, add the zero point, saturate; NaN becomes the zero point.
                var q = (x.scalars[i] / scale[c]).rounded(.toNearestOrEven)
                if q.isNaN { q = 0 }
                q = min(max(q + Float(zeroPoint.isEmpty ? 0 : zeroPoint[c]), low), high)
                y[i] = Int64(q)
            }
            return [.int64(Tensor(shape: x.shape, scalars: y))]
        }
    }

    /// Attribute the executor sets on a QuantizeLinear whose zero point is an initializer, to the ONNX element type the
    /// file stores it as (the loader computes with Int64, so the output range would be lost); never exported.
    static let quantizedTypeKey = "_quantized_type"

    /// The ONNX element types QuantizeLinear writes, with their ranges (2 uint8, 3 int8, 4 uint16, 5 int16).
    static let quantizedRanges: [Int: ClosedRange<Int64>] = [2: 0...255, 3: -128...127, 4: 0...65_535, 5: -32_768...32_767]

    /// The output range: `output_dtype` (opset 21), else the zero point's stored type, else uint8 when there is no zero point.
    static func quantizedRange(_ node: Node, _ args: Arguments) throws -> ClosedRange<Int64> {
        let outputType = args.opset >= 21 ? node.int("output_dtype", default: 0) : 0
        let type: Int
        if outputType != 0 {
            type = outputType
        } else if let stored = node.int(quantizedTypeKey) {
            type = stored
        } else if !args.has(2) {
            type = 2
        } else {
            throw args.invalid("cannot tell whether the zero point '\(node.inputs[2])' is int8 or uint8: it is not an initializer; "
                               + "store it as an initializer (or set output_dtype, opset 21)")
        }
        guard let range = quantizedRanges[type] else {
            throw args.invalid("quantizing to ONNX type \(type) is not supported (uint8, int8, uint16, int16)")
        }
        return range
    }

    /// Scale and zero point as one value per channel (one channel when per tensor), and the channel of each flat index
    /// of a tensor of `shape`.
    static func quantizationParameters(_ node: Node, _ args: Arguments, shape: [Int])
        throws -> (scale: [Float], zeroPoint: [Int64], channel: (Int) -> Int) {
        if args.opset >= 21, node.int("block_size", default: 0) != 0 {
            throw args.invalid("blocked quantization (block_size \(node.int("block_size", default: 0))) is not supported; "
                               + "per-tensor and per-axis scales are")
        }
        let scale = try args.float(1)
        var zeroPoint: [Int64] = []
        if args.has(2) {
            guard case .int64(let z) = try args.any(2) else { throw args.invalid("the zero point must be an integer tensor") }
            guard z.shape == scale.shape else { throw args.mismatch("zero point shape \(z.shape) differs from scale shape \(scale.shape)") }
            zeroPoint = z.scalars
        }
        if scale.count == 1 && scale.rank <= 1 { return (scale.scalars, zeroPoint, { _ in 0 }) }
        guard args.opset >= 13, scale.rank == 1 else {
            throw args.mismatch("scale \(scale.shape) must be a scalar\(args.opset >= 13 ? " or 1-D along axis" : " before opset 13")")
        }
        let axis = try args.axis(node.int("axis", default: 1), rank: shape.count)
        guard scale.count == shape[axis] else {
            throw args.mismatch("scale has \(scale.count) values, axis \(axis) of \(shape) has \(shape[axis])")
        }
        let inner = shape[(axis + 1)...].reduce(1, *), channels = shape[axis]
        return (scale.scalars, zeroPoint, { ($0 / inner) % channels })
    }
}
