import Compute
import Foundation

/// Images plus integer labels. Images stored as bytes (IDX files, uint8 .npy) stay bytes — a quarter of the
/// memory of floats, unpadded — and are padded and normalised batch by batch; float images are kept as given.
public struct ImageDataset: Sendable {
    /// One image after preprocessing: [C, H, W], or [H, W, C] for byte images under `Preprocessing.Layout.nhwc`.
    public let imageShape: [Int]
    public var labels: [Int]
    private let storage: Storage

    private enum Storage: Sendable {
        /// Ready-made model inputs, image after image.
        case floats([Float])
        /// Raw N×C×H×W pixels (whatever the layout given to the model), and how to turn them into model inputs.
        case pixels([UInt8], PixelTransform)
    }

    /// x = (p · scale − mean[c]) / std[c] in channel c, with a border of `pad` black pixels, channels first or last.
    private struct PixelTransform: Sendable {
        var channels: Int, height: Int, width: Int, pad: Int, channelsLast: Bool
        var scale: Float, mean: [Float], std: [Float]

        func apply(_ p: UInt8, channel c: Int) -> Float { (Float(p) * scale - mean[c]) / std[c] }
        /// Padding is black (0) before normalisation, as torchvision's Pad does.
        func padValue(channel c: Int) -> Float { (0 - mean[c]) / std[c] }
    }

    public init(images: Tensor<Float>, labels: [Int]) throws {
        guard images.rank == 4 else { throw DatasetError.mismatch("images must be N×C×H×W, got \(images.shape)") }
        try self.init(imageShape: Array(images.shape.dropFirst()), labels: labels, storage: .floats(images.scalars), count: images.shape[0])
    }

