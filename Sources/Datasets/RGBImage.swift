import CImageCodecs
import Compute
import FileOutput
import Foundation

/// An 8-bit RGB image, row after row, three interleaved bytes a pixel, as PIL holds an "RGB" image.
public struct RGBImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// height × width × 3 bytes.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "\(width)×\(height) RGB needs \(width * height * 3) bytes")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// The largest JPEG or PNG file read: 256 MiB.
    public static let maxFileBytes = 1 << 28

    /// Reads a JPEG or PNG file (told apart by its signature, not its name) and decodes it to RGB with libjpeg-turbo
    /// or libpng. Grey, palette, 16-bit and alpha images are converted as PIL's `convert("RGB")` does; a corrupt or
    /// truncated file, a CMYK JPEG or one of more than `ShapeLimits.maxElements` values is an error naming the file.
    public static func read(_ path: String) throws -> RGBImage {
        let data: Data
        do {
            data = try RegularFile.read(path, limit: maxFileBytes)
        } catch .notFound {
            throw DatasetError.notFound(path: path, hint: "check the path")
        } catch {
            throw DatasetError.unreadable(path: path, reason: error.description)
        }
        return try decode(data, path: path)
    }

    /// Decodes JPEG or PNG bytes held in memory.
    public static func decode(_ data: Data, path: String = "<memory>") throws -> RGBImage {
        var image = wc_rgb_image()
        var message = [CChar](repeating: 0, count: 512)
        let status = data.withUnsafeBytes { raw in
            wc_decode_rgb(raw.bindMemory(to: UInt8.self).baseAddress, raw.count, ShapeLimits.maxElements, &image, &message, message.count)
        }
        guard status == 0 else {
            throw DatasetError.undecodable(path: path, reason: String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        defer { wc_image_free(&image) }
        let (width, height) = (Int(image.width), Int(image.height))
        let pixels = [UInt8](UnsafeBufferPointer(start: image.pixels, count: width * height * 3))
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// The image as planes (channels × height × width bytes), red first or blue first.
    public func planes(_ order: Preprocessing.ChannelOrder) -> [UInt8] {
        let area = width * height
        let source: [Int] = order == .rgb ? [0, 1, 2] : [2, 1, 0]
        var out = [UInt8](repeating: 0, count: 3 * area)
        pixels.withUnsafeBufferPointer { pixels in
            out.withUnsafeMutableBufferPointer { out in
                for (plane, channel) in source.enumerated() {
                    for i in 0..<area { out[plane * area + i] = pixels[3 * i + channel] }
                }
            }
        }
        return out
    }
}
