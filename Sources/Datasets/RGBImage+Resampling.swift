/// Resizing and cropping as torchvision does them on PIL images: `Resize(n)` is PIL's bilinear filter (with
/// antialiasing: the filter widens by the scale factor when shrinking) in 8-bit fixed point, horizontal pass first,
/// and `CenterCrop(n)` rounds the offset half to even as Python's `round` does.
extension RGBImage {
    /// The size torchvision's `Resize(side)` gives: the shorter side becomes `side`, the longer side
    /// `int(side × long / short)` (truncated), so the aspect ratio is kept.
    public static func sizeResized(width: Int, height: Int, shorterSide side: Int) -> (width: Int, height: Int) {
        let (short, long) = width <= height ? (width, height) : (height, width)
        let newLong = Int(Double(side * long) / Double(short))
        return width <= height ? (side, newLong) : (newLong, side)
    }

    /// The image with its shorter side resized to `side` pixels (`torchvision.transforms.Resize(side)`).
    public func resized(shorterSide side: Int) -> RGBImage {
        precondition(side >= 1 && width >= 1 && height >= 1)
        let size = RGBImage.sizeResized(width: width, height: height, shorterSide: side)
        return resized(width: size.width, height: size.height)
    }

    /// The image resampled to `newWidth` × `newHeight` with PIL's `Image.resize(…, BILINEAR)`.
    public func resized(width newWidth: Int, height newHeight: Int) -> RGBImage {
        var image = self
        if newWidth != width {
            image = image.resampled(ResamplingCoefficients(input: width, output: newWidth), horizontally: true)
        }
        if newHeight != height {
            image = image.resampled(ResamplingCoefficients(input: height, output: newHeight), horizontally: false)
        }
        return image
    }

    /// The centre `size` × `size` square (`torchvision.transforms.CenterCrop(size)`), or nil when the image is
    /// smaller than that on either side.
    public func centerCropped(_ size: Int) -> RGBImage? {
        guard size >= 1, size <= width, size <= height else { return nil }
        // int(round((dimension − size) / 2.0)): Python rounds halves to even.
        let top = Int((Double(height - size) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(width - size) / 2).rounded(.toNearestOrEven))
        var out = [UInt8](repeating: 0, count: size * size * 3)
        for y in 0..<size {
            let source = ((top + y) * width + left) * 3
            out[(y * size * 3)..<((y + 1) * size * 3)] = pixels[source..<(source + size * 3)]
        }
        return RGBImage(width: size, height: size, pixels: out)
    }

    /// One pass of the separable filter along rows (`horizontally`) or columns.
    private func resampled(_ k: ResamplingCoefficients, horizontally: Bool) -> RGBImage {
        let (outWidth, outHeight) = horizontally ? (k.outputSize, height) : (width, k.outputSize)
        var out = [UInt8](repeating: 0, count: outWidth * outHeight * 3)
        let half = 1 << (ResamplingCoefficients.precisionBits - 1)
        pixels.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { out in
                k.weights.withUnsafeBufferPointer { weights in
                    for y in 0..<outHeight {
                        for x in 0..<outWidth {
                            let i = horizontally ? x : y
                            let (first, count) = (k.first[i], k.count[i])
                            // Step between the input pixels the filter reads, and the first of them.
                            let (step, base) = horizontally ? (3, (y * width + first) * 3) : (width * 3, (first * width + x) * 3)
                            for c in 0..<3 {
                                var sum = half
                                for j in 0..<count { sum += Int(input[base + j * step + c]) * Int(weights[i * k.stride + j]) }
                                out[(y * outWidth + x) * 3 + c] = UInt8(clamping: sum >> ResamplingCoefficients.precisionBits)
                            }
                        }
                    }
                }
            }
        }
        return RGBImage(width: outWidth, height: outHeight, pixels: out)
    }
}

/// PIL's bilinear filter weights (`precompute_coeffs` and `normalize_coeffs_8bpc` in Pillow's Resample.c): for each
/// output pixel, the first input pixel it reads, how many, and their weights in fixed point with 22 fraction bits.
struct ResamplingCoefficients {
    static let precisionBits = 32 - 8 - 2

    let outputSize: Int
    /// Weights per output pixel (the most any output pixel reads).
    let stride: Int
    var first: [Int]
    var count: [Int]
    var weights: [Int32]

    init(input: Int, output: Int) {
        let scale = Double(input) / Double(output)
        let filterScale = max(scale, 1)
        let support = 1.0 * filterScale  // the bilinear (triangle) filter reaches 1 pixel at scale 1
        stride = Int(support.rounded(.up)) * 2 + 1
        outputSize = output
        first = []
        count = []
        weights = [Int32](repeating: 0, count: output * stride)
        func triangle(_ x: Double) -> Double { abs(x) < 1 ? 1 - abs(x) : 0 }
        for i in 0..<output {
            let center = (Double(i) + 0.5) * scale
            let lower = max(Int(center - support + 0.5), 0)
            let upper = min(Int(center + support + 0.5), input)
            var w = (lower..<upper).map { triangle((Double($0) - center + 0.5) / filterScale) }
            let total = w.reduce(0, +)
            if total != 0 { w = w.map { $0 / total } }
            for (j, v) in w.enumerated() {
                let fixed = v * Double(1 << ResamplingCoefficients.precisionBits)
                weights[i * stride + j] = Int32(fixed < 0 ? fixed - 0.5 : fixed + 0.5)
            }
            first.append(lower)
            count.append(upper - lower)
        }
    }
}
