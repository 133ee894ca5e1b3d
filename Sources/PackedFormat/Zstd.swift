import CZstd
import Foundation

/// zstd frames, through libzstd.
enum Zstd {
    /// The level the writer uses: close to the best ratio on index streams at a few seconds for VGG-16.
    static let level: Int32 = 12

    static func compress(_ bytes: UnsafeRawBufferPointer) -> Data {
        let bound = ZSTD_compressBound(bytes.count)
        var out = Data(count: bound)
        let written = out.withUnsafeMutableBytes { dst in
            ZSTD_compress(dst.baseAddress, bound, bytes.baseAddress, bytes.count, level)
        }
        guard ZSTD_isError(written) == 0 else { return Data(bytes) }
        out.count = written
        return out
    }

    /// The frame in `stored` decompressed into exactly `into.count` bytes; false when it does not hold exactly that.
    static func decompress(_ stored: UnsafeRawBufferPointer, into: UnsafeMutableRawBufferPointer) -> Bool {
        let declared = ZSTD_getFrameContentSize(stored.baseAddress, stored.count)
        guard declared == UInt64(into.count) else { return false }
        let n = ZSTD_decompress(into.baseAddress, into.count, stored.baseAddress, stored.count)
        return ZSTD_isError(n) == 0 && n == into.count
    }
}
