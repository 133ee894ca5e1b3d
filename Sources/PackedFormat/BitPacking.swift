import Foundation

/// Index streams: `width` bits per value, least significant bit first, values one after another with no padding
/// (value i occupies bits i·width ..< (i+1)·width of the little-endian bit stream).
enum BitPacking {
    static func byteCount(values: Int, width: Int) -> Int { (values * width + 7) / 8 }

    static func pack<C: Collection>(_ values: C, width: Int) -> Data where C.Element: BinaryInteger {
        var out = Data(count: byteCount(values: values.count, width: width))
        guard width > 0 else { return out }
        out.withUnsafeMutableBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            var acc: UInt64 = 0, bits = 0, at = 0
            for v in values {
                acc |= UInt64(truncatingIfNeeded: v) << UInt64(bits)
                bits += width
                while bits >= 8 {
                    bytes[at] = UInt8(truncatingIfNeeded: acc)
                    at += 1
                    acc >>= 8
                    bits -= 8
                }
            }
            if bits > 0 { bytes[at] = UInt8(truncatingIfNeeded: acc) }
        }
        return out
    }

    /// Byte planes of `values` at `planes` bytes each: byte 0 of every value, then byte 1, … (what zstd codes best).
    static func planes<C: Collection>(_ values: C, planes: Int) -> Data where C.Element: BinaryInteger {
        let n = values.count
        var out = Data(count: n * planes)
        out.withUnsafeMutableBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            for (i, v) in values.enumerated() {
                let u = UInt32(truncatingIfNeeded: v)
                for p in 0..<planes { bytes[p * n + i] = UInt8(truncatingIfNeeded: u >> UInt32(8 * p)) }
            }
        }
        return out
    }

    static func planeCount(width: Int) -> Int { max(1, (width + 7) / 8) }

    /// `table[i]` for the `count` values i of the stream from value `first` on, into `out`. Widths 1, 2, 4 and 8
    /// starting on a byte boundary are read a byte at a time (several values per byte, no bit cursor); others, and
    /// the values after the last whole byte, through a `BitReader`.
    static func lookUp(_ packed: UnsafeRawBufferPointer, width: Int, first: Int, count: Int,
                       table: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        var done = 0
        if width > 0, 8 % width == 0, (first * width) % 8 == 0 {
            let perByte = 8 / width, bytes = count / perByte
            let src = packed.baseAddress!.assumingMemoryBound(to: UInt8.self) + first * width / 8
            switch width {
            case 8: for b in 0..<bytes { out[b] = table[Int(src[b])] }
            case 4:
                for b in 0..<bytes {
                    let x = Int(src[b])
                    out[2 * b] = table[x & 15]
                    out[2 * b + 1] = table[x >> 4]
                }
            case 2:
                for b in 0..<bytes {
                    let x = Int(src[b])
                    for k in 0..<4 { out[4 * b + k] = table[(x >> (2 * k)) & 3] }
                }
            default:
                for b in 0..<bytes {
                    let x = Int(src[b])
                    for k in 0..<8 { out[8 * b + k] = table[(x >> k) & 1] }
                }
            }
            done = bytes * perByte
        }
        guard done < count else { return }
        var cursor = BitReader(packed, width: width, startingAt: first + done)
        for o in done..<count { out[o] = table[cursor.next()] }
    }
}

/// Reads bit-packed values one after another.
struct BitReader {
    private let bytes: UnsafeRawBufferPointer
    private let width: Int
    private let mask: UInt64
    private var acc: UInt64 = 0
    private var bits = 0
    private var at = 0

    /// A reader positioned at value `index`.
    init(_ bytes: UnsafeRawBufferPointer, width: Int, startingAt index: Int = 0) {
        self.bytes = bytes
        self.width = width
        self.mask = width >= 64 ? ~0 : (UInt64(1) << UInt64(width)) - 1
        let bit = index * width
        at = bit / 8
        if bit % 8 != 0 {
            acc = UInt64(bytes[at]) >> UInt64(bit % 8)
            bits = 8 - bit % 8
            at += 1
        }
    }

    /// The next value; the caller reads no more values than the stream holds (checked once, from its length).
    @inline(__always)
    mutating func next() -> Int {
        if bits < width {
            if at + 8 <= bytes.count {
                // Eight bytes at once; only whole bytes are counted, and the bits of the next byte that came along
                // are the same bits the next refill ORs in again at the same place (Giesen's refill, variant 4).
                acc |= UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) << UInt64(bits)
                let whole = (63 - bits) >> 3
                at += whole
                bits += whole * 8
            } else {
                while bits < width {
                    acc |= UInt64(bytes[at]) << UInt64(bits)
                    at += 1
                    bits += 8
                }
            }
        }
        let v = acc & mask
        acc >>= UInt64(width)
        bits -= width
        return Int(v)
    }
}

/// Shannon entropy, in bits per value, of values counted in `counts`.
func entropy(_ counts: [Int]) -> Double {
    let total = Double(counts.reduce(0, +))
    guard total > 0 else { return 0 }
    return counts.reduce(0.0) { h, c in c == 0 ? h : h - Double(c) / total * log2(Double(c) / total) }
}