    private init(imageShape: [Int], labels: [Int], storage: Storage, count: Int) throws {
        guard count == labels.count else {
            throw DatasetError.mismatch("\(count) images but \(labels.count) labels")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 }) {
            throw DatasetError.mismatch("label \(labels[bad]) of image \(bad) is negative; labels are class indices 0, 1, 2, …")
        }
        self.imageShape = imageShape
        self.labels = labels
        self.storage = storage
    }

    public var count: Int { labels.count }
    public var classCount: Int { (labels.max() ?? -1) + 1 }

    /// All images as one N×C×H×W tensor (materialises every image as floats: use `batch` for large sets).
    public var images: Tensor<Float> { batch(0..<count) }

    /// Images `range` as a batch tensor.
    public func batch(_ range: Range<Int>) -> Tensor<Float> { rows(Array(range)) }

    /// Images `rows`, in that order, as a batch tensor.
    public func rows(_ rows: [Int]) -> Tensor<Float> {
        let size = imageShape.reduce(1, *)
        var out = [Float](repeating: 0, count: rows.count * size)
        switch storage {
        case .floats(let scalars):
            for (r, row) in rows.enumerated() { for j in 0..<size { out[r * size + j] = scalars[row * size + j] } }
        case .pixels(let bytes, let t):
            let (h, w, ph, pw) = (t.height, t.width, t.height + 2 * t.pad, t.width + 2 * t.pad)
            let planes = t.channels
            // Where channel c, row y, column x of an output image goes: planes first (N×C×H×W) or last (N×H×W×C).
            let pixelStride = t.channelsLast ? planes : 1, planeStride = t.channelsLast ? 1 : ph * pw
            let rowStride = pw * pixelStride
            out.withUnsafeMutableBufferPointer { out in
                bytes.withUnsafeBufferPointer { bytes in
                    for (r, row) in rows.enumerated() {
                        for c in 0..<planes {
                            let dst = r * size + c * planeStride, src = (row * planes + c) * h * w
                            if t.pad > 0 { for j in 0..<(ph * pw) { out[dst + j * pixelStride] = t.padValue(channel: c) } }
                            let (scale, mean, std) = (t.scale, t.mean[c], t.std[c])
                            for y in 0..<h {
                                let d = dst + (y + t.pad) * rowStride + t.pad * pixelStride, s = src + y * w
                                for x in 0..<w { out[d + x * pixelStride] = (Float(bytes[s + x]) * scale - mean) / std }
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: [rows.count] + imageShape, scalars: out)
    }

    /// Examples `rows`, in that order, stored as this set stores them.
    public func subset(_ rows: [Int]) -> ImageDataset {
        let labels = rows.map { self.labels[$0] }
        switch storage {
        case .floats:
            return try! ImageDataset(images: self.rows(rows), labels: labels)
        case .pixels(let bytes, let t):
            let size = t.channels * t.height * t.width
            var picked = [UInt8](repeating: 0, count: rows.count * size)
            for (r, row) in rows.enumerated() { for j in 0..<size { picked[r * size + j] = bytes[row * size + j] } }
            return try! ImageDataset(imageShape: imageShape, labels: labels, storage: .pixels(picked, t), count: rows.count)
        }
    }

    /// The first `n` examples.
    public func prefix(_ n: Int) -> ImageDataset { subset(Array(0..<min(n, count))) }

    /// Raw pixels ([N,H,W] or [N,C,H,W] bytes), kept as bytes and scaled by 1/255, zero-padded and normalised
    /// batch by batch. Only one image (padded) must be within `ShapeLimits.maxElements`: the bytes are already
    /// in memory, and batches are made a few images at a time.
    public static func preprocessed(bytes: [UInt8], shape: [Int], labels: [Int],
                                    preprocessing p: Preprocessing) throws -> ImageDataset {
        let nchw = try nchw(shape, padded: p.pad, values: bytes.count, wholeSet: false)
        let (mean, std) = try p.perChannel(nchw[1])
        let t = PixelTransform(channels: nchw[1], height: nchw[2], width: nchw[3], pad: p.pad, channelsLast: p.layout == .nhwc,
                               scale: 1 / 255, mean: mean, std: std)
        // The transform is affine, so it is finite on every pixel when it is at the extremes present (and the border).
        let extremes = bytes.isEmpty ? [] : (0..<nchw[1]).flatMap { c in
            [t.apply(bytes.min()!, channel: c), t.apply(bytes.max()!, channel: c)] + (p.pad > 0 ? [t.padValue(channel: c)] : [])
        }
        guard extremes.allSatisfy(\.isFinite) else { throw nonFinite(p) }
        let (c, h, w) = (nchw[1], nchw[2] + 2 * p.pad, nchw[3] + 2 * p.pad)
        return try ImageDataset(imageShape: t.channelsLast ? [h, w, c] : [c, h, w], labels: labels, storage: .pixels(bytes, t), count: nchw[0])
    }

    /// Float pixels ([N,H,W] or [N,C,H,W]), taken as they are, then zero-padded and normalised.
    public static func preprocessed(pixels: [Float], shape: [Int], labels: [Int],
                                    preprocessing p: Preprocessing) throws -> ImageDataset {
        guard p.layout == .nchw else { throw DatasetError.mismatch("float images are given to the model as they are stored (N×C×H×W); --layout nhwc needs byte images") }
        let nchw = try nchw(shape, padded: p.pad, values: pixels.count, wholeSet: true)
        let (n, c, h, w) = (nchw[0], nchw[1], nchw[2], nchw[3])
        let (mean, std) = try p.perChannel(c)
        let (ph, pw) = (h + 2 * p.pad, w + 2 * p.pad)
        var out = [Float](repeating: 0, count: n * c * ph * pw)
        for plane in 0..<(n * c) {
            let (m, s) = (mean[plane % c], std[plane % c])
            for j in 0..<(ph * pw) { out[plane * ph * pw + j] = (0 - m) / s }
            for y in 0..<h {
                for x in 0..<w {
                    out[(plane * ph + y + p.pad) * pw + x + p.pad] = (pixels[(plane * h + y) * w + x] - m) / s
                }
            }
        }
        guard out.allSatisfy(\.isFinite) else { throw nonFinite(p) }
        return try ImageDataset(images: Tensor(shape: [n, c, ph, pw], scalars: out), labels: labels)
    }

    /// `shape` as N×C×H×W, checked against the number of values and the element limit once padded (the whole set's,
    /// or one image's when the set stays bytes).
    private static func nchw(_ shape: [Int], padded pad: Int, values: Int, wholeSet: Bool) throws -> [Int] {
        let nchw: [Int]
        switch shape.count {
        case 3: nchw = [shape[0], 1, shape[1], shape[2]]
        case 4: nchw = shape
        default: throw DatasetError.mismatch("images must be N×H×W or N×C×H×W, got \(shape)")
        }
        guard pad >= 0, pad <= ShapeLimits.maxWindow,
              checkedElementCount([wholeSet ? nchw[0] : 1, nchw[1], nchw[2] + 2 * pad, nchw[3] + 2 * pad]) != nil,
              nchw.allSatisfy({ $0 >= 0 }), checkedProduct(nchw) == values else {
            throw DatasetError.mismatch("\(shape) images padded by \(pad) are more than the \(ShapeLimits.maxElements)-value limit")
        }
        return nchw
    }

    /// n₀ · n₁ · …, or nil when it overflows.
    private static func checkedProduct(_ values: [Int]) -> Int? {
        var product = 1
        for v in values {
            let (p, overflow) = product.multipliedReportingOverflow(by: v)
            if overflow { return nil }
            product = p
        }
        return product
    }

    private static func nonFinite(_ p: Preprocessing) -> DatasetError {
        .mismatch("preprocessing gives NaN or infinite pixel values (mean \(p.mean.map { "\($0)" }.joined(separator: ",")), std \(p.std.map { "\($0)" }.joined(separator: ","))); choose a --std that keeps (x − mean) / std finite, or check the images")
    }
}
